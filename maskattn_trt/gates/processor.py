"""The gated cross-attention processor (a diffusers attention processor that is an nn.Module).

It reproduces diffusers' ``AttnProcessor2_0`` for an ``attn2`` layer and adds the MaskAttn gate to the
attention logits before softmax. Because it is an ``nn.Module`` installed as ``attn.processor``, its gate
head's weights appear in the UNet ``state_dict`` under ``<site>.processor.gate_head.*`` (as diffusers'
IP-Adapter processors do).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import GateConfig
from ..errors import BadInputError
from .head import GateHead, additive_mask, hard_gate, straight_through

# An additive encoder mask entry at or below this drops its token (diffusers writes -10000 for padding; the
# official code uses the same cut).
_MASKED_BIAS = -1.0e3


def valid_tokens(attention_mask: Tensor, batch: int, tokens: int, site: str = "") -> Tensor | None:
    """[B, T] bool: which text tokens an encoder attention mask lets the gate open.

    diffusers passes ``encoder_attention_mask`` to ``attn2`` as an additive bias [B, 1, T] (0 keep, -10000
    padding); a bool mask means True = keep. Leading query / head dimensions are reduced: a token counts as
    valid if any row may attend to it. Returns None for a mask whose shape does not name [B, T] tokens (it is
    still added to the attention logits, but says nothing per token).
    """
    mask = attention_mask
    while mask.ndim > 2:
        mask = mask.amax(dim=1) if mask.dtype != torch.bool else mask.any(dim=1)
    if tuple(mask.shape) != (batch, tokens):
        return None
    valid = mask if mask.dtype == torch.bool else mask > _MASKED_BIAS
    if not bool(valid.any(dim=-1).all()):
        raise BadInputError(
            f"the encoder attention mask at {site or 'a gated layer'} leaves a batch item with no valid text token; "
            "every prompt needs at least one unmasked token"
        )
    return valid


class MaskAttnProcessor(nn.Module):
    """Gated cross-attention for one diffusers ``Attention`` module.

    Attributes set at run time (not saved):
        force_open: skip the gate entirely (stock attention); used for stock-equivalent exports and tests.
        record: keep the last hard gate [B, N, T] in ``last_gate`` (for gate maps and export outputs).
        keep_logits: keep the last gate logits [B, N, T], with their autograd graph, in ``last_logits`` (for
            a training loss on the logits themselves: ``train.mask_weight``).
    """

    def __init__(self, gate_head: GateHead, config: GateConfig, site: str):
        super().__init__()
        self.gate_head = gate_head
        self.site = site
        self.threshold_logit = config.threshold_logit
        self.negative_value = float(config.negative_value)
        self.training_form = config.training_form
        self.force_open = False
        self.record = False
        self.last_gate: Tensor | None = None
        self.keep_logits = False
        self.last_logits: Tensor | None = None

    def gate(self, features: Tensor, tokens: Tensor, valid: Tensor | None = None) -> Tensor:
        """The gate used in the forward pass: hard 0/1 values, with an STE gradient when training.

        ``valid`` [B, T]: tokens an encoder attention mask keeps (None: all); the others stay closed.
        """
        logits = self.gate_head(features, tokens)
        if self.keep_logits:
            self.last_logits = logits
        gate = hard_gate(logits, self.threshold_logit, valid)
        if torch.is_grad_enabled() and self.gate_head.logit_bias.requires_grad:
            gate = straight_through(gate, logits, valid)
        return gate

    def __call__(  # noqa: D401 - diffusers processor signature
        self,
        attn,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        *args,
        **kwargs,
    ) -> Tensor:
        if encoder_hidden_states is None:
            raise RuntimeError(
                f"MaskAttnProcessor at {self.site} got no encoder_hidden_states: it only works on "
                "cross-attention (attn2) layers"
            )
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        batch, tokens, _ = encoder_hidden_states.shape

        # The gate reads the attention input detached: with the additive form, d(mask)/d(gate) = -NEG = 1e4,
        # so letting that gradient flow back into the activations compounds it by 1e4 at every gated site
        # upstream and overflows to inf/NaN (measured: 16 sites of the tiny UNet, stage=all). The backbone is
        # frozen, so only this cross-site second-order path is lost; each gate still gets the gradient of its
        # own attention, and earlier gates the ordinary gradient through later layers' attention outputs.
        gate_features, gate_tokens = hidden_states.detach(), encoder_hidden_states.detach()
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        mask = valid = None
        if attention_mask is not None:
            valid = valid_tokens(attention_mask, batch, tokens, self.site)
            mask = attn.prepare_attention_mask(attention_mask, tokens, batch)
            mask = mask.view(batch, attn.heads, -1, mask.shape[-1])
            if mask.dtype == torch.bool:  # a keep-mask: True attends, False gets the closed-gate bias
                mask = torch.zeros(mask.shape, dtype=query.dtype, device=query.device).masked_fill(
                    ~mask, self.negative_value
                )
            mask = mask.to(query.dtype)

        if self.force_open:
            gate = None
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        else:
            # (valid only when there is a mask: wrappers of ``gate`` such as recording_gate_margins take two args)
            gate = self.gate(gate_features, gate_tokens) if valid is None else self.gate(gate_features, gate_tokens,
                                                                                         valid=valid)
            if self.training_form == "renormalized" and gate.requires_grad:
                out = self._renormalized_attention(query, key, value, gate, mask)
            else:
                gate_mask = additive_mask(gate, self.negative_value).to(query.dtype)
                mask = gate_mask if mask is None else mask + gate_mask
                if gate_mask.requires_grad:
                    # Training: SDPA would have to return a gradient for this [B, 1, N, T] bias, and CUDA's
                    # memory-efficient kernel fails on it ("LSE is not correctly aligned (strideH)", torch 2.11,
                    # H100). The explicit form is the same math; its [B, heads, N, T] scores are small (T = 77).
                    out = self._explicit_attention(query, key, value, mask)
                else:
                    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        if self.record:
            self.last_gate = (
                gate.detach() if gate is not None else torch.ones(batch, query.shape[2], tokens, device=query.device)
            )

        hidden_states = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor

    @staticmethod
    def _explicit_attention(query, key, value, mask):
        """softmax(QK^T * scale + mask) V, the softmax in fp32."""
        scores = torch.matmul(query, key.transpose(-1, -2)) * query.shape[-1] ** -0.5 + mask
        return torch.matmul(torch.softmax(scores.float(), dim=-1).to(value.dtype), value)

    @staticmethod
    def _renormalized_attention(query, key, value, gate, mask):
        """softmax(s) * G / sum(softmax(s) * G): equals softmax(s + log G) forward, but d/dG != 0 at G = 0."""
        scores = torch.matmul(query, key.transpose(-1, -2)) * query.shape[-1] ** -0.5
        if mask is not None:
            scores = scores + mask
        weights = torch.softmax(scores, dim=-1) * gate.unsqueeze(1).to(scores.dtype)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        return torch.matmul(weights, value)
