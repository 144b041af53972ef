"""`maskattn-trt convert-gates` and `gates-info` as a user types them, and their one-line errors."""

import torch

from maskattn_trt import GateConfig, install_gates
from maskattn_trt.models import build_unet


def test_convert_gates_and_gates_info(run_cli, tmp_path):
    unet = build_unet("tiny-random")
    inst = install_gates(unet, GateConfig(stage="high"))
    state = {k: v for k, v in unet.state_dict().items() if ".processor.gate_head." in k}
    torch.save({"format": "maskattn-sdxl-gates-v1",
                "maskattn_config": {"stage": "high", "placement": "encoder_decoder"},
                "selected_layers": [s + ".processor" for s in inst.sites], "gate_state_dict": state},
               tmp_path / "gate_final.pt")
    code, out, err = run_cli("convert-gates", tmp_path / "gate_final.pt", tmp_path / "g.safetensors",
                             "--model", "tiny-random")
    assert code == 0, err
    assert "5 sites" in out
    code, out, _ = run_cli("gates-info", tmp_path / "g.safetensors")
    assert code == 0 and '"stage": "high"' in out


def test_errors_are_one_line_with_a_nonzero_exit(run_cli, tmp_path):
    code, out, err = run_cli("gates-info", tmp_path / "missing.safetensors")
    assert code == 3
    assert err.count("\n") == 1 and err.startswith("error: gate checkpoint") and "does not exist" in err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    code, _, err = run_cli("convert-gates", tmp_path / "junk.pt", tmp_path / "out.safetensors", "--model", "tiny-random")
    assert code == 3 and err.count("\n") == 1
    assert not (tmp_path / "out.safetensors").exists()
