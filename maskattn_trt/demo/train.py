"""Demo stage: a short gate training run on world scenes, on a copy of the demo's model with fresh gate heads.

The shipped gates (train/tiny_gates.toml, 600 steps) stay on the demo's model for the later stages; this stage
shows the training loop itself: data, loss, checkpoint, the gate checkpoint it writes.
"""

from __future__ import annotations

import copy
import dataclasses

from ..gates import gate_installation, remove_gates
from ..train.loop import train
from ..train.recipe import Recipe


def demo_recipe(out_dir, steps: int, gates=None, resolution: int = 128) -> Recipe:
    """A short run of the gate recipe (train/tiny_gates.toml's data at ``resolution``) for the demo."""
    recipe = Recipe()
    overrides = [
        f'train.out_dir="{out_dir}"', f"train.steps={steps}", "train.batch_size=4", "train.effective_batch=4",
        "data.format='synthetic'", "data.synthetic_samples=64", f"data.resolution={resolution}",
        "data.random_flip=false", "data.center_crop=true", "optim.lr=1e-3", "optim.warmup_steps=5",
        f"checkpoint.every={steps}", "checkpoint.keep=1", "log.every=5", "log.progress=false",
    ]
    recipe = recipe.with_overrides(overrides)
    return dataclasses.replace(recipe, gates=gates) if gates is not None else recipe


def demo_stage(state) -> list[str]:
    installed = gate_installation(state.pipe.unet)
    pipe = copy.deepcopy(state.pipe)
    if installed is not None:
        remove_gates(pipe.unet)
    steps = 12 if state.quick else 30
    recipe = demo_recipe(state.out_dir / "train", steps, installed.config if installed else None,
                         resolution=state.image_side)
    result = train(recipe, pipe=pipe, force=True)  # the demo's own subfolder: a new run each time
    if state.gates_path is None:  # the gates stage did not run: the later stages use what this run trained
        state.pipe, state.gates_path = pipe, result.gates_path
    start, end = result.loss_start_end()
    return [
        f"trained fresh gate heads for {result.end_step} steps on {recipe.data.synthetic_samples} world scenes "
        f"({recipe.data.resolution} px) in {result.seconds:.1f} s (the shipped gates: 600 steps of 16, "
        "`maskattn-trt train --recipe train/tiny_gates.toml`)",
        f"loss {start:.4f} -> {end:.4f} (mean of first/last 10% of steps)",
        f"fixed-batch loss (same 4 images, same noise and timesteps): {result.probe_loss[0]:.5f} -> "
        f"{result.probe_loss[1]:.5f}",
        f"metrics: {result.out_dir / 'metrics.jsonl'}; gates: {result.gates_path}",
    ]
