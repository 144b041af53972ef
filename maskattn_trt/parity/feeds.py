"""Parity inputs: fresh random feeds and real prompt encodings, at two resolutions and two batch sizes.

Every feed is drawn fresh from a seeded generator (never zeros). Prompt feeds run the pipeline's own two
text encoders (``encode_prompt``), so ``encoder_hidden_states`` and the pooled ``text_embeds`` have the
statistics the UNet sees in real sampling; the latents and timestep are random.
"""

from __future__ import annotations

import torch

from ..spec import UNetIOSpec, time_ids

PROMPTS = (
    "a red apple on a wooden table",
    "a photo of a cat sitting next to a blue car",
    "a mountain lake at sunrise, mist over the water",
    "two dogs playing in the snow",
)


def parity_shapes(spec: UNetIOSpec) -> list[tuple[int, int, int]]:
    """Two batch sizes x two latent resolutions from the exported range (one shape for a static export)."""
    b, h, w = spec.batch, spec.height, spec.width
    batches = sorted({b.min, b.opt if b.opt != b.min else b.max})
    resolutions = [(h.opt, w.opt)]
    for other in ((h.max, w.min), (h.min, w.max), (h.min, w.min), (h.max, w.max)):
        if other not in resolutions:
            resolutions.append(other)
            break
    return [(batch, hh, ww) for batch in batches for hh, ww in resolutions]


def prompt_feed(pipe, spec: UNetIOSpec, prompts: list[str], height: int, width: int, seed: int) -> dict:
    """A feed whose text conditioning comes from ``pipe``'s text encoders (fp32)."""
    with torch.inference_mode():
        embeds, _, pooled, _ = pipe.encode_prompt(prompt=list(prompts), device="cpu", num_images_per_prompt=1,
                                                  do_classifier_free_guidance=False)
    gen = torch.Generator().manual_seed(seed)
    batch = len(prompts)
    return {
        "sample": torch.randn((batch, spec.in_channels, height, width), generator=gen),
        "timestep": torch.randint(1, 1000, (batch,), generator=gen).float(),
        "encoder_hidden_states": embeds.float().clone(),
        "text_embeds": pooled.float().clone(),
        "time_ids": time_ids(height * spec.vae_scale, width * spec.vae_scale, batch),
    }


def parity_feeds(spec: UNetIOSpec, pipe=None, seed: int = 0,
                 shapes: list[tuple[int, int, int]] | None = None) -> list[tuple[str, dict]]:
    """(label, feed) pairs: random feeds at every shape, plus prompt feeds when a pipeline is given.

    Feeds are fp32; each runner casts them to its graph's input dtypes.
    """
    shapes = shapes or parity_shapes(spec)
    fp32 = spec.replace(dtype="fp32")
    feeds = []
    for i, (batch, height, width) in enumerate(shapes):
        feeds.append((f"random b{batch} {height}x{width}", fp32.dummy_inputs(batch, height, width, seed=seed + i)))
    if pipe is not None:
        for i, (batch, height, width) in enumerate(shapes):
            prompts = [PROMPTS[(i + k) % len(PROMPTS)] for k in range(batch)]
            feeds.append((f"prompts b{batch} {height}x{width}",
                          prompt_feed(pipe, spec, prompts, height, width, seed + 100 + i)))
    return feeds
