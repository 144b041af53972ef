"""Measure the world checker on ground-truth renders, clean and degraded (Gaussian blur, then Gaussian noise).

Prints, per size and degradation, the share of scene objects found (right colour and shape, one-to-one), the
share of relations judged right, and the number of extra blobs; half train scenes, half held-out scenes.

    python tools/world_accuracy.py [scenes per split, default 200]
"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image, ImageFilter

from maskattn_trt.world import check, make_scene, render

DEGRADATIONS = ((0, 0), (8, 0), (0, 1.0), (8, 0.8), (12, 1.0), (16, 1.2), (20, 1.5))  # (noise sigma, blur radius)


def degrade(image: Image.Image, rng: np.random.Generator, sigma: float, radius: float) -> Image.Image:
    if radius:
        image = image.filter(ImageFilter.GaussianBlur(radius))
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, sigma, (image.height, image.width, 3))
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))


def main(count: int) -> None:
    rng = np.random.default_rng(0)
    for size in (128, 64):
        for sigma, radius in DEGRADATIONS:
            objects = found = relations = related = extra = 0
            for split in ("train", "heldout"):
                for index in range(count):
                    scene = make_scene(index, size=size, split=split)
                    result = check(degrade(render(scene), rng, sigma, radius), scene)
                    objects += len(scene.objects)
                    found += result.matched
                    extra += result.extra
                    if result.relation_ok is not None:
                        relations += 1
                        related += result.relation_ok
            print(f"size {size:3d}  noise {sigma:2d}  blur {radius:3.1f}:  objects {found / objects:.4f}  "
                  f"relations {related / relations:.4f}  extra blobs {extra}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
