"""The gated UNet against stock diffusers (the reference) and against the method's semantics."""

import pytest
import torch
from diffusers.models.attention_processor import Attention

from maskattn_trt import GateConfig, install_gates, remove_gates
from maskattn_trt.gates import (
    GateHead,
    MaskAttnProcessor,
    gate_heads,
    gate_parameters,
    recorded_gates,
    set_gate_recording,
    set_gates_open,
)
from maskattn_trt.spec import UNetIOSpec

from ..helpers import trained_looking_gates
from .helpers import unet_forward
from .official_reference import reference_gated_attention


@pytest.fixture
def feed(tiny_unet):
    return UNetIOSpec.for_unet(tiny_unet).dummy_inputs(2, 32, 32, seed=7)


def test_open_gates_equal_the_stock_diffusers_unet(tiny_unet, feed):
    with torch.no_grad():
        stock = unet_forward(tiny_unet, feed)
        install_gates(tiny_unet, GateConfig(stage="all"))
        set_gates_open(tiny_unet, True)
        forced = unet_forward(tiny_unet, feed)
        set_gates_open(tiny_unet, False)
        for head in gate_heads(tiny_unet).values():  # naturally open: every logit far above the threshold
            head.logit_bias.fill_(1e3)
        natural = unet_forward(tiny_unet, feed)
        remove_gates(tiny_unet)
        restored = unet_forward(tiny_unet, feed)
    assert (forced - stock).abs().max().item() <= 1e-6
    assert (natural - stock).abs().max().item() <= 1e-6
    assert torch.equal(restored, stock)


def test_gates_change_the_output_and_touch_only_selected_sites(tiny_unet, feed):
    with torch.no_grad():
        stock = unet_forward(tiny_unet, feed)
        inst = install_gates(tiny_unet)
        trained_looking_gates(tiny_unet)
        set_gate_recording(tiny_unet, True)
        gated = unet_forward(tiny_unet, feed)
    assert (gated - stock).abs().max().item() > 1e-3
    assert set(recorded_gates(tiny_unet)) == set(inst.sites)
    assert all(s.startswith(("down_blocks.2.", "up_blocks.0.")) for s in inst.sites)
    fractions = [g.mean().item() for g in recorded_gates(tiny_unet).values()]
    assert all(0.05 < f < 0.95 for f in fractions), fractions


def _attention(seed=0):
    torch.manual_seed(seed)
    return Attention(query_dim=32, cross_attention_dim=48, heads=4, dim_head=8).eval()


def test_all_gates_closed_keeps_only_the_most_probable_token_and_stays_finite():
    attn = _attention()
    head = GateHead(32, 48, 16)
    with torch.no_grad():
        head.logit_bias.fill_(-1e3)  # every probability ~0: every row is empty
    proc = MaskAttnProcessor(head, GateConfig(), "site")
    proc.record = True
    x, e = torch.randn(2, 20, 32), torch.randn(2, 9, 48)
    with torch.no_grad():
        out = proc(attn, x, encoder_hidden_states=e)
        z = head(x, e)
        best = z.argmax(-1)
        v = attn.to_v(e)  # with one open token, attention returns exactly that token's value
        expected = attn.to_out[0](torch.stack([v[b, best[b]] for b in range(2)]))
    assert torch.isfinite(out).all()
    assert torch.equal(proc.last_gate.sum(-1), torch.ones(2, 20))
    assert torch.allclose(out, expected, atol=1e-5)


def test_processor_matches_the_official_formulation():
    attn = _attention(1)
    torch.manual_seed(2)
    head = GateHead(32, 48, 16)
    proc = MaskAttnProcessor(head, GateConfig(), "site")
    proc.record = True
    x, e = torch.randn(3, 30, 32), torch.randn(3, 11, 48)
    with torch.no_grad():
        ours = proc(attn, x, encoder_hidden_states=e)
        ref, ref_gate = reference_gated_attention(attn, head, x, e)
    agree = (proc.last_gate == ref_gate).float().mean().item()
    assert agree == 1.0
    assert (ours - ref).abs().max().item() <= 1e-5  # the official STE adds ~1e-4 of rounding to the logits


def test_ste_gradients_reach_every_gate_parameter_and_no_backbone_parameter(tiny_unet, feed):
    install_gates(tiny_unet, GateConfig(stage="all"))
    trained_looking_gates(tiny_unet)
    out = unet_forward(tiny_unet, feed)
    out.square().mean().backward()
    gate_ids = {id(p) for p in gate_parameters(tiny_unet)}
    for name, p in tiny_unet.named_parameters():
        if id(p) in gate_ids:
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


def _closed_logit_grads(form):
    attn = _attention(3)
    torch.manual_seed(4)
    head = GateHead(32, 48, 16)
    proc = MaskAttnProcessor(head, GateConfig(training_form=form), "site")
    captured = {}

    def keep(_module, _inputs, logits):
        logits.retain_grad()
        captured["z"] = logits

    head.register_forward_hook(keep)
    x, e = torch.randn(2, 25, 32), torch.randn(2, 9, 48)
    out = proc(attn, x, encoder_hidden_states=e)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(5))).sum().backward()
    z = captured["z"]
    closed = z.detach() <= 0
    return out.detach(), z.grad[closed], z.grad[~closed], closed


def test_renormalized_form_has_the_same_forward_and_a_gradient_for_closed_gates():
    out_a, closed_a, open_a, mask_a = _closed_logit_grads("additive")
    out_r, closed_r, open_r, mask_r = _closed_logit_grads("renormalized")
    assert torch.equal(mask_a, mask_r) and 0 < mask_a.float().mean() < 1
    assert (out_a - out_r).abs().max().item() <= 1e-6
    assert closed_a.abs().max().item() < 1e-10  # exp(-1e4) == 0: a closed gate never reopens
    assert closed_r.abs().max().item() > 1e-4
    assert open_a.abs().max().item() > 1e-4 and open_r.abs().max().item() > 1e-4


def test_gate_heads_are_fp32_on_the_unet_device_and_shared_per_stage(tiny_unet):
    inst = install_gates(tiny_unet, GateConfig(stage="all"))
    heads = gate_heads(tiny_unet)
    assert set(heads) == {"high_32x64", "mid_64x64", "low_64x64"}
    assert all(p.dtype == torch.float32 for p in gate_parameters(tiny_unet))
    per_layer = install_gates(tiny_unet, GateConfig(stage="all", share_heads=False))
    assert len(gate_heads(tiny_unet)) == len(per_layer.sites) == len(inst.sites)
    keys = [k for k in tiny_unet.state_dict() if ".processor.gate_head." in k]
    assert keys and all(".attn2.processor.gate_head." in k for k in keys)
