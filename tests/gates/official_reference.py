"""An independent re-statement of the official MaskAttn-SDXL gate semantics, used only as a test oracle.

It follows the paper's formulation literally, in probability space: p = sigmoid(z); G = [p > tau]; a row
with no open token keeps argmax p; STE gate ``G - p.detach() + p``; additive mask (1 - G_ste) * NEG added
to the scaled logits of every head before softmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reference_gated_attention(attn, head, hidden_states, encoder_hidden_states, tau=0.5, neg=-1.0e4):
    b, n, _ = hidden_states.shape
    z = head(hidden_states, encoder_hidden_states)
    p = torch.sigmoid(z)
    hard = (p > tau).float()
    empty = hard.sum(-1, keepdim=True) == 0
    fallback = torch.zeros_like(hard).scatter(-1, p.argmax(-1, keepdim=True), 1.0)
    hard = torch.where(empty, fallback, hard)
    ste = hard - p.detach() + p
    mask = ((1.0 - ste) * neg)[:, None]
    q = attn.to_q(hidden_states)
    k = attn.to_k(encoder_hidden_states)
    v = attn.to_v(encoder_hidden_states)
    d = k.shape[-1] // attn.heads
    q, k, v = (t.view(b, -1, attn.heads, d).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = out.transpose(1, 2).reshape(b, -1, attn.heads * d)
    return attn.to_out[1](attn.to_out[0](out)), hard
