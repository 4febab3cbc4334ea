"""Interval measures: coverage beside share unbounded, median width, bounded coverage."""

import numpy as np
import pytest

from mlob_pp.comparisons.study.metrics import (
    INTERVAL_METRICS,
    METRICS,
    interval_performance,
    performance,
)


def _d(v):
    return dict(zip(INTERVAL_METRICS, v, strict=True))


def test_interval_measures_by_hand():
    lo = np.array([0.0, -np.inf, 0.6, 0.2, 0.45, np.nan])
    hi = np.array([1.0, 0.9, 1.0, np.inf, 0.65, 1.0])
    v, s, m = interval_performance(lo, hi, 0.5)
    v, s, m = _d(v), _d(s), _d(m)
    # usable: the first five (NaN bound dropped); unbounded: 2 of 5
    assert m["coverage"] == m["share_unbounded"] == m["median_width"] == 5
    assert v["coverage"] == pytest.approx(4 / 5)  # all but [0.6, 1.0]
    assert s["coverage"] == pytest.approx(np.sqrt(0.8 * 0.2 / 5))
    assert v["share_unbounded"] == pytest.approx(2 / 5)
    # bounded: [0, 1] covers, [0.6, 1] does not, [0.45, 0.65] covers
    assert m["coverage_bounded"] == 3 and v["coverage_bounded"] == pytest.approx(2 / 3)
    # widths 1.0, inf, 0.4, inf, 0.2 -> median 1.0
    assert v["median_width"] == pytest.approx(1.0)


def test_median_width_is_infinite_when_most_intervals_are_unbounded():
    lo = np.array([-np.inf, -np.inf, 0.0])
    hi = np.array([1.0, np.inf, 1.0])
    v, s, _m = interval_performance(lo, hi, 0.5)
    assert _d(v)["median_width"] == np.inf and np.isnan(_d(s)["median_width"])
    assert _d(v)["coverage"] == 1.0 and _d(v)["coverage_bounded"] == 1.0


def test_nothing_usable():
    v, s, m = interval_performance(np.full(3, np.nan), np.ones(3), 0.5)
    assert np.isnan(v).all() and (m == 0).all()


def test_median_width_mcse_matches_the_spread_of_replicate_studies():
    rng = np.random.default_rng(3)
    meds, ses = [], []
    for _ in range(500):
        w = rng.gamma(4.0, 0.1, 300)
        c = rng.normal(0.5, 0.1, 300)
        v, s, _m = interval_performance(c - w / 2, c + w / 2, 0.5)
        meds.append(_d(v)["median_width"])
        ses.append(_d(s)["median_width"])
    assert np.mean(ses) == pytest.approx(np.std(meds, ddof=1), rel=0.15)


def test_estimator_metrics_carry_the_interval_measures():
    est = np.array([0.4, 0.5, 0.6, np.nan])
    lo = np.array([0.3, -np.inf, 0.55, 0.0])
    hi = np.array([0.45, np.inf, 0.7, 1.0])
    v, _s, m = performance(est, np.full(4, 0.1), lo, hi, 0.5)
    v, m = dict(zip(METRICS, v, strict=True)), dict(zip(METRICS, m, strict=True))
    # the replication without an estimate is left out of every measure
    assert m["coverage"] == 3 and v["coverage"] == pytest.approx(1 / 3)
    assert v["share_unbounded"] == pytest.approx(1 / 3)
    assert v["coverage_bounded"] == 0.0
    assert v["median_width"] == pytest.approx(0.15)
