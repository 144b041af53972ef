"""The synthetic compositional world: coloured shapes, one spatial relation, a caption, a split.

A scene holds 1-3 objects on a plain grey-ish background. Every object has its own colour and its own
shape (no two objects of a scene share either, so "the circle" names one object and a swapped colour is a
binding error, not an ambiguity). Objects never overlap: their boxes are at least ``gap`` pixels apart.

Captions::

    1 object    "a red circle"
    2 objects   "a red circle to the left of a blue square"        relation: objects[0] REL objects[1]
    3 objects   "a red circle to the left of a blue square and a green star"
                (the relation holds between the first two; the third is only placed, anywhere free)

"an" comes before a vowel ("an orange star"). Every multi-object scene has a relation, and it holds with
a clear margin: for "to the left of", objects[0]'s box ends at least ``gap`` pixels before objects[1]'s box
begins (``a.x1 + gap <= b.x0``) and the relation is the dominant direction (the centres are further apart
along x than along y); likewise for the other three.

Held-out split (binding and composition generalisation), fixed and never drawn for ``split="train"``:

- :data:`HELDOUT_PAIRS`: 5 of the 24 colour-shape pairs (~21 %); each colour and each shape still appears
  in training in its other pairs (each colour is held out with at most one shape, each shape with at most two).
- :data:`HELDOUT_COMBOS`: 4 (shape, relation, shape) triples of the first two objects, and their mirror
  images ("a square to the right of a circle" is the same layout as "a circle to the left of a square"),
  so 8 of the 48 ordered triples (~17 %) never appear in training.

``split="heldout"`` scenes have 2 or 3 objects and contain a held-out pair (in any object) or have a
held-out triple on their first two objects (or both); their other objects are unrestricted.

Everything is deterministic for (index, seed, size, split, objects): colours, shapes, relation and caption
come from a generator that does not depend on ``size``, so a scene index has the same caption at every size;
the layout comes from a second generator that does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ..errors import BadInputError, ConfigError

COLOURS: dict[str, tuple[int, int, int]] = {
    # far apart (pairwise RGB distance >= 100) and far from every background (>= 98); all whole-word
    # tokens of the shipped CLIP vocabulary
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (35, 65, 225),
    "yellow": (245, 225, 30),
    "purple": (150, 40, 200),
    "orange": (250, 125, 0),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
RELATIONS: tuple[str, ...] = ("to the left of", "to the right of", "above", "below")
SPLITS: tuple[str, ...] = ("train", "heldout")
MIRROR = {"to the left of": "to the right of", "to the right of": "to the left of", "above": "below", "below": "above"}

HELDOUT_PAIRS: frozenset[tuple[str, str]] = frozenset({
    ("red", "triangle"), ("green", "star"), ("blue", "circle"), ("yellow", "square"), ("purple", "star"),
})
_COMBOS = (("circle", "to the left of", "square"), ("triangle", "above", "star"),
           ("square", "below", "triangle"), ("star", "to the right of", "circle"))
HELDOUT_COMBOS: frozenset[tuple[str, str, str]] = frozenset(
    _COMBOS + tuple((b, MIRROR[rel], a) for a, rel, b in _COMBOS))

# background: a grey level in [BG_GREY] plus a per-channel tint in [-BG_TINT, BG_TINT]
BG_GREY = (100, 160)
BG_TINT = 10
MIN_SIZE = 16


def is_heldout_pair(colour: str, shape: str) -> bool:
    """True when the colour-shape pair never appears in ``split="train"`` scenes."""
    return (colour, shape) in HELDOUT_PAIRS


def is_heldout_combo(shape_a: str, relation: str, shape_b: str) -> bool:
    """True when "a <shape_a> <relation> a <shape_b>" never appears in ``split="train"`` scenes."""
    return (shape_a, relation, shape_b) in HELDOUT_COMBOS


@dataclass(frozen=True)
class WorldObject:
    colour: str
    shape: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels; x1, y1 exclusive; the shape is inscribed in it

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2

    @property
    def phrase(self) -> str:
        article = "an" if self.colour[0] in "aeiou" else "a"
        return f"{article} {self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    size: int
    background: tuple[int, int, int]
    objects: tuple[WorldObject, ...]
    relation: str | None  # objects[0] <relation> objects[1]; None for a single object
    caption: str
    split: str

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "background": list(self.background),
                "objects": [{"colour": o.colour, "shape": o.shape, "box": list(o.box)} for o in self.objects],
                "relation": self.relation, "caption": self.caption, "split": self.split}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scene:
        try:
            objects = tuple(WorldObject(str(o["colour"]), str(o["shape"]), tuple(int(v) for v in o["box"]))
                            for o in d["objects"])
            return cls(int(d["size"]), tuple(int(v) for v in d["background"]), objects, d["relation"],
                       str(d["caption"]), str(d["split"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInputError(f"not a world scene ({exc!r}); expected the keys of Scene.to_dict()") from None


def caption_of(objects: tuple[WorldObject, ...] | list[WorldObject], relation: str | None) -> str:
    """The caption grammar (see the module docstring)."""
    phrases = [o.phrase for o in objects]
    if len(phrases) == 1:
        return phrases[0]
    text = f"{phrases[0]} {relation} {phrases[1]}"
    return text + "".join(f" and {p}" for p in phrases[2:])


def relation_holds(a: tuple[int, int, int, int], b: tuple[int, int, int, int], relation: str, gap: int = 0) -> bool:
    """Box ``a`` is ``relation`` box ``b``: separated by >= ``gap`` px along the relation's axis, which dominates."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a, b
    dx = (bx0 + bx1 - ax0 - ax1) / 2  # b's centre minus a's
    dy = (by0 + by1 - ay0 - ay1) / 2
    if relation == "to the left of":
        return ax1 + gap <= bx0 and abs(dy) <= dx
    if relation == "to the right of":
        return bx1 + gap <= ax0 and abs(dy) <= -dx
    if relation == "above":
        return ay1 + gap <= by0 and abs(dx) <= dy
    if relation == "below":
        return by1 + gap <= ay0 and abs(dx) <= -dy
    raise BadInputError(f"unknown relation {relation!r}; expected one of {', '.join(RELATIONS)}")


