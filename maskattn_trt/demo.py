"""The offline end-to-end demo: every stage of the toolkit on a tiny SDXL built in-process.

Stages are looked up by module so each capability joins the demo from its own package:
``maskattn_trt.<package>.demo.demo_stage(state) -> list[str]`` (report lines). A stage whose module does
not exist yet is skipped; a stage that cannot run here (e.g. no TensorRT-RTX) reports why and returns.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

STAGES = (
    ("gates", "maskattn_trt.gates.demo"),
    ("train", "maskattn_trt.train.demo"),
    ("export + parity", "maskattn_trt.export.demo"),
    ("engine", "maskattn_trt.engines.demo"),
    ("generate", "maskattn_trt.sampling.demo"),
)


@dataclass
class DemoState:
    """What stages hand to each other."""

    out_dir: Path
    seed: int = 0
    quick: bool = False
    pipe: Any = None
    gates_path: Path | None = None
    onnx_dir: Path | None = None
    engine_path: Path | None = None
    extras: dict = field(default_factory=dict)


def run_demo(out_dir: str | Path, seed: int = 0, quick: bool = False, only: tuple[str, ...] = (), echo=print) -> DemoState:
    from .models import tiny_sdxl_pipeline

    torch.manual_seed(seed)
    state = DemoState(out_dir=Path(out_dir), seed=seed, quick=quick)
    state.out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    state.pipe = tiny_sdxl_pipeline(seed)
    echo(f"[setup] tiny SDXL pipeline built offline in {time.perf_counter() - start:.1f} s "
         f"(UNet {sum(p.numel() for p in state.pipe.unet.parameters()) / 1e6:.2f} M parameters)")
    for name, module_name in STAGES:
        if only and name.split()[0] not in only:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        stage_start = time.perf_counter()
        lines = module.demo_stage(state)
        echo(f"[{name}] ({time.perf_counter() - stage_start:.1f} s)")
        for line in lines:
            echo(f"  {line}")
    echo(f"[done] demo finished in {time.perf_counter() - start:.1f} s; artifacts in {state.out_dir}")
    return state
