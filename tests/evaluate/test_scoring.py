"""The metric pipeline without the model: ground-truth renders scored by the real checker give 1.0 everywhere;
gate alignment on known gate maps; scene files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskattn_trt.errors import BadInputError
from maskattn_trt.evaluate import align, alignment_counts, colour_distance, load_scenes, score, summarise
from maskattn_trt.sampling.gatemaps import GateMaps
from maskattn_trt.world import prompt_set, render


@pytest.mark.parametrize("name", ["heldout", "two", "single"])
def test_ground_truth_renders_score_one(name):
    scenes = prompt_set(name, count=12, seed=3, size=64)
    records = [{"counts": score(np.asarray(render(s)), s).counts} for s in scenes]
    summary = summarise(records, resamples=200, seed=0)
    for metric in ("object_precision", "object_recall", "binding", "scene_accuracy"):
        assert summary[metric]["value"] == 1.0 and summary[metric]["ci95"] == [1.0, 1.0], metric
    if name == "single":
        assert summary["relation"]["value"] is None  # no scene states a relation
    else:
        assert summary["relation"]["value"] == 1.0 and summary["relation"]["ci95"] == [1.0, 1.0]
    assert summary["colour_distance"]["value"] == 0.0


def test_a_swapped_colour_is_a_binding_error_and_noise_is_nothing():
    scene = prompt_set("two", count=1, seed=0, size=64)[0]
    a, b = scene.objects
    swapped = type(scene)(scene.size, scene.background,
                          (type(a)(b.colour, a.shape, a.box), type(b)(a.colour, b.shape, b.box)),
                          scene.relation, scene.caption, scene.split)
    verdict = score(np.asarray(render(swapped)), scene)
    assert verdict.counts["binding"] == (0.0, 2.0) and verdict.counts["object_recall"] == (0.0, 2.0)
    assert verdict.counts["object_precision"] == (0.0, 2.0) and verdict.counts["relation"] == (0.0, 1.0)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    verdict = score(noise, scene)
    assert verdict.counts["object_recall"] == (0.0, 2.0)
    assert 0.5 < colour_distance(noise, np.asarray(render(scene))) <= 1.0
    assert [text for text, _ in verdict.marks()] == [f"{a.colour} {a.shape}", f"{b.colour} {b.shape}",
                                                     scene.relation]


def test_gate_alignment_on_known_maps(tiny_pipe):
    scene = prompt_set("two", count=1, seed=0, size=64)[0]
    tokens = ("<start>", *tiny_pipe.tokenizer.tokenize(scene.caption), "<end>")
    check = score(np.asarray(render(scene)), scene).check
    masks = [o.blob.mask for o in check.objects]
    grid = np.zeros((len(tokens), 64, 64), dtype=np.float32)  # a gate grid at image resolution
    first_words = scene.caption.split()[:3]  # "a <colour> <shape>": the first object
    colour_pos = 1 + len(tiny_pipe.tokenizer.tokenize(first_words[0]))
    grid[colour_pos] = masks[0]  # the first colour word opens exactly on its object
    grid[colour_pos + 1:] = 1.0  # every later token (shapes and the second colour included) opens everywhere
    maps = GateMaps(tokens, ["site"], {"site": grid}, [0])
    result = align(maps, tiny_pipe.tokenizer, scene, check)
    assert not result["skipped"]["tokens_mismatch"]
    words = {(w["object"], w["kind"]): w for w in result["words"]}
    assert words[(0, "colour")]["word"] == scene.objects[0].colour
    assert words[(0, "colour")]["iou"] == 1.0 and words[(0, "colour")]["inside"] == 1.0
    for key in ((0, "shape"), (1, "colour"), (1, "shape")):
        full = words[key]
        assert full["open_fraction"] == 1.0 and full["inside"] == pytest.approx(full["object_fraction"], abs=1e-6)
    counts = alignment_counts(result)
    assert counts["gate_iou_colour"][1] == 2.0 and counts["gate_iou_shape"][1] == 2.0


def test_scene_files(tmp_path):
    scenes = prompt_set("heldout", count=3, size=64)
    jsonl = tmp_path / "scenes.jsonl"
    jsonl.write_text("\n".join(json.dumps(s.to_dict()) for s in scenes) + "\n")
    as_list = tmp_path / "scenes.json"
    as_list.write_text(json.dumps({"scenes": [s.to_dict() for s in scenes]}))
    assert load_scenes(str(jsonl), 200, 0, 64) == scenes
    assert load_scenes(str(as_list), 2, 0, 64) == scenes[:2]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"caption": "a red circle"}\n')
    with pytest.raises(BadInputError, match="scene 1"):
        load_scenes(str(bad), 5, 0, 64)
    with pytest.raises(BadInputError, match="heldout, two, single"):
        load_scenes("nonsense", 5, 0, 64)
