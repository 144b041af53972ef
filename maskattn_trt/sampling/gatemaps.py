"""Gate maps people can see: per-token maps (token x site grid), an overlay on the generated image, and the
open fraction of every token at every site.

A gate map is the hard gate of one text token over the latent positions of one cross-attention site (1 = the
token may act there), averaged over the recorded denoising steps: a value of 0.5 means open at half of them.
Columns group the transformer blocks of one attention module (``down2.a0`` = down_blocks.2.attentions.0);
``per_layer`` shows every gated layer instead. The last column is the mean over every site.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

_STOPS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32)


def colormap(values: np.ndarray) -> np.ndarray:
    """[...] in [0, 1] -> uint8 [..., 3] (an inferno-like ramp: black = closed, pale yellow = open)."""
    x = np.clip(values, 0.0, 1.0) * (len(_STOPS) - 1)
    lo = np.floor(x).astype(int).clip(0, len(_STOPS) - 2)
    frac = (x - lo)[..., None]
    return (_STOPS[lo] * (1 - frac) + _STOPS[lo + 1] * frac).round().astype(np.uint8)


def site_group(site: str) -> str:
    """``down_blocks.2.attentions.0.transformer_blocks.3.attn2`` -> ``down2.a0``."""
    parts = site.split(".")
    block = {"down_blocks": "down", "up_blocks": "up"}.get(parts[0])
    if block is None:  # mid_block.attentions.0...
        return f"mid.a{parts[2]}"
    return f"{block}{parts[1]}.a{parts[3]}"


def site_label(site: str) -> str:
    parts = site.split(".")
    return f"{site_group(site)}.t{parts[-2]}" if "transformer_blocks" in parts else site_group(site)


@dataclass
class GateMaps:
    """Per-token maps of one image: ``maps[site]`` is [tokens, grid_h, grid_w] in [0, 1]."""

    tokens: tuple[str, ...]
    sites: list[str]
    maps: dict[str, np.ndarray]
    steps: list[int]

    @classmethod
    def from_gates(cls, gates: dict[str, torch.Tensor], tokens: tuple[str, ...], latent_hw: tuple[int, int],
                   downsample: dict[str, int], steps: list[int]) -> GateMaps:
        """``gates[site]``: [N, T] mean hard gate of one image; keeps the prompt's tokens (BOS .. EOS)."""
        h, w = latent_hw
        maps = {}
        for site, gate in gates.items():
            f = downsample[site]
            grid = gate.detach().float().cpu().numpy()[:, : len(tokens)]
            maps[site] = grid.T.reshape(len(tokens), h // f, w // f)
        return cls(tuple(tokens), list(gates), maps, list(steps))

    def columns(self, per_layer: bool = False) -> list[tuple[str, np.ndarray]]:
        """(label, [tokens, gh, gw]) per column: grouped or per layer, then the mean over every site."""
        groups: dict[str, list[np.ndarray]] = {}
        for site in self.sites:
            groups.setdefault(site_label(site) if per_layer else site_group(site), []).append(self.maps[site])
        cols = [(label, np.mean(arrays, axis=0)) for label, arrays in groups.items()]
        return cols + [("mean", self.mean_map())]

    def mean_map(self) -> np.ndarray:
        """Mean over every site, on the finest site grid (coarser grids repeated, their factors are powers of 2)."""
        finest = max(m.shape[1] for m in self.maps.values())
        up = [np.repeat(np.repeat(m, finest // m.shape[1], axis=1), finest // m.shape[1], axis=2)
              for m in self.maps.values()]
        return np.mean(up, axis=0)

    def open_fractions(self) -> dict:
        """JSON-ready: per token, the open fraction at every site and the mean; per site, the mean over tokens."""
        per_token = []
        for i, token in enumerate(self.tokens):
            sites = {site: round(float(self.maps[site][i].mean()), 6) for site in self.sites}
            per_token.append({"index": i, "token": token, "mean": round(float(np.mean(list(sites.values()))), 6),
                              "sites": sites})
        per_site = {site: round(float(self.maps[site].mean()), 6) for site in self.sites}
        return {"tokens": list(self.tokens), "sites": self.sites, "steps": self.steps, "per_token": per_token,
                "per_site": per_site}


def _font(size: int = 11):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):
        return ImageFont.load_default()


def _cell(values: np.ndarray, size: int):
    from PIL import Image

    return Image.fromarray(colormap(values)).resize((size, size), Image.NEAREST)


def render_grid(maps: GateMaps, per_layer: bool = False, cell: int = 64, title: str = ""):
    """Rows = tokens, columns = sites (+ mean); each cell captioned with its open fraction."""
    from PIL import Image, ImageDraw

    cols = maps.columns(per_layer)
    font = _font(11)
    label_w, head_h, pad, caption = 96, 34, 4, 13
    row_h = cell + caption + pad
    width = label_w + len(cols) * (cell + pad) + pad
    height = head_h + len(maps.tokens) * row_h + pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 2), title[:max(8, width // 6)], fill=(0, 0, 0), font=font)
    for c, (label, _) in enumerate(cols):
        draw.text((label_w + c * (cell + pad), 18), label, fill=(40, 40, 40), font=font)
    for r, token in enumerate(maps.tokens):
        y = head_h + r * row_h
        draw.text((pad, y + cell // 2 - 6), token[:14], fill=(0, 0, 0), font=font)
        for c, (_, grid) in enumerate(cols):
            x = label_w + c * (cell + pad)
            canvas.paste(_cell(grid[r], cell), (x, y))
            draw.text((x + 2, y + cell + 1), f"{grid[r].mean():.2f}", fill=(60, 60, 60), font=font)
    return canvas


def render_overlay(maps: GateMaps, image: np.ndarray, per_row: int = 6, min_size: int = 128):
    """One tile per token: the image tinted by where that token's gates are open (mean over sites)."""
    from PIL import Image, ImageDraw

    mean = maps.mean_map()
    height, width = image.shape[:2]
    scale = max(1, -(-min_size // min(height, width)))
    tw, th = width * scale, height * scale
    base = np.asarray(Image.fromarray(image).resize((tw, th), Image.NEAREST), dtype=np.float32)
    font = _font(11)
    caption, pad = 14, 4
    rows = -(-len(maps.tokens) // per_row)
    cols = min(per_row, len(maps.tokens))
    canvas = Image.new("RGB", (pad + cols * (tw + pad), pad + rows * (th + caption + pad)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, token in enumerate(maps.tokens):
        m = Image.fromarray((mean[i] * 255).astype(np.uint8)).resize((tw, th), Image.BILINEAR)
        m = np.asarray(m, dtype=np.float32)[..., None] / 255.0
        heat = colormap(m[..., 0]).astype(np.float32)
        tile = (base * (0.35 + 0.65 * m)) * 0.6 + heat * 0.4
        x = pad + (i % per_row) * (tw + pad)
        y = pad + (i // per_row) * (th + caption + pad)
        canvas.paste(Image.fromarray(tile.clip(0, 255).astype(np.uint8)), (x, y))
        draw.text((x, y + th + 1), f"{token[:12]} {mean[i].mean():.2f}", fill=(0, 0, 0), font=font)
    return canvas
