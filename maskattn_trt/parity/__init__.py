"""Parity harness: the same feeds through several runners, explicit tolerances, a report (table / JSON)."""

from .compare import CaseResult, GateStats, OutputStats, ParityReport, compare_runners, tolerances_for
from .feeds import PROMPTS, parity_feeds, parity_shapes, prompt_feed
from .from_export import ParityRequest, reference_unet, run_parity

__all__ = [
    "PROMPTS",
    "CaseResult",
    "GateStats",
    "OutputStats",
    "ParityReport",
    "ParityRequest",
    "compare_runners",
    "parity_feeds",
    "parity_shapes",
    "prompt_feed",
    "reference_unet",
    "run_parity",
    "tolerances_for",
]
