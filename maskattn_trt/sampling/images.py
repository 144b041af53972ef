"""Images on disk: PNGs and their JSON sidecars, each written atomically (temp file, then rename).

An image never replaces an existing file: names carry a readable fragment of the prompt (or, for a prompt
without ASCII letters or digits, a short hash of it, so different prompts never share a name), and a name
already taken in the folder (an earlier run) gets ``-2``, ``-3``, ... appended.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from ..utils.io import atomic_path, strict_json

MAX_SUFFIX = 10_000


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe fragment of ``text`` (lowercase words joined by '_'); ``p<hash>`` when nothing is left."""
    words = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return words[:limit].rstrip("_") or f"p{hashlib.sha256(text.encode('utf-8')).hexdigest()[:8]}"


def image_stem(index: int, prompt: str, seed: int) -> str:
    return f"{index:04d}_{slug(prompt)}_s{seed}"


def save_png(image, path: str | Path, *, overwrite: bool = True) -> Path:
    """Write an image (PIL image or uint8 array [H, W, 3]) as PNG, atomically (``overwrite=False``: never
    replace an existing file; :class:`FileExistsError` instead)."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    path = Path(path)
    with atomic_path(path, suffix=".png", overwrite=overwrite) as tmp:
        image.save(tmp, format="PNG")
    return path


def free_stem(out_dir: Path, stem: str, extensions: tuple[str, ...] = (".png", ".json")) -> str:
    """``stem``, or ``stem-2``, ``stem-3``, ... : the first with no file of any of ``extensions`` in ``out_dir``."""
    for k in range(1, MAX_SUFFIX):
        candidate = stem if k == 1 else f"{stem}-{k}"
        if not any((out_dir / f"{candidate}{ext}").exists() for ext in extensions):
            return candidate
    raise FileExistsError(f"{out_dir} already holds {MAX_SUFFIX} images named {stem}*; choose another --out")


def save_image(out_dir: str | Path, stem: str, image: np.ndarray, sidecar: dict,
               extensions: tuple[str, ...] = (".png", ".json")) -> tuple[Path, Path]:
    """``<stem>.png`` and ``<stem>.json`` in ``out_dir`` under a name no existing file has (``extensions``: the
    files that will share the stem); the sidecar first, so a PNG never lacks one. Returns (png, json)."""
    out_dir = Path(out_dir)
    while True:
        chosen = free_stem(out_dir, stem, extensions)
        json_path = out_dir / f"{chosen}.json"
        try:  # claimed without replacing: a concurrent writer that took the name first makes us pick the next
            with atomic_path(json_path, overwrite=False) as tmp:
                tmp.write_text(strict_json(sidecar, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            break
        except FileExistsError:
            continue
    png_path = save_png(image, out_dir / f"{chosen}.png", overwrite=False)
    return png_path, json_path
