"""``maskattn-trt demo``."""

from __future__ import annotations

import click


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out/demo", show_default=True,
              help="Folder for the demo's artifacts: new, empty, or a previous demo's.")
@click.option("--force", is_flag=True, help="Use --out even when it is a non-empty folder the demo did not write.")
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=0, show_default=True)
@click.option("--quick", is_flag=True, help="Shorter training and fewer sampling steps.")
@click.option("--only", multiple=True, help="Run only these stages (gates, train, export, engine, generate, evaluate).")
def demo(out_dir, force, seed, quick, only):
    """Run the toolkit end to end, offline, on the trained tiny SDXL shipped with the package.

    \b
    Example:
      maskattn-trt demo --out out/demo
    """
    from ..demo import run_demo

    run_demo(out_dir, seed=seed, quick=quick, only=tuple(only), echo=click.echo, force=force)
