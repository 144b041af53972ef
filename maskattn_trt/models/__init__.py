"""SDXL models: the offline tiny pipeline, UNet size presets, and the one loader behind every ``--model``."""

from .components import TextEncoderGraph, VaeDecoderGraph, component_graph, component_module
from .loading import (
    SDXL_VAE_SCALE,
    check_sdxl_folder,
    default_side,
    load_model,
    load_pipeline,
    load_unet,
    quiet_diffusers,
    unet_architecture,
    vae_scale_of,
)
from .shipped import RANDOM_TINY, SHIPPED, default_gates, shipped_gates, shipped_manifest, shipped_model_dir
from .tiny import (
    SDXL_UNET_CONFIG,
    TINY_VAE_SCALE,
    UNET_PRESETS,
    build_unet,
    tiny_sdxl_pipeline,
    tiny_tokenizer,
)

__all__ = [
    "RANDOM_TINY",
    "SHIPPED",
    "default_gates",
    "shipped_gates",
    "shipped_manifest",
    "shipped_model_dir",
    "SDXL_UNET_CONFIG",
    "SDXL_VAE_SCALE",
    "TINY_VAE_SCALE",
    "TextEncoderGraph",
    "VaeDecoderGraph",
    "UNET_PRESETS",
    "build_unet",
    "check_sdxl_folder",
    "default_side",
    "component_graph",
    "component_module",
    "load_model",
    "load_pipeline",
    "load_unet",
    "quiet_diffusers",
    "tiny_sdxl_pipeline",
    "tiny_tokenizer",
    "unet_architecture",
    "vae_scale_of",
]
