"""Gate alignment: does a colour or shape word's gate open where its object is drawn?

For one generated image (eager backend with gates, gates recorded at every step): the per-token gate maps are
averaged over every gated site and every step (:meth:`GateMaps.mean_map`, as ``maskattn-trt gates`` draws its
"mean" column), a word's map is the mean of its sub-tokens' maps (the tiny tokenizer splits "circle" into four
pieces), the map is thresholded (open at more than ``threshold`` of the sites x steps, default 0.5), upsampled
(nearest) to the scene's size, and compared with the mask of the blob the checker found for that object
(``ObjectCheck.blob.mask``): ``iou`` = |open & blob| / |open | blob|, ``inside`` = |open & blob| / |open| (0 when
the gate is closed everywhere). Objects the checker did not find have no blob and are skipped (counted).

Words are matched to the scene's objects by :mod:`maskattn_trt.world.words` (caption order).
"""

from __future__ import annotations

import numpy as np

from ..sampling.gatemaps import GateMaps
from ..world.words import KINDS, object_words, word_spans


def upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """[gh, gw] -> [size, size] by nearest neighbour."""
    rows = (np.arange(size) * grid.shape[0]) // size
    cols = (np.arange(size) * grid.shape[1]) // size
    return grid[rows][:, cols]


def overlap(open_mask: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(IoU, fraction of the open area inside ``mask``)."""
    inter = float(np.logical_and(open_mask, mask).sum())
    union = float(np.logical_or(open_mask, mask).sum())
    area = float(open_mask.sum())
    return (inter / union if union else 0.0), (inter / area if area else 0.0)


def align(maps: GateMaps, tokenizer, scene, check, threshold: float = 0.5) -> dict:
    """Per colour / shape word of the caption: IoU and inside fraction of its open gate area with its object's blob.
    Returns ``{"words": [...], "skipped": {"no_blob": n, "no_word": n, "tokens": bool}}``."""
    mean = maps.mean_map()  # [T, gh, gw] over sites and steps
    spans = word_spans(tokenizer, scene.caption, len(maps.tokens))
    result = {"words": [], "skipped": {"no_blob": 0, "no_word": 0, "tokens_mismatch": spans is None}}
    if spans is None:
        return result
    for k, (words, verdict) in enumerate(zip(object_words(scene, spans), check.objects, strict=True)):
        for kind in KINDS:
            if words[kind] is None:
                result["skipped"]["no_word"] += 1
                continue
            if verdict.blob is None:
                result["skipped"]["no_blob"] += 1
                continue
            word, positions = words[kind]
            grid = mean[positions].mean(axis=0)
            open_mask = upsample(grid > threshold, scene.size)
            iou, inside = overlap(open_mask, np.asarray(verdict.blob.mask, dtype=bool))
            result["words"].append({"object": k, "kind": kind, "word": word, "tokens": positions,
                                    "iou": round(iou, 6), "inside": round(inside, 6),
                                    "open_fraction": round(float(open_mask.mean()), 6),
                                    "object_fraction": round(float(np.asarray(verdict.blob.mask).mean()), 6)})
    return result


def alignment_counts(result: dict) -> dict[str, tuple[float, float]]:
    """Metric counts of one image: ``gate_iou_<kind>`` and ``gate_inside_<kind>`` = (sum, words)."""
    counts = {}
    for kind in KINDS:
        words = [w for w in result["words"] if w["kind"] == kind]
        counts[f"gate_iou_{kind}"] = (float(sum(w["iou"] for w in words)), float(len(words)))
        counts[f"gate_inside_{kind}"] = (float(sum(w["inside"] for w in words)), float(len(words)))
    return counts
