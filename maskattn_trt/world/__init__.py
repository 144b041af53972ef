"""A synthetic compositional world with ground truth and a deterministic checker (numpy + PIL + scipy).

Scenes of coloured shapes with one spatial relation (:mod:`.scene`), rendered to images (:mod:`.render`) and
scored back from images (:mod:`.checker`). Used to train and evaluate a tiny SDXL-shaped text-to-image model
with and without gates: attribute binding, spatial relations, held-out colour-shape pairs.
"""

from .checker import MAX_DISTANCE, RELATION_MARGIN, Blob, Check, ObjectCheck, check, default_min_area, segment
from .render import coverage, object_masks, render
from .scene import (
    COLOURS,
    HELDOUT_COMBOS,
    HELDOUT_PAIRS,
    PROMPT_SETS,
    RELATIONS,
    SHAPES,
    SPLITS,
    Scene,
    WorldObject,
    is_heldout_combo,
    is_heldout_pair,
    make_scene,
    prompt_set,
)
from .words import grid_coverage, object_words, token_targets, word_spans

__all__ = [
    "COLOURS", "HELDOUT_COMBOS", "HELDOUT_PAIRS", "MAX_DISTANCE", "PROMPT_SETS", "RELATIONS", "RELATION_MARGIN",
    "SHAPES", "SPLITS", "Blob", "Check", "ObjectCheck", "Scene", "WorldObject", "check", "coverage", "default_min_area", "grid_coverage",
    "is_heldout_combo", "is_heldout_pair", "make_scene", "object_masks", "object_words", "prompt_set", "render", "segment",
    "token_targets", "word_spans",
]
