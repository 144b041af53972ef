"""``generate`` and ``gates`` as library calls: prompts -> images (+ sidecars, timings) on any backend.

Everything that can be wrong with the request (scheduler, sizes, prompt file, backend artifact for another
model, gates) is checked before the first prompt is encoded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from ..errors import BadInputError
from ..utils.io import check_output_location, write_json_atomic
from ..utils.progress import progress_bar
from .backends import Backend, load_model, open_backend
from .gatemaps import GateMaps, render_grid, render_overlay
from .images import image_stem, save_image, save_png
from .prompts import Job, PromptEntry, batches, build_jobs
from .sampler import Sampler, SampleSettings


@dataclass(frozen=True)
class GenerateRequest:
    """What ``maskattn-trt generate`` needs (sizes in pixels)."""

    prompts: tuple[PromptEntry, ...]
    out: Path
    settings: SampleSettings = SampleSettings()
    model: str = "tiny"
    backend: str = "eager"
    onnx: Path | None = None
    engine: Path | None = None
    gates: Path | None = None
    negative: str | None = None
    seed: int = 0
    batch: int = 1
    images_per_prompt: int = 1
    threads: int | None = None
    progress: bool = True
    components: str = "auto"  # which components the backend runs: auto | all | unet | a comma list


@dataclass
class GenerateReport:
    backend: str
    images: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # load, encode, denoise, decode, write (seconds)
    steps: int = 0  # UNet calls made
    denoise_step_ms: list[float] = field(default_factory=list)  # per batch: denoise seconds / steps
    components: dict[str, str] = field(default_factory=dict)  # component -> who ran it

    def to_dict(self) -> dict:
        """The machine-readable summary (``generate --json``)."""
        return {"backend": self.backend, "images": [str(p) for p in self.images],
                "timings_s": {k: round(v, 4) for k, v in self.timings.items()}, "unet_calls": self.steps,
                "denoise_step_ms": [round(v, 3) for v in self.denoise_step_ms],
                "images_per_s": round(self.images_per_s, 4)}

    @property
    def images_per_s(self) -> float:
        work = sum(self.timings.get(k, 0.0) for k in ("encode", "denoise", "decode"))
        return len(self.images) / work if work > 0 else 0.0

    def summary(self) -> list[str]:
        t = self.timings
        per_step = np.mean(self.denoise_step_ms) if self.denoise_step_ms else 0.0
        placed = {}
        for component, runner in self.components.items():
            placed.setdefault(runner, []).append(component)
        where = "; ".join(f"{runner}: {', '.join(names)}" for runner, names in placed.items())
        return [
            f"wrote {len(self.images)} image(s) with the {self.backend} backend"
            + (f" to {self.images[0].parent}" if self.images else "") + (f" ({where})" if where else ""),
            f"  load {t.get('load', 0):.2f} s | encode {t.get('encode', 0):.2f} s | denoise {t.get('denoise', 0):.2f} s "
            f"({per_step:.1f} ms/step, {self.steps} UNet calls) | decode {t.get('decode', 0):.2f} s | "
            f"write {t.get('write', 0):.2f} s",
            f"  {self.images_per_s:.2f} images/s (encode + denoise + decode)",
        ]


def _version() -> str | None:
    try:
        return metadata.version("maskattn-trt")
    except metadata.PackageNotFoundError:
        return None


def _prepare(model, backend_name, onnx, engine, gates, settings, batch_sizes, threads, gate_outputs=False,
             components="auto"):
    pipe, unet = load_model(model, backend_name)
    backend = open_backend(pipe, unet, backend_name, model=model, onnx=onnx, engine=engine, gates_path=gates,
                           gate_outputs=gate_outputs, threads=threads, components=components)
    sampler = Sampler(pipe, backend.runner, settings, components=backend.components)
    sampler.validate(batch_sizes)
    for encoder in (pipe.text_encoder, pipe.text_encoder_2, pipe.vae):
        if encoder is not None:
            encoder.to(sampler.device)
    return pipe, backend, sampler


def image_metadata(job: Job, request_model: str, settings: SampleSettings, backend: Backend, timings: dict,
             truncated: str | None) -> dict:
    return {
        "prompt": job.prompt,
        "negative_prompt": job.negative,
        "seed": job.seed,
        "steps": settings.steps,
        "guidance": settings.guidance,
        "scheduler": settings.scheduler,
        "height": settings.height,
        "width": settings.width,
        "model": request_model,
        "backend": backend.name,
        "components": backend.placement(),
        "artifact": backend.artifact,
        "gates_hash": backend.gates.get("gates_hash"),
        "gate_checkpoint": backend.gates.get("checkpoint"),
        "gate_checkpoint_sha256": backend.gates.get("checkpoint_sha256"),
        "truncated_words": truncated,
        "timings": timings,
        "maskattn_trt": _version(),
    }


def _bar(total: int, desc: str, enabled: bool):
    return progress_bar(enabled, total=total, desc=desc, unit="step", leave=False)


def _check_negative(settings: SampleSettings, negatives) -> None:
    if not settings.cfg and any(negatives):
        raise BadInputError(f"a negative prompt has no effect with --guidance {settings.guidance:g} (classifier-free "
                            "guidance is off at <= 1); raise --guidance or drop the negative prompt")


def generate(request: GenerateRequest) -> GenerateReport:
    """Generate every job of ``request`` into ``request.out``; returns the images and the timings."""
    jobs = build_jobs(list(request.prompts), request.seed, request.negative, request.images_per_prompt)
    groups = batches(jobs, request.batch)
    _check_negative(request.settings, [job.negative for job in jobs])
    out = check_output_location(request.out)  # created at the first image: a failed run leaves no empty folder
    start = time.perf_counter()
    _, backend, sampler = _prepare(request.model, request.backend, request.onnx, request.engine, request.gates,
                                   request.settings, [len(g) for g in groups], request.threads,
                                   components=request.components)
    report = GenerateReport(backend.name, timings={"load": time.perf_counter() - start},
                            components=backend.placement())
    totals = dict.fromkeys(("encode", "denoise", "decode", "write"), 0.0)
    steps = request.settings.steps
    with backend.activate():
        for k, group in enumerate(groups, 1):
            t0 = time.perf_counter()
            conditions = [sampler.encoder(job.prompt, job.negative) for job in group]
            t1 = time.perf_counter()
            desc = f"image {group[0].index + 1}/{len(jobs)}" if len(group) == 1 else f"batch {k}/{len(groups)}"
            with _bar(steps, desc, request.progress) as bar:
                result = sampler.denoise(conditions, [job.seed for job in group], on_step=lambda _: bar.update())
            t2 = time.perf_counter()
            pixels = sampler.decode(result.latents)
            t3 = time.perf_counter()
            timings = {"encode_s": round(t1 - t0, 4), "denoise_s": round(result.seconds, 4),
                       "denoise_step_ms": round(result.seconds / steps * 1e3, 3), "decode_s": round(t3 - t2, 4),
                       "batch_images": len(group)}
            for job, cond, image in zip(group, conditions, pixels, strict=True):
                sidecar = image_metadata(job, request.model, request.settings, backend, timings, cond.truncated)
                png, _ = save_image(out, image_stem(job.index, job.prompt, job.seed), image, sidecar)
                report.images.append(png)
            totals["encode"] += t1 - t0
            totals["denoise"] += result.seconds
            totals["decode"] += t3 - t2
            totals["write"] += time.perf_counter() - t3
            report.steps += steps
            report.denoise_step_ms.append(result.seconds / steps * 1e3)
    report.timings.update(totals)
    return report


# --------------------------------------------------------------------------------------------- gate maps


@dataclass(frozen=True)
class GateMapRequest:
    """What ``maskattn-trt gates`` needs: one prompt, one seed; ``steps_at`` None = average over every step."""

    prompt: str
    out: Path
    settings: SampleSettings = SampleSettings()
    model: str = "tiny"
    backend: str = "eager"
    onnx: Path | None = None
    gates: Path | None = None
    negative: str | None = None
    seed: int = 0
    steps_at: tuple[int, ...] | None = None
    per_layer: bool = False
    json_path: str | None = None  # '-' = return only (the CLI prints it)
    threads: int | None = None
    progress: bool = True


@dataclass
class GateMapReport:
    image: Path
    grid: Path
    overlay: Path
    fractions: dict
    json_path: Path | None
    seconds: float

    def summary(self, top: int = 8) -> list[str]:
        lines = [f"wrote {self.image}, gate grid {self.grid}, overlay {self.overlay}"
                 + (f", open fractions {self.json_path}" if self.json_path else "") + f" in {self.seconds:.1f} s",
                 "open fraction per token (mean over sites; 1 = may act everywhere):"]
        for entry in self.fractions["per_token"][:top]:
            lines.append(f"  {entry['index']:>2} {entry['token']:<14} {entry['mean']:.3f}")
        if len(self.fractions["per_token"]) > top:
            lines.append(f"  ... {len(self.fractions['per_token']) - top} more token(s) in the JSON")
        return lines


def make_gate_maps(request: GateMapRequest) -> GateMapReport:
    """Generate the prompt's image while recording gates, then save image, grid, overlay (and JSON)."""
    if request.backend == "tensorrt":
        raise BadInputError("gate maps do not run on --backend tensorrt (`gates` takes no --engine: engine outputs "
                            "are not read back per site); use --backend eager --gates CKPT, or --backend "
                            "onnxruntime --onnx DIR with an export made with --gate-outputs")
    steps = request.settings.steps
    chosen = sorted(set(request.steps_at)) if request.steps_at else list(range(steps))
    bad = [s for s in chosen if not 0 <= s < steps]
    if bad:
        raise BadInputError(f"--steps-at {bad} outside 0..{steps - 1} (0-based step indices of {steps} steps)")
    if not request.prompt or not request.prompt.strip():
        raise BadInputError("gate maps need a non-empty --prompt")
    _check_negative(request.settings, [request.negative])
    if request.json_path and request.json_path != "-":
        check_output_location(request.json_path, folder=False, option="--json")
    out = check_output_location(request.out)
    start = time.perf_counter()
    _, backend, sampler = _prepare(request.model, request.backend, request.onnx, None, request.gates,
                                   request.settings, [1], request.threads, gate_outputs=True)
    job = Job(0, request.prompt, request.negative, request.seed)
    report = gate_maps_for(sampler, backend, job, chosen, out, per_layer=request.per_layer,
                           json_path=request.json_path, model=request.model, progress=request.progress)
    report.seconds = time.perf_counter() - start
    return report


