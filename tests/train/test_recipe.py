"""Recipes: the shipped TOML files parse, unknown keys are named, overrides are typed."""

from pathlib import Path

import pytest

from maskattn_trt.errors import ConfigError
from maskattn_trt.train.recipe import load_recipe, parse_override

from .helpers import REPO


@pytest.mark.parametrize("name", ["tiny_cpu.toml", "sdxl_512.toml", "sdxl_1024.toml"])
def test_shipped_recipes_parse(name):
    recipe = load_recipe(REPO / "train" / name)
    assert recipe.to_dict()["gates"] == recipe.gates.to_dict()


def test_official_recipes_carry_the_paper_settings():
    r512, r1024 = load_recipe(REPO / "train" / "sdxl_512.toml"), load_recipe(REPO / "train" / "sdxl_1024.toml")
    for recipe in (r512, r1024):
        assert (recipe.optim.lr, recipe.optim.weight_decay, recipe.optim.grad_clip) == (1e-4, 0.01, 1.0)
        assert recipe.train.effective_batch == 16 and recipe.data.min_noun_phrases == 2
        assert recipe.model.precision in ("bf16", "fp16")
    assert (r512.train.steps, r512.data.resolution, r512.optim.warmup_steps) == (100_000, 512, 1000)
    assert (r1024.train.steps, r1024.data.resolution) == (10_000, 1024)
    assert r1024.train.init_gates.endswith("gates.safetensors")  # continues from the 512 px run
    assert r512.train.grad_accum(world_size=8) * 8 * r512.train.batch_size == 16


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[optim]\nlr = 1e-4\nlearning_rate = 3e-4\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) optim\.learning_rate"):
        load_recipe(path)
    path.write_text("[optimizer]\nlr = 1e-4\n")
    with pytest.raises(ConfigError, match="unknown section.*optimizer"):
        load_recipe(path)
    path.write_text("[gates]\nstagee = 'mid'\n")
    with pytest.raises(ConfigError, match=r"gates\.stagee"):
        load_recipe(path)
    path.write_text("[optim\nlr = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_recipe(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_recipe(Path(tmp_path / "missing.toml"))


def test_overrides_are_typed_and_validated():
    assert parse_override("optim.lr=3e-4") == ("optim.lr", 3e-4)
    assert parse_override("data.format=jsonl") == ("data.format", "jsonl")
    assert parse_override("model.gradient_checkpointing=true") == ("model.gradient_checkpointing", True)
    recipe = load_recipe(None, ["train.steps=7", "gates.training_form='renormalized'", "optim.betas=[0.8, 0.9]"])
    assert recipe.train.steps == 7 and recipe.gates.training_form == "renormalized"
    assert recipe.optim.betas == (0.8, 0.9)
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("lr=1")
    with pytest.raises(ConfigError, match="train.steps must be positive"):
        load_recipe(None, ["train.steps=0"])
    with pytest.raises(ConfigError, match="gate training_form"):
        load_recipe(None, ["gates.training_form='soft'"])
    with pytest.raises(ConfigError, match="not a multiple of batch_size x processes"):
        load_recipe(None, ["train.effective_batch=10", "train.batch_size=4"]).train.grad_accum(1)
