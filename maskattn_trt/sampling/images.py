"""Images on disk: PNGs and their JSON sidecars, each written atomically (temp file, then rename)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..utils.io import atomic_path, write_json_atomic


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe fragment of ``text`` (lowercase words joined by '_')."""
    words = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return (words[:limit].rstrip("_")) or "image"


def image_stem(index: int, prompt: str, seed: int) -> str:
    return f"{index:04d}_{slug(prompt)}_s{seed}"


def save_png(image, path: str | Path) -> Path:
    """Write an image (PIL image or uint8 array [H, W, 3]) as PNG, atomically."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        image.save(tmp, format="PNG")
    return path


def save_image(out_dir: str | Path, stem: str, image: np.ndarray, sidecar: dict) -> tuple[Path, Path]:
    """``<stem>.png`` and ``<stem>.json`` in ``out_dir``; the sidecar first, so a PNG never lacks one."""
    out_dir = Path(out_dir)
    json_path = write_json_atomic(out_dir / f"{stem}.json", sidecar)
    png_path = save_png(image, out_dir / f"{stem}.png")
    return png_path, json_path
