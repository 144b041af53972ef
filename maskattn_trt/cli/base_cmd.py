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
@click.option("--init", "init_dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Continue an earlier run: its <run>/model folder (same model and data). Its VAE and text "
                   "encoders are kept; its UNet trains unet.steps more steps. The manifest records both runs.")
@force_option
def train_base(recipe_path, overrides, out_dir, init_dir, force):
    """Train the tiny SDXL-shaped base model from scratch on the synthetic world (VAE, then UNet).

    The result works with every command's --model PATH. Deterministic for the recipe; on CPU. A recipe's
    [[unet.restarts]] tables (steps, lr, text.lr, ...) continue the UNet after the first run, each exactly as
    --init would (one command reproduces a chain of runs); the model before each restart stays in <out>/phase<k>.

    \b
    Examples:
      maskattn-trt train-base --recipe train/tiny_base.toml --out runs/base
      maskattn-trt train-base --recipe train/tiny_base.toml --out runs/base --set train.max_minutes=90
      maskattn-trt train-base --recipe train/tiny_base.toml --init runs/base/model --out runs/base2 \
          --set unet.steps=10000 --set unet.lr=3e-4
      maskattn-trt train-base --recipe train/tiny_base.toml --out runs/quick --set unet.restarts=[]
    """
    from ..train.base import load_base_recipe, read_init
    from ..train.base import train_base as run
    from ..utils.io import claim_output_dir

    recipe = load_base_recipe(recipe_path, list(overrides))
    out = Path(out_dir)
    init = Path(init_dir) if init_dir is not None else None
    if init is not None:
        if out.resolve() in (init.resolve(), init.resolve().parent):
            raise click.UsageError(f"--out {out} holds the --init model; write the continued run to a new folder")
        read_init(init, recipe)  # refuse a different model or data before anything is written
    claim_output_dir(out, force=force, what="a train-base run folder",
                     ours=lambda p: (p / "model" / "weights_manifest.json").is_file())
    run(recipe, out, log=lambda line: click.echo(line, err=True), init=init)
