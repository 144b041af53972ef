"""Issue 10 item 3: where our gate semantics meet the official code's, and where (documented) they do not.

README "Compatibility" states each decision; each has a test here, against the oracle in
``official_reference.py`` (probability space, as the official code computes).
"""

import onnx
import pytest
import torch
from diffusers.models.attention_processor import Attention
from onnx import numpy_helper

from maskattn_trt import GateConfig, install_gates, load_official_gates
from maskattn_trt.errors import BadInputError
from maskattn_trt.gates import (
    GateHead,
    MaskAttnProcessor,
    gate_heads,
    hard_gate,
    randomize_gates,
    recorded_gates,
    set_gate_recording,
)
from maskattn_trt.models import build_unet
from maskattn_trt.spec import GATE_PREFIX, UNetIOSpec

from .helpers import official_checkpoint_file, unet_forward
from .official_reference import reference_gated_attention, reference_hard_gate

# fp32 torch.sigmoid(z) rounds to exactly 0.5 for 0 < z <= 8.9407e-8 (measured on CPU, torch 2.13): the only
# logits where "sigmoid(z) > 0.5" (official) and "z > 0" (ours) disagree.
BAND = 8.95e-8
UNDERFLOW = -88.73  # fp32 sigmoid(z) == 0 below this


def _row_with_an_open_token(z):
    """Append a token far above the threshold so no row needs the fallback."""
    return torch.cat([z, torch.full(z.shape[:-1] + (1,), 10.0)], dim=-1)


def test_a_threshold_in_logit_space_differs_only_in_the_fp32_rounding_band():
    z = torch.cat([torch.linspace(-1e-6, 1e-6, 20001), torch.linspace(-3e-7, 3e-7, 20001),
                   torch.tensor([0.0, BAND / 2, 8.9e-8, 9.0e-8, 1e-7])]).float()
    z = _row_with_an_open_token(z.reshape(1, -1, 1))
    ours = hard_gate(z, GateConfig().threshold_logit)
    official, _ = reference_hard_gate(z, 0.5)
    differ = (ours != official)[..., 0]
    flipped = z[..., 0][differ]
    assert differ.any()  # the band is real: these gates flip
    assert (flipped > 0).all() and (flipped <= BAND).all()
    assert bool((ours[..., 0][differ] == 1).all())  # ours opens them (p > 1/2 exactly), official closes them
    away = (z[..., 0] <= 0) | (z[..., 0] > BAND)
    assert torch.equal(ours[..., 0][away], official[..., 0][away])


def test_b_fallback_is_the_arg_max_logit_official_arg_max_probability_underflows():
    gen = torch.Generator().manual_seed(0)
    normal = -torch.rand(4, 6, 9, generator=gen) * 80 - 1  # every row closed, probabilities representable
    ours, (official, _) = hard_gate(normal, 0.0), reference_hard_gate(normal, 0.5)
    assert torch.equal(ours, official) and torch.equal(ours.sum(-1), torch.ones(4, 6))
    deep = -torch.rand(4, 6, 9, generator=gen) * 50 - 90  # every probability underflows to 0 in fp32
    assert (torch.sigmoid(deep) == 0).all()
    ours, (official, _) = hard_gate(deep, 0.0), reference_hard_gate(deep, 0.5)
    assert torch.equal(ours.argmax(-1), deep.argmax(-1))  # ours: the most probable token
    assert (official.argmax(-1) == 0).all()  # official: a tie of zeros, token 0 whatever the logits
    assert torch.equal(ours.sum(-1), official.sum(-1))  # both keep exactly one token per row


def _attention(seed=0):
    torch.manual_seed(seed)
    return Attention(query_dim=32, cross_attention_dim=48, heads=4, dim_head=8).eval()


def _masked_case(mask_kind):
    attn = _attention(1)
    torch.manual_seed(2)
    head = GateHead(32, 48, 16)
    with torch.no_grad():
        head.logit_bias.fill_(-0.3)
    proc = MaskAttnProcessor(head, GateConfig(), "site")
    proc.record = True
    x, e = torch.randn(3, 30, 32), torch.randn(3, 11, 48)
    keep = torch.ones(3, 11, dtype=torch.bool)
    keep[:, 6:] = False  # padding tokens 6..10 (the case: tokens 20-76 of 77)
    keep[2, 2:] = False
    mask = keep if mask_kind == "bool" else ((1.0 - keep.float()) * -10000.0)[:, None]  # as diffusers' UNet
    return attn, head, proc, x, e, keep, mask


@pytest.mark.parametrize("mask_kind", ["additive", "bool"])
def test_c_encoder_attention_mask_keeps_padding_closed_as_the_official_code(mask_kind):
    attn, head, proc, x, e, keep, mask = _masked_case(mask_kind)
    with torch.no_grad():
        unmasked = hard_gate(head(x, e), 0.0)
        ours = proc(attn, x, encoder_hidden_states=e, attention_mask=mask)
        ref, ref_gate = reference_gated_attention(attn, head, x, e, attention_mask=mask)
    gate = proc.last_gate
    assert (unmasked[~keep[:, None, :].expand_as(unmasked)] == 1).any()  # without the mask padding would open
    assert torch.equal(gate, ref_gate)  # 100 % agreement (was 2.4 % disagreement before)
    assert (gate.transpose(1, 2)[~keep] == 0).all()  # padding closed, never the fallback
    assert (gate.sum(-1) >= 1).all() and (gate[2][:, 2:] == 0).all()
    assert (ours - ref).abs().max().item() <= 1e-5


