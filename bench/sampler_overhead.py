"""Sampler overhead and throughput on the tiny model.

1. Overhead: time per denoising step spent OUTSIDE the UNet call, measured by running the real sampler with the
   runner replaced by an instant stub (returns a preallocated noise prediction; benchmark only), against the
   UNet's own time on ONNX Runtime for the same shapes. Target: overhead < 2% of the step time.
2. Throughput: images/s (encode + denoise + decode) for eager vs ONNX Runtime, measured in one run, alternating.

    python bench/sampler_overhead.py                     # exports the tiny gated UNet to a temp folder first
    python bench/sampler_overhead.py --onnx export/out/tiny --steps 30 --size 128 --json bench/out/sampler.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from maskattn_trt.runners import Runner
from maskattn_trt.sampling.backends import open_backend
from maskattn_trt.sampling.sampler import Sampler, SampleSettings
from maskattn_trt.sampling.schedulers import SCHEDULERS
from maskattn_trt.spec import OUTPUT_NAME


class InstantRunner(Runner):
    """Benchmark-only stand-in for the UNet: returns a fixed random noise prediction at once."""

    name = "instant"

    def __init__(self, spec):
        super().__init__(spec)
        self._out: dict[tuple, torch.Tensor] = {}

    def infer_impl(self, feed):
        shape = tuple(feed["sample"].shape)
        if shape not in self._out:
            self._out[shape] = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 0.5
        return {OUTPUT_NAME: self._out[shape]}


def _prepare(onnx: Path | None, work: Path):
    from maskattn_trt.export.from_model import ExportRequest, export_model
    from maskattn_trt.gates import install_gates, randomize_gates, save_gates
    from maskattn_trt.models import tiny_sdxl_pipeline

    pipe = tiny_sdxl_pipeline(0)
    install_gates(pipe.unet)
    randomize_gates(pipe.unet, seed=0)
    gates = save_gates(pipe.unet, work / "gates.safetensors")
    if onnx is None:
        onnx = work / "tiny"
        export_model(ExportRequest(out=onnx, model="tiny", gates=gates, batch="1:2:4", height="32:128:256",
                                   width="32:128:256"), progress=False)
    return pipe, gates, onnx


def _denoise_s(sampler: Sampler, prompt: str, seed: int) -> float:
    cond = sampler.encoder(prompt)
    return sampler.denoise([cond], [seed]).seconds


def overhead(pipe, ort_backend, settings: SampleSettings, repeats: int) -> dict:
    rows = {}
    h, w = settings.height // pipe.vae_scale_factor, settings.width // pipe.vae_scale_factor
    with ort_backend.runner as ort:
        feed = ort.spec.dummy_inputs(2, h, w, seed=1)
        ort.infer(feed)
        unet = []
        for _ in range(max(10, repeats * 5)):
            t0 = time.perf_counter()
            ort.infer(feed, check=False)
            unet.append(time.perf_counter() - t0)
    unet_ms = statistics.median(unet) * 1e3
    for name in SCHEDULERS:
        s = SampleSettings(steps=settings.steps, guidance=settings.guidance, scheduler=name, height=settings.height,
                           width=settings.width)
        stub = InstantRunner(ort_backend.runner.spec)
        with stub:
            sampler = Sampler(pipe, stub, s)
            _denoise_s(sampler, "warm up", 0)
            times = [_denoise_s(sampler, "a red cat on a blue sofa", seed) for seed in range(repeats)]
        per_step_ms = statistics.median(times) / s.steps * 1e3
        rows[name] = {"overhead_ms_per_step": round(per_step_ms, 4),
                      "share_of_step": round(per_step_ms / (per_step_ms + unet_ms), 5)}
    return {"unet_ms_ort": round(unet_ms, 3), "schedulers": rows}


def throughput(pipe, gates, onnx, settings: SampleSettings, images: int, rounds: int) -> dict:
    backends = {"eager": open_backend(pipe, pipe.unet, "eager", gates_path=gates),
                "onnxruntime": open_backend(pipe, pipe.unet, "onnxruntime", model="tiny", onnx=onnx)}
    samplers = {name: Sampler(pipe, b.runner, settings) for name, b in backends.items()}
    for name, b in backends.items():
        samplers[name].validate([1])
        b.runner.__enter__()
        _denoise_s(samplers[name], "warm up", 0)
    results = {name: [] for name in backends}
    prompts = [f"a red cat on a blue sofa, photo {i}" for i in range(images)]
    try:
        for _ in range(rounds):
            for name, sampler in samplers.items():
                sampler.encoder._cache.clear()
                t0 = time.perf_counter()
                step_s = []
                for i, prompt in enumerate(prompts):
                    result = sampler.denoise([sampler.encoder(prompt)], [i])
                    sampler.decode(result.latents)
                    step_s.append(result.seconds / settings.steps)
                results[name].append((images / (time.perf_counter() - t0), statistics.median(step_s) * 1e3))
    finally:
        for b in backends.values():
            b.runner.__exit__(None, None, None)
    return {name: {"images_per_s": round(statistics.median(r[0] for r in rows), 3),
                   "ms_per_step": round(statistics.median(r[1] for r in rows), 2)} for name, rows in results.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, default=None, help="tiny export folder (default: export one now)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=128, help="image size in pixels (tiny: latent = size / 2)")
    parser.add_argument("--images", type=int, default=3, help="images per backend per round (throughput)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5, help="overhead runs per scheduler")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        pipe, gates, onnx = _prepare(args.onnx, Path(tmp))
        settings = SampleSettings(steps=args.steps, guidance=5.0, scheduler="euler", height=args.size, width=args.size)
        ort = open_backend(pipe, pipe.unet, "onnxruntime", model="tiny", onnx=onnx)
        report = {"settings": {"steps": args.steps, "size_px": args.size, "latent": args.size // 2, "batch": "1 (x2 CFG)",
                               "threads": torch.get_num_threads()},
                  "overhead": overhead(pipe, ort, settings, args.repeats),
                  "throughput": throughput(pipe, gates, onnx, settings, args.images, args.rounds)}
    ov = report["overhead"]
    print(f"UNet on ONNX Runtime (2x4x{args.size // 2}x{args.size // 2}): {ov['unet_ms_ort']:.2f} ms per call")
    for name, row in ov["schedulers"].items():
        print(f"  sampler overhead {name:<16} {row['overhead_ms_per_step']:.3f} ms/step = "
              f"{row['share_of_step'] * 100:.2f}% of the step")
    for name, row in report["throughput"].items():
        print(f"  {name:<12} {row['images_per_s']:.3f} images/s ({row['ms_per_step']:.1f} ms/step, {args.steps} steps, "
              f"{args.size} px, encode + denoise + decode)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
