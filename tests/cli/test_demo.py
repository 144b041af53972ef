"""`maskattn-trt demo` as a user types it: the gates stage, then the gates and train stages."""


def test_demo_prints_the_gate_report(run_cli, tmp_path):
    code, out, err = run_cli("demo", "--out", tmp_path / "demo", "--only", "gates")
    assert code == 0, err
    assert "gated 10 cross-attention sites" in out
    assert "gates open: max |gated - stock| = 0.00e+00" in out
    assert (tmp_path / "demo" / "gates_random.safetensors").is_file()


def test_demo_train_stage_trains_the_installed_gates(run_cli, tmp_path):
    code, out, err = run_cli("demo", "--out", tmp_path / "demo", "--only", "gates", "--only", "train", "--quick")
    assert code == 0, err
    assert "[train]" in out and "trained the installed gate heads for 12 steps" in out
    assert "fixed-batch loss" in out and "open fraction per site after training" in out
    assert (tmp_path / "demo" / "train" / "gates.safetensors").is_file()
