"""Gate map arithmetic and rendering on gates whose answer is known."""

from __future__ import annotations

import numpy as np
import torch

from maskattn_trt.sampling.gatemaps import GateMaps, colormap, render_grid, render_overlay, site_group

SITES = ["down_blocks.2.attentions.0.transformer_blocks.0.attn2", "down_blocks.2.attentions.0.transformer_blocks.1.attn2",
         "up_blocks.1.attentions.0.transformer_blocks.0.attn2"]


def _maps():
    gen = torch.Generator().manual_seed(3)
    tokens = ("<start>", "cat", "<end>")
    gates = {SITES[0]: (torch.rand(16, 77, generator=gen) > 0.5).float(),
             SITES[1]: (torch.rand(16, 77, generator=gen) > 0.5).float(),
             SITES[2]: torch.zeros(64, 77)}
    gates[SITES[2]][:, 1] = 1.0  # the 'cat' token fully open at the high-resolution site
    return gates, GateMaps.from_gates(gates, tokens, (16, 16), {SITES[0]: 4, SITES[1]: 4, SITES[2]: 2}, [0, 1])


def test_open_fractions_and_layout():
    gates, maps = _maps()
    assert maps.maps[SITES[0]].shape == (3, 4, 4) and maps.maps[SITES[2]].shape == (3, 8, 8)
    # map[token, y, x] is gate[y * w + x, token]
    assert maps.maps[SITES[0]][1, 2, 3] == gates[SITES[0]][2 * 4 + 3, 1].item()
    fr = maps.open_fractions()
    cat = fr["per_token"][1]
    assert cat["token"] == "cat" and cat["sites"][SITES[2]] == 1.0
    assert fr["per_token"][0]["sites"][SITES[2]] == 0.0
    expected = np.mean([gates[s][:, 1].mean().item() for s in SITES])
    assert abs(cat["mean"] - expected) < 1e-6
    labels = [label for label, _ in maps.columns()]
    assert labels == ["down2.a0", "up1.a0", "mean"] and len(maps.columns(per_layer=True)) == 4
    assert site_group("mid_block.attentions.0.transformer_blocks.0.attn2") == "mid.a0"
    assert abs(maps.mean_map()[1].mean() - expected) < 1e-6  # upsampling by repetition keeps the mean


def test_renders():
    _, maps = _maps()
    grid = render_grid(maps, title="test")
    assert grid.size == (96 + 3 * 68 + 4, 34 + 3 * (64 + 13 + 4) + 4)
    rgb = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    overlay = render_overlay(maps, rgb)
    assert overlay.size[0] == 4 + 3 * (128 + 4)
    assert tuple(colormap(np.array([0.0]))[0]) == (0, 0, 4) and tuple(colormap(np.array([1.0]))[0]) == (252, 255, 164)
