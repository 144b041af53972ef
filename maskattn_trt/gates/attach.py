"""Putting gates on a loaded UNet: from a checkpoint (or none, for a stock-equivalent graph), in a precision.

Gate heads stay fp32 whatever the backbone's dtype: their LayerNorms and the logits compared with the
threshold would round in fp16 and flip gates. The one exception: ``gate_heads="fp16"`` in an fp16 export, for
targets without fp32 GEMMs (TensorRT-RTX on Turing, SM75); its gate agreement with fp32 heads is measured in
tests/export/test_gate_heads_fp16.py.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import BadInputError, CheckpointError
from ..models import quiet_diffusers
from ..spec import DTYPES
from .checkpoint import load_gates
from .install import gate_processors

GATE_HEAD_DTYPES = ("fp32", "fp16")


def check_gate_heads(dtype: str, gate_heads: str) -> None:
    """Gate heads are fp32, or fp16 in an fp16 export (for GPUs without fp32 GEMMs)."""
    if gate_heads not in GATE_HEAD_DTYPES or (gate_heads == "fp16" and dtype != "fp16"):
        raise BadInputError(f"gate heads must be fp32, or fp16 in an fp16 export; got gate heads {gate_heads!r} "
                            f"for a {dtype} export")


def cast_unet(unet: nn.Module, dtype: str, gate_heads: str = "fp32") -> nn.Module:
    """Cast the UNet backbone to ``dtype`` ('fp32' | 'fp16') in place, gate heads to ``gate_heads`` (fp32 unless
    an fp16 export targets a GPU without fp32 GEMMs)."""
    if dtype not in DTYPES:
        raise BadInputError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    check_gate_heads(dtype, gate_heads)
    if unet.conv_in.weight.dtype != DTYPES[dtype]:
        with quiet_diffusers():  # it warns on every .to(dtype), also when nothing must stay fp32
            unet.to(DTYPES[dtype])
    for proc in gate_processors(unet).values():
        proc.gate_head.to(DTYPES[gate_heads])
    return unet


def attach_gates(unet: nn.Module, gates_path: str | Path | None, open_gates: bool) -> None:
    """Load gates from a checkpoint (refusing one made for another UNet); ``open_gates`` needs none."""
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
    cast_unet(unet, "fp16" if unet.conv_in.weight.dtype == torch.float16 else "fp32")  # heads back to fp32
