"""Training checkpoints: ``<out>/checkpoints/step-NNNNNNNN/{gates.safetensors, trainer.pt}``.

``gates.safetensors`` is an ordinary gate checkpoint (``maskattn_trt.save_gates``): ``load_gates``,
``export`` and ``gates-info`` take it as is. ``trainer.pt`` holds what resuming needs: step, data position,
optimizer (and fp16 grad-scaler) state, every process's RNG states and the recipe. It contains only
tensors and plain containers and is read back with ``torch.load(weights_only=True)``.

A checkpoint folder is written under a temporary name and renamed into place when complete, so a crash
mid-write leaves the previous checkpoint as the latest loadable one; then all but the last ``keep`` go.
"""

from __future__ import annotations

import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..gates import save_gates
from ..utils.io import atomic_dir

FORMAT = "maskattn-trt-train-v1"
GATES_FILE = "gates.safetensors"
TRAINER_FILE = "trainer.pt"
RECIPE_FILE = "recipe.json"  # written first by every run: marks a run folder as ours
FINAL_GATES = "gates.safetensors"  # <out>/gates.safetensors: the finished run's gates
_STEP_DIR = re.compile(r"^step-(\d{8})$")


@dataclass(frozen=True)
class TrainerState:
    step: int
    position: tuple[int, int]  # (epoch, samples of that epoch consumed, over all processes)
    optimizer: dict
    scaler: dict | None
    rng: list[dict]  # one per process
    recipe: dict
    world_size: int


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_dirs(out_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders under ``out_dir/checkpoints``, oldest first."""
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found) if (p / GATES_FILE).is_file() and (p / TRAINER_FILE).is_file()]


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    dirs = checkpoint_dirs(out_dir)
    return dirs[-1] if dirs else None


def is_run_folder(out_dir: str | Path) -> bool:
    """True for a folder a training run wrote (its recipe.json, checkpoints or final gates)."""
    out_dir = Path(out_dir)
    return any((out_dir / name).exists() for name in (RECIPE_FILE, "checkpoints", FINAL_GATES))


def has_progress(out_dir: str | Path) -> bool:
    """True when a run folder holds work that starting over would overwrite (a checkpoint or final gates)."""
    return latest_checkpoint(out_dir) is not None or (Path(out_dir) / FINAL_GATES).is_file()


def clear_run(out_dir: str | Path) -> None:
    """Remove a previous run's checkpoints and final gates (``train --force``): a new run must not resume from
    or be mistaken for the old one's higher steps."""
    out_dir = Path(out_dir)
    root = out_dir / "checkpoints"
    if root.is_dir():
        for path in root.iterdir():
            if path.is_dir() and _STEP_DIR.match(path.name):
                shutil.rmtree(path)
    (out_dir / FINAL_GATES).unlink(missing_ok=True)


def save_checkpoint(out_dir: str | Path, unet, state: TrainerState, keep: int) -> Path:
    """Write ``step-NNNNNNNN`` atomically, then delete all but the newest ``keep`` checkpoints."""
    final = Path(out_dir) / "checkpoints" / f"step-{state.step:08d}"
    with atomic_dir(final) as tmp:
        save_gates(unet, tmp / GATES_FILE, extra={"step": state.step})
        payload = {
            "format": FORMAT,
            "step": state.step,
            "position": list(state.position),
            "optimizer": state.optimizer,
            "scaler": state.scaler,
            "rng": state.rng,
            "recipe": state.recipe,
            "world_size": state.world_size,
        }
        torch.save(payload, tmp / TRAINER_FILE)
    for old in checkpoint_dirs(out_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_trainer_state(path: str | Path) -> TrainerState:
    """Read ``trainer.pt`` of a checkpoint folder (or the file itself), safely."""
    path = Path(path)
    file = path / TRAINER_FILE if path.is_dir() else path
    if not file.is_file():
        raise CheckpointError(f"{path} is not a training checkpoint (no {TRAINER_FILE}); pass a step-* folder")
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"training checkpoint {file} cannot be read ({type(exc).__name__}: {exc}); "
                              "resume from an earlier step-* folder") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{file} is not a {FORMAT} training checkpoint")
    return TrainerState(step=int(payload["step"]), position=tuple(payload["position"]),
                        optimizer=payload["optimizer"], scaler=payload["scaler"], rng=payload["rng"],
                        recipe=payload["recipe"], world_size=int(payload["world_size"]))


def resolve_resume(resume: str | Path | bool | None, out_dir: str | Path) -> Path | None:
    """``True``/'auto' -> the latest checkpoint in ``out_dir`` (None if there is none); a path -> that folder."""
    if not resume:
        return None
    if resume is True or str(resume) == "auto":
        return latest_checkpoint(out_dir)
    path = Path(resume)
    if path.is_dir() and not (path / TRAINER_FILE).is_file():
        latest = latest_checkpoint(path)  # a run folder
        if latest is None:
            raise CheckpointError(f"{path} holds no complete checkpoint to resume from")
        return latest
    if not (path / TRAINER_FILE).is_file():
        raise CheckpointError(f"cannot resume from {path}: expected a step-* checkpoint folder or a run folder")
    return path
