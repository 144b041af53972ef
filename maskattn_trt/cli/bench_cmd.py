"""``maskattn-trt bench``."""

from __future__ import annotations

import click

from .options import NON_NEGATIVE, POSITIVE, json_option, json_target, seed_option, write_json_report


@click.command("bench")
@click.option("--preset", "presets", multiple=True, type=click.Choice(["tiny", "small", "sdxl"]),
              help="UNet size preset(s) (repeatable; default: tiny and small).")
@click.option("--shape", default=None, help="Latent shape BATCHxHEIGHTxWIDTH (default per preset: tiny 2x32x32, "
                                            "small 2x64x64, sdxl 1x32x32).")
@click.option("--repeats", type=POSITIVE, default=20, show_default=True, help="Timed inferences per runner.")
@click.option("--warmup", type=NON_NEGATIVE, default=3, show_default=True)
@click.option("--threads", type=POSITIVE, default=2, show_default=True, help="CPU threads for torch and ONNX Runtime.")
@seed_option
@json_option
def bench(presets, shape, repeats, warmup, threads, seed, json_path):
    """Median latency of eager PyTorch and ONNX Runtime, stock and gated UNet, in the same run.

    Reports the gate overhead per backend (gated / stock) and the ONNX Runtime speed-up (eager / ORT).

    \b
    Examples:
      maskattn-trt bench
      maskattn-trt bench --preset small --shape 2x64x64 --repeats 30 --json bench.json
    """
    from ..bench import bench_preset, format_table
    from ..errors import BadInputError

    parsed = None
    if shape:
        try:
            parsed = tuple(int(v) for v in shape.lower().split("x"))
        except ValueError:
            parsed = ()
        if len(parsed) != 3 or min(parsed) < 1:
            raise BadInputError(f"--shape must be BATCHxHEIGHTxWIDTH (latent), e.g. 2x32x32; got {shape!r}")
    json_target(json_path)

    def echo(line):
        click.echo(line, err=json_path == "-")  # with --json -, stdout holds only the JSON

    rows = [bench_preset(p, parsed, repeats=repeats, warmup=warmup, threads=threads, seed=seed, echo=echo)
            for p in presets or ("tiny", "small")]
    for line in format_table(rows):
        echo(line)
    write_json_report(json_path, [r.to_dict() for r in rows])
