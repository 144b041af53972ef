"""The text encoders and the VAE decoder with their exported graphs' flat signatures.

The one module both the exporter and the eager runner call for each component (as
:class:`~maskattn_trt.gates.UNetGraph` is for the UNet), so eager sampling, the ONNX graph and the engine
compute the same thing: diffusers' SDXL ``encode_prompt`` (penultimate hidden states; the pooled projection
of the second encoder) and its latent decoding (``latents_mean`` / ``latents_std`` when the VAE has them,
else ``1 / scaling_factor``; image ``x / 2 + 0.5``, clamped later by the sampler).
"""

from __future__ import annotations

import torch
from torch import nn

from ..component_spec import TEXT_COMPONENTS, TextEncoderIOSpec, VaeDecoderIOSpec
from ..errors import BadInputError


class TextEncoderGraph(nn.Module):
    """``input_ids -> hidden_states`` (text_encoder) or ``input_ids -> (text_embeds, hidden_states)`` (text_encoder_2)."""

    def __init__(self, encoder: nn.Module, spec: TextEncoderIOSpec):
        super().__init__()
        self.encoder = encoder
        self.spec = spec

    def forward(self, input_ids):
        out = self.encoder(input_ids, output_hidden_states=True)
        hidden = out.hidden_states[-2]
        if self.spec.projection_dim:
            return out[0], hidden
        return hidden


class VaeDecoderGraph(nn.Module):
    """``latent`` (sampler space) -> ``image`` in 0..1 (unclamped)."""

    def __init__(self, vae: nn.Module, spec: VaeDecoderIOSpec):
        super().__init__()
        self.vae = vae
        self.spec = spec
        if spec.latents_mean is not None:
            self.register_buffer("mean", torch.tensor(spec.latents_mean).view(1, -1, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(spec.latents_std).view(1, -1, 1, 1), persistent=False)

    def forward(self, latent):
        # exactly diffusers' SDXL pipeline arithmetic (same operations, same order)
        if self.spec.latents_mean is not None:
            latent = latent * self.std.to(latent) / self.spec.scaling_factor + self.mean.to(latent)
        else:
            latent = latent / self.spec.scaling_factor
        image = self.vae.decode(latent, return_dict=False)[0]
        return image / 2 + 0.5


def component_module(pipe, component: str) -> nn.Module:
    """The pipeline's module for ``component`` (its VAE for ``vae_decoder``), with a clear error when absent."""
    attr = "vae" if component == "vae_decoder" else component
    module = getattr(pipe, attr, None)
    if module is None:
        raise BadInputError(f"the pipeline has no {attr}; a {component} export needs a full SDXL pipeline "
                            "(--model tiny or a local diffusers SDXL folder)")
    return module


def component_graph(module: nn.Module, spec) -> nn.Module:
    """The graph module of a text encoder or VAE decoder spec (the UNet's is gates.UNetGraph)."""
    if spec.component in TEXT_COMPONENTS:
        return TextEncoderGraph(module, spec).eval()
    if spec.component == "vae_decoder":
        return VaeDecoderGraph(module, spec).eval()
    raise BadInputError(f"no component graph for {spec.component!r}")

