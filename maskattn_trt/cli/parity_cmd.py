"""``maskattn-trt parity``."""

from __future__ import annotations

from pathlib import Path

import click

from .options import json_option, json_target, progress_option, seed_option, write_json_report


@click.command("parity")
@click.option("--onnx", "onnx_path", required=True, type=click.Path(exists=True),
              help="Export folder of any component (<component>.onnx + io_spec.json + manifest.json), its .onnx, or "
                   "an export tree (export --component all: every component is compared).")
@click.option("--model", default=None, help="Reference model (default: the one recorded in the export manifest).")
@click.option("--gates", "gates_path", type=click.Path(dir_okay=False), default=None,
              help="Gate checkpoint of the reference (default: the one recorded in the manifest).")
@click.option("--engine", "engine_path", type=click.Path(exists=True), default=None,
              help="Also compare a TensorRT engine built from this export, or an engine folder for an export tree "
                   "(needs a GPU).")
@click.option("--providers", default=None,
              help="ONNX Runtime execution providers, comma-separated: cpu,cuda,tensorrt (default: cuda,cpu where available; the TensorRT EP is opt-in).")
@click.option("--no-prompts", is_flag=True, help="Only random feeds (skip the text encoders).")
@seed_option
@json_option
@progress_option
def parity(onnx_path, model, gates_path, engine_path, providers, no_prompts, seed, json_path, no_progress):
    """Compare eager PyTorch (fp32) with ONNX Runtime (and a TensorRT engine) on the same inputs.

    Fresh random feeds and real prompt encodings, two batch sizes x two resolutions from the export's range.
    Reports max abs / relative L2 / cosine of noise_pred and per-site gate agreement; exits non-zero (7)
    when a tolerance is exceeded.

    \b
    Examples:
      maskattn-trt parity --onnx export/out/tiny
      maskattn-trt parity --onnx export/out/tiny --json parity.json
      maskattn-trt parity --onnx export/out/tiny_pipeline   # every component of an export tree
      maskattn-trt parity --onnx export/out/sdxl_fp16 --engine engines/sdxl_fp16.fp16.tensorrt.engine
    """
    from ..parity import ParityRequest, run_parity

    request = ParityRequest(
        onnx=Path(onnx_path), model=model, gates=Path(gates_path) if gates_path else None,
        engine=Path(engine_path) if engine_path else None,
        providers=tuple(p.strip() for p in providers.split(",")) if providers else None,
        prompts=not no_prompts, seed=seed,
    )
    json_target(json_path)

    def echo(line):
        click.echo(line, err=json_path == "-")  # with --json -, stdout holds only the JSON

    report = run_parity(request, progress=not no_progress)
    for line in report.notes:
        echo(line)
    for line in report.table():
        echo(line)
    tol = "; ".join(_tolerance_text(name, t) for name, t in report.tolerances.items())
    echo(f"tolerances: {tol}")
    write_json_report(json_path, report.to_dict())
    echo(f"parity {'passed' if report.passed else 'FAILED'}: {len(report.cases)} comparisons")
    report.raise_if_failed()


def _tolerance_text(name: str, t: dict) -> str:
    if "noise_pred" not in t:
        return f"{name}: " + ", ".join(f"{out} max abs <= {a:g}, rel L2 <= {r:g}" for out, (a, r) in t.items())
    return (f"{name}: noise_pred max abs <= {t['noise_pred'][0]:g}, rel L2 <= {t['noise_pred'][1]:g}, gate agreement "
            f">= {t['gate_agreement']} or every flip within {t.get('gate_logit_margin', 0):g} of the threshold logit")
