"""``maskattn-trt convert-gates`` and ``gates-info``."""

from __future__ import annotations

import json
import time

import click


@click.command("convert-gates")
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("target", type=click.Path(dir_okay=False))
@click.option("--model", default="sdxl", show_default=True,
              help="UNet the gates belong to: 'sdxl' (stock SDXL base architecture, no weights needed), "
                   "'tiny', or a local SDXL folder.")
def convert_gates(source, target, model):
    """Convert the official code's gate_final.pt (maskattn-sdxl-gates-v1) into a safetensors checkpoint.

    The file is read with torch.load(weights_only=True): no code in it runs.

    \b
    Example:
      maskattn-trt convert-gates runs/gate_final.pt gates.safetensors
    """
    from ..gates import convert_official_checkpoint
    from ..models import UNET_PRESETS, load_unet
    from ..utils.io import check_output_location

    check_output_location(target, folder=False, create_parents=False, option="TARGET")
    start = time.perf_counter()
    unet = load_unet(model, device="meta" if model in UNET_PRESETS else "cpu")
    out = convert_official_checkpoint(source, target, unet)
    info = unet._maskattn_installation
    click.echo(
        f"wrote {out} ({len(info.sites)} sites, {len(set(info.head_of_site.values()))} heads, "
        f"stage={info.config.stage}, placement={info.config.placement}) in {time.perf_counter() - start:.1f} s"
    )


@click.command("gates-info")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
def gates_info(checkpoint):
    """Print the metadata of a gate checkpoint (config, sites, fingerprint, hash)."""
    from ..gates import read_gate_checkpoint

    tensors, meta = read_gate_checkpoint(checkpoint)
    meta = dict(meta)
    meta["parameters"] = int(sum(t.numel() for t in tensors.values()))
    click.echo(json.dumps(meta, indent=2, sort_keys=True))

