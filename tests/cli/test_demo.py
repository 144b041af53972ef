"""`maskattn-trt demo` as a user types it, on the shipped model: the gates stage, then the gates and train stages."""


def test_demo_prints_the_gate_report(run_cli, tmp_path):
    code, out, err = run_cli("demo", "--out", tmp_path / "demo", "--only", "gates")
    assert code == 0, err
    assert "[setup] loaded the shipped tiny SDXL" in out
    assert "onto 10 cross-attention sites (stage=mid" in out
    assert "gates forced open: max |gated - stock| = 0.00e+00" in out
    assert "trained gates: max |gated - stock|" in out


def test_demo_train_stage_trains_fresh_gates_on_a_copy(run_cli, tmp_path):
    code, out, err = run_cli("demo", "--out", tmp_path / "demo", "--only", "gates", "--only", "train", "--quick")
    assert code == 0, err
    assert "[train]" in out and "trained fresh gate heads for 12 steps on 64 world scenes (128 px)" in out
    assert "fixed-batch loss" in out
    assert (tmp_path / "demo" / "train" / "gates.safetensors").is_file()