def layout_params(size: int) -> tuple[int, int, int, int]:
    """(smallest object, largest object, gap between objects, margin to the image edge) in pixels."""
    return max(4, round(0.22 * size)), max(5, round(0.36 * size)), max(1, round(0.04 * size)), max(1, round(0.02 * size))


# ----------------------------------------------------------------------------------------------- drawing scenes


def _check_args(size: int, split: str, objects: int | None) -> None:
    if split not in SPLITS:
        raise ConfigError(f"world split must be one of {', '.join(SPLITS)}; got {split!r}")
    if not isinstance(size, int) or size < MIN_SIZE:
        raise ConfigError(f"world scenes need size >= {MIN_SIZE} pixels; got {size!r}")
    low = 2 if split == "heldout" else 1
    if objects is not None and not (low <= objects <= 3):
        raise ConfigError(f"{split} scenes have {low} to 3 objects; got objects={objects!r}")


def _content(rng: random.Random, split: str, count: int) -> tuple[list[tuple[str, str]], str | None]:
    """(colour, shape) per object and the relation, drawn for the split."""
    colours = list(COLOURS)
    while True:
        shapes = rng.sample(SHAPES, count)
        paint = rng.sample(colours, count)
        relation = rng.choice(RELATIONS) if count > 1 else None
        if split == "heldout":
            if rng.random() < 0.5:  # force a held-out pair into a random slot
                colour, shape = sorted(HELDOUT_PAIRS)[rng.randrange(len(HELDOUT_PAIRS))]
                slot = rng.randrange(count)
                shapes = [s for s in shapes if s != shape][: count - 1]
                paint = [c for c in paint if c != colour][: count - 1]
                shapes.insert(slot, shape)
                paint.insert(slot, colour)
            else:  # force a held-out triple on the first two objects
                a, relation, b = sorted(HELDOUT_COMBOS)[rng.randrange(len(HELDOUT_COMBOS))]
                shapes = [a, b] + [s for s in shapes if s not in (a, b)][: count - 2]
            pairs = list(zip(paint, shapes, strict=True))
            return pairs, relation
        pairs = list(zip(paint, shapes, strict=True))
        if any(is_heldout_pair(c, s) for c, s in pairs):
            continue
        if relation is not None and is_heldout_combo(shapes[0], relation, shapes[1]):
            continue
        return pairs, relation


