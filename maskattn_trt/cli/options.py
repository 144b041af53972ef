"""Options shared by several commands (one decorator each)."""

from __future__ import annotations

import click

model_option = click.option(
    "--model",
    default="tiny",
    show_default=True,
    help="'tiny' (offline, built in-process) or a local diffusers SDXL folder.",
)
gates_option = click.option(
    "--gates",
    "gates_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Gate checkpoint (.safetensors from train / convert-gates). Default: random gates (demo only).",
)
seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
dtype_option = click.option(
    "--dtype", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True, help="Precision."
)
json_option = click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
                           help="Also write a JSON report here ('-' for stdout).")
