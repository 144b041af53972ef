"""Drawing a scene: each shape is filled at 4x supersampling and box-filtered down, so edges are anti-aliased.

Shapes are inscribed in their object's square box: a circle touching all four sides, a square filling it,
an upward isosceles triangle (apex at the top centre, base on the bottom side), and an upright five-pointed
star (inner radius 0.45 of the outer) as large as fits, centred.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .scene import COLOURS, Scene, WorldObject

SUPERSAMPLE = 4
STAR_INNER = 0.45


def _star_points(box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    unit = [(math.sin(math.pi * k / 5) * (1 if k % 2 == 0 else STAR_INNER),
             -math.cos(math.pi * k / 5) * (1 if k % 2 == 0 else STAR_INNER)) for k in range(10)]
    xs, ys = [p[0] for p in unit], [p[1] for p in unit]
    x0, y0, x1, y1 = box
    scale = min((x1 - x0) / (max(xs) - min(xs)), (y1 - y0) / (max(ys) - min(ys)))
    ox = (x0 + x1) / 2 - scale * (max(xs) + min(xs)) / 2
    oy = (y0 + y1) / 2 - scale * (max(ys) + min(ys)) / 2
    return [(ox + scale * x, oy + scale * y) for x, y in unit]


def coverage(obj: WorldObject, size: int) -> np.ndarray:
    """The fraction of each pixel the object covers, float32 [size, size] in [0, 1]."""
    s = SUPERSAMPLE
    canvas = Image.new("L", (size * s, size * s), 0)
    draw = ImageDraw.Draw(canvas)
    x0, y0, x1, y1 = (v * s for v in obj.box)
    if obj.shape == "circle":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=255)
    elif obj.shape == "square":
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=255)
    elif obj.shape == "triangle":
        draw.polygon([((x0 + x1 - 1) / 2, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=255)
    else:
        draw.polygon(_star_points((x0, y0, x1 - 1, y1 - 1)), fill=255)
    return np.asarray(canvas.resize((size, size), Image.BOX), dtype=np.float32) / 255.0


def render(scene: Scene) -> Image.Image:
    """The scene as an RGB image of ``scene.size`` pixels square."""
    pixels = np.empty((scene.size, scene.size, 3), dtype=np.float32)
    pixels[:] = scene.background
    for obj in scene.objects:
        alpha = coverage(obj, scene.size)[..., None]
        pixels = pixels * (1 - alpha) + np.asarray(COLOURS[obj.colour], dtype=np.float32) * alpha
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


def object_masks(scene: Scene) -> list[np.ndarray]:
    """One bool mask [size, size] per object: the pixels it covers at least half of."""
    return [coverage(obj, scene.size) >= 0.5 for obj in scene.objects]