def test_c_a_mask_that_keeps_every_token_changes_nothing_and_an_empty_one_is_refused():
    attn, head, proc, x, e, keep, _ = _masked_case("additive")
    with torch.no_grad():
        plain = proc(attn, x, encoder_hidden_states=e)
        plain_gate = proc.last_gate
        zeros = proc(attn, x, encoder_hidden_states=e, attention_mask=torch.zeros(3, 1, 11))
    assert torch.equal(proc.last_gate, plain_gate) and torch.equal(zeros, plain)
    empty = torch.full((3, 1, 11), -10000.0)
    empty[:2] = 0.0
    with pytest.raises(BadInputError, match="no valid text token"):
        proc(attn, x, encoder_hidden_states=e, attention_mask=empty)


def test_c_encoder_attention_mask_through_the_unet():
    unet = build_unet("tiny-random", seed=0)
    install_gates(unet, GateConfig(stage="all"))
    randomize_gates(unet, seed=1, logit_bias=0.5)  # most tokens open: padding would be too
    feed = UNetIOSpec.for_unet(unet).dummy_inputs(2, 16, 16, seed=3)
    keep = torch.ones(2, 77)
    keep[:, 20:] = 0
    set_gate_recording(unet, True)
    with torch.no_grad():
        out = unet(feed["sample"], feed["timestep"], encoder_hidden_states=feed["encoder_hidden_states"],
                   added_cond_kwargs={"text_embeds": feed["text_embeds"], "time_ids": feed["time_ids"]},
                   encoder_attention_mask=keep).sample
    assert torch.isfinite(out).all()
    for site, gate in recorded_gates(unet).items():
        assert (gate[..., 20:] == 0).all(), site
        assert (gate[..., :20].sum(-1) >= 1).all(), site


def test_d_threshold_0_opens_every_token_and_1_keeps_only_the_arg_max():
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(2, 7, 9, generator=gen) * 30
    z[0, 0, :] = -1e30  # finite, far below anything
    assert torch.equal(hard_gate(z, GateConfig(threshold=0.0).threshold_logit), torch.ones_like(z))
    one = hard_gate(z, GateConfig(threshold=1.0).threshold_logit)
    assert torch.equal(one, torch.nn.functional.one_hot(z.argmax(-1), 9).float())
    half = z.half()
    assert torch.equal(hard_gate(half, GateConfig(threshold=1.0).threshold_logit).argmax(-1), half.argmax(-1))
    # official: tau = 0 closes tokens whose probability underflows (z < -88.7); tau = 1 is the same fallback
    # wherever the probabilities do not tie (no saturation to 1.0, no underflow)
    moderate = torch.randn(2, 7, 9, generator=gen) * 5
    assert torch.equal(hard_gate(moderate, GateConfig(threshold=1.0).threshold_logit),
                       reference_hard_gate(moderate, 1.0)[0])
    assert torch.equal(hard_gate(moderate, GateConfig(threshold=0.0).threshold_logit),
                       reference_hard_gate(moderate, 0.0)[0])


def test_d_official_checkpoint_with_threshold_1_converts(tmp_path):
    source = build_unet("tiny-random", seed=0)
    install_gates(source, GateConfig(stage="mid", threshold=1.0))
    randomize_gates(source, seed=2)
    path = official_checkpoint_file(source, tmp_path / "gate_final.pt", with_optimizer=False)
    target = build_unet("tiny-random", seed=0)
    assert load_official_gates(target, path).config.threshold == 1.0
    feed = UNetIOSpec.for_unet(target).dummy_inputs(1, 16, 16, seed=5)
    with torch.no_grad():
        assert torch.equal(unet_forward(source, feed), unet_forward(target, feed))


@pytest.mark.parametrize("tau", [0.0, 1.0])
def test_d_exported_graph_with_threshold_0_or_1_is_finite_and_matches_eager(tmp_path, tau):
    import onnxruntime as ort

    from maskattn_trt.export import export_unet
    from maskattn_trt.spec import INPUT_NAMES

    unet = build_unet("tiny-random", seed=0)
    install_gates(unet, GateConfig(threshold=tau))
    randomize_gates(unet, seed=4)
    spec = UNetIOSpec.for_unet(unet).with_gate_outputs(list(unet._maskattn_installation.sites))
    result = export_unet(unet, tmp_path / "export", spec, slim=False, progress=False)
    model = onnx.load(str(result.onnx_path))
    constants = [numpy_helper.to_array(t) for t in model.graph.initializer]
    constants += [numpy_helper.to_array(a.t) for n in model.graph.node if n.op_type == "Constant"
                  for a in n.attribute if a.name == "value"]
    assert all(bool(abs(c.astype("float64")).max() < float("inf")) for c in constants if c.size and c.dtype.kind == "f")
    feed = spec.dummy_inputs(2, 16, 16, seed=6)
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    outputs = dict(zip(spec.output_names, session.run(None, {k: feed[k].numpy() for k in INPUT_NAMES}),
                       strict=True))
    set_gate_recording(unet, True)
    with torch.no_grad():
        unet_forward(unet, feed)
    for site, gate in recorded_gates(unet).items():
        exported = torch.from_numpy(outputs[GATE_PREFIX + site])
        assert torch.equal(exported, gate), site
        assert torch.equal(gate.sum(-1), torch.full(gate.shape[:-1], 1.0 if tau == 1.0 else gate.shape[-1]))
    assert len(gate_heads(unet)) >= 1
