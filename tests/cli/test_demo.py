"""`maskattn-trt demo` as a user types it, on the shipped model: the gates stage, then the gates and train stages."""


def test_demo_prints_the_gate_report(run_cli, tmp_path):
    code, out, err = run_cli("demo", "--out", tmp_path / "demo", "--only", "gates")
    assert code == 0, err
    assert "[setup] loaded the shipped tiny SDXL" in out
    assert "(215 min on 2 CPU cores" in out  # the three train-base runs of the shipped base (97 + 62 + 56 min)
    assert "onto 10 cross-attention sites (stage=mid" in out
    assert "gates forced open: max |gated - stock| = 0.00e+00" in out
    assert "trained gates: max |gated - stock|" in out


def test_demo_train_stage_trains_fresh_gates_on_a_copy(run_cli, tmp_path):
    code, out, err = run_cli("demo", "--out", tmp_path / "demo", "--only", "gates", "--only", "train", "--quick")
    assert code == 0, err
    assert "[train]" in out and "trained fresh gate heads for 12 steps on 64 world scenes (128 px)" in out
    assert "fixed-batch loss" in out
    assert (tmp_path / "demo" / "train" / "gates.safetensors").is_file()


def test_demo_generate_stage_draws_the_mask_supervised_gates_too(tmp_path):
    from maskattn_trt.demo import run_demo
    from maskattn_trt.gates import gates_hash, load_gates
    from maskattn_trt.models import load_unet, shipped_gates

    lines = []
    state = run_demo(tmp_path / "demo", quick=True, only=("gates", "generate"), echo=lines.append)
    text = "\n".join(lines)
    assert "mask-supervised gates (--gates shipped:mask" in text and "open fraction of the colour / shape words" in text
    overlays = list((tmp_path / "demo" / "generate" / "mask_gates").glob("*.overlay.png"))
    assert len(overlays) == 1
    # the demo's own gates are back on its UNet afterwards
    reference = load_unet("tiny")
    load_gates(reference, shipped_gates("tiny"))
    assert gates_hash(state.pipe.unet) == gates_hash(reference)
