"""Tiny gated UNets and exports shared by the export, runner and parity tests."""

from __future__ import annotations

import torch

from maskattn_trt import GateConfig, install_gates
from maskattn_trt.export import export_unet
from maskattn_trt.gates import gate_heads
from maskattn_trt.models import TINY_VAE_SCALE, build_unet
from maskattn_trt.spec import Range, UNetIOSpec

# Exported range used by the tests: batch 1..3, latent 16..64 (32..128 px on the tiny pipeline).
RANGES = {"batch": Range(1, 2, 3), "height": Range(16, 32, 64), "width": Range(16, 32, 64)}


def gated_tiny(seed: int = 0, logit_bias: float = -0.5):
    """The tiny UNet (weights seed 0) with gates whose heads are random with a realistic spread of logits."""
    unet = build_unet("tiny", seed=0)
    install_gates(unet, GateConfig())
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for head in gate_heads(unet).values():
            for name, param in head.named_parameters():
                noise = torch.randn(param.shape, generator=gen)
                if param.ndim == 2:
                    param.copy_(noise * param.shape[1] ** -0.5 * 2.0)
                elif param.ndim == 1:  # LayerNorm scale around 1, biases around 0
                    param.copy_(noise * 0.2 + (1.0 if name.endswith("0.weight") else 0.0))
            head.logit_bias.fill_(logit_bias)
    return unet


def tiny_spec(unet, dtype: str = "fp32", gate_outputs: bool = True, **ranges) -> UNetIOSpec:
    spec = UNetIOSpec.for_unet(unet, dtype=dtype, vae_scale=TINY_VAE_SCALE, **{**RANGES, **ranges})
    if gate_outputs:
        from maskattn_trt.gates import gate_processors

        spec = spec.with_gate_outputs(list(gate_processors(unet)))
    return spec


def export_tiny(unet, folder, spec, **kwargs):
    return export_unet(unet, folder, spec, progress=False, **kwargs)
