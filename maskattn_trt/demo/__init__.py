"""The offline end-to-end demo: every stage of the toolkit on the trained tiny SDXL shipped with the package.

One module per stage (``demo/<stage>.py``, each ``demo_stage(state) -> list[str]`` of report lines), imported
explicitly below. A stage whose input is missing (an earlier stage left out with ``--only``) or that cannot run
here (no TensorRT-RTX) says why and returns; it never disappears silently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import BadInputError
from ..models import load_pipeline, shipped_gates, shipped_manifest
from ..utils.io import claim_output_dir
from . import engines, evaluate, export, gates, generate, train

# (name used by --only, label, stage)
STAGES = (
    ("gates", "gates", gates.demo_stage),
    ("train", "train", train.demo_stage),
    ("export", "export + parity", export.demo_stage),
    ("engine", "engine", engines.demo_stage),
    ("generate", "generate", generate.demo_stage),
    ("evaluate", "evaluate", evaluate.demo_stage),
)
STAGE_NAMES = tuple(name for name, _, _ in STAGES)
# What the stages write into --out: a folder holding any of these is a previous demo (the demo may write there)
DEMO_NAMES = ("gates_random.safetensors", "train", "gates_exported.safetensors", "onnx", "engines", "generate",
              "evaluate")


def is_demo_folder(folder: Path) -> bool:
    return any((folder / name).exists() for name in DEMO_NAMES)


@dataclass
class DemoState:
    """What stages hand to each other."""

    out_dir: Path
    model: str = "tiny"  # what --model rebuilds the demo's pipeline from (the manifests record it)
    seed: int = 0
    quick: bool = False
    pipe: Any = None
    gates_path: Path | None = None
    shipped_gates: Path | None = None
    onnx_dir: Path | None = None
    engine_path: Path | None = None
    extras: dict = field(default_factory=dict)

    @property
    def image_side(self) -> int:
        """Pixels of the demo's square images: a 32x32 latent (128 px on tiny, 64 on tiny-random)."""
        return 32 * self.pipe.vae_scale_factor


def run_demo(out_dir: str | Path, seed: int = 0, quick: bool = False, only: tuple[str, ...] = (), echo=print,
             force: bool = False) -> DemoState:
    unknown = [name for name in only if name not in STAGE_NAMES]
    if unknown:
        raise BadInputError(f"unknown demo stage(s) {', '.join(unknown)}; choose from {', '.join(STAGE_NAMES)}")
    claim_output_dir(out_dir, ours=is_demo_folder, what="a previous demo folder", force=force)
    torch.manual_seed(seed)
    state = DemoState(out_dir=Path(out_dir), seed=seed, quick=quick)
    state.out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    state.pipe = load_pipeline("tiny")
    state.shipped_gates = shipped_gates("tiny")
    record = shipped_manifest("tiny")
    minutes, run = 0.0, record["base"]
    while run:  # a base continued from an earlier run (train-base --init): the whole chain's training time
        minutes, run = minutes + run["seconds"] / 60, run.get("continued_from")
    echo(f"[setup] loaded the shipped tiny SDXL in {time.perf_counter() - start:.1f} s: UNet "
         f"{sum(p.numel() for p in state.pipe.unet.parameters()) / 1e6:.2f} M parameters, trained from scratch on "
         f"the synthetic world ({minutes:.0f} min on 2 CPU cores; train/tiny_base.toml), with trained gates "
         f"({state.shipped_gates.name}; train/tiny_gates.toml)")
    for name, label, stage in STAGES:
        if only and name not in only:
            continue
        stage_start = time.perf_counter()
        lines = stage(state)
        echo(f"[{label}] ({time.perf_counter() - stage_start:.1f} s)")
        for line in lines:
            echo(f"  {line}")
    echo(f"[done] demo finished in {time.perf_counter() - start:.1f} s; artifacts in {state.out_dir}")
    return state
