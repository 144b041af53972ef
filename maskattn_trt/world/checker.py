"""A deterministic checker that scores an image against its scene (no learned model).

Segmentation (:func:`segment`):

1. Colour: every pixel takes the nearest palette colour (:data:`COLOURS`, RGB Euclidean distance) if it
   lies within ``max_distance`` (default :data:`MAX_DISTANCE` = 60) of it; otherwise it is background.
   The palette colours are >= 100 apart and >= 110 from every background, so this is unambiguous.
2. Blobs: the 8-connected components of each colour, holes filled; components smaller than ``min_area``
   pixels (default :func:`default_min_area`: 0.25 % of the image, 41 px at 128, 10 px at 64) are dropped.
3. Shape, from the blob's filled mask: ``solidity`` = area / convex-hull area (hull of the pixels' corners),
   ``fill`` = area / bounding-box area, ``aspect`` = long / short side of the bounding box, ``lean`` =
   |mean row of the mask / box height - 1/2| (a triangle's mass sits low). In order: aspect > 1.8 or
   solidity < 0.4 -> "other"; lean >= 0.09 and fill < 0.75 -> "triangle"; solidity < 0.82 -> "star";
   fill >= 0.84 -> "square"; fill >= 0.6 -> "circle"; else "triangle". Ideal (fill, solidity, lean):
   square (1, 1, 0), circle (0.79, 1, 0), triangle (0.5, 1, 0.17), star (0.41, 0.56, 0.05).

Scoring (:func:`check`), the definitions ``evaluate`` reports:

- Matching is one-to-one: each scene object, in order, takes the largest unused blob of exactly its colour
  and shape. (Objects of a scene differ in colour and in shape, so the order does not matter.)
- Per object: ``found`` = it was matched; ``colour_found`` = some blob has its colour (any shape);
  ``shape_found`` = some blob has its shape (any colour); ``bound`` = its shape is present *and* carries
  its colour, i.e. ``found`` (kept separate so that binding accuracy reads sum(bound) / sum(shape_found):
  of the objects whose shape was drawn, how many got the right colour); ``blob`` = the matched blob or None.
- ``extra`` = blobs matched to no object (a wrong colour or shape, a duplicate, a stray shape).
- ``relation_ok`` = None when the scene has no relation; False when objects[0] or objects[1] was not
  found; otherwise whether the matched blobs' centroids are ordered along the relation's axis by at least
  ``margin`` pixels (default :data:`RELATION_MARGIN` = 5 % of the image side). Image y grows downwards.

Metrics over a set: object precision = matched blobs / all blobs; recall = found objects / prompt objects;
binding accuracy = sum(bound) / sum(shape_found); relation accuracy = mean(relation_ok) over scenes with one.
Validated on ground-truth renders at 64 and 128 px, clean and with noise and blur (tests/world).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from .scene import COLOURS, RELATIONS, Scene

MAX_DISTANCE = 60.0
RELATION_MARGIN = 0.05
_PALETTE = np.asarray(list(COLOURS.values()), dtype=np.float32)
_NAMES = tuple(COLOURS)
_EIGHT = np.ones((3, 3), dtype=bool)


def default_min_area(height: int, width: int) -> int:
    return max(6, round(0.0025 * height * width))


@dataclass(frozen=True, eq=False)
class Blob:
    colour: str
    shape: str  # one of SHAPES, or "other"
    mask: np.ndarray  # bool [H, W], holes filled
    box: tuple[int, int, int, int]  # x0, y0, x1, y1; x1, y1 exclusive
    centroid: tuple[float, float]  # x, y in pixels (pixel centres at +0.5)
    area: int
    fill: float = 0.0
    solidity: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"colour": self.colour, "shape": self.shape, "box": list(self.box),
                "centroid": [round(v, 2) for v in self.centroid], "area": self.area,
                "fill": round(self.fill, 4), "solidity": round(self.solidity, 4)}


def _cross(o, a, b) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _hull_area(mask: np.ndarray) -> float:
    """Area of the convex hull of the mask's pixel squares (each row's outermost pixel corners suffice)."""
    rows = np.flatnonzero(mask.any(axis=1))
    points = set()
    for y in rows:
        xs = np.flatnonzero(mask[y])
        lo, hi = int(xs[0]), int(xs[-1]) + 1
        points.update({(lo, int(y)), (lo, int(y) + 1), (hi, int(y)), (hi, int(y) + 1)})
    pts = sorted(points)
    if len(pts) < 3:
        return float(mask.sum())
    lower: list = []
    upper: list = []
    for p in pts:
        while len(lower) >= 2 and _cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and _cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = lower[:-1] + upper[:-1]
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(hull, hull[1:] + hull[:1], strict=True))) / 2


def classify(mask: np.ndarray) -> tuple[str, float, float, float]:
    """(shape, fill, solidity, lean) of a filled blob mask cropped to its bounding box (see the module docstring)."""
    height, width = mask.shape
    area = float(mask.sum())
    fill = area / (height * width)
    solidity = area / max(_hull_area(mask), 1.0)
    lean = abs((np.nonzero(mask)[0].mean() + 0.5) / height - 0.5)
    if max(height, width) > 1.8 * min(height, width) or solidity < 0.4:
        shape = "other"
    elif lean >= 0.09 and fill < 0.75:
        shape = "triangle"
    elif solidity < 0.82:
        shape = "star"
    elif fill >= 0.84:
        shape = "square"
    elif fill >= 0.6:
        shape = "circle"
    else:
        shape = "triangle"
    return shape, fill, solidity, lean


def segment(image: Image.Image | np.ndarray, max_distance: float = MAX_DISTANCE,
            min_area: int | None = None) -> list[Blob]:
    """The coloured blobs of an RGB image (PIL or uint8 [H, W, 3]), in palette order, then top-left first."""
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32)
    height, width = pixels.shape[:2]
    min_area = default_min_area(height, width) if min_area is None else min_area
    distance = np.linalg.norm(pixels[:, :, None, :] - _PALETTE[None, None], axis=-1)
    nearest = distance.argmin(axis=-1)
    nearest[distance.min(axis=-1) > max_distance] = -1
    blobs = []
    for k, name in enumerate(_NAMES):
        labels, count = ndimage.label(nearest == k, structure=_EIGHT)
        for index, where in enumerate(ndimage.find_objects(labels), 1):
            crop = ndimage.binary_fill_holes(labels[where] == index)
            area = int(crop.sum())
            if area < min_area:
                continue
            ys, xs = where
            shape, fill, solidity, _ = classify(crop)
            mask = np.zeros((height, width), dtype=bool)
            mask[where] = crop
            cy, cx = np.nonzero(crop)
            centroid = (float(cx.mean() + xs.start + 0.5), float(cy.mean() + ys.start + 0.5))
            blobs.append(Blob(name, shape, mask, (xs.start, ys.start, xs.stop, ys.stop), centroid, area,
                              fill, solidity))
    return blobs


@dataclass(frozen=True)
class ObjectCheck:
    colour: str
    shape: str
    found: bool
    colour_found: bool
    shape_found: bool
    bound: bool
    blob: Blob | None

    def to_dict(self) -> dict[str, Any]:
        return {"colour": self.colour, "shape": self.shape, "found": self.found,
                "colour_found": self.colour_found, "shape_found": self.shape_found, "bound": self.bound,
                "blob": None if self.blob is None else self.blob.to_dict()}


@dataclass(frozen=True)
class Check:
    objects: tuple[ObjectCheck, ...]
    extra: int
    relation_ok: bool | None
    blobs: tuple[Blob, ...] = ()

    @property
    def matched(self) -> int:
        return sum(o.found for o in self.objects)

    def to_dict(self) -> dict[str, Any]:
        return {"objects": [o.to_dict() for o in self.objects], "extra": self.extra,
                "relation_ok": self.relation_ok, "blobs": len(self.blobs), "matched": self.matched}


def relation_ok(a: tuple[float, float], b: tuple[float, float], relation: str, margin: float) -> bool:
    """Centroid ``a`` is ``relation`` centroid ``b`` by at least ``margin`` pixels along the relation's axis."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    along = {"to the left of": dx, "to the right of": -dx, "above": dy, "below": -dy}
    if relation not in along:
        raise ValueError(f"unknown relation {relation!r}; expected one of {', '.join(RELATIONS)}")
    return along[relation] >= margin


