"""Mask supervision of the gates (``train.mask_weight``): targets from world scenes, the loss, the training loop,
and the refusals where the data cannot supervise."""

import math

import numpy as np
import pytest
import torch

from maskattn_trt.errors import BadInputError, ConfigError
from maskattn_trt.models import tiny_sdxl_pipeline
from maskattn_trt.train.data import Record, SceneTargets
from maskattn_trt.train.loop import train
from maskattn_trt.train.metrics import read_metrics
from maskattn_trt.train.objective import gate_mask_loss
from maskattn_trt.train.synthetic import write_synthetic_dataset
from maskattn_trt.world import grid_coverage, make_scene, object_masks, prompt_set, token_targets

from .helpers import tiny_recipe


def test_token_targets_give_object_words_their_masks_and_open_the_rest(tiny_pipe):
    tokenizer = tiny_pipe.tokenizer
    scene = prompt_set("two", count=1, seed=0, size=64)[0]
    masks, object_tokens = token_targets(scene, tokenizer, side=16)
    assert masks.shape == (77, 16, 16) and object_tokens.shape == (77,)
    # walk the caption word by word: BOS is position 0
    position, expected = 1, {}
    for word in scene.caption.split():
        pieces = len(tokenizer.tokenize(word))
        for k, obj in enumerate(scene.objects):
            if word in (obj.colour, obj.shape):
                expected.update({p: k for p in range(position, position + pieces)})
        position += pieces
    assert sorted(np.flatnonzero(object_tokens)) == sorted(expected)
    assert len({obj.colour for obj in scene.objects} | {obj.shape for obj in scene.objects}) == 4
    grids = grid_coverage(scene, 16)
    for p, k in expected.items():
        np.testing.assert_array_equal(masks[p], grids[k])
    assert (masks[~object_tokens] == 1.0).all()  # BOS, articles, relation words, EOS, padding: open
    # the grid coverage is the object's area, cell by cell (4 x 4 pixels per cell here)
    for grid, mask in zip(grids, object_masks(scene), strict=True):
        assert abs(grid.sum() * 16 - mask.sum()) < 0.1 * mask.sum()
        assert grid.max() == 1.0 and grid.min() == 0.0


def _targets(batch=2, tokens=5, side=8):
    masks = torch.ones(batch, tokens, side, side)
    masks[:, 1:3] = 0.0
    masks[0, 1, :4, :4] = masks[1, 1, :2, :2] = 1.0
    masks[1, 2, 4:, 2:6] = masks[0, 2, 6:, 6:] = 1.0
    object_tokens = torch.zeros(batch, tokens, dtype=torch.bool)
    object_tokens[:, 1:3] = True
    return masks, object_tokens


def test_mask_loss_is_low_for_matching_logits_and_balances_inside_and_outside():
    masks, object_tokens = _targets()
    target = masks.flatten(2).transpose(1, 2)  # [B, N, T]
    matching = 20.0 * (2 * target - 1)
    assert gate_mask_loss({"s": matching}, masks, object_tokens).item() < 1e-7
    # undecided everywhere: log 2 for the object words plus log 2 for the rest
    assert gate_mask_loss({"s": torch.zeros(2, 64, 5)}, masks, object_tokens).item() == pytest.approx(2 * math.log(2))
    # "closed everywhere" for the object words costs as much as "open everywhere": inside and outside weigh the same
    closed, opened = matching.clone(), matching.clone()
    closed[..., 1:3], opened[..., 1:3] = -20.0, 20.0
    lc = gate_mask_loss({"s": closed}, masks, object_tokens).item()
    lo = gate_mask_loss({"s": opened}, masks, object_tokens).item()
    assert lc == pytest.approx(lo, rel=1e-5) and lc == pytest.approx(10.0, rel=1e-3)  # 0.5 x 20 per word
    # a word that is closed is wrong for the open tokens: they learn "open everywhere"
    shut = matching.clone()
    shut[..., 0] = -20.0
    assert gate_mask_loss({"s": shut}, masks, object_tokens).item() > 1.0
    # a coarser site (4 x 4) compares with area-averaged masks: the block masks stay binary there
    coarse = 20.0 * (2 * torch.nn.functional.avg_pool2d(masks, 2).flatten(2).transpose(1, 2) - 1)
    assert gate_mask_loss({"s": matching, "c": coarse}, masks, object_tokens).item() < 1e-7
    # an object that misses a (coarse) map entirely: its word is only asked to stay closed there
    empty = masks.clone()
    empty[1, 2] = 0.0
    assert gate_mask_loss({"s": torch.zeros(2, 64, 5)}, empty, object_tokens).item() == pytest.approx(2 * math.log(2))
    with pytest.raises(ConfigError, match="square"):
        gate_mask_loss({"s": torch.zeros(2, 32, 5)}, masks, object_tokens)


