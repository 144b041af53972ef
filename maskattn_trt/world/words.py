"""Which text tokens of a caption name which object of its scene, and where that object lies on a grid.

Used twice: by the evaluation (does a word's gate open on its object?) and by gate training with mask
supervision (``train.mask_weight``: each colour / shape word's gate logits learn its object's mask).

Words are matched to objects in caption order: the first unused occurrence of an object's colour word and of
its shape word belong to it. Token positions count BOS as 0 (the encoders' layout); a word may be several
tokens (the tiny tokenizer splits "circle" into four pieces).
"""

from __future__ import annotations

import re

import numpy as np

from .render import coverage
from .scene import Scene

KINDS = ("colour", "shape")


def word_spans(tokenizer, caption: str, n_tokens: int) -> list[tuple[str, list[int]]] | None:
    """(word, token positions) for each whitespace word of ``caption`` (positions count BOS as 0), or None when
    the word-by-word tokenization does not add up to the prompt's tokens (then nothing is attributed)."""
    spans, position = [], 1
    for word in caption.split():
        pieces = tokenizer.tokenize(word)
        clean = re.sub(r"[^a-z]", "", word.lower())
        spans.append((clean, list(range(position, position + len(pieces)))))
        position += len(pieces)
    if position + 1 != n_tokens:  # + EOS
        return None
    return spans


def object_words(scene: Scene, spans: list[tuple[str, list[int]]]) -> list[dict[str, tuple[str, list[int]] | None]]:
    """Per scene object: its colour word's and shape word's (word, positions), or None where absent."""
    used: set[int] = set()
    out = []
    for obj in scene.objects:
        entry = {}
        for kind, wanted in (("colour", obj.colour), ("shape", obj.shape)):
            entry[kind] = None
            for k, (word, positions) in enumerate(spans):
                if k not in used and word == str(wanted).lower() and positions:
                    used.add(k)
                    entry[kind] = (word, positions)
                    break
        out.append(entry)
    return out


def grid_coverage(scene: Scene, side: int) -> list[np.ndarray]:
    """Per object: the fraction of each cell of a ``side`` x ``side`` grid over the image that it covers."""
    if scene.size % side:
        raise ValueError(f"a {side}x{side} grid does not tile a {scene.size}-pixel scene")
    k = scene.size // side
    return [coverage(obj, scene.size).reshape(side, k, side, k).mean(axis=(1, 3)) for obj in scene.objects]


def token_targets(scene: Scene, tokenizer, side: int, max_tokens: int = 77) -> tuple[np.ndarray, np.ndarray]:
    """Mask-supervision targets of one caption: ``masks`` [max_tokens, side, side] float32 and ``object_token``
    [max_tokens] bool. A colour or shape word's tokens (``object_token``) carry its object's grid coverage; every
    other token (BOS, EOS, padding, articles, relation words) carries ones: open everywhere, as in the stock
    model. Tokens past ``max_tokens`` are cut, as the text encoders cut them.

    Raises ValueError when the caption's word-by-word tokenization does not add up to its encoding (then no
    token can be attributed to a word)."""
    masks = np.ones((max_tokens, side, side), dtype=np.float32)
    object_token = np.zeros(max_tokens, dtype=bool)
    n_tokens = len(tokenizer(scene.caption).input_ids)
    spans = word_spans(tokenizer, scene.caption, n_tokens)
    if spans is None:
        raise ValueError(f"the caption {scene.caption!r} does not tokenize word by word into its {n_tokens} tokens")
    for grid, words in zip(grid_coverage(scene, side), object_words(scene, spans), strict=True):
        for kind in KINDS:
            if words[kind] is None:
                continue
            for position in words[kind][1]:
                if position < max_tokens:
                    masks[position] = grid
                    object_token[position] = True
    return masks, object_token
