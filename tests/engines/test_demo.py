"""The demo's engine stage builds a TensorRT-RTX engine from the exported graph (or says why not)."""

from __future__ import annotations

from maskattn_trt.demo import DemoState
from maskattn_trt.demo.engines import demo_stage

from ..conftest import requires_rtx


def test_demo_stage_without_export_says_why(tmp_path):
    lines = demo_stage(DemoState(out_dir=tmp_path))
    assert lines and lines[0].startswith("skipped: no exported graph")


@requires_rtx
def test_demo_stage_builds_an_engine(fp16_export, tmp_path):
    state = DemoState(out_dir=tmp_path, onnx_dir=fp16_export.out_dir)
    lines = demo_stage(state)
    assert state.engine_path is not None and state.engine_path.stat().st_size > 1_000_000
    assert any("fused attention kernels" in line for line in lines)