def _disjoint(a, b, gap: int) -> bool:
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def _layout(rng: random.Random, size: int, count: int, relation: str | None) -> list[tuple[int, int, int, int]]:
    """Boxes by rejection sampling: disjoint by ``gap``, the relation holding on the first two."""
    low, high, gap, margin = layout_params(size)
    for attempt in range(200):
        top = max(low, high - attempt // 20 * max(1, (high - low) // 4))  # shrink the objects if they do not fit
        boxes: list[tuple[int, int, int, int]] = []
        for _ in range(count):
            for _ in range(100):
                extent = rng.randint(min(low, top), top)
                x0 = rng.randint(margin, size - margin - extent)
                y0 = rng.randint(margin, size - margin - extent)
                box = (x0, y0, x0 + extent, y0 + extent)
                if not all(_disjoint(box, other, gap) for other in boxes):
                    continue
                if len(boxes) == 1 and relation is not None and not relation_holds(boxes[0], box, relation, gap):
                    continue
                boxes.append(box)
                break
            else:
                break
        if len(boxes) == count:
            return boxes
    raise ConfigError(f"cannot place {count} objects in a {size}px scene; use a larger size")


def _scene(key: str, size: int, split: str, count_mix: tuple[int, ...], objects: int | None) -> Scene:
    content = random.Random(f"maskattn-world/content/{key}")
    count = objects if objects is not None else content.choice(count_mix)
    pairs, relation = _content(content, split, count)
    layout = random.Random(f"maskattn-world/layout/{key}/{size}")
    boxes = _layout(layout, size, count, relation)
    grey = layout.randint(*BG_GREY)
    background = tuple(grey + layout.randint(-BG_TINT, BG_TINT) for _ in range(3))
    objs = tuple(WorldObject(c, s, b) for (c, s), b in zip(pairs, boxes, strict=True))
    return Scene(size, background, objs, relation, caption_of(objs, relation), split)


# objects=None: train scenes have 1, 2 or 3 objects in proportion 3 : 5 : 2; held-out scenes 2 or 3 as 7 : 3
_COUNT_MIX = {"train": (1,) * 3 + (2,) * 5 + (3,) * 2, "heldout": (2,) * 7 + (3,) * 3}


def make_scene(index: int, seed: int = 0, size: int = 128, split: str = "train", objects: int | None = None) -> Scene:
    """Scene ``index`` of the world for ``seed``; deterministic for all five arguments."""
    _check_args(size, split, objects)
    return _scene(f"{seed}/{split}/{objects}/{index}", size, split, _COUNT_MIX[split], objects)


PROMPT_SETS = {
    # name: (split, objects) — "heldout": 2-3 objects with a held-out pair or triple; "two": two objects in
    # training pairs and triples, with a relation; "single": one object in a training pair
    "heldout": ("heldout", None),
    "two": ("train", 2),
    "single": ("train", 1),
}


def prompt_set(name: str = "heldout", count: int = 200, seed: int = 0, size: int = 128) -> list[Scene]:
    """A named evaluation set of ``count`` scenes, with distinct captions while the set has new ones to give.

    Drawn from its own stream (not the training scenes of ``make_scene``), deterministic for all arguments.
    Captions repeat only when the set is exhausted ("single" has 19 distinct captions).
    """
    if name not in PROMPT_SETS:
        raise ConfigError(f"prompt set must be one of {', '.join(PROMPT_SETS)}; got {name!r}")
    if count <= 0:
        raise ConfigError(f"prompt set needs count > 0; got {count}")
    split, objects = PROMPT_SETS[name]
    _check_args(size, split, objects)
    scenes: list[Scene] = []
    seen: set[str] = set()
    index, stale = 0, 0
    while len(scenes) < count:
        scene = _scene(f"prompts/{name}/{seed}/{index}", size, split, _COUNT_MIX[split], objects)
        index += 1
        if scene.caption in seen and stale < 2000:  # 2000 draws in a row without a new caption: allow repeats
            stale += 1
            continue
        stale = 0 if scene.caption not in seen else stale
        seen.add(scene.caption)
        scenes.append(scene)
    return scenes
