"""Gate training on a frozen SDXL: recipes, data, the loop, checkpoints, metrics.

Names are imported lazily so that importing a recipe does not pull in torch and diffusers.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Recipe": "recipe",
    "load_recipe": "recipe",
    "TrainResult": "loop",
    "build_cache": "loop",
    "learning_rate": "loop",
    "train": "loop",
    "latest_checkpoint": "checkpoint",
    "load_trainer_state": "checkpoint",
    "write_synthetic_dataset": "synthetic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'maskattn_trt.train' has no attribute {name!r}")
