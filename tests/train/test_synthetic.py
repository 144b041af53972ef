"""The synthetic dataset: world scenes in the three layouts, each sample's ground truth written beside it."""

import json

import pytest

from maskattn_trt.errors import ConfigError
from maskattn_trt.train.data import read_records
from maskattn_trt.train.recipe import DataSection
from maskattn_trt.train.synthetic import synthetic_sample, write_synthetic_dataset
from maskattn_trt.world import Scene, is_heldout_pair, make_scene, render


def test_sample_is_the_rendered_world_scene():
    image, caption = synthetic_sample(5, size=64, seed=2)
    scene = make_scene(5, seed=2, size=64)
    assert caption == scene.caption and image.tobytes() == render(scene).tobytes()


@pytest.mark.parametrize("layout", ["folder", "jsonl", "coco"])
def test_every_layout_writes_the_scenes_and_the_readers_ignore_them(tmp_path, layout):
    path = write_synthetic_dataset(tmp_path, samples=5, size=32, seed=1, layout=layout, split="heldout")
    records, skipped = read_records(DataSection(format=layout, path=str(path), resolution=32))
    assert len(records) == 5 and not skipped
    if layout == "folder":
        scenes = [json.loads((tmp_path / f"{i:05d}.json").read_text()) for i in range(5)]
    elif layout == "jsonl":
        scenes = [json.loads(line)["scene"] for line in path.read_text().splitlines()]
    else:
        table = json.loads((tmp_path / "annotations" / "scenes.json").read_text())
        scenes = [table[str(i)] for i in range(5)]
    for index, (record, row) in enumerate(zip(records, scenes, strict=True)):
        scene = Scene.from_dict(row)
        assert scene == make_scene(index, seed=1, size=32, split="heldout") and record.caption == scene.caption


def test_training_data_holds_no_heldout_pair(tmp_path):
    write_synthetic_dataset(tmp_path, samples=40, size=32)
    for index in range(40):
        scene = Scene.from_dict(json.loads((tmp_path / f"{index:05d}.json").read_text()))
        assert scene.split == "train" and not any(is_heldout_pair(o.colour, o.shape) for o in scene.objects)
    with pytest.raises(ConfigError, match="split"):
        write_synthetic_dataset(tmp_path / "x", samples=2, split="test")
