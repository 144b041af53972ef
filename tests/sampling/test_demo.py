"""The demo's generate stage on the shared export (ONNX Runtime) and gates."""

from __future__ import annotations

from maskattn_trt.demo import DemoState
from maskattn_trt.demo.generate import demo_stage


def test_demo_stage_via_onnxruntime(tmp_path, gated_pipe, gates_checkpoint, fp32_export):
    state = DemoState(out_dir=tmp_path, model="tiny-random", quick=True, pipe=gated_pipe, gates_path=gates_checkpoint,
                      onnx_dir=fp32_export.out_dir)
    lines = demo_stage(state)
    assert lines[0].startswith("onnxruntime: image") and "open fraction per token: <start>" in lines[-1]
    names = {p.name for p in (tmp_path / "generate").iterdir()}
    assert {"gate_fractions.json"} < names and sum(n.endswith(".gates.png") for n in names) == 1
