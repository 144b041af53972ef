"""Models that ship inside the package: ``--model tiny`` is a trained tiny SDXL with its trained gates.

``tiny`` was trained from scratch on the synthetic world (``maskattn-trt train-base --recipe
train/tiny_base.toml``), its gates with ``maskattn-trt train --recipe train/tiny_gates.toml``. The files lie
under ``maskattn_trt/models/weights/<name>/``::

    model/            a diffusers StableDiffusionXLPipeline folder (safetensors) + weights_manifest.json
    gates.safetensors the trained gate heads (the project's gate checkpoint format): the paper's objective
    gates_mask.safetensors  gates trained with the mask loss too (``--gates shipped:mask``; train/README.md)
    MANIFEST.json     sha256 and size of every file, the recipes, steps, seeds, data version, training times

The manifest is checked once per process before the first load: a missing or altered file is named, with the
fix (reinstall, or pass a folder). ``tiny-random`` is the same architecture with seeded random weights, built
in-process (tests, benchmarks of the graph alone).
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path

from ..errors import ModelLoadError
from ..utils.io import sha256_file

SHIPPED = ("tiny",)
RANDOM_TINY = "tiny-random"
MANIFEST = "MANIFEST.json"
GATES = "gates.safetensors"
# Named gate sets shipped with a model: ``--gates shipped`` / ``shipped:NAME``
GATE_SETS = {"default": GATES, "mask": "gates_mask.safetensors"}


def _root(name: str) -> Path:
    return Path(str(resources.files("maskattn_trt.models") / "weights" / name))


@functools.cache
def verified_root(name: str) -> Path:
    """The shipped model's folder, after checking every file against its manifest (once per process)."""
    root = _root(name)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise ModelLoadError(f"the shipped '{name}' model is missing ({manifest_path} not found); reinstall "
                             f"maskattn-trt, or pass --model {RANDOM_TINY} for the random-weight model")
    manifest = json.loads(manifest_path.read_text())
    for relative, entry in manifest["files"].items():
        path = root / relative
        if not path.is_file():
            raise ModelLoadError(f"the shipped '{name}' model lacks {relative}; reinstall maskattn-trt")
        if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            raise ModelLoadError(f"the shipped '{name}' model's {relative} does not match its sha256 in "
                                 f"{manifest_path}; the file was altered: reinstall maskattn-trt")
    return root


def shipped_model_dir(name: str) -> Path:
    return verified_root(name) / "model"


def shipped_gates(name: str, gate_set: str = "default") -> Path:
    """A shipped model's gate file: ``default`` (trained with the paper's objective) or another named set."""
    if gate_set not in GATE_SETS:
        raise ModelLoadError(f"no shipped gate set {gate_set!r}; choose one of {', '.join(GATE_SETS)}")
    path = verified_root(name) / GATE_SETS[gate_set]
    if not path.is_file():
        raise ModelLoadError(f"the shipped '{name}' model has no {gate_set!r} gate set ({path.name}); reinstall "
                             "maskattn-trt or pass a gate checkpoint")
    return path


def shipped_manifest(name: str) -> dict:
    return json.loads((verified_root(name) / MANIFEST).read_text())


def default_gates(model: str) -> Path | None:
    """The gates that go with ``model`` when none are given: the shipped ones for a shipped model, else none."""
    return shipped_gates(model) if model in SHIPPED else None
