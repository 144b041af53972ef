import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from maskattn_trt.gates import GateHead, additive_mask, hard_gate, straight_through


@settings(max_examples=60, deadline=None)
@given(
    b=st.integers(1, 3), n=st.integers(1, 9), t=st.integers(1, 12), thr=st.floats(-2, 2),
    seed=st.integers(0, 2**31 - 1), shift=st.floats(-6, 6),
)
def test_hard_gate_thresholds_and_keeps_the_best_token_of_empty_rows(b, n, t, thr, seed, shift):
    z = torch.randn(b, n, t, generator=torch.Generator().manual_seed(seed)) + shift
    g = hard_gate(z, thr)
    assert set(g.unique().tolist()) <= {0.0, 1.0}
    assert (g.sum(-1) >= 1).all()
    has_open = (z > thr).any(-1)
    assert torch.equal(g[has_open], (z > thr).float()[has_open])
    best = torch.nn.functional.one_hot(z.argmax(-1), t).float()
    assert torch.equal(g[~has_open], best[~has_open])


def test_logit_space_threshold_matches_probability_threshold_away_from_rounding():
    z = torch.randn(4, 50, 77, generator=torch.Generator().manual_seed(0)) * 4
    tau = 0.3
    thr = torch.logit(torch.tensor(tau)).item()
    clear = (z - thr).abs() > 1e-5
    assert torch.equal(hard_gate(z, thr)[clear], (torch.sigmoid(z) > tau).float()[clear])


def test_straight_through_is_exactly_hard_forward_with_sigmoid_gradient():
    z = torch.randn(2, 5, 7, requires_grad=True)
    g = hard_gate(z.detach(), 0.0)
    ste = straight_through(g, z)
    assert torch.equal(ste.detach(), g)
    ste.sum().backward()
    p = torch.sigmoid(z.detach())
    assert torch.allclose(z.grad, p * (1 - p))


def test_additive_mask_is_zero_for_open_and_negative_for_closed_and_broadcasts_over_heads():
    g = torch.tensor([[[1.0, 0.0, 1.0]]])
    m = additive_mask(g, -1e4)
    assert m.shape == (1, 1, 1, 3)
    assert m.flatten().tolist() == [0.0, -1e4, 0.0]


def test_head_is_fp32_and_matches_the_formula():
    torch.manual_seed(0)
    head = GateHead(16, 24, hidden_size=8)
    x, e = torch.randn(2, 10, 16), torch.randn(2, 6, 24)
    z = head(x.half(), e.half())
    assert z.dtype == torch.float32 and z.shape == (2, 10, 6)
    expected = torch.einsum("bnh,bth->bnt", head.feature_net(x.half().float()), head.token_net(e.half().float()))
    assert torch.allclose(z, expected * 8**-0.5 + head.logit_bias, atol=1e-6)
    names = {n for n, _ in head.named_parameters()}
    assert {"feature_net.0.weight", "feature_net.1.weight", "feature_net.3.weight", "token_net.0.weight",
            "token_net.3.bias", "logit_bias"} <= names
