"""fp16 export: strongly typed graph, fp32 gate heads inside it, finite and close to fp32 eager even with every
gate closed (the NaN guard keeps one token per row)."""

from __future__ import annotations

import copy

import onnx
import pytest
import torch

from maskattn_trt.export import cast_unet
from maskattn_trt.gates import gate_heads, recording_gate_margins
from maskattn_trt.parity import compare_runners
from maskattn_trt.runners import EagerRunner, OrtRunner
from maskattn_trt.spec import GATE_PREFIX, OUTPUT_NAME

from ..helpers import export_tiny, gated_tiny_unet, tiny_spec

REL_L2_FP16 = 1e-2  # fp16 graph vs fp32 eager (explicit, the criterion)
SHAPES = [(1, 32, 32), (2, 48, 64)]


def _closed(unet):
    with torch.no_grad():
        for head in gate_heads(unet).values():
            head.logit_bias.fill_(-1.0e4)  # every logit far below logit(0.5) = 0
    return unet


@pytest.fixture(scope="module", params=["gated", "all_closed"])
def case(request, tmp_path_factory):
    """("gated", the shared gated UNet, the shared fp16 export) or the same UNet with every gate closed, exported."""
    if request.param == "gated":
        return request.param, request.getfixturevalue("gated_unet"), request.getfixturevalue("fp16_export")
    reference = _closed(gated_tiny_unet(seed=4))  # a draw whose fp16 rounding leaves some feeds flip-free
    half = cast_unet(copy.deepcopy(reference), "fp16")
    result = export_tiny(half, tmp_path_factory.mktemp("fp16") / request.param, tiny_spec(half, dtype="fp16"))
    return request.param, reference, result


def test_fp16_graph_is_strongly_typed_with_fp32_gate_heads(case):
    _, reference, result = case
    graph = result.manifest["graph"]
    assert graph["inputs"] == {"sample": "fp16", "timestep": "fp32", "encoder_hidden_states": "fp16",
                               "text_embeds": "fp16", "time_ids": "fp16"}
    assert set(graph["outputs"].values()) == {"fp16"}
    model = onnx.load(str(result.onnx_path))
    fp32_mats = sorted(tuple(t.dims) for t in model.graph.initializer
                       if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 2)
    head_mats = sorted(tuple(p.shape[::-1]) for head in gate_heads(reference).values()
                       for name, p in head.named_parameters() if p.ndim == 2)
    assert fp32_mats == head_mats  # exactly the gate heads' Linear weights are fp32, everything else fp16
    assert graph["initializers"]["fp16"] > 100
    assert "fp32" in result.manifest["fp32_kept"]


def test_fp16_finite_and_close_to_fp32_eager(case):
    name, reference, result = case
    spec32 = result.spec.replace(dtype="fp32")
    feeds = [(f"b{b} {h}x{w}", spec32.dummy_inputs(b, h, w, seed=h)) for b, h, w in SHAPES]
    ort = OrtRunner(result.out_dir)
    tol = {OUTPUT_NAME: (5e-2, REL_L2_FP16), "gate_agreement": 0.99, "gate_logit_margin": 0.1,
           "flip_noise_pred": (5e-1, 1e-1)}
    with recording_gate_margins(reference) as margins:
        report = compare_runners(EagerRunner(reference, spec32), {"ort": ort}, feeds, tolerances=tol, progress=False,
                                 reference_margins=margins)
    strict = 0
    for c in report.cases:
        out = c.outputs[OUTPUT_NAME]
        assert out.finite, (name, c.case)
        assert all(g.unexplained_flips == 0 for g in c.gates.values()), (name, c.case)
        if not out.flip_affected:
            assert out.rel_l2 <= REL_L2_FP16, (name, c.case, out.rel_l2)
            strict += 1
    assert strict >= 1 and report.passed, "\n".join(report.table())


@pytest.mark.parametrize("case", ["all_closed"], indirect=True)
def test_all_closed_keeps_exactly_one_token_per_row(case):
    _, _, result = case
    spec = result.spec
    with OrtRunner(result.out_dir) as ort:
        out = ort.infer(spec.dummy_inputs(2, 48, 64, seed=9))
    for key, gate in out.items():
        if key.startswith(GATE_PREFIX):  # the NaN guard: one open token per row, never an all-closed row
            assert torch.equal(gate.float().sum(-1), torch.ones(gate.shape[:-1])), key
