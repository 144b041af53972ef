"""Property-based tests of the gate math: threshold and fallback invariants in logit and probability space.

The official form (``official_reference.reference_hard_gate``) computes in probability space; ours compares
logits. They must agree wherever fp32 rounding of sigmoid cannot decide: logits on a 1/64 grid (so no two
probabilities tie), inside (-80, 80) (no underflow to 0), and away from the threshold by more than the
rounding band. Examples are few and small so the file runs in seconds.
"""

from __future__ import annotations

import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maskattn_trt import GateConfig
from maskattn_trt.gates import hard_gate

from .official_reference import reference_hard_gate

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
shapes = st.tuples(st.integers(1, 2), st.integers(1, 5), st.integers(1, 7))


@st.composite
def logits(draw, finite=st.floats(allow_nan=False, allow_infinity=False, width=32)):
    b, n, t = draw(shapes)
    values = draw(st.lists(finite, min_size=b * n * t, max_size=b * n * t))
    return torch.tensor(values, dtype=torch.float32).reshape(b, n, t)


@st.composite
def grid_logits(draw):
    """Logits k/64 in (-80, 80): distinct values have distinct fp32 probabilities, none underflows."""
    b, n, t = draw(shapes)
    values = draw(st.lists(st.integers(-80 * 64 + 1, 80 * 64 - 1), min_size=b * n * t, max_size=b * n * t))
    return torch.tensor(values, dtype=torch.float32).reshape(b, n, t) / 64


@st.composite
def valid_masks(draw, b, t):
    rows = [draw(st.lists(st.booleans(), min_size=t, max_size=t)) for _ in range(b)]
    for row in rows:
        row[draw(st.integers(0, t - 1))] = True  # every batch item keeps at least one token
    return torch.tensor(rows)


taus = st.floats(0.0, 1.0, allow_nan=False)


def _check_structure(gate, z, threshold, valid=None):
    keep = torch.ones_like(z, dtype=torch.bool) if valid is None else valid[:, None, :].expand_as(z)
    assert set(gate.unique().tolist()) <= {0.0, 1.0}
    assert (gate.sum(-1) >= 1).all()  # never an all-closed row (softmax would be NaN)
    assert (gate[~keep] == 0).all()  # padding never opens
    raw = (z > threshold) | (torch.tensor(threshold <= -torch.finfo(z.dtype).max) & torch.isfinite(z))
    raw &= keep
    has_open = raw.any(-1)
    assert torch.equal(gate.bool()[has_open], raw[has_open])  # rows with an open token: exactly the threshold
    scores = z.masked_fill(~keep, float("-inf"))
    fallback = torch.nn.functional.one_hot(scores.argmax(-1), z.shape[-1]).bool()
    assert torch.equal(gate.bool()[~has_open], fallback[~has_open])  # otherwise: exactly the arg-max


@SETTINGS
@given(logits(), taus)
def test_at_least_one_open_token_per_row_and_fallback_is_the_arg_max(z, tau):
    threshold = GateConfig(threshold=tau).threshold_logit
    _check_structure(hard_gate(z, threshold), z, threshold)


@SETTINGS
@given(logits(), st.data())
def test_an_encoder_mask_never_opens_padding_and_never_keeps_it(z, data):
    valid = data.draw(valid_masks(z.shape[0], z.shape[-1]))
    tau = data.draw(taus)
    threshold = GateConfig(threshold=tau).threshold_logit
    _check_structure(hard_gate(z, threshold, valid), z, threshold, valid)


@SETTINGS
@given(logits(), taus, taus)
def test_raising_the_threshold_only_closes_gates(z, tau_a, tau_b):
    low, high = sorted((tau_a, tau_b))
    open_low = hard_gate(z, GateConfig(threshold=low).threshold_logit)
    open_high = hard_gate(z, GateConfig(threshold=high).threshold_logit)
    assert (open_high <= open_low).all()  # the fallback token is the first to open, so this holds with it too


@SETTINGS
@given(grid_logits(), st.floats(0.05, 0.95), st.data())
def test_agrees_with_the_official_probability_form_away_from_the_rounding_band(z, tau, data):
    valid = data.draw(st.none() | valid_masks(z.shape[0], z.shape[-1]))
    threshold = GateConfig(threshold=tau).threshold_logit
    ours = hard_gate(z, threshold, valid)
    official, _ = reference_hard_gate(z, tau, valid)
    # where p rounds near tau in fp32 the two may differ: the band is |z - logit(tau)| <~ 1e-6 for these taus
    decided = ((z - threshold).abs() > 1e-5).all(-1)
    assert torch.equal(ours[decided], official[decided])
    # probability space, exactly (float64 sigmoid): the same open tokens wherever a row has one
    p = torch.sigmoid(z.double())
    exact = p > tau
    if valid is not None:
        exact &= valid[:, None, :]
    rows = decided & exact.any(-1)
    assert torch.equal(ours.bool()[rows], exact[rows])


@st.composite
def half_logits(draw):
    """Any finite fp16 values (drawn as bit patterns; inf / NaN patterns become 0)."""
    b, n, t = draw(shapes)
    bits = torch.tensor(draw(st.lists(st.integers(-(2**15), 2**15 - 1), min_size=b * n * t, max_size=b * n * t)),
                        dtype=torch.int16).view(torch.float16).reshape(b, n, t)
    return torch.where(torch.isfinite(bits), bits, torch.zeros_like(bits))


@SETTINGS
@given(half_logits())
def test_threshold_0_and_1_stay_exact_in_fp16(half):
    assert torch.equal(hard_gate(half, GateConfig(threshold=0.0).threshold_logit), torch.ones_like(half))
    one = hard_gate(half, GateConfig(threshold=1.0).threshold_logit)
    assert torch.equal(one, torch.nn.functional.one_hot(half.argmax(-1), half.shape[-1]).half())


@SETTINGS
@given(st.floats(1e-6, 1 - 1e-6))
def test_threshold_logit_is_the_inverse_sigmoid(tau):
    z = GateConfig(threshold=tau).threshold_logit
    assert math.isclose(1.0 / (1.0 + math.exp(-z)), tau, rel_tol=1e-9, abs_tol=1e-12)
