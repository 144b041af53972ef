"""Helpers shared by the gate tests."""

from __future__ import annotations

import torch

from maskattn_trt.gates import gate_heads


def unet_forward(unet, feed):
    return unet(
        feed["sample"], feed["timestep"], encoder_hidden_states=feed["encoder_hidden_states"],
        added_cond_kwargs={"text_embeds": feed["text_embeds"], "time_ids": feed["time_ids"]},
    ).sample


def randomize_heads(unet, seed=0, bias=-0.5, scale=2.0):
    """Trained-looking heads: moderate logits with a real mix of open and closed tokens."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for head in gate_heads(unet).values():
            for p in head.parameters():
                if p.ndim == 2:
                    p.copy_(torch.randn(p.shape, generator=gen) * p.shape[1] ** -0.5 * scale)
            head.logit_bias.fill_(bias)
