"""The contact sheet: one row per prompt x seed, one column per condition (gated, open, another backend) plus
the ground-truth render; under each image the caption's objects with a pass (+, green) or fail (x, red) mark
from the checker, and the relation."""

from __future__ import annotations

import numpy as np

_OK, _BAD, _INK = (0, 128, 0), (200, 0, 0), (0, 0, 0)


def _font(size: int = 11):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):
        return ImageFont.load_default()


def render_sheet(rows: list[dict], columns: list[str], tile: int = 128, title: str = ""):
    """``rows``: ``{"caption", "seed", "cells": {column: (image uint8 [H, W, 3], marks [(text, ok)] or None)}}``."""
    from PIL import Image, ImageDraw

    font = _font(11)
    line, pad = 13, 6
    marks_lines = max((len(cell[1] or []) for row in rows for cell in row["cells"].values()), default=0)
    cell_h = line + tile + line * (marks_lines + 1) + pad
    head = line * 2 + pad
    width = pad + len(columns) * (tile + pad)
    width = max(width, 320)
    canvas = Image.new("RGB", (width, head + len(rows) * (cell_h + line) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 2), title[: width // 6], fill=_INK, font=font)
    for c, name in enumerate(columns):
        draw.text((pad + c * (tile + pad), line + 2), name, fill=(60, 60, 60), font=font)
    chars = max(8, tile // 6)
    for r, row in enumerate(rows):
        y = head + r * (cell_h + line)
        draw.text((pad, y), f"{row['caption']} (seed {row['seed']})"[: width // 6], fill=_INK, font=font)
        for c, name in enumerate(columns):
            if name not in row["cells"]:
                continue
            image, marks = row["cells"][name]
            x = pad + c * (tile + pad)
            picture = Image.fromarray(np.asarray(image, dtype=np.uint8)).resize((tile, tile), Image.NEAREST)
            canvas.paste(picture, (x, y + line))
            for k, (text, ok) in enumerate(marks or []):
                draw.text((x, y + line + tile + 2 + k * line), f"{'+' if ok else 'x'} {text}"[:chars],
                          fill=_OK if ok else _BAD, font=font)
    return canvas
