"""Trained-looking random gates: for the demo, benchmarks and tests, where no trained checkpoint exists.

Freshly installed heads give logits near zero, so every gate sits at the threshold; trained heads give a
real mix of open and closed tokens. These heads imitate that spread under a fixed seed.
"""

from __future__ import annotations

import torch
from torch import nn

from .install import gate_heads


def randomize_gates(unet: nn.Module, seed: int = 0, logit_bias: float = -0.5, scale: float = 2.0,
                    norm_noise: float = 0.0) -> None:
    """Give every gate head random weights with a realistic spread of logits (in place, deterministic).

    ``scale`` sets the Linear weights' spread (x fan-in^-1/2), ``logit_bias`` the share of closed tokens
    (negative: more closed). ``norm_noise`` > 0 also moves every other vector parameter (LayerNorm scales
    around 1, biases around 0), so no parameter keeps its initial value (what refit tests need).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for head in gate_heads(unet).values():
            for name, param in head.named_parameters():
                if param.ndim == 2:
                    noise = torch.randn(param.shape, generator=gen)
                    param.copy_(noise * param.shape[1] ** -0.5 * scale)
                elif norm_noise > 0:
                    noise = torch.randn(param.shape, generator=gen)  # drawn for every parameter, in order
                    if param.ndim == 1:
                        centre = 1.0 if _is_norm_scale(head, name) else 0.0
                        param.copy_(noise * norm_noise + centre)
            head.logit_bias.fill_(logit_bias)


def _is_norm_scale(head: nn.Module, name: str) -> bool:
    module_name, _, leaf = name.rpartition(".")
    return leaf == "weight" and isinstance(head.get_submodule(module_name), nn.LayerNorm)
