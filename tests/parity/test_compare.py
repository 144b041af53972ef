"""The parity harness: statistics, explicit tolerances, gate flips judged by their decision margin, feeds."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from maskattn_trt.errors import ParityError
from maskattn_trt.export import cast_unet
from maskattn_trt.gates import decision_margins, recording_gate_margins
from maskattn_trt.parity import compare_runners, parity_feeds, parity_shapes
from maskattn_trt.parity.compare import compare_case
from maskattn_trt.runners import EagerRunner
from maskattn_trt.spec import OUTPUT_NAME, Range

from ..helpers import tiny_spec

SITE = "down_blocks.2.attentions.0.transformer_blocks.0.attn2"
TOL = {OUTPUT_NAME: (1e-4, 1e-5), "gate_agreement": 0.999, "gate_logit_margin": 1e-3, "flip_noise_pred": (1e-2, 1e-3)}


def _outputs(pred, gates):
    return {OUTPUT_NAME: pred, **{f"gate:{s}": g for s, g in gates.items()}}


def test_flips_are_judged_by_their_decision_margin(rng):
    pred = torch.randn(1, 4, 8, 8, generator=rng)
    gate = (torch.randn(1, 16, 77, generator=rng) > 0).float()
    flipped = gate.clone()
    flipped[0, 3, 5] = 1 - flipped[0, 3, 5]
    margins = torch.full(gate.shape, 2.0)
    near = margins.clone()
    near[0, 3, 5] = 1e-5  # within rounding of the threshold
    second = "up_blocks.0.attentions.0.transformer_blocks.0.attn2"
    ref = _outputs(pred, {SITE: gate, second: gate})
    moved = pred + 1e-4 * torch.randn(pred.shape, generator=rng)  # a flip moved noise_pred beyond the strict tol
    explained = compare_case("c", "r", ref, _outputs(moved, {SITE: flipped, second: flipped}), TOL, (1, 8, 8),
                             {SITE: near, second: margins})
    assert explained.gates[SITE].flips == 1 and explained.gates[SITE].unexplained_flips == 0
    assert explained.gates[second].unexplained_flips == 0  # downstream of a flip: explained
    assert explained.outputs[OUTPUT_NAME].flip_affected and explained.passed
    real = compare_case("c", "r", ref, _outputs(moved, {SITE: flipped, second: gate}), TOL, (1, 8, 8),
                        {SITE: margins, second: margins})
    assert real.gates[SITE].unexplained_flips == 1 and not real.passed
    assert not real.outputs[OUTPUT_NAME].flip_affected  # no explained flips -> the strict tolerance applies


def test_decision_margins_use_the_runner_up_in_all_closed_rows():
    logits = torch.tensor([[[1.0, -2.0, 0.5], [-3.0, -1.0, -1.2]]])
    m = decision_margins(logits, 0.0)
    assert torch.allclose(m[0, 0], torch.tensor([1.0, 2.0, 0.5]))  # a row with open tokens: |z - t|
    assert torch.allclose(m[0, 1], torch.tensor([2.0, 0.2, 0.2]))  # all closed: distance to the kept arg-max


def test_compare_runners_fp16_against_fp32(gated_unet, tiny_pipe):
    gated = gated_unet  # read-only: the fp16 runner gets a cast copy
    spec = tiny_spec(gated)
    half = cast_unet(copy.deepcopy(gated), "fp16")
    narrow = EagerRunner(half, spec.replace(dtype="fp16", height=Range(16, 16, 32), width=Range(16, 16, 32)))
    feeds = parity_feeds(spec, tiny_pipe, seed=2, shapes=[(1, 32, 32), (2, 64, 16)])
    with recording_gate_margins(gated) as margins:
        report = compare_runners(EagerRunner(gated, spec), {"fp16": narrow}, feeds, progress=False,
                                 reference_margins=margins)
    assert report.tolerances["fp16"]["noise_pred"] == [5e-2, 1e-2]  # the ("fp32", "fp16") pair
    skipped = [c for c in report.cases if c.skipped]
    assert [c.shape for c in skipped] == [(2, 64, 16), (2, 64, 16)] and "outside" in skipped[0].skipped
    ran = [c for c in report.cases if not c.skipped]
    assert len(ran) == 2 and all(0 < c.outputs[OUTPUT_NAME].rel_l2 <= 1e-2 for c in ran)
    assert report.passed
    json.dumps(report.to_dict())
    strict = {OUTPUT_NAME: (1e-4, 1e-5), "gate_agreement": 0.999}  # fp32 tolerances cannot hold for fp16
    failing = compare_runners(EagerRunner(gated, spec), {"fp16": narrow}, feeds[:1], tolerances=strict,
                              progress=False)
    assert not failing.passed
    with pytest.raises(ParityError, match="noise_pred: max abs") as info:
        failing.raise_if_failed()
    assert info.value.exit_code == 7
    assert any("FAIL" in row for row in failing.table())


def test_feeds_are_random_and_real_prompt_encodings(gated_unet, tiny_pipe):
    spec = tiny_spec(gated_unet)
    shapes = parity_shapes(spec)
    assert len({s[0] for s in shapes}) == 2 and len({s[1:] for s in shapes}) == 2
    assert all(spec.batch.contains(b) and spec.height.contains(h) and spec.width.contains(w) for b, h, w in shapes)
    feeds = dict(parity_feeds(spec, tiny_pipe, seed=0, shapes=[(2, 32, 48)]))
    prompt = feeds["prompts b2 32x48"]
    ehs = prompt["encoder_hidden_states"]
    assert ehs.shape == (2, 77, spec.cross_attention_dim) and prompt["text_embeds"].shape == (2, spec.text_embeds_dim)
    assert not torch.equal(ehs[0], ehs[1]) and ehs.abs().sum() > 0  # two different prompts, not zeros
    assert prompt["time_ids"][0].tolist() == [64, 96, 0, 0, 64, 96]  # pixels of the tiny pipeline (latent x 2)
    assert not torch.equal(prompt["sample"], feeds["random b2 32x48"]["sample"])