def gate_maps_for(sampler: Sampler, backend: Backend, job: Job, chosen: list[int], out: Path, *,
                  per_layer: bool = False, json_path: str | None = None, model: str = "tiny",
                  progress: bool = True) -> GateMapReport:
    """Generate ``job`` with gate recording on an opened backend and save image, grid, overlay (and JSON)."""
    start = time.perf_counter()
    settings = sampler.settings
    with backend.activate():
        cond = sampler.encoder(job.prompt, job.negative)
        with _bar(settings.steps, "gates", progress) as bar:
            result = sampler.denoise([cond], [job.seed], record_gates=True, gate_steps=chosen,
                                     on_step=lambda _: bar.update())
        image = sampler.decode(result.latents)[0]
    maps = GateMaps.from_gates({s: g[0] for s, g in result.gates.items()}, cond.tokens, sampler.latent_size,
                               sampler.spec.gate_downsample, chosen)
    sidecar = image_metadata(job, model, settings, backend, {"denoise_s": round(result.seconds, 4)}, cond.truncated)
    sidecar["gate_steps"] = chosen
    png, _ = save_image(out, image_stem(job.index, job.prompt, job.seed), image, sidecar,
                        extensions=(".png", ".json", ".gates.png", ".overlay.png"))
    stem = png.name.removesuffix(".png")
    title = f"{job.prompt[:60]} | seed {job.seed} | {backend.name} | steps {_steps_text(chosen, settings.steps)}"
    grid = save_png(render_grid(maps, per_layer, title=title), out / f"{stem}.gates.png", overwrite=False)
    overlay = save_png(render_overlay(maps, image), out / f"{stem}.overlay.png", overwrite=False)
    fractions = maps.open_fractions()
    fractions.update(prompt=job.prompt, seed=job.seed, backend=backend.name, gates_hash=backend.gates.get("gates_hash"))
    written = write_json_atomic(json_path, fractions) if json_path and json_path != "-" else None
    return GateMapReport(png, grid, overlay, fractions, written, time.perf_counter() - start)


def _steps_text(chosen: list[int], steps: int) -> str:
    return f"mean of all {steps}" if len(chosen) == steps else ",".join(map(str, chosen))
