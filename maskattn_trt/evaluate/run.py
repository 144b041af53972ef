"""``maskattn-trt evaluate`` as a library call: generate every prompt x seed of a scene set under each condition
(gated; gates open; optionally another backend), score every image with the world's checker in memory, and
write the report (``evaluation.json``, ``contact_sheet.png``) into one folder, swapped into place when complete.

Conditions share everything but what is compared: the same scenes, the same image seeds, the same sampler
settings. ``gated`` is the model as deployed on ``backend``; ``open`` is the same backend with every gate open
(eager: the gates forced open on the same UNet; onnxruntime / tensorrt: a second artifact exported with
``--open-gates``); ``<against>`` is the gated model on another backend.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BadInputError
from ..gates import gate_processors, set_gates_open
from ..sampling.backends import BACKENDS, load_model, open_backend
from ..sampling.gatemaps import GateMaps
from ..sampling.images import save_png
from ..sampling.sampler import Sampler, SampleSettings
from ..utils.io import atomic_dir, claim_output_dir, write_json_atomic
from ..utils.progress import progress_bar
from ..world import render
from .alignment import align, alignment_counts
from .report import build_report, versions
from .scenes import load_scenes
from .scoring import score
from .sheet import render_sheet

RESULT_FILE = "evaluation.json"
SHEET_FILE = "contact_sheet.png"


@dataclass(frozen=True)
class EvaluateRequest:
    """What ``maskattn-trt evaluate`` needs (sizes in pixels)."""

    out: Path
    prompts: str = "heldout"  # a prompt-set name or a JSON / JSONL file of scenes
    count: int = 200
    prompt_seed: int = 0
    seeds: int = 1  # image seeds per scene: seed, seed + 1, ...
    seed: int = 0
    settings: SampleSettings = SampleSettings(height=128, width=128)
    model: str = "tiny"
    backend: str = "eager"
    onnx: Path | None = None
    engine: Path | None = None
    gates: Path | None = None
    compare_open: bool = True
    open_onnx: Path | None = None
    open_engine: Path | None = None
    against: str | None = None
    negative: str | None = None
    batch: int = 1
    threads: int | None = None
    components: str = "auto"
    alignment: bool = True
    gate_threshold: float = 0.5
    resamples: int = 1000
    bootstrap_seed: int = 0
    sheet_rows: int = 24
    save_images: bool = False
    force: bool = False
    progress: bool = True


@dataclass
class Condition:
    """One way of generating: a name, an opened backend and its sampler, and how to switch it on."""

    name: str
    backend: object  # sampling.backends.Backend
    sampler: Sampler
    unet: object = None  # eager "open": this UNet's gates are forced open while the condition runs
    records: list[dict] = field(default_factory=list)  # per unit: counts, verdict, alignment
    seconds: dict[str, float] = field(default_factory=dict)


def _artifacts(backend: str, request: EvaluateRequest, open_gates: bool = False) -> dict:
    if backend == "onnxruntime":
        return {"onnx": request.open_onnx if open_gates else request.onnx}
    if backend == "tensorrt":
        return {"engine": request.open_engine if open_gates else request.engine}
    return {}


def _check_request(request: EvaluateRequest) -> None:
    if request.backend not in BACKENDS:
        raise BadInputError(f"unknown backend {request.backend!r}; choose one of {', '.join(BACKENDS)}")
    sides = {request.backend} | ({request.against} if request.against else set())
    if request.against is not None:
        if request.against not in BACKENDS:
            raise BadInputError(f"--against must be one of {', '.join(BACKENDS)}; got {request.against!r}")
        if request.against == request.backend:
            raise BadInputError(f"--against {request.against} is the --backend itself; name another backend")
    if request.against == "eager" and not request.gates:
        raise BadInputError("--against eager needs --gates CHECKPOINT (the gates baked into the export / engine), "
                            "or it would compare the gated artifact with the stock UNet")
    if request.onnx and "onnxruntime" not in sides:
        raise BadInputError("--onnx belongs to the onnxruntime backend; pass --backend onnxruntime or --against "
                            "onnxruntime, or drop --onnx")
    if request.engine and "tensorrt" not in sides:
        raise BadInputError("--engine belongs to the tensorrt backend; pass --backend tensorrt or --against "
                            "tensorrt, or drop --engine")
    if request.open_onnx and not (request.compare_open and request.backend == "onnxruntime"):
        raise BadInputError("--open-onnx is the gates-open export of --backend onnxruntime; use it with --backend "
                            "onnxruntime (and without --no-open)")
    if request.open_engine and not (request.compare_open and request.backend == "tensorrt"):
        raise BadInputError("--open-engine is the gates-open engine of --backend tensorrt; use it with --backend "
                            "tensorrt (and without --no-open)")
    if request.compare_open:
        if request.backend == "eager" and not request.gates:
            raise BadInputError("the gates-open comparison needs gates: pass --gates CHECKPOINT (eager), or --no-open "
                                "to evaluate the stock model alone")
        if request.backend == "onnxruntime" and not request.open_onnx:
            raise BadInputError("the gates-open comparison on onnxruntime needs a second export without gates: "
                                "pass --open-onnx DIR (`maskattn-trt export --open-gates ...`), or --no-open")
        if request.backend == "tensorrt" and not request.open_engine:
            raise BadInputError("the gates-open comparison on tensorrt needs a second engine without gates: pass "
                                "--open-engine PATH (built from an `export --open-gates` folder), or --no-open")
    for label, value in (("--count", request.count), ("--seeds", request.seeds), ("--batch", request.batch),
                         ("--resamples", request.resamples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadInputError(f"{label} must be a positive integer; got {value!r}")
    if not 0.0 <= request.gate_threshold < 1.0:
        raise BadInputError(f"--gate-threshold must lie in [0, 1); got {request.gate_threshold!r}")


def _open(pipe, unet, name: str, backend: str, request: EvaluateRequest, batches: list[int], *,
          open_gates: bool = False, gate_outputs: bool = False) -> Condition:
    baked = backend != "eager"  # an export / engine carries its gates; --gates is only checked against them
    opened = open_backend(pipe, unet, backend, model=request.model,
                          gates_path=None if open_gates and baked else request.gates, gate_outputs=gate_outputs,
                          threads=request.threads, components=request.components,
                          **_artifacts(backend, request, open_gates))
    if baked and request.compare_open and backend == request.backend:
        has_gates = bool(opened.gates.get("gates_hash"))
        flag = ("--open-onnx" if open_gates else "--onnx") if backend == "onnxruntime" else (
            "--open-engine" if open_gates else "--engine")
        if has_gates == open_gates:
            found = f"gates {opened.gates['gates_hash'][:12]}" if has_gates else "no gates (an --open-gates export)"
            want = "the same model exported with --open-gates" if open_gates else "the gated export"
            raise BadInputError(f"{flag} {opened.artifact} holds {found}; expected {want}: check which artifact goes "
                                "to --onnx / --engine and which to --open-onnx / --open-engine")
    sampler = Sampler(pipe, opened.runner, request.settings, components=opened.components)
    sampler.validate(batches)
    return Condition(name, opened, sampler)


def _conditions(request: EvaluateRequest, batches: list[int]) -> tuple[object, list[Condition]]:
    eager_needed = "eager" in (request.backend, request.against)
    pipe, unet = load_model(request.model, "eager" if eager_needed else request.backend)
    align_eager = request.alignment and request.backend == "eager" and bool(request.gates)
    main = _open(pipe, unet, "gated", request.backend,
                 request, batches, gate_outputs=align_eager)
    if not main.backend.gates.get("gates_hash"):
        main.name = "stock"  # no gates at all (eager without --gates, or an --open-gates artifact with --no-open)
    conditions = [main]
    if request.compare_open:
        opened = _open(pipe, unet, "open", request.backend, request, batches, open_gates=True)
        if request.backend == "eager":  # same UNet and gates, a runner without gate outputs, gates forced open
            opened.unet = unet
        conditions.append(opened)
    if request.against:
        conditions.append(_open(pipe, unet, request.against, request.against, request, batches))
    for encoder in (pipe.text_encoder, pipe.text_encoder_2, pipe.vae):
        if encoder is not None:
            encoder.to(main.sampler.device)
    return pipe, conditions


@contextlib.contextmanager
def _gates_forced_open(condition: Condition):
    unet = condition.unet
    if unet is None or not gate_processors(unet):
        yield
        return
    set_gates_open(unet, True)
    try:
        yield
    finally:
        set_gates_open(unet, False)


def _run_condition(condition: Condition, pipe, scenes, units, references, request: EvaluateRequest,
                   keep: set[int], images_out: Path | None, kept: dict) -> None:
    sampler = condition.sampler
    settings = request.settings
    record = request.alignment and condition.name == "gated" and bool(sampler.spec.gate_sites)
    steps = list(range(settings.steps))
    denoise = decode = scoring = 0.0
    bar = progress_bar(request.progress, total=len(units), desc=condition.name, unit="image", leave=False)
    with bar, condition.backend.activate(), _gates_forced_open(condition):
        for first in range(0, len(units), request.batch):
            group = units[first:first + request.batch]
            t0 = time.perf_counter()
            conds = [sampler.encoder(scenes[s].caption, request.negative) for s, _ in group]
            result = sampler.denoise(conds, [seed for _, seed in group], record_gates=record)
            t1 = time.perf_counter()
            pixels = sampler.decode(result.latents)
            t2 = time.perf_counter()
            for j, ((s, seed), cond, image) in enumerate(zip(group, conds, pixels, strict=True)):
                unit = first + j
                verdict = score(image, scenes[s], references[s])
                entry = {"counts": dict(verdict.counts), "verdict": verdict.to_dict(), "marks": verdict.marks()}
                if record:
                    maps = GateMaps.from_gates({site: g[j] for site, g in result.gates.items()}, cond.tokens,
                                               sampler.latent_size, sampler.spec.gate_downsample, steps)
                    aligned = align(maps, pipe.tokenizer, scenes[s], verdict.check, request.gate_threshold)
                    entry["alignment"] = aligned
                    entry["counts"].update(alignment_counts(aligned))
                condition.records.append(entry)
                if unit in keep:
                    kept[(unit, condition.name)] = image
                if images_out is not None:
                    save_png(image, images_out / condition.name / f"{s:04d}_s{seed}.png", overwrite=False)
            scoring += time.perf_counter() - t2
            denoise += t1 - t0
            decode += t2 - t1
            bar.update(len(group))
    condition.seconds = {"generate": round(denoise, 4), "decode": round(decode, 4), "score": round(scoring, 4)}


def evaluate(request: EvaluateRequest) -> dict:
    """Run the evaluation and write ``request.out``; returns the report (what ``evaluation.json`` holds)."""
    _check_request(request)
    s = request.settings
    out = claim_output_dir(request.out, ours=lambda p: (p / RESULT_FILE).is_file(), what="an evaluation folder",
                           force=request.force)
    if request.prompts in ("heldout", "two", "single") and s.height != s.width:
        raise BadInputError(f"world scenes are square: --height {s.height} and --width {s.width} differ; pass one "
                            "size for both (or a scene file, whose sizes the images are resized to)")
    scenes = load_scenes(request.prompts, request.count, request.prompt_seed, s.height)
    units = [(k, request.seed + j) for k in range(len(scenes)) for j in range(request.seeds)]
    start = time.perf_counter()
    batches = sorted({min(request.batch, len(units)), len(units) % request.batch or request.batch})
    pipe, conditions = _conditions(request, batches)
    load_s = time.perf_counter() - start
    references = [np.asarray(render(scene), dtype=np.uint8) for scene in scenes]
    keep = set(range(min(request.sheet_rows, len(units))))
    kept: dict = {}
    with atomic_dir(out) as tmp:
        images_out = tmp / "images" if request.save_images else None
        for condition in conditions:
            _run_condition(condition, pipe, scenes, units, references, request, keep, images_out, kept)
        report = build_report(request, scenes, units, conditions, load_s=load_s,
                              total_s=time.perf_counter() - start)
        report["versions"] = versions()
        write_json_atomic(tmp / RESULT_FILE, report)
        rows = []
        for unit in sorted(keep):
            k, seed = units[unit]
            cells = {c.name: (kept[(unit, c.name)], c.records[unit]["marks"]) for c in conditions}
            cells["ground truth"] = (references[k], None)
            rows.append({"caption": scenes[k].caption, "seed": seed, "cells": cells})
        columns = [c.name for c in conditions] + ["ground truth"]
        title = (f"{request.model} | {request.backend} | {s.steps} steps | guidance {s.guidance:g} | {s.scheduler} | "
                 f"{len(units)} images per condition ({len(rows)} shown)")
        save_png(render_sheet(rows, columns, title=title), tmp / SHEET_FILE)
    report["written"] = {"folder": str(out), "evaluation": str(out / RESULT_FILE), "contact_sheet": str(out / SHEET_FILE)}
    return report
