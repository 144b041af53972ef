"""Eager PyTorch runner over a (gated) diffusers UNet, a text encoder or the VAE decoder."""

from __future__ import annotations

import torch
from torch import nn

from ..component_spec import IOSpec, component_of
from ..gates import UNetGraph
from ..models import component_graph
from ..spec import UNetIOSpec
from .base import Runner


class EagerRunner(Runner):
    """Runs the component's graph module (:class:`~maskattn_trt.gates.UNetGraph` for a UNet,
    :func:`~maskattn_trt.models.component_graph` otherwise) under ``torch.inference_mode``.

    ``model`` is the diffusers module itself (UNet, CLIP text encoder, AutoencoderKL); ``spec`` says which
    component it is (a UNet spec is read from the UNet when omitted).
    """

    name = "eager"

    def __init__(self, model: nn.Module, spec: IOSpec | None = None, device: str | torch.device | None = None):
        spec = spec or UNetIOSpec.for_unet(model, dtype="fp16" if model.dtype == torch.float16 else "fp32")
        super().__init__(spec)
        self.model = model
        self.graph = (UNetGraph(model, spec) if component_of(spec) == "unet" else component_graph(model, spec)).eval()
        self._device = torch.device(device) if device is not None else None

    @property
    def device(self) -> torch.device:
        # read live: the pipeline may move its modules after the runner was made
        return self._device or next(self.model.parameters()).device

    def infer_impl(self, feed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        dtypes = self.spec.input_dtypes()
        device = self.device
        args = [feed[name].to(device, dtypes[name]) for name in self.spec.input_names]
        with torch.inference_mode():
            out = self.graph(*args)
        outs = out if isinstance(out, tuple) else (out,)
        return dict(zip(self.spec.output_names, outs, strict=True))
