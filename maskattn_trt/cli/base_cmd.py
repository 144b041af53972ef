"""``maskattn-trt train-base``."""

from __future__ import annotations

from pathlib import Path

import click

from .options import force_option


@click.command("train-base")
@click.option("--recipe", "recipe_path", type=click.Path(dir_okay=False, exists=True), default=None,
              help="TOML recipe (train/tiny_base.toml). Default: built-in defaults (the same values).")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a recipe value (repeatable), e.g. --set unet.steps=2000 --set train.max_minutes=60.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Run folder; the model is written to <out>/model (a diffusers SDXL folder).")
@force_option
def train_base(recipe_path, overrides, out_dir, force):
    """Train the tiny SDXL-shaped base model from scratch on the synthetic world (VAE, then UNet).

    The result works with every command's --model PATH. Deterministic for the recipe; on CPU.

    \b
    Examples:
      maskattn-trt train-base --recipe train/tiny_base.toml --out runs/base
      maskattn-trt train-base --recipe train/tiny_base.toml --out runs/base --set train.max_minutes=90
    """
    from ..train.base import load_base_recipe
    from ..train.base import train_base as run
    from ..utils.io import claim_output_dir

    recipe = load_base_recipe(recipe_path, list(overrides))
    out = Path(out_dir)
    claim_output_dir(out, force=force, what="a train-base run folder",
                     ours=lambda p: (p / "model" / "weights_manifest.json").is_file())
    run(recipe, out, log=lambda line: click.echo(line, err=True))
