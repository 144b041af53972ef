"""Score one image against its scene with the world's deterministic checker, and turn the verdicts into the
(numerator, denominator) pairs every metric is built from.

Metrics (each a ratio of sums over images; see :mod:`.stats`):

- ``object_recall``: scene objects drawn with the right colour AND shape (``ObjectCheck.found``) / scene objects.
- ``object_precision``: those found objects / every blob the checker segmented in the image (the blobs matched
  to an object plus the ``Check.extra`` unmatched ones). An image with no blob adds nothing to either sum.
- ``binding``: objects whose blob of their shape carries their colour (``ObjectCheck.bound``) / objects whose
  shape was drawn at all (``shape_found``): given that the shape is there, is the attribute bound to it?
- ``relation``: scenes whose relation holds (``Check.relation_ok is True``) / scenes that state a relation; a
  relation the checker cannot judge (an object missing: ``None``) counts as not holding.
- ``scene_accuracy``: images where every object is found, no extra blob is drawn and the relation (if any)
  holds / images.
- ``colour_distance`` (image-quality proxy, lower is better): total-variation distance between the colour
  histograms (4 levels per channel, 64 bins) of the generated image and of the ground-truth render of the same
  scene, in [0, 1]; 0 = the same colours in the same proportions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..world import Scene, check, render

METRICS = ("object_precision", "object_recall", "binding", "relation", "scene_accuracy", "colour_distance")
LOWER_IS_BETTER = frozenset({"colour_distance"})
HIST_LEVELS = 4


def colour_histogram(image: np.ndarray, levels: int = HIST_LEVELS) -> np.ndarray:
    """uint8 [H, W, 3] -> normalised histogram over levels**3 colour bins."""
    q = (np.asarray(image, dtype=np.int64)[..., :3] * levels) // 256
    codes = (q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]
    hist = np.bincount(codes.ravel(), minlength=levels ** 3).astype(np.float64)
    return hist / max(hist.sum(), 1.0)


def colour_distance(image: np.ndarray, reference: np.ndarray) -> float:
    """Total-variation distance of the two images' colour histograms, in [0, 1]."""
    return float(0.5 * np.abs(colour_histogram(image) - colour_histogram(reference)).sum())


def as_scene_size(image: np.ndarray, scene: Scene) -> np.ndarray:
    """The image at the scene's size (the checker's masks and boxes are in scene pixels); bilinear if resized."""
    from PIL import Image

    image = np.asarray(image, dtype=np.uint8)
    if image.shape[:2] == (scene.size, scene.size):
        return image
    return np.asarray(Image.fromarray(image).resize((scene.size, scene.size), Image.BILINEAR), dtype=np.uint8)


@dataclass
class Verdict:
    """The checker's verdict on one image and the metric counts drawn from it."""

    scene: Scene
    check: object  # world.Check (kept in memory for the contact sheet and the gate alignment)
    counts: dict[str, tuple[float, float]]  # metric -> (numerator, denominator)

    def marks(self) -> list[tuple[str, bool]]:
        """(``colour shape``, found) per scene object, then the relation (if any)."""
        out = [(f"{obj.colour} {obj.shape}", bool(o.found)) for obj, o in zip(self.scene.objects, self.check.objects,
                                                                               strict=True)]
        if self.scene.relation:
            out.append((str(self.scene.relation), self.check.relation_ok is True))
        return out

    def to_dict(self) -> dict:
        c = self.check
        objects = [{"colour": obj.colour, "shape": obj.shape, "found": bool(o.found),
                    "colour_found": bool(o.colour_found), "shape_found": bool(o.shape_found), "bound": bool(o.bound)}
                   for obj, o in zip(self.scene.objects, c.objects, strict=True)]
        return {"objects": objects, "blobs": len(c.blobs), "extra_blobs": int(c.extra),
                "relation_ok": None if c.relation_ok is None else bool(c.relation_ok),
                "counts": {k: [round(float(n), 6), round(float(d), 6)] for k, (n, d) in self.counts.items()}}


def score(image: np.ndarray, scene: Scene, reference: np.ndarray | None = None) -> Verdict:
    """Check ``image`` (uint8 [H, W, 3]) against ``scene``; ``reference``: its ground-truth render (made here if
    not given)."""
    image = as_scene_size(image, scene)
    reference = np.asarray(render(scene) if reference is None else reference, dtype=np.uint8)[..., :3]
    c = check(image, scene)
    objects = list(c.objects)
    found = sum(bool(o.found) for o in objects)
    blobs = len(c.blobs)  # every blob the checker segmented: matched ones and the unmatched c.extra
    has_relation = bool(scene.relation)
    holds = c.relation_ok is True
    all_ok = found == len(objects) and c.extra == 0 and (holds or not has_relation)
    counts = {
        "object_precision": (found, blobs),
        "object_recall": (found, len(objects)),
        "binding": (sum(bool(o.bound) for o in objects), sum(bool(o.shape_found) for o in objects)),
        "relation": (float(holds and has_relation), float(has_relation)),
        "scene_accuracy": (float(all_ok), 1.0),
        "colour_distance": (colour_distance(image, reference), 1.0),
    }
    return Verdict(scene, c, {k: (float(n), float(d)) for k, (n, d) in counts.items()})
