"""Gate decision margins: how far each gate decision is from flipping, recorded during eager forwards.

Parity uses them to tell a gate flipped by rounding (its logit lay within rounding of the threshold) from a
real disagreement between backends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from .install import gate_processors


def decision_margins(logits: torch.Tensor, threshold_logit: float) -> torch.Tensor:
    """How far each gate decision is from flipping, in logits [B, N, T].

    Where a row has an open token: ``|z - logit(tau)|``. Where every token is closed (the NaN guard keeps the
    arg-max): the distance of each logit to the row's maximum, and for the kept token its lead over the
    runner-up, since there a near-tie, not the threshold, decides which token stays open.
    """
    z = logits - threshold_logit
    any_open = (z > 0).any(dim=-1, keepdim=True)
    top2 = z.topk(2, dim=-1).values
    gap = top2[..., :1] - z
    gap = torch.where(gap == 0, top2[..., :1] - top2[..., 1:2], gap)
    return torch.where(any_open, z.abs(), gap)


@contextlib.contextmanager
def recording_gate_margins(unet: nn.Module) -> Iterator[dict]:
    """Record each site's :func:`decision_margins` during forwards inside the block. Reverts on exit."""
    margins: dict = {}
    processors = gate_processors(unet)
    for site, proc in processors.items():
        def gate(features, tokens, _proc=proc, _site=site, _original=proc.gate):
            logits = _proc.gate_head(features, tokens).detach()
            margins[_site] = decision_margins(logits, _proc.threshold_logit)
            return _original(features, tokens)

        proc.__dict__["gate"] = gate
    try:
        yield margins
    finally:
        for proc in processors.values():
            proc.__dict__.pop("gate", None)
