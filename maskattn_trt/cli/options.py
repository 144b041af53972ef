"""Options shared by several commands (one decorator each)."""

from __future__ import annotations

import math
from pathlib import Path

import click

from ..errors import BadInputError

model_option = click.option(
    "--model",
    default="tiny",
    show_default=True,
    help="'tiny' (the trained tiny SDXL shipped with the package), 'tiny-random' (random weights, built "
    "in-process) or a local diffusers SDXL folder.",
)
gates_option = click.option(
    "--gates",
    "gates_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Gate checkpoint (.safetensors from train / convert-gates); 'none' for no gates (the stock model); "
    "'shipped:mask' for the tiny model's mask-supervised gates. Default: the shipped gates with --model tiny on "
    "eager, else none (an export or engine carries its own).",
)
seed_option = click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=0, show_default=True, help="Random seed.")
dtype_option = click.option(
    "--dtype", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True, help="Precision."
)
json_option = click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
                           help="Also write a JSON report here ('-': stdout holds only the JSON, the human text "
                                "goes to stderr).")
progress_option = click.option("--no-progress", is_flag=True,
                               help="No progress bar (bars show only when stderr is a terminal anyway).")
force_option = click.option("--force", is_flag=True,
                            help="Replace --out even when it is a non-empty folder this command did not write.")


def resolve_gates(model: str, gates_path: str | None, backend: str = "eager") -> Path | None:
    """``--gates``: a path as given; 'none' -> no gates; 'shipped' / 'shipped:NAME' -> a gate set shipped with the
    model (``shipped:mask``); unset -> the model's shipped gates on eager (an export or engine already holds its
    gates), else none."""
    if gates_path is not None:
        if gates_path.lower() == "none":
            return None
        if gates_path == "shipped" or gates_path.startswith("shipped:"):
            from ..models import SHIPPED, shipped_gates

            if model not in SHIPPED:
                raise BadInputError(f"--gates {gates_path} names gates shipped with a model, and --model {model} ships "
                                    f"none (models with gates: {', '.join(SHIPPED)}); pass a gate checkpoint instead")
            return shipped_gates(model, gates_path.partition(":")[2] or "default")
        return Path(gates_path)
    if backend != "eager":
        return None
    from ..models import default_gates

    return default_gates(model)


class FiniteFloat(click.ParamType):
    """A float that must be finite (click's FLOAT takes 'nan' and 'inf') and lie in [min, max]
    (``min_open``: strictly above min)."""

    name = "number"

    def __init__(self, min: float | None = None, max: float | None = None, min_open: bool = False):
        self.min, self.max, self.min_open = min, max, min_open

    def convert(self, value, param, ctx):
        if isinstance(value, float) and math.isfinite(value):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        low = self.min is not None and (number <= self.min if self.min_open else number < self.min)
        if low or (self.max is not None and number > self.max):
            lo = "" if self.min is None else f"{'>' if self.min_open else '>='} {self.min:g}"
            hi = "" if self.max is None else f"<= {self.max:g}"
            self.fail(f"{number:g} is out of range: must be {' and '.join(x for x in (lo, hi) if x)}", param, ctx)
        return number


POSITIVE = click.IntRange(min=1)
NON_NEGATIVE = click.IntRange(min=0)
SEED = click.IntRange(min=0, max=2**63 - 1)


def json_target(json_path: str | None) -> None:
    """Check a ``--json PATH`` up front (creating nothing), so a long run does not end in an error; '-' (stdout)
    and None pass."""
    if json_path and json_path != "-":
        from ..utils.io import check_output_location

        check_output_location(json_path, folder=False, option="--json")


def write_json_report(json_path: str | None, payload) -> None:
    """``--json``: '-' prints only the JSON on stdout (commands send their human text to stderr then); a path
    gets the file (atomically) and one line saying so."""
    if not json_path:
        return
    from ..utils.io import strict_json, write_json_atomic

    if json_path == "-":
        click.echo(strict_json(payload, indent=2))
    else:
        write_json_atomic(json_path, payload)
        click.echo(f"JSON: {json_path}")
