"""``maskattn-trt evaluate``: measure what the gates do. Images are generated for scenes of the synthetic world
(with and without gates, on any backend), scored by its deterministic checker, and reported with bootstrap
intervals and paired differences; gate maps are compared with the objects they should select."""

from .alignment import align, alignment_counts
from .report import build_report, summarise, table
from .run import RESULT_FILE, SHEET_FILE, EvaluateRequest, evaluate
from .scenes import load_scenes
from .scoring import METRICS, Verdict, colour_distance, score
from .stats import Estimate, bootstrap_paired_difference, bootstrap_ratio

__all__ = [
    "METRICS", "RESULT_FILE", "SHEET_FILE", "Estimate", "EvaluateRequest", "Verdict", "align", "alignment_counts",
    "bootstrap_paired_difference", "bootstrap_ratio", "build_report", "colour_distance", "evaluate", "load_scenes",
    "score", "summarise", "table",
]
