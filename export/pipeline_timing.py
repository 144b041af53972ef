"""Time one text-to-image generation per image: eager PyTorch vs UNet-only ONNX Runtime vs the whole pipeline
in ONNX Runtime, in the same run, with the share of each component.

    python export/pipeline_timing.py --onnx export/out/tiny_pipeline --rounds 5 --steps 20

``--onnx`` is an export tree (``maskattn-trt export --model tiny --component all --open-gates --out ...``).
The three modes take turns, one image each per round in a rotating order, so machine noise hits them alike;
prompt encodings are recomputed every round (the encoder cache is cleared). Prints medians and the spread
(min..max) per stage, the eager / ORT ratios, and a JSON line with every sample.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from maskattn_trt.sampling.backends import load_model, open_backend
from maskattn_trt.sampling.sampler import Sampler, SampleSettings

MODES = {"eager": ("eager", None), "ort_unet": ("onnxruntime", "unet"), "ort_full": ("onnxruntime", "all")}
STAGES = ("encode", "denoise", "decode")


def _one_image(sampler: Sampler, prompt: str, seed: int) -> dict[str, float]:
    sampler.encoder._cache.clear()
    t0 = time.perf_counter()
    condition = sampler.encoder(prompt)
    t1 = time.perf_counter()
    result = sampler.denoise([condition], [seed])
    t2 = time.perf_counter()
    sampler.decode(result.latents)
    t3 = time.perf_counter()
    return {"encode": t1 - t0, "denoise": t2 - t1, "decode": t3 - t2, "total": t3 - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", required=True, help="export tree (export --component all)")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64, help="image height = width in pixels")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch intra-op threads (on a shared CPU, 2 spinning OpenMP threads can be 10x slower "
                             "than 1: compare with equal thread counts)")
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    settings = SampleSettings(steps=args.steps, guidance=5.0, height=args.size, width=args.size)
    samplers, backends = {}, {}
    for mode, (backend_name, components) in MODES.items():
        pipe, unet = load_model(args.model, backend_name)
        backend = open_backend(pipe, unet, backend_name, model=args.model, onnx=args.onnx if components else None,
                               threads=args.threads, components=components or "auto")
        backends[mode] = backend
        samplers[mode] = Sampler(pipe, backend.runner, settings, components=backend.components)
    samples = {mode: [] for mode in MODES}
    order = list(MODES)
    contexts = {mode: backends[mode].activate() for mode in MODES}
    for context in contexts.values():
        context.__enter__()
    try:
        for mode in order:  # warm-up (first ORT runs allocate)
            _one_image(samplers[mode], "a warm up prompt", 0)
        for r in range(args.rounds):
            rotated = order[r % len(order):] + order[: r % len(order)]
            for mode in rotated:
                samples[mode].append(_one_image(samplers[mode], f"a red cat on a blue sofa, take {r}", r))
    finally:
        for context in contexts.values():
            context.__exit__(None, None, None)
    load = os.getloadavg()
    print(f"{args.model}, {args.size}x{args.size} px, {args.steps} steps, guidance 5 (UNet batch 2), "
          f"{args.rounds} rounds; torch threads {torch.get_num_threads()}, ORT threads {args.threads or 'default'}, cpus {os.cpu_count()}, "
          f"load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}, {platform.processor() or platform.machine()}")
    medians = {}
    for mode in MODES:
        cells = []
        for stage in (*STAGES, "total"):
            values = [s[stage] * 1e3 for s in samples[mode]]
            med = statistics.median(values)
            medians[(mode, stage)] = med
            cells.append(f"{stage} {med:8.1f} ms ({min(values):.1f}..{max(values):.1f})")
        print(f"{mode:<9} " + " | ".join(cells))
    for mode in MODES:
        total = medians[(mode, "total")]
        shares = ", ".join(f"{stage} {100 * medians[(mode, stage)] / total:.0f}%" for stage in STAGES)
        print(f"{mode:<9} share of the median image time: {shares}")
    for mode in ("ort_unet", "ort_full"):
        ratios = [e["total"] / o["total"] for e, o in zip(samples["eager"], samples[mode], strict=True)]
        print(f"eager / {mode}: median {statistics.median(ratios):.2f}x per round ({min(ratios):.2f}..{max(ratios):.2f})")
    print(json.dumps({"samples": samples, "load": load}))


if __name__ == "__main__":
    main()
