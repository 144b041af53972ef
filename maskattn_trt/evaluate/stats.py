"""Bootstrap intervals for ratio metrics over evaluation units (one unit = one prompt x seed image).

Every metric here is a ratio of sums over units: each unit contributes a numerator and a denominator (object
recall: objects found / objects asked for; a mean: value / 1). The point estimate is sum(num) / sum(den) over all
units; the interval resamples the UNITS with replacement (``resamples`` times, percentile method, from a
``numpy.random.default_rng(seed)``), so images with more objects weigh more, exactly as in the point estimate.

A paired difference (A - B) resamples the SAME unit indices for both sides: the interval of the difference of
two conditions measured on the same prompt x seed pairs is much narrower than the two separate intervals suggest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap interval (None where no unit has a denominator)."""

    value: float | None
    low: float | None
    high: float | None
    units: int  # units with a non-zero denominator

    def to_dict(self) -> dict:
        def r(x):
            return None if x is None else round(float(x), 6)

        return {"value": r(self.value), "ci95": [r(self.low), r(self.high)], "units": self.units}

    def text(self, percent: bool = True) -> str:
        if self.value is None:
            return "n/a"
        scale, unit = (100.0, "%") if percent else (1.0, "")
        return f"{self.value * scale:.1f}{unit} [{self.low * scale:.1f}, {self.high * scale:.1f}]"


def _indices(units: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, units, size=(resamples, units))


def _ratios(num: np.ndarray, den: np.ndarray, idx: np.ndarray) -> np.ndarray:
    n, d = num[idx].sum(axis=1), den[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d > 0, n / np.where(d > 0, d, 1), np.nan)


def _interval(samples: np.ndarray, level: float) -> tuple[float | None, float | None]:
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return None, None
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def _arrays(num, den) -> tuple[np.ndarray, np.ndarray]:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    if num.shape != den.shape or num.ndim != 1:
        raise ValueError(f"numerators and denominators must be 1-D and of one length; got {num.shape}, {den.shape}")
    return num, den


def bootstrap_ratio(num, den, *, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> Estimate:
    """sum(num) / sum(den) with a percentile bootstrap interval over units."""
    num, den = _arrays(num, den)
    units = int((den > 0).sum())
    if units == 0:
        return Estimate(None, None, None, 0)
    value = float(num.sum() / den.sum())
    low, high = _interval(_ratios(num, den, _indices(len(num), resamples, seed)), level)
    return Estimate(value, low, high, units)


def bootstrap_paired_difference(num_a, den_a, num_b, den_b, *, resamples: int = RESAMPLES, seed: int = 0,
                                level: float = LEVEL) -> Estimate:
    """ratio(A) - ratio(B) over the same units (unit i of A and of B are the same prompt x seed), resampled
    together."""
    num_a, den_a = _arrays(num_a, den_a)
    num_b, den_b = _arrays(num_b, den_b)
    if len(num_a) != len(num_b):
        raise ValueError(f"paired samples need the same units; got {len(num_a)} and {len(num_b)}")
    units = int(((den_a > 0) & (den_b > 0)).sum())
    if den_a.sum() <= 0 or den_b.sum() <= 0:
        return Estimate(None, None, None, units)
    value = float(num_a.sum() / den_a.sum() - num_b.sum() / den_b.sum())
    idx = _indices(len(num_a), resamples, seed)
    low, high = _interval(_ratios(num_a, den_a, idx) - _ratios(num_b, den_b, idx), level)
    return Estimate(value, low, high, units)
