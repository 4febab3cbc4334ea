r"""Performance measures of a simulation study, each with its Monte Carlo standard error.

Point measures per cell and estimator (Morris, White & Crowther 2019, Table 6), computed on
the replications of the cell where the estimator ran:

=================  ======================================  =====================================
metric             estimate                                Monte Carlo SE
=================  ======================================  =====================================
bias               mean(b) - beta                           sqrt(S^2 / m)
relative_bias      bias / beta                              MCSE(bias) / abs(beta)
mse                mean((b - beta)^2)                       sqrt(sum(((b-beta)^2 - mse)^2)
                                                            / (m(m-1)))
rmse               sqrt(mse)                                MCSE(mse) / (2 rmse)   (delta method)
empirical_se       S = sd(b)                                S / sqrt(2 (m - 1))
mean_se            mean(se)                                 sd(se) / sqrt(m)
se_ratio           mean_se / empirical_se                   ratio * sqrt(var(se) / (m mean_se^2)
                                                            + 1 / (2 (m - 1)))     (delta method)
=================  ======================================  =====================================

Interval measures (for the estimator's own interval in :data:`METRICS`, and for every interval
of the study in :data:`INTERVAL_METRICS`): an interval is *usable* when neither bound is NaN;
*unbounded* when a bound is infinite (it covers every value, so it is counted in ``coverage``
and reported beside it, issue 11.4):

=================  ======================================  =====================================
coverage           share of usable intervals covering beta  sqrt(p (1 - p) / m)
share_unbounded    share of usable intervals unbounded      sqrt(p (1 - p) / m)
coverage_bounded   coverage among bounded intervals         sqrt(p (1 - p) / m_bounded)
median_width       median of (upper - lower), unbounded     (w_(k+) - w_(k-)) / 2, order
                   ones counted as infinitely wide          statistics k+- = m/2 +- sqrt(m)/2
                   (so infinite when over half are)         (one binomial SD either side)
=================  ======================================  =====================================

``m`` (variable ``n_used``) is the number of replications a measure uses: point measures use
the replications with a finite estimate; interval measures the usable intervals (of the
replications with a finite estimate, for the estimator's own interval); ``mean_se`` and
``se_ratio`` those with a finite SE.

References
----------
.. [1] Morris, T. P., White, I. R., & Crowther, M. J. (2019). Using simulation studies to
   evaluate statistical methods. Statistics in Medicine, 38(11), 2074-2102.
   https://doi.org/10.1002/sim.8086
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

__all__ = [
    "METRICS",
    "POINT_METRICS",
    "INTERVAL_METRICS",
    "COUNTS",
    "performance",
    "interval_performance",
    "failure_counts",
]

#: measures of an estimator's point estimate and SE
POINT_METRICS: tuple[str, ...] = (
    "rmse",
    "relative_bias",
    "se_ratio",
    "bias",
    "mse",
    "empirical_se",
    "mean_se",
)
#: measures of an interval
INTERVAL_METRICS: tuple[str, ...] = (
    "coverage",
    "share_unbounded",
    "median_width",
    "coverage_bounded",
)
#: measures per estimator (its own interval's measures included), in the result's order
METRICS: tuple[str, ...] = (
    "rmse",
    "coverage",
    "relative_bias",
    "se_ratio",
    "bias",
    "mse",
    "empirical_se",
    "mean_se",
    "share_unbounded",
    "median_width",
    "coverage_bounded",
)
#: failure and flag counts per cell and estimator
COUNTS: tuple[str, ...] = (
    "n_replications",
    "n_error",
    "n_nonconverged",
    "n_nonfinite_estimate",
    "n_nonfinite_se",
    "n_warning",
    "n_pole",
    "n_degenerate",
    "n_fallback_window",
    "n_se_degenerate",
    "n_high_rhat",
    "n_low_ess",
    "n_rerun",
    "n_divergent",
)
#: boolean per-replication flags counted in :data:`COUNTS`
FLAGS: tuple[str, ...] = (
    "pole",
    "degenerate",
    "fallback_window",
    "se_degenerate",
    "high_rhat",
    "low_ess",
    "rerun",
    "divergent",
)


def _share(hit: np.ndarray) -> tuple[float, float, int]:
    m = int(hit.size)
    if m == 0:
        return np.nan, np.nan, 0
    p = float(hit.mean())
    return p, float(np.sqrt(p * (1.0 - p) / m)), m


def _median_with_mcse(width: np.ndarray) -> tuple[float, float]:
    """Median of `width` (may hold +inf) and its order-statistic Monte Carlo SE."""
    m = width.size
    if m == 0:
        return np.nan, np.nan
    w = np.sort(width)
    med = float(np.median(w)) if np.isfinite(w[(m - 1) // 2]) and np.isfinite(w[m // 2]) else np.inf
    if m < 2 or not np.isfinite(med):
        return med, np.nan
    half = np.sqrt(m) / 2.0
    lo = int(np.clip(np.floor(m / 2.0 - half), 0, m - 1))
    hi = int(np.clip(np.ceil(m / 2.0 + half) - 1, 0, m - 1))
    return med, float((w[hi] - w[lo]) / 2.0)


def interval_performance(
    ci_lower: np.ndarray, ci_upper: np.ndarray, truth: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coverage, share unbounded, median width and coverage among bounded intervals.

    Parameters
    ----------
    ci_lower, ci_upper : numpy.ndarray, shape (m,)
        Interval bounds; NaN marks a missing interval (not counted), +-inf an unbounded one.
    truth : float
        True value of the parameter.

    Returns
    -------
    value, mcse : numpy.ndarray, shape (len(INTERVAL_METRICS),)
    n_used : numpy.ndarray of int, shape (len(INTERVAL_METRICS),)

    Examples
    --------
    >>> lo = np.array([0.0, -np.inf, 0.6, 0.2])
    >>> hi = np.array([1.0, 0.9, 1.0, np.inf])
    >>> v, s, m = interval_performance(lo, hi, 0.5)
    >>> dict(zip(INTERVAL_METRICS, v.round(3).tolist()))
    {'coverage': 0.75, 'share_unbounded': 0.5, 'median_width': inf, 'coverage_bounded': 0.5}
    """
    lo = np.asarray(ci_lower, dtype=float)
    hi = np.asarray(ci_upper, dtype=float)
    ok = ~np.isnan(lo) & ~np.isnan(hi)
    lo, hi = lo[ok], hi[ok]
    bounded = np.isfinite(lo) & np.isfinite(hi)
    hit = (lo <= truth) & (truth <= hi)
    val, mc, used = {}, {}, {}
    val["coverage"], mc["coverage"], used["coverage"] = _share(hit)
    val["share_unbounded"], mc["share_unbounded"], used["share_unbounded"] = _share(~bounded)
    val["coverage_bounded"], mc["coverage_bounded"], used["coverage_bounded"] = _share(hit[bounded])
    with np.errstate(invalid="ignore"):
        width = np.where(bounded, hi - lo, np.inf)
    val["median_width"], mc["median_width"] = _median_with_mcse(width)
    used["median_width"] = int(width.size)
    return (
        np.array([val[k] for k in INTERVAL_METRICS], dtype=float),
        np.array([mc[k] for k in INTERVAL_METRICS], dtype=float),
        np.array([used[k] for k in INTERVAL_METRICS], dtype=np.int64),
    )


