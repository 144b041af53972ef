"""Export-time patches: reversible context managers, never process-wide monkey patches (optimum's ModelPatcher).

Each patch changes one module instance for the duration of a ``with`` block and restores it on exit, also
when the export fails.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from torch import nn

from ..gates import gate_processors, set_gates_open


@contextlib.contextmanager
def cast_add_time_proj(unet: nn.Module, dtype: torch.dtype) -> Iterator[None]:
    """Cast ``unet.add_time_proj``'s output to the model dtype (needed by the dynamo exporter in fp16).

    diffusers' ``get_aug_embed`` concatenates ``text_embeds`` (model dtype) with the fp32 output of the
    sinusoidal ``add_time_proj``; eager PyTorch promotes silently, but the dynamo exporter writes a Concat of
    fp16 and fp32 inputs that ONNX Runtime and TensorRT reject. A forward hook adds the missing Cast.
    """
    module = getattr(unet, "add_time_proj", None)
    if module is None or dtype == torch.float32:
        yield
        return
    handle = module.register_forward_hook(lambda _mod, _args, out: out.to(dtype))
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def gates_forced_open(unet: nn.Module, open_: bool) -> Iterator[None]:
    """Export with every gate open (a stock-equivalent graph) and restore each processor's previous state."""
    processors = gate_processors(unet)
    before = {site: proc.force_open for site, proc in processors.items()}
    if processors:
        set_gates_open(unet, open_)
    try:
        yield
    finally:
        for site, proc in processors.items():
            proc.force_open = before[site]


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Hide the tracer's warnings about Python branches on shapes (expected for diffusers' UNet) and the
    deprecation notice of the TorchScript exporter (chosen on purpose, see :mod:`maskattn_trt.export.onnx`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*Converting a tensor to a Python.*")
        yield
