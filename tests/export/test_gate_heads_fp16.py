"""fp16 gate heads (``gate_heads="fp16"``, for Turing / SM75 engines: TensorRT-RTX has no fp32 GEMM there),
measured against fp32 heads and against the fp32 eager reference."""

from __future__ import annotations

import copy

import onnx
import pytest

from maskattn_trt.engines.build import fp32_gemms
from maskattn_trt.errors import BadInputError
from maskattn_trt.export import cast_unet
from maskattn_trt.export.from_model import ExportRequest, export_model
from maskattn_trt.gates import recording_gate_margins
from maskattn_trt.parity import compare_runners
from maskattn_trt.runners import EagerRunner, OrtRunner
from maskattn_trt.spec import GATE_PREFIX, OUTPUT_NAME

from ..helpers import export_tiny, gated_tiny_unet, tiny_spec

SHAPES = [(1, 32, 32), (2, 48, 64), (2, 64, 64)]
# Measured on the tiny UNet (ORT CPU, these shapes): fp16 vs fp32 heads (fp16 backbone) agree on 99.93-99.98 %
# of gates, noise_pred rel L2 7e-4..1.1e-3; against fp32 eager both reach 99.8-99.9 % with every flip within
# 0.1 logit of the threshold, rel L2 1.0e-3..1.7e-3 for either head dtype.
HEADS_AGREEMENT, HEADS_REL_L2 = 0.999, 5e-3


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    reference = gated_tiny_unet(seed=4)
    out = {}
    for heads in ("fp32", "fp16"):
        half = cast_unet(copy.deepcopy(reference), "fp16", gate_heads=heads)
        out[heads] = export_tiny(half, tmp_path_factory.mktemp("heads") / heads, tiny_spec(half, dtype="fp16"),
                                 slim=False, gate_heads=heads)
    return reference, out


def test_fp16_heads_leave_no_fp32_matrix_product(exports):
    _, out = exports
    assert out["fp16"].manifest["gate_heads"] == "fp16" and out["fp32"].manifest["gate_heads"] == "fp32"
    assert "gate heads are fp16" in out["fp16"].manifest["fp32_kept"]
    assert fp32_gemms(onnx.load(str(out["fp16"].onnx_path))) == []
    heads32 = fp32_gemms(onnx.load(str(out["fp32"].onnx_path)))
    assert heads32 and all("gate_head" in name for name in heads32)  # only the heads are fp32 otherwise


def test_fp16_heads_agree_with_fp32_heads_and_with_fp32_eager(exports):
    reference, out = exports
    spec32 = out["fp32"].spec.replace(dtype="fp32")
    feeds = [(f"b{b} {h}x{w}", spec32.dummy_inputs(b, h, w, seed=h)) for b, h, w in SHAPES]
    tol = {OUTPUT_NAME: (5e-2, 1e-2), "gate_agreement": 0.99, "gate_logit_margin": 0.1,
           "flip_noise_pred": (5e-1, 1e-1)}
    runners = {heads: OrtRunner(result.out_dir) for heads, result in out.items()}
    with recording_gate_margins(reference) as margins:
        report = compare_runners(EagerRunner(reference, spec32), runners, feeds, tolerances=tol, progress=False,
                                 reference_margins=margins)
    assert report.passed, "\n".join(report.table())
    assert all(g.unexplained_flips == 0 for c in report.cases for g in c.gates.values())
    dtypes = out["fp16"].spec.input_dtypes()
    with OrtRunner(out["fp32"].out_dir) as a, OrtRunner(out["fp16"].out_dir) as b:
        for _, feed in feeds:
            half = {k: v.to(dtypes[k]) for k, v in feed.items()}
            oa, ob = a.infer(half), b.infer(half)
            gates = [k for k in oa if k.startswith(GATE_PREFIX)]
            agree = sum((oa[k] == ob[k]).sum().item() for k in gates) / sum(oa[k].numel() for k in gates)
            x, y = oa[OUTPUT_NAME].float(), ob[OUTPUT_NAME].float()
            assert agree >= HEADS_AGREEMENT and ((x - y).norm() / x.norm()).item() <= HEADS_REL_L2


def test_fp16_heads_need_an_fp16_export_and_gates(tmp_path):
    unet = gated_tiny_unet(seed=1)
    with pytest.raises(BadInputError, match="fp16 in an fp16 export"):
        cast_unet(unet, "fp32", gate_heads="fp16")
    with pytest.raises(BadInputError, match="gate heads"):
        cast_unet(unet, "fp16", gate_heads="bf16")
    with pytest.raises(BadInputError, match="needs gates"):
        export_model(ExportRequest(model="tiny-random", out=tmp_path / "x", open_gates=True, dtype="fp16", gate_heads="fp16"), progress=False)
    assert not (tmp_path / "x").exists()
    half = cast_unet(gated_tiny_unet(seed=1), "fp16")  # fp32 heads, exported as if fp16 heads: refused
    with pytest.raises(BadInputError, match="gate_heads='fp16'"):
        export_tiny(half, tmp_path / "y", tiny_spec(half, dtype="fp16"), slim=False, gate_heads="fp16")
    assert not (tmp_path / "y").exists()
