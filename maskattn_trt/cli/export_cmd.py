"""``maskattn-trt export``."""

from __future__ import annotations

from pathlib import Path

import click

from .options import dtype_option, force_option, model_option, progress_option, resolve_gates, seed_option


@click.command("export")
@model_option
@click.option("--gates", "gates_path", type=click.Path(dir_okay=False), default=None,
              help="Gate checkpoint (.safetensors from train / convert-gates). Default with --model tiny: its "
                   "shipped gates.")
@click.option("--open-gates", is_flag=True, help="Export a stock-equivalent graph (no gates) instead of --gates.")
@click.option("--out", required=True, type=click.Path(),
              help="Output folder: new, empty, or a previous export (replaced atomically when complete).")
@force_option
@dtype_option
@click.option("--opset", type=click.IntRange(min=1), default=None,
              help="ONNX opset (default: torchscript 17, dynamo 18; dynamo cannot write less than 18).")
@click.option("--batch", default="1:2:4", show_default=True, help="Batch MIN:OPT:MAX (or one value).")
@click.option("--height", default=None,
              help="Image height in PIXELS, MIN:OPT:MAX or one value (default tiny 32:64:128, SDXL 512:1024:1024).")
@click.option("--width", default=None, help="Image width in PIXELS, MIN:OPT:MAX or one value.")
@click.option("--static", is_flag=True, help="Fixed shapes (the OPT values) instead of dynamic batch/height/width.")
@click.option("--gate-outputs", is_flag=True, help="Also output each site's hard gate 'gate:<site>' [B, N, 77].")
@click.option("--exporter", type=click.Choice(["torchscript", "dynamo"]), default="torchscript", show_default=True,
              help="torch.onnx exporter (torchscript: fast, valid fp16 as is; dynamo: lower peak memory).")
@click.option("--no-slim", is_flag=True, help="Skip the onnxslim clean-up / constant folding pass.")
@click.option("--gate-heads", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="Gate head precision; fp16 (with --dtype fp16) for Turing / SM75 engines, which have no fp32 GEMM.")
@click.option("--component", type=click.Choice(["unet", "text_encoder", "text_encoder_2", "vae_decoder", "all"]),
              default="unet", show_default=True,
              help="Which graph; 'all' writes one folder per component under --out (an export tree).")
@click.option("--vae-dtype", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="VAE decoder precision (fp16 is refused when a real latent decodes to non-finite values).")
@seed_option
@progress_option
def export(model, gates_path, open_gates, out, force, dtype, opset, batch, height, width, static, gate_outputs,
           exporter, no_slim, gate_heads, component, vae_dtype, seed, no_progress):
    """Export the gated UNet (or a text encoder / the VAE decoder / all of them) as ONNX graphs
    (+ io_spec.json + manifest.json per folder).

    \b
    Examples:
      maskattn-trt export --model tiny --gates gates.safetensors --out export/out/tiny --gate-outputs
      maskattn-trt export --model tiny --open-gates --out export/out/tiny_stock
      maskattn-trt export --model /models/sdxl --gates gates.safetensors --dtype fp16 \\
          --height 768:1024:1024 --width 768:1024:1024 --batch 1:2:2 --out export/out/sdxl_fp16
      maskattn-trt export --model tiny --component all --open-gates --out export/out/tiny_pipeline
      maskattn-trt export --model tiny --component vae_decoder --vae-dtype fp16 --out export/out/tiny_vae_fp16
    """
    from ..export.from_model import ExportRequest, export_components

    request = ExportRequest(
        out=Path(out), model=model, open_gates=open_gates,
        gates=resolve_gates(model, gates_path) if component == "unet" and not open_gates else
        (Path(gates_path) if gates_path else None),
        dtype=dtype, opset=opset, batch=batch, height=height, width=width, static=static,
        gate_outputs=gate_outputs, exporter=exporter, slim=not no_slim, seed=seed, gate_heads=gate_heads,
        force=force, component=component, vae_dtype=vae_dtype,
    )
    for result in export_components(request, progress=not no_progress):
        _report(result)


def _report(result) -> None:
    click.echo(result.summary())
    s = result.spec
    if s.component != "unet":
        dims = ", ".join(f"{k} {getattr(s, k)}" for k in s.DIMS)
        click.echo(f"  {s.component}: {', '.join(s.input_names)} -> {', '.join(s.output_names)}; {dims}"
                   + (f" (latent; pixels = latent x {s.vae_scale})" if hasattr(s, "vae_scale") else ""))
        return
    click.echo(f"  shapes: batch {s.batch}, latent height {s.height}, width {s.width} "
               f"({'static' if result.manifest['static'] else 'dynamic'}; pixels = latent x {s.vae_scale})")
    graph = result.manifest["graph"]
    click.echo(f"  graph: {graph['nodes']} nodes, IsNaN {graph['isnan']}, gate sigmoids {graph['gate_sigmoids']} "
               f"(SiLU sigmoids {graph['silu_sigmoids']}), outputs {', '.join(s.output_names[:3])}"
               f"{' ...' if len(s.output_names) > 3 else ''}")
