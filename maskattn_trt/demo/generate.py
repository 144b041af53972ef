"""Demo stage: one image from the tiny model through ONNX Runtime (the export stage's graph; eager when there is
none), timed, and its per-token gate maps."""

from __future__ import annotations

import time

from ..sampling.backends import open_backend
from ..sampling.generate import gate_maps_for
from ..sampling.prompts import Job
from ..sampling.sampler import Sampler, SampleSettings

PROMPT = "a red cat sitting on a blue sofa"


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
    settings = SampleSettings(steps=5 if state.quick else 10, guidance=5.0, scheduler="euler", height=128, width=128)
    out = state.out_dir / "generate"
    lines = []
    backend = _backend(state, gate_outputs=state.onnx_dir is None)
    if not backend.runner.spec.gate_sites:  # ORT without gate outputs: time it, then draw the maps on eager
        sampler = Sampler(state.pipe, backend.runner, settings)
        sampler.validate([1])
        with backend.runner:
            start = time.perf_counter()
            result = sampler.denoise([sampler.encoder(PROMPT)], [state.seed])
            sampler.decode(result.latents)
        lines.append(f"{backend.name}: {settings.steps} steps at {settings.height}x{settings.width} px in "
                     f"{time.perf_counter() - start:.2f} s ({result.seconds / settings.steps * 1e3:.1f} ms/step)")
        backend = _backend(state, gate_outputs=True)
    sampler = Sampler(state.pipe, backend.runner, settings)
    sampler.validate([1])
    report = gate_maps_for(sampler, backend, Job(0, PROMPT, None, state.seed), list(range(settings.steps)), out,
                           json_path=str(out / "gate_fractions.json"), progress=False)
    lines.append(f"{backend.name}: image {report.image} (+ JSON sidecar), {settings.steps} steps at "
                 f"{settings.height}x{settings.width} px in {report.seconds:.2f} s")
    lines.append("note: the tiny UNet, text encoders and VAE have RANDOM weights (built offline, nothing is "
                 "downloaded): the image shows the pipeline working, not what MaskAttn-SDXL draws")
    lines.append(f"gate maps (mean of {settings.steps} steps): {report.grid.name}, {report.overlay.name}, "
                 "gate_fractions.json")
    tokens = report.fractions["per_token"]
    lines.append("open fraction per token: " + ", ".join(f"{t['token']} {t['mean']:.2f}" for t in tokens))
    return lines
