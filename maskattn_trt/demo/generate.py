"""Demo stage: one image of a world scene from the tiny model through ONNX Runtime (the export stage's graph;
eager when there is none), timed, its per-token gate maps, and the world checker's verdict on it; then the same
scene and seed with the shipped mask-supervised gates (``--gates shipped:mask``), whose maps follow the objects."""

from __future__ import annotations

import time

from PIL import Image

from ..gates import load_gates, remove_gates
from ..models import SHIPPED, shipped_gates
from ..sampling.backends import open_backend
from ..sampling.generate import gate_maps_for
from ..sampling.prompts import Job
from ..sampling.sampler import Sampler, SampleSettings
from ..world import check, prompt_set

# A two-object scene with a relation from the evaluation stream of training pairs (prompt set "two")
DEMO_SCENE = ("two", 0)


def demo_scene(size: int = 128):
    name, index = DEMO_SCENE
    return prompt_set(name, count=index + 1, size=size)[index]


def verdict(image, scene) -> str:
    """The checker's verdict on one image, e.g. 'red circle found, blue square missing, relation fails'."""
    result = check(image, scene)
    parts = [f"{o.colour} {o.shape} {'found' if o.found else 'MISSING'}" for o in result.objects]
    if result.relation_ok is not None:
        parts.append(f"relation {'holds' if result.relation_ok else 'FAILS'}")
    parts.append(f"{result.extra} extra blob(s)")
    return ", ".join(parts)


def _backend(state, gate_outputs: bool):
    pipe = state.pipe
    if state.onnx_dir is not None:
        chosen = open_backend(pipe, pipe.unet, "onnxruntime", onnx=state.onnx_dir)
        if chosen.runner.spec.gate_sites or not gate_outputs:
            return chosen
    return open_backend(pipe, pipe.unet, "eager", gates_path=state.gates_path, gate_outputs=gate_outputs)


def demo_stage(state) -> list[str]:
    if state.gates_path is None:
        return ["skipped: no gate checkpoint (the gates stage did not run)"]
    size = state.image_side
    scene = demo_scene(size)
    prompt = scene.caption
    settings = SampleSettings(steps=10 if state.quick else 20, guidance=5.0, scheduler="euler", height=size, width=size)
    out = state.out_dir / "generate"
    lines = []
    backend = _backend(state, gate_outputs=state.onnx_dir is None)
    if not backend.runner.spec.gate_sites:  # ORT without gate outputs: time it, then draw the maps on eager
        sampler = Sampler(state.pipe, backend.runner, settings)
        sampler.validate([1])
        with backend.runner:
            start = time.perf_counter()
            result = sampler.denoise([sampler.encoder(prompt)], [state.seed])
            sampler.decode(result.latents)
        lines.append(f"{backend.name}: {settings.steps} steps at {settings.height}x{settings.width} px in "
                     f"{time.perf_counter() - start:.2f} s ({result.seconds / settings.steps * 1e3:.1f} ms/step)")
        backend = _backend(state, gate_outputs=True)
    sampler = Sampler(state.pipe, backend.runner, settings)
    sampler.validate([1])
    report = gate_maps_for(sampler, backend, Job(0, prompt, None, state.seed), list(range(settings.steps)), out,
                           json_path=str(out / "gate_fractions.json"), progress=False)
    lines.append(f"{backend.name}: image {report.image} (+ JSON sidecar), {settings.steps} steps at "
                 f"{settings.height}x{settings.width} px in {report.seconds:.2f} s")
    lines.append(f"prompt: {prompt!r}; checker: {verdict(Image.open(report.image).convert('RGB'), scene)}")
    lines.append(f"gate maps (mean of {settings.steps} steps): {report.grid.name}, {report.overlay.name}, "
                 "gate_fractions.json")
    tokens = report.fractions["per_token"]
    lines.append("open fraction per token: " + ", ".join(f"{t['token']} {t['mean']:.2f}" for t in tokens))
    if state.model in SHIPPED:  # the shipped model's second gate set
        lines += _mask_gate_maps(state, settings, scene, out / "mask_gates")
    return lines


def _mask_gate_maps(state, settings: SampleSettings, scene, out) -> list[str]:
    """The same scene and seed with the mask-supervised gates on eager; the demo's own gates are put back after."""
    pipe = state.pipe
    remove_gates(pipe.unet)  # the mask set's heads are wider: loading needs an ungated UNet
    try:
        backend = open_backend(pipe, pipe.unet, "eager", gates_path=shipped_gates("tiny", "mask"), gate_outputs=True)
        sampler = Sampler(pipe, backend.runner, settings)
        sampler.validate([1])
        report = gate_maps_for(sampler, backend, Job(0, scene.caption, None, state.seed), list(range(settings.steps)),
                               out, progress=False)
    finally:
        remove_gates(pipe.unet)
        load_gates(pipe.unet, state.gates_path)
    tokens = {t["token"]: t["mean"] for t in report.fractions["per_token"]}
    words = [w for o in scene.objects for w in (o.colour, o.shape) if w in tokens]
    return [f"mask-supervised gates (--gates shipped:mask; train/tiny_gates_mask.toml): {report.overlay.relative_to(state.out_dir)};"
            f" checker: {verdict(Image.open(report.image).convert('RGB'), scene)}",
            "  open fraction of the colour / shape words: " + ", ".join(f"{w} {tokens[w]:.2f}" for w in words)]
