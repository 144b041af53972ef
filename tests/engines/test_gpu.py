"""Engine vs eager parity and refit on a GPU (skipped with a reason where there is none)."""

from __future__ import annotations

import pytest
import torch

from maskattn_trt.spec import GATE_PREFIX, OUTPUT_NAME, TOLERANCES

from ..conftest import requires_cuda, requires_rtx
from ..helpers import gated_tiny_unet

pytestmark = [requires_cuda, requires_rtx, pytest.mark.gpu]


def _build(export, out, **kw):
    from maskattn_trt.engines.build import BuildOptions, build_engine

    return build_engine(BuildOptions(onnx=export, out=out, builder="tensorrt-rtx", compute_capabilities=(),
                                     progress=False, **kw)).engine_path


def _compare(engine_out, eager_out, pair):
    atol, rel = TOLERANCES[pair][OUTPUT_NAME]
    diff = (engine_out[OUTPUT_NAME].float().cpu() - eager_out[OUTPUT_NAME].float().cpu())
    assert diff.abs().max().item() <= atol, diff.abs().max().item()
    assert diff.norm().item() <= rel * eager_out[OUTPUT_NAME].float().norm().item() + atol
    gates = [k for k in eager_out if k.startswith(GATE_PREFIX)]
    agree = torch.stack([(engine_out[k].cpu() == eager_out[k].cpu()).float().mean() for k in gates]).mean()
    assert agree.item() >= TOLERANCES[pair]["gate_agreement"], agree.item()


def test_engine_matches_eager(gated_unet, fp32_export, tmp_path):
    from maskattn_trt.runners import EagerRunner, TrtRunner
    from maskattn_trt.spec import UNetIOSpec
    from maskattn_trt.utils.tensorrt import device_compute_capability

    spec = UNetIOSpec.load(fp32_export.out_dir / "io_spec.json")
    engine = _build(fp32_export.out_dir, tmp_path / "e.engine")
    assert device_compute_capability()
    feed = spec.dummy_inputs(2, 32, 48, seed=21)
    with EagerRunner(gated_unet, spec) as eager, TrtRunner(engine) as trt:
        ref, out = eager.infer(feed), trt.infer(feed)
    _compare(out, ref, ("fp32", "fp32"))


def test_refit_changes_outputs_like_loading_the_gates_in_eager(fp32_export, tmp_path):
    from maskattn_trt import load_gates, save_gates
    from maskattn_trt.engines.refit import refit_engine
    from maskattn_trt.runners import EagerRunner, TrtRunner
    from maskattn_trt.spec import UNetIOSpec

    spec = UNetIOSpec.load(fp32_export.out_dir / "io_spec.json")
    engine = _build(fp32_export.out_dir, tmp_path / "r.engine", refittable=True)
    new_unet = gated_tiny_unet(seed=5)
    ckpt = save_gates(new_unet, tmp_path / "new.safetensors")
    refit_engine(engine, ckpt)
    eager_unet = gated_tiny_unet()  # the exported gates, then the new ones loaded over them
    load_gates(eager_unet, ckpt)
    feed = spec.dummy_inputs(1, 32, 32, seed=4)
    with EagerRunner(eager_unet, spec) as eager, TrtRunner(engine) as trt:
        _compare(trt.infer(feed), eager.infer(feed), ("fp32", "fp32"))
