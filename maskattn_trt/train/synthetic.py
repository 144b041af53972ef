"""The synthetic image-caption dataset for tests, the demo and the tiny model (no downloads).

Samples are scenes of the compositional world (:mod:`maskattn_trt.world`): one to three coloured shapes on a
plain background, captioned with their colours, shapes and one spatial relation ("a red circle to the left of
a blue square"), so captions have several noun phrases tied to image regions, the situation gates are trained
for. Each sample's ground truth (``Scene.to_dict()``) is written beside its caption. Written in any of the
three on-disk formats the trainer reads.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError
from ..utils.io import ensure_writable_dir, write_json_atomic
from ..world import SPLITS, make_scene, render

LAYOUTS = ("folder", "jsonl", "coco")


def synthetic_sample(index: int, size: int = 64, seed: int = 0, split: str = "train"):
    """(PIL image, caption) number ``index`` of the synthetic set for ``seed``: ``make_scene`` rendered."""
    scene = make_scene(index, seed=seed, size=size, split=split)
    return render(scene), scene.caption


def write_synthetic_dataset(out_dir: str | Path, samples: int = 64, size: int = 64, seed: int = 0,
                            layout: str = "folder", *, split: str = "train") -> Path:
    """Write ``samples`` images with captions under ``out_dir``; returns the path the data section takes.

    ``folder``: ``NNNNN.png`` + ``NNNNN.txt`` + ``NNNNN.json`` (the scene; returns the folder); ``jsonl``: images
    + ``manifest.jsonl`` whose rows carry a ``scene`` key (returns the manifest); ``coco``: ``train2014/`` +
    ``annotations/captions_train2014.json`` (returns the json) + ``annotations/scenes.json`` (image id -> scene).
    Deterministic for (samples, size, seed, split); ``split="heldout"`` writes the held-out scenes instead.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"synthetic layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    if split not in SPLITS:
        raise ConfigError(f"synthetic split must be one of {', '.join(SPLITS)}; got {split!r}")
    if samples <= 0 or size < 16:
        raise ConfigError(f"synthetic dataset needs samples > 0 and size >= 16; got {samples} and {size}")
    root = ensure_writable_dir(out_dir)
    image_dir = ensure_writable_dir(root / "train2014") if layout == "coco" else root
    rows, images, annotations, scenes = [], [], [], {}
    for index in range(samples):
        scene = make_scene(index, seed=seed, size=size, split=split)
        image, caption = render(scene), scene.caption
        name = f"COCO_train2014_{index:012d}.png" if layout == "coco" else f"{index:05d}.png"
        image.save(image_dir / name)
        if layout == "folder":
            (root / f"{index:05d}.txt").write_text(caption + "\n", encoding="utf-8")
            (root / f"{index:05d}.json").write_text(json.dumps(scene.to_dict()) + "\n", encoding="utf-8")
        rows.append({"image": name, "caption": caption, "scene": scene.to_dict()})
        scenes[str(index)] = scene.to_dict()
        images.append({"id": index, "file_name": name, "height": size, "width": size})
        annotations.append({"id": 10_000 + index, "image_id": index, "caption": caption})
    if layout == "folder":
        return root
    if layout == "jsonl":
        manifest = root / "manifest.jsonl"
        manifest.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        return manifest
    ensure_writable_dir(root / "annotations")
    write_json_atomic(root / "annotations" / "scenes.json", scenes)
    return write_json_atomic(root / "annotations" / "captions_train2014.json",
                             {"images": images, "annotations": annotations})
