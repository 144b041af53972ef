"""Resolve ``--model``: ``tiny`` (offline, in-process) or a local diffusers SDXL folder."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import ModelLoadError
from .tiny import UNET_PRESETS, build_unet, tiny_sdxl_pipeline

_SDXL_CLASSES = ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline")


def _check_sdxl_folder(path: Path) -> None:
    if not path.exists():
        raise ModelLoadError(
            f"model path {path} does not exist; pass --model tiny or a local diffusers SDXL folder "
            "(with model_index.json)"
        )
    index = path / "model_index.json"
    if not index.is_file():
        raise ModelLoadError(
            f"{path} is not a diffusers pipeline folder (no model_index.json); save one with "
            "StableDiffusionXLPipeline.save_pretrained(...) or pass --model tiny"
        )
    try:
        class_name = json.loads(index.read_text()).get("_class_name", "")
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{index} is not valid JSON ({exc})") from exc
    if class_name not in _SDXL_CLASSES:
        raise ModelLoadError(f"{path} holds a {class_name or 'unknown'} pipeline, expected an SDXL pipeline")
    if not (path / "unet" / "config.json").is_file():
        raise ModelLoadError(f"{path} has no unet/config.json; the SDXL folder is incomplete")


def load_pipeline(model: str = "tiny", dtype: torch.dtype = torch.float32, seed: int = 0):
    """``tiny`` -> :func:`tiny_sdxl_pipeline`; a folder -> ``StableDiffusionXLPipeline.from_pretrained``.

    Never touches the network (``local_files_only=True``).
    """
    if model == "tiny":
        pipe = tiny_sdxl_pipeline(seed)
        return pipe.to(dtype=dtype) if dtype != torch.float32 else pipe
    from diffusers import StableDiffusionXLPipeline

    path = Path(model).expanduser()
    _check_sdxl_folder(path)
    try:
        pipe = StableDiffusionXLPipeline.from_pretrained(path, dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not load the SDXL pipeline in {path}: {exc}") from exc
    pipe.set_progress_bar_config(disable=True)
    if pipe.vae is not None:
        pipe.vae.to(torch.float32)  # the SDXL VAE overflows in fp16
    return pipe


def load_unet(model: str = "tiny", seed: int = 0, device: str | torch.device = "cpu"):
    """Just the UNet: a preset name (``tiny``, ``small``, ``sdxl`` random weights) or a local SDXL folder."""
    if model in UNET_PRESETS:
        return build_unet(model, seed, device)
    from diffusers import UNet2DConditionModel

    path = Path(model).expanduser()
    _check_sdxl_folder(path)
    try:
        return UNet2DConditionModel.from_pretrained(path, subfolder="unet", local_files_only=True).eval()
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not load the UNet in {path}/unet: {exc}") from exc