def test_training_with_mask_weight_teaches_gates_their_objects(tmp_path):
    common = ("data.synthetic_samples=8", "data.random_flip=false", "data.center_crop=true", "optim.lr=1e-2",
              "train.batch_size=4", "train.effective_batch=4", "checkpoint.every=0", "log.every=5")
    recipe = tiny_recipe(tmp_path / "mask", *common, "train.steps=20", "train.mask_weight=1.0")
    pipe = tiny_sdxl_pipeline(0)
    result = train(recipe, pipe=pipe)
    assert len(result.mask_losses) == 20 and all(math.isfinite(v) for v in result.mask_losses)
    first, last = np.mean(result.mask_losses[:3]), np.mean(result.mask_losses[-3:])
    assert last < 0.7 * first, f"mask loss {first:.4f} -> {last:.4f}"
    assert "mask loss" in result.summary()
    logged = read_metrics(tmp_path / "mask" / "metrics.jsonl")
    assert [r["mask_loss"] for r in logged][-1] == pytest.approx(result.mask_losses[-1])
    assert result.finished and result.gates_path.is_file()
    # the paper's objective (weight 0) logs no mask loss
    plain = tiny_recipe(tmp_path / "plain", *common, "train.steps=2")
    train(plain, pipe=pipe)
    assert all("mask_loss" not in r for r in read_metrics(tmp_path / "plain" / "metrics.jsonl"))


def test_mask_weight_refuses_data_that_cannot_supervise(tmp_path):
    for overrides, match in ((("data.format='coco'", "data.path='x.json'"), "scene"),
                             (("data.cache_dir='cache'",), "cache"),
                             (("data.random_flip=true",), "flipped"),
                             (("train.mask_weight=-1",), "mask_weight")):
        weight = () if any("mask_weight" in o for o in overrides) else ("train.mask_weight=1",)
        with pytest.raises(ConfigError, match=match):
            tiny_recipe(tmp_path, "data.random_flip=false", "data.center_crop=true", *weight, *overrides)
    # a folder of images without their scenes: named, before any step
    data = write_synthetic_dataset(tmp_path / "data", samples=4, size=32)
    for scene in data.glob("*.json"):
        scene.unlink()
    recipe = tiny_recipe(tmp_path / "run", "data.format='folder'", f"data.path='{data}'", "data.random_flip=false",
                         "data.center_crop=true", "train.mask_weight=1", "train.batch_size=4",
                         "train.effective_batch=4")
    with pytest.raises(BadInputError, match=r"00000\.png has no scene"):
        train(recipe, pipe=tiny_sdxl_pipeline(0))
    assert not (tmp_path / "run" / "gates.safetensors").exists()


def test_scene_targets_refuse_a_scene_of_another_size_or_caption(tiny_pipe, tmp_path):
    scene = make_scene(0, size=64)
    targets = SceneTargets(tiny_pipe.tokenizer, resolution=32, side=16)
    with pytest.raises(BadInputError, match="does not match the sample"):
        targets(Record(tmp_path / "a.png", scene.caption, scene.to_dict()))
    ok = SceneTargets(tiny_pipe.tokenizer, resolution=64, side=16)
    with pytest.raises(BadInputError, match="does not match the sample"):
        ok(Record(tmp_path / "a.png", "a red circle", scene.to_dict()))
    item = ok(Record(tmp_path / "a.png", scene.caption, scene.to_dict()))
    assert item["token_masks"].shape == (77, 16, 16) and item["object_tokens"].any()
