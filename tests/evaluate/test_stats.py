"""Bootstrap intervals on known data: ratio of sums over units, paired differences over the same units."""

from __future__ import annotations

import numpy as np

from maskattn_trt.evaluate import bootstrap_paired_difference, bootstrap_ratio


def test_all_pass_gives_one_one_and_all_fail_zero_zero():
    est = bootstrap_ratio([2, 3, 1, 2], [2, 3, 1, 2])
    assert (est.value, est.low, est.high, est.units) == (1.0, 1.0, 1.0, 4)
    est = bootstrap_ratio([0, 0, 0], [1, 2, 3])
    assert (est.value, est.low, est.high) == (0.0, 0.0, 0.0)


def test_known_proportion_is_covered_and_interval_shrinks_with_units():
    rng = np.random.default_rng(7)
    widths = []
    for units in (100, 1600):
        hits = (rng.random(units) < 0.3).astype(float)
        est = bootstrap_ratio(hits, np.ones(units), resamples=2000, seed=3)
        assert est.low <= 0.3 <= est.high, (units, est)
        assert est.low < est.value < est.high
        # the binomial standard error: a 95 % interval is about +-1.96 sigma
        sigma = np.sqrt(0.3 * 0.7 / units)
        assert 0.7 * 3.92 * sigma < est.high - est.low < 1.3 * 3.92 * sigma
        widths.append(est.high - est.low)
    assert widths[1] < widths[0] / 3


def test_seeded_and_ratio_of_sums():
    num, den = [1, 0, 2, 1], [2, 1, 2, 3]
    a, b = bootstrap_ratio(num, den, seed=5), bootstrap_ratio(num, den, seed=5)
    assert a == b and a.value == 4 / 8
    assert bootstrap_ratio([0, 0], [0, 0]).value is None  # no unit has a denominator
    assert bootstrap_ratio([1, 0], [1, 0]).units == 1


def test_paired_difference_sign_and_pairing():
    units = 200
    rng = np.random.default_rng(0)
    b = (rng.random(units) < 0.5).astype(float)
    a = np.maximum(b, (rng.random(units) < 0.4).astype(float))  # A passes wherever B does, and more
    ones = np.ones(units)
    diff = bootstrap_paired_difference(a, ones, b, ones, seed=1)
    assert diff.value == a.mean() - b.mean() > 0 and diff.low > 0
    reverse = bootstrap_paired_difference(b, ones, a, ones, seed=1)
    assert reverse.high < 0 and np.isclose(reverse.value, -diff.value)
    same = bootstrap_paired_difference(a, ones, a, ones)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)  # paired: identical conditions never differ
    # pairing matters: the paired interval is narrower than the difference of unpaired intervals suggests
    ea, eb = bootstrap_ratio(a, ones, seed=1), bootstrap_ratio(b, ones, seed=1)
    assert diff.high - diff.low < (ea.high - ea.low) + (eb.high - eb.low)
