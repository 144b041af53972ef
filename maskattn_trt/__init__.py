"""maskattn-trt: train, export, compile and serve MaskAttn-SDXL."""

from .config import GateConfig
from .errors import MaskAttnError
from .gates import (
    convert_official_checkpoint,
    gate_parameters,
    install_gates,
    load_gates,
    load_official_gates,
    remove_gates,
    save_gates,
)
from .models import load_pipeline, load_unet, tiny_sdxl_pipeline
from .spec import UNetIOSpec

__version__ = "0.1.0"

__all__ = [
    "GateConfig",
    "MaskAttnError",
    "UNetIOSpec",
    "convert_official_checkpoint",
    "gate_parameters",
    "install_gates",
    "load_gates",
    "load_official_gates",
    "load_pipeline",
    "load_unet",
    "remove_gates",
    "save_gates",
    "tiny_sdxl_pipeline",
]
