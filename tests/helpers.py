"""Building blocks shared by every test package: the tiny gated UNet, its IO spec and a quiet export.

Plain functions (no fixtures): a test that needs its own, mutable copy calls them directly; the session-scoped,
read-only objects built from them live in ``tests/conftest.py``.
"""

from __future__ import annotations

import torch

from maskattn_trt import GateConfig, install_gates
from maskattn_trt.export import export_unet
from maskattn_trt.export.from_model import TINY_VAE_SCALE
from maskattn_trt.gates import gate_heads, gate_processors
from maskattn_trt.models import build_unet
from maskattn_trt.spec import Range, UNetIOSpec

# The exported range of every shared tiny export: batch 1..4, latent 16..64 (32..128 px through the tiny VAE,
# whose scale is 2), the same as `maskattn-trt export --model tiny` writes by default.
RANGES = {"batch": Range(1, 2, 4), "height": Range(16, 32, 64), "width": Range(16, 32, 64)}
GATES_SEED = 1  # the seed of the shared trained-looking gates (tests/conftest.py)


def trained_looking_gates(unet, seed: int = 0, logit_bias: float = -0.5):
    """Give every gate parameter of ``unet`` a random, trained-looking value (in place; returns ``unet``).

    Linear weights have a realistic spread of logits, LayerNorm scales sit around 1 and biases around 0 (none is
    left at ones / zeros, so the exporter never folds a gate weight into a UNet weight), and ``logit_bias``
    closes a realistic share of tokens.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for head in gate_heads(unet).values():
            for name, param in head.named_parameters():
                noise = torch.randn(param.shape, generator=gen)
                if param.ndim == 2:
                    param.copy_(noise * param.shape[1] ** -0.5 * 2.0)
                elif param.ndim == 1:  # LayerNorm scale around 1 (index 0 of each MLP), biases around 0
                    param.copy_(noise * 0.2 + (1.0 if name.endswith("0.weight") else 0.0))
            head.logit_bias.fill_(logit_bias)
    return unet


def gated_tiny_unet(seed: int = GATES_SEED, config: GateConfig | None = None, logit_bias: float = -0.5):
    """A fresh tiny UNet (weights seed 0, fp32, eval) with trained-looking gates drawn from ``seed``."""
    unet = build_unet("tiny", seed=0)
    install_gates(unet, config or GateConfig())
    return trained_looking_gates(unet, seed, logit_bias)


def tiny_spec(unet, dtype: str = "fp32", gate_outputs: bool = True, **ranges) -> UNetIOSpec:
    """The tiny UNet's IO spec over ``RANGES`` (overridable), with one output per gated site by default."""
    spec = UNetIOSpec.for_unet(unet, dtype=dtype, vae_scale=TINY_VAE_SCALE, **{**RANGES, **ranges})
    return spec.with_gate_outputs(list(gate_processors(unet))) if gate_outputs else spec


def export_tiny(unet, folder, spec, slim: bool = False, **kwargs):
    """``export_unet`` without progress bars and, unless asked for, without the onnxslim pass (tests are about
    the graph the exporter writes; slimming is tested where it is switched on)."""
    return export_unet(unet, folder, spec, slim=slim, progress=False, **kwargs)
