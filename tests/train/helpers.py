"""Helpers shared by the training tests: the tiny CPU recipe pointed at a temporary run folder."""

from __future__ import annotations

from pathlib import Path

from maskattn_trt.train.recipe import Recipe, load_recipe

REPO = Path(__file__).resolve().parents[2]
TINY_RECIPE = REPO / "train" / "tiny_cpu.toml"


def tiny_recipe(out_dir, *overrides: str) -> Recipe:
    return load_recipe(TINY_RECIPE, [f'train.out_dir="{out_dir}"', "log.progress=false", *overrides])
