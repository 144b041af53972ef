"""SDXL pipelines: the offline tiny one, size presets, and loading a user's local SDXL folder."""

from .loading import load_pipeline, load_unet
from .tiny import UNET_PRESETS, build_unet, tiny_sdxl_pipeline, tiny_tokenizer

__all__ = ["UNET_PRESETS", "build_unet", "load_pipeline", "load_unet", "tiny_sdxl_pipeline", "tiny_tokenizer"]
