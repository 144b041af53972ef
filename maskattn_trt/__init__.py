"""maskattn-trt: train, export, compile and serve MaskAttn-SDXL.

Public names are imported lazily so that ``import maskattn_trt`` (and ``maskattn-trt --help``) stays instant.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "GateConfig": "config",
    "MaskAttnError": "errors",
    "UNetIOSpec": "spec",
    "convert_official_checkpoint": "gates",
    "gate_parameters": "gates",
    "install_gates": "gates",
    "load_gates": "gates",
    "load_official_gates": "gates",
    "remove_gates": "gates",
    "save_gates": "gates",
    "load_pipeline": "models",
    "load_unet": "models",
    "tiny_sdxl_pipeline": "models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'maskattn_trt' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
