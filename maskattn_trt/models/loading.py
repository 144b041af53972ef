"""The one model loader: ``--model tiny | tiny-random | small | sdxl | PATH`` -> pipeline, UNet or architecture.

``tiny`` is the trained tiny SDXL shipped inside the package (:mod:`.shipped`: loaded like any folder, after a
sha256 check); ``tiny-random`` is the same kind of pipeline with seeded random weights, built in-process;
``small`` and ``sdxl`` are UNet-only presets with random weights (``sdxl`` is the real architecture, built on
the meta device and allocated once in the target dtype); a path is a local diffusers SDXL folder. Nothing ever
touches the network (``local_files_only=True``). Every command that takes ``--model`` goes through here.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from diffusers.utils import logging as diffusers_logging
from torch import nn

from ..errors import BadInputError, ModelLoadError
from ..spec import DTYPES
from .shipped import RANDOM_TINY, SHIPPED, shipped_model_dir
from .tiny import TINY_VAE_SCALE, UNET_PRESETS, build_unet, tiny_sdxl_pipeline

SDXL_VAE_SCALE = 8
_SDXL_CLASSES = ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline")
_META_BUILT = ("sdxl",)  # presets too large to materialise in fp32 first


def check_sdxl_folder(path: Path) -> None:
    """Refuse anything but a local diffusers SDXL pipeline folder, naming what is wrong."""
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


def _unchecked_folder(model: str) -> Path:
    return shipped_model_dir(model) if model in SHIPPED else Path(model).expanduser()


def _folder(model: str) -> Path:
    path = _unchecked_folder(model)
    if model not in SHIPPED:
        check_sdxl_folder(path)
    return path


def _torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise BadInputError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    return DTYPES[dtype]


@contextlib.contextmanager
def quiet_diffusers() -> Iterator[None]:
    """Silence diffusers' and transformers' loggers and loading bars for a block (restoring them after), e.g.
    the warning on ``ModelMixin.to(dtype)`` and the per-component bars of ``from_pretrained``."""
    from transformers.utils import logging as transformers_logging

    saved = [(lib, lib.get_verbosity(), lib.is_progress_bar_enabled())
             for lib in (diffusers_logging, transformers_logging)]
    for lib, _, _ in saved:
        lib.set_verbosity_error()
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, level, bars in saved:
            lib.set_verbosity(level)
            if bars:
                lib.enable_progress_bar()


def _init_in_place(unet: nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    for module in unet.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()


def _pipeline_class():
    # Lazy: importing diffusers' pipelines pulls in transformers' image processors (seconds, and a torchvision
    # warning); commands that need only a UNet (export of a preset, gates-info, convert-gates) never pay it.
    from diffusers import StableDiffusionXLPipeline

    return StableDiffusionXLPipeline


def load_pipeline(model: str = "tiny", dtype: str | torch.dtype = torch.float32, seed: int = 0):
    """``tiny-random`` -> :func:`tiny_sdxl_pipeline`; ``tiny`` or a folder -> ``from_pretrained``.

    The VAE stays fp32 whatever ``dtype`` (the SDXL VAE overflows in fp16).
    """
    torch_dtype = _torch_dtype(dtype)
    if model == RANDOM_TINY:
        pipe = tiny_sdxl_pipeline(seed)
        if torch_dtype != torch.float32:
            with quiet_diffusers():
                pipe.to(dtype=torch_dtype)
            pipe.vae.to(torch.float32)
        return pipe
    if model in UNET_PRESETS:
        raise ModelLoadError(f"--model {model} is a UNet-only preset (no text encoders or VAE); use --model tiny "
                             "or a local diffusers SDXL folder")
    path = _folder(model)
    try:
        with quiet_diffusers():
            pipe = _pipeline_class().from_pretrained(path, dtype=torch_dtype, local_files_only=True)
            if pipe.vae is not None:
                pipe.vae.to(torch.float32)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not load the SDXL pipeline in {path}: {exc}") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_unet(model: str = "tiny", seed: int = 0, device: str | torch.device = "cpu",
              dtype: str | torch.dtype = "fp32") -> nn.Module:
    """Just the UNet, frozen and in eval mode, directly in ``dtype``: a preset (random weights, seeded) or a folder.

    ``device="meta"`` gives the architecture without weights (:func:`unet_architecture`).
    """
    if str(device) == "meta":
        return unet_architecture(model)
    torch_dtype = _torch_dtype(dtype)
    if model in _META_BUILT:
        unet = build_unet(model, seed, device="meta").to(torch_dtype)  # cast on meta: free
        unet.to_empty(device=device)
        _init_in_place(unet, seed)
    elif model in UNET_PRESETS:
        unet = build_unet(model, seed, device)
        if torch_dtype != torch.float32:
            with quiet_diffusers():  # it warns on every .to(dtype)
                unet.to(torch_dtype)
    else:
        path = _folder(model)
        try:
            with quiet_diffusers():
                unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", dtype=torch_dtype,
                                                            local_files_only=True).to(device)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"could not load the UNet in {path}/unet: {exc}") from exc
    return unet.eval().requires_grad_(False)


def unet_architecture(model: str) -> nn.Module:
    """The UNet built on the meta device (no weights): for IO specs, fingerprints and gate-site selection."""
    if model in UNET_PRESETS:
        return build_unet(model, device="meta")
    path = _folder(model)
    try:
        config = UNet2DConditionModel.load_config(path, subfolder="unet", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not read the UNet config in {path}/unet: {exc}") from exc
    with torch.device("meta"):
        return UNet2DConditionModel.from_config(config)


def load_model(model: str, unet_weights: bool = True):
    """(pipeline, UNet). Without ``unet_weights`` a folder's UNet is only its architecture (meta device): an
    exported backend runs the UNet, the pipeline supplies text encoders, VAE and scheduler."""
    if model == RANDOM_TINY or unet_weights:
        pipe = load_pipeline(model)
        return pipe, pipe.unet
    path = _folder(model)
    try:
        with quiet_diffusers():
            pipe = _pipeline_class().from_pretrained(path, unet=None, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not load the SDXL pipeline in {path}: {exc}") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe, unet_architecture(model)


def default_side(model: str) -> int:
    """The image side in pixels a model draws when none is asked, diffusers' rule: the UNet's ``sample_size`` x
    the VAE's scale (read from the folder: 128 for ``tiny``, 1024 for SDXL, 128 for a ``train-base`` run at 128 px);
    64 for ``tiny-random``; 1024 when a folder has no readable UNet config."""
    if model == RANDOM_TINY:
        return 64
    path = _unchecked_folder(model) / "unet" / "config.json"
    try:
        sample_size = json.loads(path.read_text()).get("sample_size")
    except (OSError, json.JSONDecodeError):
        return 1024
    if isinstance(sample_size, (list, tuple)):
        sample_size = min(sample_size)
    if not isinstance(sample_size, int) or isinstance(sample_size, bool) or sample_size <= 0:
        return 1024
    return sample_size * vae_scale_of(model)


def vae_scale_of(model: str) -> int:
    """Latent -> pixel factor of the model's VAE: 2 for ``tiny-random``, 4 for ``tiny``, 8 for SDXL (read from a
    folder's VAE config)."""
    if model == RANDOM_TINY:
        return TINY_VAE_SCALE
    path = _unchecked_folder(model) / "vae" / "config.json"
    if path.is_file():
        try:
            blocks = json.loads(path.read_text()).get("block_out_channels", [0, 0, 0, 0])
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{path} is not valid JSON ({exc})") from exc
        return 2 ** (len(blocks) - 1)
    return SDXL_VAE_SCALE
