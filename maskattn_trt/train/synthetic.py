"""A small synthetic image-caption dataset for tests and the demo (no downloads).

Each image shows two or three coloured shapes on a plain background; its caption names them
("a red circle and a blue square"), so captions have several noun phrases tied to image regions, the
situation gates are trained for. Written in any of the three on-disk formats the trainer reads.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ..errors import ConfigError
from ..utils.io import ensure_writable_dir, write_json_atomic

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 70, 220),
    "yellow": (235, 210, 40),
    "purple": (140, 50, 170),
    "orange": (240, 140, 30),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
SHAPES = ("circle", "square", "triangle")
LAYOUTS = ("folder", "jsonl", "coco")


def _draw(draw, shape: str, box: tuple[int, int, int, int], colour) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=colour)


def synthetic_sample(index: int, size: int = 64, seed: int = 0):
    """(PIL image, caption) number ``index`` of the synthetic set for ``seed``."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed * 1_000_003 + index)
    names = list(COLOURS)
    background = tuple(rng.randint(90, 160) for _ in range(3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    parts = []
    for _ in range(rng.choice((2, 2, 3))):
        colour, shape = rng.choice(names), rng.choice(SHAPES)
        extent = rng.randint(size // 4, size // 2)
        x0, y0 = rng.randint(0, size - extent), rng.randint(0, size - extent)
        _draw(draw, shape, (x0, y0, x0 + extent, y0 + extent), COLOURS[colour])
        parts.append(f"a {colour} {shape}")
    caption = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return image, caption


def write_synthetic_dataset(out_dir: str | Path, samples: int = 64, size: int = 64, seed: int = 0,
                            layout: str = "folder") -> Path:
    """Write ``samples`` images with captions under ``out_dir``; returns the path the data section takes.

    ``folder``: ``NNNNN.png`` + ``NNNNN.txt`` (returns the folder); ``jsonl``: images + ``manifest.jsonl``
    (returns the manifest); ``coco``: ``train2014/`` + ``annotations/captions_train2014.json`` (returns the json).
    Deterministic for (samples, size, seed).
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"synthetic layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    if samples <= 0 or size < 16:
        raise ConfigError(f"synthetic dataset needs samples > 0 and size >= 16; got {samples} and {size}")
    root = ensure_writable_dir(out_dir)
    image_dir = ensure_writable_dir(root / "train2014") if layout == "coco" else root
    rows, images, annotations = [], [], []
    for index in range(samples):
        image, caption = synthetic_sample(index, size, seed)
        name = f"COCO_train2014_{index:012d}.png" if layout == "coco" else f"{index:05d}.png"
        image.save(image_dir / name)
        if layout == "folder":
            (root / f"{index:05d}.txt").write_text(caption + "\n", encoding="utf-8")
        rows.append({"image": name, "caption": caption})
        images.append({"id": index, "file_name": name, "height": size, "width": size})
        annotations.append({"id": 10_000 + index, "image_id": index, "caption": caption})
    if layout == "folder":
        return root
    if layout == "jsonl":
        manifest = root / "manifest.jsonl"
        manifest.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        return manifest
    ensure_writable_dir(root / "annotations")
    return write_json_atomic(root / "annotations" / "captions_train2014.json",
                             {"images": images, "annotations": annotations})
