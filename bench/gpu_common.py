"""Shared pieces of ``bench/gpu_suite.py``: device timing, statistics, model builders, the merged JSON file.

Timing follows the project's rule: warm up, interleave the variants being compared (rotating which goes
first in each round), time every call with CUDA events (host clock on CPU), report the median and the spread.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch


# ----------------------------------------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Milliseconds of one ``fn()`` call: CUDA events around it on a GPU (launch gaps included), else the host clock."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def stats(values: list[float]) -> dict:
    """Median and spread (p10 / p90, min / max) of a list of timings, rounded for the report."""
    ordered = sorted(values)
    n = len(ordered)

    def pct(q: float) -> float:
        return ordered[min(n - 1, max(0, round(q * (n - 1))))]

    return {"median": round(statistics.median(ordered), 3), "p10": round(pct(0.1), 3), "p90": round(pct(0.9), 3),
            "min": round(ordered[0], 3), "max": round(ordered[-1], 3), "n": n}


def interleaved(variants: dict[str, tuple[Callable[[], None], Callable[[], object]]], device: torch.device,
                rounds: int, per_round: int, warmup: int) -> dict[str, list[float]]:
    """Time every variant (``setup`` once per block, then ``per_round`` timed calls) in ``rounds`` rounds.

    The starting variant rotates from round to round so no variant always follows the same neighbour.
    """
    names = list(variants)
    for name in names:  # warm-up: kernels chosen, caches and allocator settled for every variant
        setup, call = variants[name]
        setup()
        for _ in range(warmup):
            call()
        sync(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            setup, call = variants[name]
            setup()
            sync(device)
            times[name].extend(time_call(call, device) for _ in range(per_round))
    return times


def paired_ratios(times: dict[str, list[float]], name: str, base: str, per_round: int) -> dict:
    """Ratio of ``name`` over ``base``: of the medians, and the spread of the per-round median ratios."""
    a, b = times[name], times[base]
    per = [statistics.median(a[i:i + per_round]) / statistics.median(b[i:i + per_round])
           for i in range(0, len(a), per_round)]
    return {"ratio_of_medians": round(statistics.median(a) / statistics.median(b), 4),
            "per_round": stats(per)}


# ----------------------------------------------------------------------------------------------- models
def build_unet_on(preset: str, device: torch.device, dtype: torch.dtype, seed: int = 0):
    """A random-weight UNet of a preset, initialised directly on ``device`` (an SDXL UNet's 2.57 B fp32
    weights take minutes to initialise on a few CPU cores and seconds on a GPU), then cast to ``dtype``."""
    from diffusers import UNet2DConditionModel

    from maskattn_trt.models.tiny import UNET_PRESETS

    torch.manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel(**copy.deepcopy(UNET_PRESETS[preset]))
    return unet.to(dtype=dtype).eval().requires_grad_(False)


def feed_args(spec, batch: int, latent: int, device: torch.device, seed: int = 0) -> list[torch.Tensor]:
    from maskattn_trt.spec import INPUT_NAMES

    feed = spec.dummy_inputs(batch, latent, latent, seed=seed, device=device)
    return [feed[name] for name in INPUT_NAMES]


def free(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------- environment
def environment(device: torch.device) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "cpu_count": os.cpu_count(), "device": str(device)}
    for name in ("diffusers", "transformers", "onnxruntime", "onnx", "triton"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, capability=f"{props.major}.{props.minor}", gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count)
        try:
            info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                            capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            info["driver"] = None
    return info


def matmul_ceiling(device: torch.device, n: int = 8192, dtype=torch.float16) -> float | None:
    """Measured TFLOP/s of an n^3 matrix product on random data (the machine's practical ceiling)."""
    if device.type != "cuda":
        return None
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    ms = statistics.median(time_call(lambda: a @ b, device) for _ in range(10))
    return round(2 * n**3 / (ms * 1e-3) / 1e12, 1)


# ----------------------------------------------------------------------------------------------- results file
def read_results(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def merge_result(path: Path, part: str, record: dict) -> None:
    """Put ``record`` under ``part`` in the JSON file (written atomically: temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    results = read_results(path)
    results[part] = record
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(results, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)
