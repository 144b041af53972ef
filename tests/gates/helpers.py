"""Helpers shared by the gate tests."""

from __future__ import annotations

import torch


def unet_forward(unet, feed):
    return unet(
        feed["sample"], feed["timestep"], encoder_hidden_states=feed["encoder_hidden_states"],
        added_cond_kwargs={"text_embeds": feed["text_embeds"], "time_ids": feed["time_ids"]},
    ).sample


def official_checkpoint_file(unet, path, with_optimizer=True):
    """A gate_final.pt laid out as the official code writes it (torch.save of plain containers).

    Like the official ``selected_cross_attention_names``, the layer list is sorted by name (for stage=all that
    puts ``mid_block`` before ``up_blocks``), not in the UNet's module order.
    """
    inst = unet._maskattn_installation
    state = {k: v.clone() for k, v in unet.state_dict().items() if ".processor.gate_head." in k}
    payload = {
        "format": "maskattn-sdxl-gates-v1",
        "checkpoint_kind": "trained",
        "maskattn_config": {"stage": inst.config.stage, "placement": inst.config.placement,
                            "threshold": inst.config.threshold, "negative_value": inst.config.negative_value,
                            "gate_hidden_dim": inst.config.hidden_size,
                            "share_gate_heads_by_stage": inst.config.share_heads},
        "selected_layers": sorted(s + ".processor" for s in inst.sites),
        "stage_by_layer": {s + ".processor": s.split(".")[0] for s in inst.sites},
        "gate_state_dict": state,
        "optimizer": None,
        "global_step": 1000,
    }
    if with_optimizer:
        params = list({id(p): p for p in unet.parameters() if p.requires_grad}.values())
        opt = torch.optim.AdamW(params, lr=1e-4)
        for p in params:
            p.grad = torch.zeros_like(p)
        opt.step()
        payload["optimizer"] = opt.state_dict()
    torch.save(payload, path)
    return path
