"""Gate configuration (a frozen dataclass, validated on construction)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

STAGES = ("high", "mid", "low", "all")
PLACEMENTS = ("encoder", "decoder", "encoder_decoder")
TRAINING_FORMS = ("additive", "renormalized")
FLOAT32_MAX = 3.4028234663852886e38  # largest finite float32 (torch.finfo(torch.float32).max)


@dataclass(frozen=True)
class GateConfig:
    """Where MaskAttn gates go and how they behave.

    Attributes:
        stage: resolution stage gated: ``high`` (down_blocks.1 / up_blocks.1), ``mid`` (down_blocks.2 /
            up_blocks.0, the paper's default), ``low`` (mid_block) or ``all``.
        placement: ``encoder`` (down blocks), ``decoder`` (up blocks) or ``encoder_decoder`` (both; the
            mid block counts as part of either only in this placement).
        threshold: probability threshold tau of the hard gate, in [0, 1] (as the official code allows). Applied
            in logit space; 0 opens every token, 1 closes every token (each row keeps its most probable one).
        negative_value: finite additive value for closed tokens (fp16-safe; -1e4 as in the official code).
        hidden_size: hidden width h of the gate MLPs.
        share_heads: one gate head per (stage, feature width) instead of one per layer.
        training_form: ``additive`` (official: (1-G)*NEG added before softmax, STE) or ``renormalized``
            (softmax(s)*G / sum(softmax(s)*G), same forward, non-zero gradient for closed gates).
    """

    stage: str = "mid"
    placement: str = "encoder_decoder"
    threshold: float = 0.5
    negative_value: float = -1.0e4
    hidden_size: int = 128
    share_heads: bool = True
    training_form: str = "additive"

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"gate stage must be one of {', '.join(STAGES)}; got {self.stage!r}")
        if self.placement not in PLACEMENTS:
            raise ConfigError(f"gate placement must be one of {', '.join(PLACEMENTS)}; got {self.placement!r}")
        if (
            isinstance(self.threshold, bool)
            or not isinstance(self.threshold, (int, float))
            or not 0.0 <= float(self.threshold) <= 1.0
        ):
            raise ConfigError(f"gate threshold must be a probability between 0 and 1; got {self.threshold!r}")
        if not isinstance(self.negative_value, (int, float)) or not (
            -6.0e4 <= float(self.negative_value) < 0.0
        ):
            raise ConfigError(
                "gate negative_value must be negative and finite in fp16 (between -60000 and 0); "
                f"got {self.negative_value!r}"
            )
        if isinstance(self.hidden_size, bool) or not isinstance(self.hidden_size, int) or self.hidden_size <= 0:
            raise ConfigError(f"gate hidden_size must be a positive integer; got {self.hidden_size!r}")
        if not isinstance(self.share_heads, bool):
            raise ConfigError(f"gate share_heads must be true or false; got {self.share_heads!r}")
        if self.training_form not in TRAINING_FORMS:
            raise ConfigError(
                f"gate training_form must be one of {', '.join(TRAINING_FORMS)}; got {self.training_form!r}"
            )

    @property
    def threshold_logit(self) -> float:
        """logit(tau): p > tau  <=>  z > logit(tau), so inference never needs the sigmoid.

        logit(0) = -inf and logit(1) = +inf are clamped to the largest finite float32 (the gate clamps again to
        its logits' dtype): for every finite logit the comparison gives the same answer, and an exported graph
        holds a finite constant.
        """
        tau = float(self.threshold)
        if tau <= 0.0:
            return -FLOAT32_MAX
        if tau >= 1.0:
            return FLOAT32_MAX
        return math.log(tau / (1.0 - tau))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GateConfig:
        """Build from a mapping, rejecting unknown keys by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown gate config key(s) {', '.join(unknown)}; expected a subset of {', '.join(sorted(known))}"
            )
        return cls(**values)

    def replace(self, **changes: Any) -> GateConfig:
        return dataclasses.replace(self, **changes)