def _point_measures(b: np.ndarray, truth: float) -> tuple[dict, dict]:
    val: dict[str, float] = {}
    mc: dict[str, float] = {}
    m = b.size
    if m >= 1:
        err = b - truth
        bias = float(err.mean())
        mse = float(np.mean(err * err))
        val["bias"], val["mse"], val["rmse"] = bias, mse, float(np.sqrt(mse))
        val["relative_bias"] = bias / truth if truth != 0 else np.nan
    if m >= 2:
        s = float(np.std(b, ddof=1))
        val["empirical_se"] = s
        mc["bias"] = s / np.sqrt(m)
        mc["relative_bias"] = mc["bias"] / abs(truth) if truth != 0 else np.nan
        sq = (b - truth) ** 2
        mc["mse"] = float(np.sqrt(np.sum((sq - val["mse"]) ** 2) / (m * (m - 1))))
        mc["rmse"] = mc["mse"] / (2.0 * val["rmse"]) if val["rmse"] > 0 else np.nan
        mc["empirical_se"] = s / np.sqrt(2.0 * (m - 1))
    return val, mc


def _se_measures(estimate: np.ndarray, se: np.ndarray) -> tuple[dict, dict, int]:
    val: dict[str, float] = {}
    mc: dict[str, float] = {}
    ms = int(se.size)
    if ms >= 1:
        val["mean_se"] = float(se.mean())
    if ms >= 2:
        sd_se = float(np.std(se, ddof=1))
        mc["mean_se"] = sd_se / np.sqrt(ms)
        emp = float(np.std(estimate, ddof=1))
        ratio = val["mean_se"] / emp if emp > 0 else np.nan
        val["se_ratio"] = ratio
        mc["se_ratio"] = abs(ratio) * float(
            np.sqrt(sd_se**2 / (ms * val["mean_se"] ** 2) + 1.0 / (2.0 * (ms - 1)))
        )
    return val, mc, ms


