"""``maskattn-trt generate`` and ``maskattn-trt gates``: options are parsed here, the work is in
:mod:`maskattn_trt.sampling.generate`."""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import click

from ..sampling.schedulers import SCHEDULERS
from .options import POSITIVE, SEED, FiniteFloat, json_target, model_option, resolve_gates, write_json_report

_gates_option = click.option(
    "--gates", "gates_path", type=click.Path(dir_okay=False), default=None,
    help="Gate checkpoint (.safetensors), 'none', or 'shipped:mask' (the tiny model's mask-supervised gates). "
         "eager: default the shipped gates with --model tiny, else "
         "none (the stock UNet runs); onnxruntime/tensorrt: the gates are baked in, and a checkpoint given here "
         "must be the one they were built with.")


def sampling_options(func=None, *, out: bool = True):
    """Backend, sampling and size options shared by ``generate``, ``gates`` and ``evaluate`` (``out=False``:
    without ``--out``, for a command whose output folder follows other rules)."""
    if func is None:
        return functools.partial(sampling_options, out=out)
    options = [
        model_option,
        _gates_option,
        click.option("--backend", type=click.Choice(["eager", "onnxruntime", "tensorrt"]), default="eager",
                     show_default=True, help="Who runs the UNet."),
        click.option("--onnx", type=click.Path(), default=None,
                     help="Export folder (or its unet.onnx) for --backend onnxruntime, or an export tree "
                          "(export --component all) to run the text encoders and VAE in ONNX Runtime too."),
        click.option("--negative-prompt", default=None, help="Negative prompt (default: none; SDXL uses zeros)."),
        click.option("--steps", type=POSITIVE, default=30, show_default=True, help="Denoising steps."),
        click.option("--guidance", type=FiniteFloat(min=0), default=5.0, show_default=True,
                     help="Classifier-free guidance scale (<= 1 disables it)."),
        click.option("--scheduler", default="euler", show_default=True,
                     help=f"One of {', '.join(SCHEDULERS)}."),
        click.option("--seed", type=SEED, default=0, show_default=True, help="Seed (prompt i gets seed + i)."),
        click.option("--height", type=POSITIVE, default=None, help="Image height in pixels (default: the model's own: UNet sample size x VAE scale; tiny 128, tiny-random 64, SDXL 1024)."),
        click.option("--width", type=POSITIVE, default=None, help="Image width in pixels (default: the model's own: UNet sample size x VAE scale; tiny 128, tiny-random 64, SDXL 1024)."),
        *([click.option("--out", type=click.Path(file_okay=False), default="out/generate", show_default=True,
                        help="Output folder (created at the first image; existing images are never replaced).")]
          if out else []),
        click.option("--threads", type=POSITIVE, default=None, help="ONNX Runtime intra-op threads."),
        click.option("--no-progress", is_flag=True, help="No progress bar (shown only when stderr is a terminal)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _settings(model, steps, guidance, scheduler, height, width):
    from ..models import default_side
    from ..sampling.sampler import SampleSettings

    default = default_side(model)
    return SampleSettings(steps=steps, guidance=guidance, scheduler=scheduler,
                          height=default if height is None else height, width=default if width is None else width)


def _echo_warnings(func):
    """Show library warnings (e.g. a truncated prompt and its cut words) as one 'warning:' line each."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                return func(*args, **kwargs)
            finally:
                for w in caught:
                    if issubclass(w.category, UserWarning) and "maskattn_trt" in (w.filename or ""):
                        click.echo(f"warning: {w.message}", err=True)

    return wrapper


@click.command("generate")
@sampling_options
@click.option("--engine", type=click.Path(), default=None,
              help="Engine file for --backend tensorrt, or an engine folder built from an export tree.")
@click.option("--components", default="auto", show_default=True,
              help="Components the onnxruntime/tensorrt backend runs: auto (every one --onnx/--engine holds), all, "
                   "unet (text encoders and VAE in PyTorch), or a comma list such as unet,vae_decoder.")
@click.option("--prompt", "prompt_texts", multiple=True, help="Prompt (repeatable).")
@click.option("--prompts", "prompts_file", type=click.Path(dir_okay=False), default=None,
              help="File: one prompt per line, or JSONL {\"prompt\", \"seed\", \"negative\"} per line.")
@click.option("--batch", type=POSITIVE, default=1, show_default=True, help="Images per UNet call (x2 with guidance).")
@click.option("--images", "images_per_prompt", type=POSITIVE, default=1, show_default=True,
              help="Images per prompt (seeds seed, seed+1, ...).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write a JSON summary (images, timings) here ('-': stdout only JSON, the summary to stderr).")
@_echo_warnings
def generate(model, gates_path, backend, onnx, negative_prompt, steps, guidance, scheduler, seed, height, width, out,
             threads, no_progress, engine, components, prompt_texts, prompts_file, batch, images_per_prompt,
             json_path):
    """Generate images from prompts with the eager, ONNX Runtime or TensorRT backend.

    Writes <out>/NNNN_<prompt>_s<seed>.png with a JSON sidecar (prompt, seed, steps, scheduler, backend,
    gate hash, timings) and ends with per-stage timings and images/s. A name already taken in <out> gets
    -2, -3, ... appended: existing images are never replaced.

    \b
    Examples:
      maskattn-trt generate --prompt "a red cat on a blue sofa" --steps 20 --out out/gen
      maskattn-trt generate --backend onnxruntime --onnx export/out/tiny --prompts prompts.jsonl --batch 2
      maskattn-trt generate --backend onnxruntime --onnx export/out/tiny_pipeline --prompt "a red cat"
      maskattn-trt generate --model /models/sdxl --backend tensorrt --engine engines/sdxl.engine \\
          --prompt "a lighthouse at dusk" --scheduler dpmpp_2m_karras --steps 25
    """
    from ..errors import BadInputError
    from ..sampling.generate import GenerateRequest
    from ..sampling.generate import generate as run
    from ..sampling.prompts import PromptEntry, read_prompts

    if bool(prompt_texts) == bool(prompts_file):
        raise BadInputError("pass --prompt TEXT (repeatable) or --prompts FILE, exactly one of them")
    entries = read_prompts(prompts_file) if prompts_file else [PromptEntry(p) for p in prompt_texts]
    request = GenerateRequest(
        prompts=tuple(entries), out=Path(out), settings=_settings(model, steps, guidance, scheduler, height, width),
        model=model, backend=backend, onnx=Path(onnx) if onnx else None, engine=Path(engine) if engine else None,
        gates=resolve_gates(model, gates_path, backend), negative=negative_prompt, seed=seed, batch=batch,
        images_per_prompt=images_per_prompt, threads=threads, progress=not no_progress, components=components,
    )
    json_target(json_path)
    report = run(request)
    for line in report.summary():
        click.echo(line, err=json_path == "-")
    write_json_report(json_path, report.to_dict())


@click.command("gates")
@sampling_options
@click.option("--prompt", required=True, help="The prompt whose gate maps to draw.")
@click.option("--steps-at", default=None,
              help="Comma-separated 0-based steps to average (default: every step), e.g. 0,10,29.")
@click.option("--per-layer", is_flag=True, help="One column per gated layer instead of per attention module.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write open fractions per token and site here ('-': stdout).")
@_echo_warnings
def gates(model, gates_path, backend, onnx, negative_prompt, steps, guidance, scheduler, seed, height, width, out,
          threads, no_progress, prompt, steps_at, per_layer, json_path):
    """Save per-token gate maps for a prompt: a token x site grid, an overlay on the image, open fractions.

    Runs on eager (with --gates) or on an ONNX export made with --gate-outputs.

    \b
    Examples:
      maskattn-trt gates --gates out/demo/gates_random.safetensors --prompt "a red cat on a blue sofa" \\
          --height 128 --width 128 --out out/gates --json out/gates/fractions.json
      maskattn-trt gates --backend onnxruntime --onnx export/out/tiny --prompt "a cat" --steps-at 0,5,9 --steps 10
    """
    from ..errors import BadInputError
    from ..sampling.generate import GateMapRequest, make_gate_maps

    chosen = None
    if steps_at:
        try:
            chosen = tuple(int(s) for s in steps_at.split(",") if s.strip())
        except ValueError:
            raise BadInputError(f"--steps-at must be comma-separated integers; got {steps_at!r}") from None
    request = GateMapRequest(
        prompt=prompt, out=Path(out), settings=_settings(model, steps, guidance, scheduler, height, width),
        model=model, backend=backend, onnx=Path(onnx) if onnx else None,
        gates=resolve_gates(model, gates_path, backend), negative=negative_prompt, seed=seed, steps_at=chosen,
        per_layer=per_layer, json_path=json_path, threads=threads, progress=not no_progress,
    )
    report = make_gate_maps(request)
    if json_path == "-":
        click.echo(json.dumps(report.fractions, indent=2))
        return
    for line in report.summary():
        click.echo(line)
