"""Eager PyTorch runner over a (gated) diffusers UNet."""

from __future__ import annotations

import torch
from torch import nn

from ..gates import UNetGraph
from ..spec import INPUT_NAMES, OUTPUT_NAME, UNetIOSpec
from .base import Runner


class EagerRunner(Runner):
    """Runs :class:`~maskattn_trt.gates.UNetGraph` under ``torch.inference_mode``."""

    name = "eager"

    def __init__(self, unet: nn.Module, spec: UNetIOSpec | None = None, device: str | torch.device | None = None):
        spec = spec or UNetIOSpec.for_unet(unet, dtype="fp16" if unet.dtype == torch.float16 else "fp32")
        super().__init__(spec)
        self.graph = UNetGraph(unet, spec).eval()
        self._device = torch.device(device) if device is not None else next(unet.parameters()).device

    @property
    def device(self) -> torch.device:
        return self._device

    def infer_impl(self, feed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        dtypes = self.spec.input_dtypes()
        args = [feed[name].to(self._device, dtypes[name]) for name in INPUT_NAMES]
        with torch.inference_mode():
            out = self.graph(*args)
        outs = out if isinstance(out, tuple) else (out,)
        return dict(zip(self.spec.output_names, outs, strict=True)) if outs else {OUTPUT_NAME: out}
