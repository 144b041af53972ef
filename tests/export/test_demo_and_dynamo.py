"""The demo stage, the trace shape, and the dynamo exporter path (slow)."""

from __future__ import annotations

import json

import pytest
import torch

from maskattn_trt import GateConfig, install_gates
from maskattn_trt.demo import DemoState
from maskattn_trt.demo.export import demo_stage
from maskattn_trt.export import cast_unet, export_unet
from maskattn_trt.export.onnx import trace_shape
from maskattn_trt.export.patches import cast_add_time_proj, gates_forced_open
from maskattn_trt.gates import gate_processors, set_gates_open
from maskattn_trt.models import tiny_sdxl_pipeline
from maskattn_trt.runners import EagerRunner, OrtRunner
from maskattn_trt.spec import OUTPUT_NAME, Range

from ..helpers import gated_tiny_unet, tiny_spec


def test_demo_stage_exports_and_proves_parity(tmp_path):
    """Also the one export with the onnxslim pass on (the library default): parity holds on the slimmed graph."""
    state = DemoState(out_dir=tmp_path, model="tiny-random", pipe=tiny_sdxl_pipeline(0))
    assert demo_stage(state) == ["skipped: the tiny UNet has no gates (the gates stage did not run)"]
    install_gates(state.pipe.unet, GateConfig())
    lines = demo_stage(state)
    assert state.onnx_dir == tmp_path / "onnx" and (state.onnx_dir / "unet.onnx").is_file()
    assert json.loads((state.onnx_dir / "manifest.json").read_text())["slimmed"]
    assert any(line.startswith("parity passed") for line in lines), "\n".join(lines)
    assert sum("prompts b" in line for line in lines) == 4 and sum("random b" in line for line in lines) == 4


def test_trace_shape_is_small_for_dynamic_and_exact_for_static(gated_unet):
    unet = gated_unet
    assert trace_shape(tiny_spec(unet)) == (2, 16, 16)
    big = tiny_spec(unet, batch=Range(1, 1, 1), height=Range(64, 128, 128), width=Range(64, 96, 128))
    assert trace_shape(big) == (1, 32, 32)
    static = tiny_spec(unet, batch=Range(3, 3, 3), height=Range(48, 48, 48), width=Range(40, 40, 40))
    assert trace_shape(static) == (3, 48, 40)


@pytest.mark.slow
@pytest.mark.smoke  # the only dynamo export: kept in the README test command (CI)
def test_dynamo_fp16_export_runs_in_ort(tmp_path):
    """The dynamo exporter with the reversible add_time_proj cast patch gives a valid fp16 graph."""
    reference = gated_tiny_unet()
    half = cast_unet(gated_tiny_unet(), "fp16")
    spec = tiny_spec(half, dtype="fp16", gate_outputs=False)
    result = export_unet(half, tmp_path / "dynamo", spec, exporter="dynamo", slim=False, progress=False)
    assert result.manifest["exporter"] == "dynamo" and result.manifest["graph"]["isnan"] == 0
    assert not half.add_time_proj._forward_hooks  # the patch was removed
    spec32 = spec.replace(dtype="fp32")
    with EagerRunner(reference, spec32) as eager, OrtRunner(result.out_dir) as ort:
        feed = spec32.dummy_inputs(2, 32, 48, seed=1)
        ref, out = eager.infer(feed)[OUTPUT_NAME], ort.infer(feed)[OUTPUT_NAME].float()
    assert torch.isfinite(out).all() and ((out - ref).norm() / ref.norm()) <= 1e-2


def test_export_patches_are_reversible():
    """The fast form of the dynamo fp16 fix: add_time_proj's output takes the model dtype only inside the block."""
    unet = gated_tiny_unet()  # a fresh one: the test opens and closes its gates
    ids = torch.tensor([64.0, 64.0, 0.0, 0.0, 64.0, 64.0])
    assert unet.add_time_proj(ids).dtype == torch.float32
    with cast_add_time_proj(unet, torch.float16):
        assert unet.add_time_proj(ids).dtype == torch.float16
    assert unet.add_time_proj(ids).dtype == torch.float32 and not unet.add_time_proj._forward_hooks
    set_gates_open(unet, False)
    with pytest.raises(RuntimeError), gates_forced_open(unet, True):
        assert all(p.force_open for p in gate_processors(unet).values())
        raise RuntimeError("export failed")
    assert not any(p.force_open for p in gate_processors(unet).values())  # restored, also after a failure
