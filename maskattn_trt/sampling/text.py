"""SDXL text conditioning: both CLIP encoders, pooled embeddings, negative prompts and micro-conditioning.

Reproduces diffusers' ``StableDiffusionXLPipeline.encode_prompt`` (penultimate hidden states of both
encoders concatenated, pooled projection of the second, zeros for an absent negative prompt when the
pipeline says ``force_zeros_for_empty_prompt``), encodes each (prompt, negative) pair once and keeps it,
and warns — naming the cut words — when a prompt is longer than the tokenizer's 77 tokens.

The encoders run through the Runner contract: eager PyTorch by default, or the ONNX Runtime / TensorRT runners
of exported ``text_encoder`` / ``text_encoder_2`` graphs (same outputs: penultimate hidden states, pooled
projection of the second). Tokenization stays with the pipeline's tokenizers.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from dataclasses import dataclass

import torch

from ..component_spec import HIDDEN_STATES, INPUT_IDS, TEXT_EMBEDS, TextEncoderIOSpec
from ..errors import BadInputError
from ..runners import EagerRunner, Runner
from ..spec import Range

_ANY_BATCH = Range(1, 1, 1 << 16)


class PromptTruncatedWarning(UserWarning):
    """A prompt was longer than the text encoders' context; the named words were dropped."""


@dataclass(frozen=True)
class TextCondition:
    """One prompt's conditioning (batch dimension 1) and the tokens the UNet attends to."""

    prompt: str
    negative: str | None
    embeds: torch.Tensor  # [1, T, cross_attention_dim]
    pooled: torch.Tensor  # [1, text_embeds_dim]
    negative_embeds: torch.Tensor
    negative_pooled: torch.Tensor
    tokens: tuple[str, ...]  # readable tokens of the prompt, BOS .. EOS (positions 0..len-1 of embeds)
    truncated: str | None = None  # the words cut off, if any


def _readable(tokenizer, ids: list[int]) -> tuple[str, ...]:
    special = {tokenizer.bos_token_id: "<start>", tokenizer.eos_token_id: "<end>"}
    out = []
    for tid in ids:
        text = special.get(tid) or tokenizer.convert_ids_to_tokens(tid).replace("</w>", "")
        out.append(text)
    return tuple(out)


class PromptEncoder:
    """Encodes prompts with a diffusers SDXL pipeline's tokenizers and text encoders.

    The last ``max_cached`` (prompt, negative) pairs are kept (least recently used dropped first), so a
    long-running server encodes a repeated prompt once without its memory growing with every new prompt.
    """

    def __init__(self, pipe, device: torch.device | str = "cpu", max_cached: int = 256,
                 runners: dict[str, Runner] | None = None):
        """``runners``: component name -> an ACTIVE runner for that text encoder (the caller activates and
        releases it); an encoder without one runs eagerly from the pipeline."""
        if pipe.tokenizer_2 is None or (pipe.text_encoder_2 is None and "text_encoder_2" not in (runners or {})):
            raise BadInputError("the pipeline has no text_encoder_2 / tokenizer_2: SDXL needs its second CLIP "
                                "encoder for the pooled embedding")
        self.pipe = pipe
        self.device = torch.device(device)
        self.pairs = []
        for component, tokenizer in (("text_encoder", pipe.tokenizer), ("text_encoder_2", pipe.tokenizer_2)):
            runner = (runners or {}).get(component)
            encoder = getattr(pipe, component, None)
            if tokenizer is None or (runner is None and encoder is None):
                continue
            if runner is None:  # eager: nothing to allocate, so it is activated here
                spec = TextEncoderIOSpec.for_encoder(component, encoder, tokens=int(tokenizer.model_max_length),
                                                     batch=_ANY_BATCH)
                runner = EagerRunner(encoder, spec).__enter__()
            self.pairs.append((tokenizer, runner))
        self.force_zeros = bool(getattr(pipe.config, "force_zeros_for_empty_prompt", True))
        self.max_cached = max_cached
        self._cache: OrderedDict[tuple[str, str | None], TextCondition] = OrderedDict()

    @property
    def max_tokens(self) -> int:
        return int(self.pairs[0][0].model_max_length)

    def cut_words(self, prompt: str) -> str | None:
        """The part of ``prompt`` beyond the tokenizers' context (None when it fits)."""
        cuts = []
        for tokenizer, _ in self.pairs:
            ids = tokenizer(prompt, truncation=False).input_ids
            limit = tokenizer.model_max_length
            if len(ids) > limit:
                text = tokenizer.decode(ids[limit - 1:-1]).strip()
                if text not in cuts:
                    cuts.append(text)
        return " | ".join(cuts) if cuts else None

    def _encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, pooled = [], None
        for tokenizer, runner in self.pairs:
            ids = tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                            return_tensors="pt").input_ids
            out = runner.infer({INPUT_IDS: ids})
            if pooled is None and TEXT_EMBEDS in out:
                pooled = out[TEXT_EMBEDS]
            hidden.append(out[HIDDEN_STATES].to(self.device))
        if pooled is None:
            raise BadInputError("no text encoder of the pipeline returns a pooled projection; SDXL's second "
                                "encoder must be a CLIPTextModelWithProjection")
        return torch.cat(hidden, dim=-1).to(self.device), pooled.to(self.device)

    def __call__(self, prompt: str, negative: str | None = None) -> TextCondition:
        key = (prompt, negative)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadInputError(f"a prompt must be non-empty text; got {prompt!r}")
        cut = self.cut_words(prompt)
        if cut:
            warnings.warn(f"prompt {prompt[:40]!r}... is longer than {self.max_tokens} tokens and was truncated; "
                          f"cut words: {cut!r}", PromptTruncatedWarning, stacklevel=2)
        with torch.inference_mode():
            embeds, pooled = self._encode(prompt)
            if negative is None and self.force_zeros:
                neg_embeds, neg_pooled = torch.zeros_like(embeds), torch.zeros_like(pooled)
            else:
                neg_embeds, neg_pooled = self._encode(negative or "")
        tokenizer = self.pairs[0][0]
        ids = tokenizer(prompt, truncation=True, max_length=tokenizer.model_max_length).input_ids
        condition = TextCondition(prompt, negative, embeds, pooled, neg_embeds, neg_pooled,
                                  _readable(tokenizer, ids), cut)
        self._cache[key] = condition
        while len(self._cache) > self.max_cached:
            self._cache.popitem(last=False)
        return condition
