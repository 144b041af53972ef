"""``maskattn-trt train``."""

from __future__ import annotations

import os

import click

from .options import POSITIVE, force_option, seed_option


@click.command("train")
@click.option("--recipe", "recipe_path", type=click.Path(dir_okay=False), default=None,
              help="TOML recipe (train/tiny_cpu.toml, train/sdxl_512.toml, train/sdxl_1024.toml). Default: built-in defaults.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override any recipe value (repeatable), e.g. --set optim.lr=3e-4 --set gates.training_form=renormalized.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Run folder (checkpoints, metrics.jsonl, gates.safetensors) = train.out_dir. A folder holding a "
                   "run is continued only with --resume (or started over with --force).")
@force_option
@click.option("--model", default=None, help="'tiny' (shipped, trained), 'tiny-random' or a local diffusers SDXL folder (= model.model).")
@click.option("--data", "data_path", default=None, help="Dataset path (= data.path): folder, manifest.jsonl or captions_train2014.json.")
@click.option("--data-format", type=click.Choice(["synthetic", "folder", "jsonl", "coco"]), default=None,
              help="= data.format.")
@click.option("--steps", type=POSITIVE, default=None, help="Total optimizer steps (= train.steps).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default=None,
              help="Frozen backbone precision (= model.precision); gate heads always train in fp32.")
@click.option("--resume", is_flag=False, flag_value="auto", default=None, metavar="[PATH]",
              help="Continue from the latest checkpoint of the run folder (bare --resume) or from a step-* folder.")
@click.option("--stop-after", type=POSITIVE, default=None,
              help="Stop after this many steps of this invocation (with a checkpoint), e.g. to fit a job's time limit.")
@click.option("--strict", is_flag=True, help="Fail on the first bad sample instead of skipping and counting it.")
@click.option("--cache-only", is_flag=True,
              help="Only encode the dataset into data.cache_dir (VAE latents + text embeddings) and exit.")
@click.option("--no-progress", is_flag=True, help="No progress bar (metrics.jsonl is still written).")
@seed_option
def train(recipe_path, overrides, out_dir, force, model, data_path, data_format, steps, precision, resume, stop_after,
          strict, cache_only, no_progress, seed):
    """Train the MaskAttn gate heads of a frozen SDXL (only gate parameters are optimised).

    Runs on one process as is, and on many GPUs / nodes under `torchrun` or `accelerate launch`
    (DDP over the gate parameters; see train/launch.sh). Writes <out>/gates.safetensors, which
    `maskattn-trt export --gates` and `load_gates` take.

    \b
    Examples:
      maskattn-trt train --recipe train/tiny_cpu.toml --out runs/tiny
      maskattn-trt train --recipe train/tiny_cpu.toml --out runs/tiny --steps 80 --resume
      maskattn-trt train --recipe train/sdxl_512.toml --model /models/sdxl --data /data/coco/annotations/captions_train2014.json
      maskattn-trt train --recipe train/sdxl_512.toml --set data.cache_dir=/scratch/c512 --cache-only
      torchrun --nproc-per-node 8 -m maskattn_trt.cli train --recipe train/sdxl_512.toml --model /models/sdxl
    """
    from ..train.loop import train as run_training
    from ..train.recipe import load_recipe

    flags = {"train.out_dir": out_dir, "model.model": model, "data.path": data_path, "data.format": data_format,
             "train.steps": steps, "model.precision": precision, "train.seed": seed if _given("seed") else None,
             "data.strict": True if strict else None, "log.progress": False if no_progress else None}
    extra = [f"{key}={_toml(value)}" for key, value in flags.items() if value is not None]
    recipe = load_recipe(recipe_path, [*extra, *overrides])
    main = os.environ.get("RANK", "0") == "0"
    if main:
        click.echo(f"recipe: {recipe.summary()}")
    if cache_only:
        from ..train.loop import build_cache

        click.echo(f"cache ready: {build_cache(recipe)}")
        return
    result = run_training(recipe, resume=resume, stop_after=stop_after, force=force)
    if main:
        click.echo(result.summary())
        if result.checkpoint is not None:
            click.echo(f"last checkpoint: {result.checkpoint} (continue with --resume)")


def _given(name: str) -> bool:
    source = click.get_current_context().get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)
