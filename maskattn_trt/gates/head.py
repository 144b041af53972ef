"""Gate head and hard gate: the MaskAttn-SDXL method itself.

A gate head scores every (spatial position, text token) pair from the attention input ``x`` [B, N, C] and
the text tokens ``e`` [B, T, D] before ``to_k``::

    z = feature_net(x) @ token_net(e)^T * h^-0.5 + b          # [B, N, T] logits
    G = [z > logit(tau)]                                      # hard gate, 0/1
    G[row] = onehot(argmax z[row])  where a row has no open token (softmax of an all-closed row is NaN)

The architecture (``feature_net`` / ``token_net`` = LayerNorm -> Linear -> SiLU -> Linear, scalar
``logit_bias``) matches the official code's ``MaskGateHead`` parameter names, so its checkpoints load as is.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _mlp(in_features: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.LayerNorm(in_features),
        nn.Linear(in_features, hidden),
        nn.SiLU(),
        nn.Linear(hidden, hidden),
    )


class GateHead(nn.Module):
    """Token-conditioned gate logits for one or more cross-attention sites.

    Kept in fp32 (logits near the threshold would round in fp16) except where a target has no fp32 GEMM
    (TensorRT-RTX on Turing, SM75): an export may then cast the heads to fp16 (``cast_unet(...,
    gate_heads="fp16")``); the head computes in the dtype of its own parameters.
    """

    def __init__(self, feature_dim: int, token_dim: int, hidden_size: int = 128):
        super().__init__()
        self.feature_dim = int(feature_dim)
        self.token_dim = int(token_dim)
        self.hidden_size = int(hidden_size)
        self.feature_net = _mlp(self.feature_dim, self.hidden_size)
        self.token_net = _mlp(self.token_dim, self.hidden_size)
        self.logit_bias = nn.Parameter(torch.zeros(()))
        self.scale = self.hidden_size**-0.5

    def forward(self, features: Tensor, tokens: Tensor) -> Tensor:
        """Return gate logits z [B, N, T] (in the head's dtype) for features [B, N, C] and text tokens [B, T, D]."""
        dtype = self.logit_bias.dtype
        f = self.feature_net(features.to(dtype))
        t = self.token_net(tokens.to(dtype))
        return torch.matmul(f, t.transpose(1, 2)) * self.scale + self.logit_bias


def hard_gate(logits: Tensor, threshold_logit: float, valid: Tensor | None = None) -> Tensor:
    """0/1 gate (dtype of ``logits``) with the NaN guard: an all-closed row keeps its most probable token.

    Written with boolean ops that export to plain ONNX (Greater, ArgMax, Equal, Not, And, Or; no Where on
    booleans, which ONNX Runtime does not implement) and compare in logit space, so the inference graph never
    evaluates a sigmoid. The threshold is clamped to the finite range of ``logits.dtype`` (logit(0) and
    logit(1) are infinite): the same decision for every finite logit, and a finite constant in the graph.

    ``valid`` [B, T] (bool; from an encoder attention mask): invalid (padding) tokens stay closed and are never
    the kept token of an all-closed row, as in the official code.
    """
    limit = torch.finfo(logits.dtype).max
    if float(threshold_logit) <= -limit:  # tau = 0: every finite logit opens (>= the lowest finite value)
        open_ = logits >= -limit
    else:
        open_ = logits > min(float(threshold_logit), limit)
    scores = logits
    if valid is not None:
        keep = valid[:, None, :]
        open_ = open_ & keep
        scores = logits.masked_fill(~keep, float("-inf"))
    any_open = open_.any(dim=-1, keepdim=True)
    best = scores.argmax(dim=-1, keepdim=True)
    positions = torch.arange(logits.shape[-1], device=logits.device)
    keep_best = positions == best
    return (open_ | (keep_best & ~any_open)).to(logits.dtype)


def straight_through(gate: Tensor, logits: Tensor, valid: Tensor | None = None) -> Tensor:
    """Hard values forward, sigmoid gradient backward: ``G + p - stop_grad(p)``.

    Written so the forward value is exactly ``G`` (``p - p.detach()`` is exactly zero), unlike
    ``G - p.detach() + p`` which rounds. Invalid tokens (``valid`` [B, T] False) get no gradient.
    """
    p = torch.sigmoid(logits)
    if valid is not None:
        p = p * valid[:, None, :].to(p.dtype)
    return gate + (p - p.detach())


def additive_mask(gate: Tensor, negative_value: float) -> Tensor:
    """(1 - G) * NEG, shaped [B, 1, N, T] to broadcast over attention heads."""
    return ((1.0 - gate) * negative_value).unsqueeze(1)
