"""Helpers shared by the gate tests."""

from __future__ import annotations


def unet_forward(unet, feed):
    return unet(
        feed["sample"], feed["timestep"], encoder_hidden_states=feed["encoder_hidden_states"],
        added_cond_kwargs={"text_embeds": feed["text_embeds"], "time_ids": feed["time_ids"]},
    ).sample
