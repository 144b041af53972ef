"""The UNet an export starts from: a preset or a local SDXL folder, loaded directly in the export dtype,
with gates from a checkpoint (or opened for a stock-equivalent graph).

Real users export SDXL on ordinary machines, so nothing is materialised in fp32 first: a local folder is
loaded with ``torch_dtype``; the ``sdxl`` preset (real architecture, random weights) is constructed on the meta
device, cast there (free), allocated once in the target dtype and initialised in place.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import BadInputError, CheckpointError
from ..spec import DTYPES

_META_BUILT = ("sdxl",)


def _init_in_place(unet: nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    for module in unet.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()


def load_unet_for_export(model: str, dtype: str = "fp32", seed: int = 0) -> nn.Module:
    """``tiny`` | ``small`` | ``sdxl`` (random weights, seeded) or a local diffusers SDXL folder, in ``dtype``."""
    from ..models import UNET_PRESETS, build_unet
    from .onnx import cast_unet

    if dtype not in DTYPES:
        raise BadInputError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    torch_dtype = DTYPES[dtype]
    if model in _META_BUILT:
        unet = cast_unet(build_unet(model, seed, device="meta"), dtype)
        unet.to_empty(device="cpu")
        _init_in_place(unet, seed)
        return unet.eval().requires_grad_(False)
    if model in UNET_PRESETS:
        return cast_unet(build_unet(model, seed), dtype).requires_grad_(False)
    from diffusers import UNet2DConditionModel

    from ..models.loading import _check_sdxl_folder

    path = Path(model).expanduser()
    _check_sdxl_folder(path)
    try:
        unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=torch_dtype,
                                                    local_files_only=True)
    except (OSError, ValueError) as exc:
        from ..errors import ModelLoadError

        raise ModelLoadError(f"could not load the UNet in {path}/unet: {exc}") from exc
    return unet.eval().requires_grad_(False)


def attach_gates(unet: nn.Module, gates_path: str | Path | None, open_gates: bool) -> None:
    """Load gates from a checkpoint (refusing one made for another UNet); ``open_gates`` needs none."""
    from ..gates import load_gates

    if gates_path is None:
        if not open_gates:
            raise BadInputError("pass --gates CHECKPOINT (from train / convert-gates) or --open-gates for a "
                                "stock-equivalent graph")
        return
    path = Path(gates_path)
    if not path.is_file():
        raise CheckpointError(f"gate checkpoint {path} does not exist; pass the .safetensors file written by "
                              "`maskattn-trt train` or `convert-gates`")
    load_gates(unet, path)
    from .onnx import cast_unet

    cast_unet(unet, "fp16" if unet.conv_in.weight.dtype == torch.float16 else "fp32")  # heads back to fp32