def check(image: Image.Image | np.ndarray, scene: Scene, blobs: list[Blob] | None = None,
          margin: float | None = None) -> Check:
    """Score ``image`` against ``scene`` (definitions in the module docstring); ``blobs`` reuses a segmentation."""
    blobs = segment(image) if blobs is None else blobs
    width = blobs[0].mask.shape[1] if blobs else scene.size
    margin = RELATION_MARGIN * width if margin is None else margin
    used: set[int] = set()
    results = []
    for obj in scene.objects:
        candidates = [i for i, b in enumerate(blobs)
                      if i not in used and b.colour == obj.colour and b.shape == obj.shape]
        match = max(candidates, key=lambda i: blobs[i].area) if candidates else None
        if match is not None:
            used.add(match)
        results.append(ObjectCheck(
            obj.colour, obj.shape, found=match is not None,
            colour_found=any(b.colour == obj.colour for b in blobs),
            shape_found=any(b.shape == obj.shape for b in blobs),
            bound=match is not None,
            blob=None if match is None else blobs[match]))
    related = None
    if scene.relation is not None:
        a, b = results[0].blob, results[1].blob
        related = a is not None and b is not None and relation_ok(a.centroid, b.centroid, scene.relation, margin)
    return Check(tuple(results), len(blobs) - len(used), related, tuple(blobs))
