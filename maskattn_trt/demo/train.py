"""Demo stage: a short gate training run on generated shape images, on the demo's tiny pipeline."""

from __future__ import annotations

import dataclasses

from ..gates import gate_installation
from ..train.loop import train
from ..train.recipe import Recipe


def demo_recipe(out_dir, steps: int, gates=None) -> Recipe:
    """The tiny CPU recipe (train/tiny_cpu.toml) for the demo, training the gates already installed."""
    recipe = Recipe()
    overrides = [
        f'train.out_dir="{out_dir}"', f"train.steps={steps}", "train.batch_size=4", "train.effective_batch=4",
        "data.format='synthetic'", "data.synthetic_samples=64", "data.resolution=32", "data.random_flip=true",
        "optim.lr=1e-3", "optim.warmup_steps=5", f"checkpoint.every={steps}", "checkpoint.keep=1",
        "log.every=5", "log.progress=false",
    ]
    recipe = recipe.with_overrides(overrides)
    return dataclasses.replace(recipe, gates=gates) if gates is not None else recipe


def demo_stage(state) -> list[str]:
    installed = gate_installation(state.pipe.unet)
    steps = 12 if state.quick else 40
    recipe = demo_recipe(state.out_dir / "train", steps, installed.config if installed else None)
    result = train(recipe, pipe=state.pipe, force=True)  # the demo's own subfolder: a new run each time
    state.gates_path = result.gates_path
    start, end = result.loss_start_end()
    lines = [
        f"trained {'the installed' if installed else 'fresh'} gate heads for {result.end_step} steps on "
        f"{recipe.data.synthetic_samples} generated shape images ({recipe.data.resolution} px) in {result.seconds:.1f} s",
        f"loss {start:.4f} -> {end:.4f} (mean of first/last 10% of steps; the tiny random UNet's loss is mostly "
        "the noise it cannot predict)",
        f"fixed-batch loss (same 4 images, same noise and timesteps): {result.probe_loss[0]:.5f} -> "
        f"{result.probe_loss[1]:.5f}",
        "open fraction per site after training:",
    ]
    for site, value in result.open_fraction.items():
        lines.append(f"  {site:<55} {value:.3f}")
    lines.append(f"metrics: {result.out_dir / 'metrics.jsonl'}; checkpoint: {result.checkpoint}")
    lines.append(f"saved gates to {state.gates_path}")
    return lines