def performance(
    estimate: np.ndarray,
    se: np.ndarray,
    ci_lower: np.ndarray,
    ci_upper: np.ndarray,
    truth: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quality measures of one estimator in one cell, with Monte Carlo SEs.

    Parameters
    ----------
    estimate, se, ci_lower, ci_upper : numpy.ndarray, shape (m,)
        Per-replication results (NaN where the estimator did not run or failed).
    truth : float
        True value of the parameter.

    Returns
    -------
    value, mcse : numpy.ndarray, shape (len(METRICS),)
        Measures and their Monte Carlo SEs (in the order of :data:`METRICS`).
    n_used : numpy.ndarray of int, shape (len(METRICS),)
        Number of replications each measure uses.

    References
    ----------
    Morris, T. P., White, I. R., & Crowther, M. J. (2019). Using simulation studies to evaluate
    statistical methods. Statistics in Medicine, 38(11), 2074-2102.
    https://doi.org/10.1002/sim.8086

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> b = 0.5 + rng.normal(0, 0.1, 10_000)
    >>> v, s, m = performance(b, np.full(10_000, 0.1), b - 0.196, b + 0.196, 0.5)
    >>> dict(zip(METRICS, v.round(2)))["coverage"]
    np.float64(0.95)
    """
    estimate = np.asarray(estimate, dtype=float)
    se = np.asarray(se, dtype=float)
    val = dict.fromkeys(METRICS, np.nan)
    mc = dict.fromkeys(METRICS, np.nan)
    used = dict.fromkeys(METRICS, 0)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ok = np.isfinite(estimate)
        v, s = _point_measures(estimate[ok], truth)
        val.update(v)
        mc.update(s)
        for k in ("bias", "relative_bias", "mse", "rmse", "empirical_se"):
            used[k] = int(ok.sum())
        iv, imc, iused = interval_performance(
            np.asarray(ci_lower, float)[ok], np.asarray(ci_upper, float)[ok], truth
        )
        for i, k in enumerate(INTERVAL_METRICS):
            val[k], mc[k], used[k] = float(iv[i]), float(imc[i]), int(iused[i])
        oks = ok & np.isfinite(se)
        v, s, ms = _se_measures(estimate[oks], se[oks])
        val.update(v)
        mc.update(s)
        used["mean_se"] = used["se_ratio"] = ms
    return (
        np.array([val[k] for k in METRICS], dtype=float),
        np.array([mc[k] for k in METRICS], dtype=float),
        np.array([used[k] for k in METRICS], dtype=np.int64),
    )


def failure_counts(r: Mapping[str, np.ndarray]) -> np.ndarray:
    """Count :data:`COUNTS` in one estimator's per-replication arrays of one cell."""
    ran = r["ran"]
    ok = ran & ~r["error"]
    c = {
        "n_replications": ran.sum(),
        "n_error": (ran & r["error"]).sum(),
        "n_nonconverged": (ok & r["nonconverged"]).sum(),
        "n_nonfinite_estimate": (ok & ~np.isfinite(r["estimate"])).sum(),
        "n_nonfinite_se": (ok & ~np.isfinite(r["se"])).sum(),
        "n_warning": (ran & r["warning"]).sum(),
    }
    for flag in FLAGS:
        c[f"n_{flag}"] = (ran & r[flag]).sum() if flag in r else 0
    return np.array([int(c[k]) for k in COUNTS], dtype=np.int64)
