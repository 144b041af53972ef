"""An independent re-statement of the official MaskAttn-SDXL gate semantics, used only as a test oracle.

It follows the paper's formulation literally, in probability space: p = sigmoid(z); G = [p > tau]; a row
with no open token keeps argmax p; STE gate ``G - p.detach() + p``; additive mask (1 - G_ste) * NEG added
to the scaled logits of every head before softmax. With an encoder attention mask (the official code's
"valid tokens"): p of padding tokens is taken as 0 (so they stay closed for tau >= 0), the fallback arg-max
never picks one, a float mask is an additive bias whose entries below -1e3 mark padding (as diffusers writes
them), and the mask itself is also added to the attention logits (a bool mask as 0 / NEG).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reference_valid_tokens(attention_mask, batch, tokens):
    """[B, T] bool or None, read from an encoder mask the way the oracle defines it (see module doc)."""
    if attention_mask is None:
        return None
    mask = attention_mask
    while mask.ndim > 2:
        mask = mask[:, 0]
    if mask.dtype == torch.bool:
        return mask
    return mask > -1.0e3


def reference_hard_gate(z, tau=0.5, valid=None):
    """Official hard gate from logits z [B, N, T], computed in probability space."""
    p = torch.sigmoid(z)
    if valid is not None:
        p = p * valid[:, None, :].to(p.dtype)
    hard = (p > tau).to(z.dtype)
    empty = hard.sum(-1, keepdim=True) == 0
    scores = p if valid is None else p.masked_fill(~valid[:, None, :], float("-inf"))
    fallback = torch.zeros_like(hard).scatter(-1, scores.argmax(-1, keepdim=True), 1.0)
    return torch.where(empty, fallback, hard), p


def reference_gated_attention(attn, head, hidden_states, encoder_hidden_states, tau=0.5, neg=-1.0e4,
                              attention_mask=None):
    b, n, _ = hidden_states.shape
    t = encoder_hidden_states.shape[1]
    z = head(hidden_states, encoder_hidden_states)
    hard, p = reference_hard_gate(z, tau, reference_valid_tokens(attention_mask, b, t))
    ste = hard - p.detach() + p
    mask = ((1.0 - ste) * neg)[:, None]
    if attention_mask is not None:
        extra = attention_mask.reshape(b, 1, -1, t)
        if extra.dtype == torch.bool:
            extra = torch.zeros(extra.shape).masked_fill(~extra, neg)
        mask = mask + extra
    q = attn.to_q(hidden_states)
    k = attn.to_k(encoder_hidden_states)
    v = attn.to_v(encoder_hidden_states)
    d = k.shape[-1] // attn.heads
    q, k, v = (x.view(b, -1, attn.heads, d).transpose(1, 2) for x in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = out.transpose(1, 2).reshape(b, -1, attn.heads * d)
    return attn.to_out[1](attn.to_out[0](out)), hard
