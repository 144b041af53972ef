"""Latency of eager PyTorch vs ONNX Runtime, stock vs gated UNet, measured in the same run.

Each preset is exported twice (stock UNet, gated UNet) to a temporary folder; the four runners then take turns
on the same feed, one inference each per round in a rotating order, so machine noise hits them alike (ONNX
Runtime's threads do not spin between runs, which would steal the CPU from the next runner); medians with
the gate overhead per backend (gated / stock) and the ONNX Runtime speed-up (eager / ORT).
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .artifacts import open_export
from .config import GateConfig
from .export import export_unet
from .gates import install_gates, randomize_gates
from .models import load_unet
from .runners import EagerRunner, OrtRunner
from .spec import Range, UNetIOSpec

SHAPES = {"tiny": (2, 32, 32), "small": (2, 64, 64), "sdxl": (1, 32, 32)}


@dataclass
class BenchRow:
    preset: str
    shape: tuple[int, int, int]
    dtype: str
    gated_sites: int
    eager_stock_ms: float
    eager_gated_ms: float
    ort_stock_ms: float
    ort_gated_ms: float
    repeats: int
    threads: int

    @property
    def eager_gate_overhead(self) -> float:
        return self.eager_gated_ms / self.eager_stock_ms

    @property
    def ort_gate_overhead(self) -> float:
        return self.ort_gated_ms / self.ort_stock_ms

    @property
    def ort_speedup_stock(self) -> float:
        return self.eager_stock_ms / self.ort_stock_ms

    @property
    def ort_speedup_gated(self) -> float:
        return self.eager_gated_ms / self.ort_gated_ms

    def to_dict(self) -> dict:
        return {**asdict(self), "eager_gate_overhead": self.eager_gate_overhead,
                "ort_gate_overhead": self.ort_gate_overhead, "ort_speedup_stock": self.ort_speedup_stock,
                "ort_speedup_gated": self.ort_speedup_gated}


def format_table(rows: list[BenchRow]) -> list[str]:
    head = (f"{'preset':<7} {'shape':<10} {'sites':>5} {'eager stock':>11} {'eager gated':>11} {'ORT stock':>10} "
            f"{'ORT gated':>10} {'gate x eager':>12} {'gate x ORT':>10} {'eager/ORT stock':>15} {'eager/ORT gated':>15}")
    lines = [head, "-" * len(head)]
    for r in rows:
        shape = "x".join(map(str, r.shape))
        lines.append(f"{r.preset:<7} {shape:<10} {r.gated_sites:>5} {r.eager_stock_ms:9.1f}ms {r.eager_gated_ms:9.1f}ms "
                     f"{r.ort_stock_ms:8.1f}ms {r.ort_gated_ms:8.1f}ms {r.eager_gate_overhead:12.3f} "
                     f"{r.ort_gate_overhead:10.3f} {r.ort_speedup_stock:15.2f} {r.ort_speedup_gated:15.2f}")
    return lines


def bench_preset(preset: str, shape: tuple[int, int, int] | None = None, repeats: int = 20, warmup: int = 3,
                 threads: int = 2, seed: int = 0, workdir: str | Path | None = None, echo=print) -> BenchRow:
    torch.set_num_threads(threads)
    batch, height, width = shape or SHAPES[preset]
    stock = load_unet(preset, seed)
    gated = copy.deepcopy(stock)
    installation = install_gates(gated, GateConfig())
    randomize_gates(gated, seed)
    ranges = dict(batch=Range(1, batch, max(batch, 2)), height=Range(16, height, max(height, 64)),
                  width=Range(16, width, max(width, 64)))
    spec = UNetIOSpec.for_unet(stock, **ranges)
    feed = spec.dummy_inputs(batch, height, width, seed=seed)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        start = time.perf_counter()
        exports = {name: export_unet(unet, Path(tmp) / name, spec, progress=False)
                   for name, unet in (("stock", stock), ("gated", gated))}
        echo(f"[{preset}] exported stock + gated in {time.perf_counter() - start:.1f} s")
        runners = {
            "eager_stock": EagerRunner(stock, spec), "eager_gated": EagerRunner(gated, spec),
            # no spinning: ORT's idle threads would otherwise busy-wait into the next (eager) runner's turn
            "ort_stock": OrtRunner(open_export(exports["stock"].out_dir), providers="cpu", threads=threads, spinning=False),
            "ort_gated": OrtRunner(open_export(exports["gated"].out_dir), providers="cpu", threads=threads, spinning=False),
        }
        times: dict[str, list[float]] = {name: [] for name in runners}
        for runner in runners.values():
            runner.__enter__()
        try:
            order = list(runners)
            for i in range(warmup + repeats):
                order = order[1:] + order[:1]  # interleaved, rotating: noise and cache effects hit all alike
                for name in order:
                    runner = runners[name]
                    runner.infer(feed)
                    if i >= warmup:
                        times[name].append(runner.last_inference_s * 1e3)
        finally:
            for runner in runners.values():
                runner.__exit__(None, None, None)
    med = {name: statistics.median(values) for name, values in times.items()}
    return BenchRow(preset, (batch, height, width), "fp32", len(installation.sites), med["eager_stock"],
                    med["eager_gated"], med["ort_stock"], med["ort_gated"], repeats, threads)
