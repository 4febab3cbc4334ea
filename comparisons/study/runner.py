r"""Simulation studies: closed-form MLOB versus ML versus MCMC over a factorial design.

For every cell of a design (:mod:`mlob_pp.comparisons.study.design`) and replication
``r = 0..R-1`` a data set is drawn from the latent covariate model (Lüdtke et al. 2008)::

    X_ij = mu_b_j + e_ij;   Y_ij = beta_w (X_ij - mu_b_j) + beta_b mu_b_j + gamma C_ij
                                   + delta_j + eps_ij

and each estimator returns an estimate of ``beta_b``, its standard error and a nominal
``conf_level`` interval. Estimators (names shared across mlob_pp):

``"mlob"``
    regularized closed-form MLOB (:func:`mlob_pp.mlob_batch`, batched over replications);
``"ml_moments"``
    R MLOB's "ML" column, the moment ratio on the covariate-adjusted outcome (same call);
``"ml"``
    true maximum likelihood of the latent covariate model (:func:`mlob_pp.fit_ml`), one fit per
    replication, on a configurable subset of cells and replications;
``"mcmc"``
    full MCMC of the PyMC model (:func:`mlob_pp.fit_mcmc`), on a (small) configurable subset.

Users can add their own estimator: any function ``f(y, x, covariates, *, conf_level)``
taking arrays shaped (B, J, n), (B, J, n), (B, J, n, k) and returning a mapping with arrays
(B,) ``"estimate"``, ``"se"`` and optionally ``"ci_lower"``, ``"ci_upper"`` (default: Wald),
``"converged"`` (bool) and flags ``"pole"``, ``"degenerate"``, ``"fallback_window"``,
``"se_degenerate"`` (bool). With Dask the function is pickled to the workers: define it in an
importable module, or interactively (then it is shipped by value).

Quality per cell and estimator, each with its Monte Carlo standard error (Morris, White &
Crowther 2019, Table 6), computed on the replications of the cell where the estimator ran:

================  ======================================  =========================================
metric            estimate                                Monte Carlo SE
================  ======================================  =========================================
bias              mean(b) - beta                           sqrt(S^2 / m)
relative_bias     bias / beta                              MCSE(bias) / abs(beta)
mse               mean((b - beta)^2)                       sqrt(sum(((b-beta)^2 - mse)^2)/(m(m-1)))
rmse              sqrt(mse)                                MCSE(mse) / (2 rmse)      (delta method)
empirical_se      S = sd(b)                                S / sqrt(2 (m - 1))
mean_se           mean(se)                                 sd(se) / sqrt(m)
se_ratio          mean_se / empirical_se                   ratio * sqrt(var(se) / (m mean_se^2)
                                                           + 1 / (2 (m - 1)))        (delta method)
coverage          mean(ci_lower <= beta <= ci_upper)       sqrt(p (1 - p) / m)
================  ======================================  =========================================

``m`` (variable ``n_used``) is the number of replications a metric uses: point metrics use the
replications with a finite estimate; coverage those whose interval bounds are not NaN (an
infinite interval covers); ``mean_se`` and ``se_ratio`` those with a finite SE. Failures are
counted per cell and estimator in ``counts`` (errors, non-convergence, non-finite estimates or
SEs, fits that warned, and the closed form's flags), never silently dropped.

Seeding and chunking: the data of replication r of a cell depend only on the root seed, the
cell's parameters and r (:func:`mlob_pp.comparisons.study.design.simulate_replications`), and every
metric is computed once, from all replications of the cell in order. So a run gives identical
results whatever the ``chunk_size``, with or without Dask, and after being resumed from a
checkpoint.

References
----------
.. [1] Morris, T. P., White, I. R., & Crowther, M. J. (2019). Using simulation studies to
   evaluate statistical methods. Statistics in Medicine, 38(11), 2074-2102.
   https://doi.org/10.1002/sim.8086
.. [2] Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B.
   (2008). The multilevel latent covariate model. Psychological Methods, 13(3), 203-229.
   https://doi.org/10.1037/a0012869
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlob_pp.comparisons.study.design import (
    Design,
    as_design,
    cell_key,
    frame_from_arrays,
    implied_icc_y,
    simulate_replications,
)

__all__ = [
    "ESTIMATORS",
    "METRICS",
    "COUNTS",
    "DEFAULT_SUBSETS",
    "ChunkInfo",
    "run_study",
    "performance",
    "save_study",
    "load_study",
    "closed_form_estimators",
    "ml_estimator",
    "mcmc_estimator",
]

#: built-in estimator names
ESTIMATORS: tuple[str, ...] = ("mlob", "ml_moments", "ml", "mcmc")
#: quality measures (the issue's four first)
METRICS: tuple[str, ...] = (
    "rmse",
    "coverage",
    "relative_bias",
    "se_ratio",
    "bias",
    "mse",
    "empirical_se",
    "mean_se",
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
)
_FLAGS = ("pole", "degenerate", "fallback_window", "se_degenerate")
_FIELDS = ("estimate", "se", "ci_lower", "ci_upper")
_BOOLS = ("ran", "error", "nonconverged", "warning", *_FLAGS)
_CLOSED_FORM = ("mlob", "ml_moments")
#: subsets on which the per-replication arms run unless told otherwise
DEFAULT_SUBSETS: dict[str, dict[str, Any]] = {
    "ml": {"replications": 100, "cells": None},
    "mcmc": {"replications": 10, "cells": None},
}
_MCMC_DEFAULTS = {"draws": 500, "tune": 500, "chains": 2, "rhat_max": 1.05}
_FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------------
# estimators


def _wald(estimate: np.ndarray, se: np.ndarray, conf_level: float) -> tuple[np.ndarray, ...]:
    from scipy.special import ndtri

    zq = float(ndtri(0.5 + conf_level / 2.0))
    with np.errstate(invalid="ignore", over="ignore"):
        return estimate - zq * se, estimate + zq * se


def closed_form_estimators(
    y: np.ndarray,
    x: np.ndarray,
    covariates: np.ndarray | None,
    *,
    conf_level: float = 0.95,
    mode: str = "r",
) -> dict[str, dict[str, np.ndarray]]:
    """Fit MLOB and the moment ratio to B data sets with one :func:`mlob_pp.mlob_batch` call.

    Returns ``{"mlob": {...}, "ml_moments": {...}}`` in the plug-in format (see the module
    docstring). The estimator's warnings are switched off; its flags are returned instead.
    """
    from mlob_pp.closed_form.core import mlob_batch

    with np.errstate(all="ignore"):
        res = mlob_batch(y, x, covariates, conf_level=conf_level, mode=mode, warn=False)
    return {
        "mlob": {
            "estimate": res.beta_b,
            "se": res.se_beta_b,
            "ci_lower": res.ci_lower,
            "ci_upper": res.ci_upper,
            "pole": res.pole,
            "degenerate": res.degenerate,
            "fallback_window": res.fallback_window,
        },
        "ml_moments": {
            "estimate": res.beta_b_ml,
            "se": res.se_beta_b_ml,
            "ci_lower": res.ci_lower_ml,
            "ci_upper": res.ci_upper_ml,
            "se_degenerate": res.se_ml_degenerate,
        },
    }


def _formula(k: int) -> str:
    return "Y ~ X" + ("" if k == 0 else " + C" if k == 1 else "".join(f" + C{i + 1}"
                                                                        for i in range(k)))


def ml_estimator(
    y: np.ndarray, x: np.ndarray, covariates: np.ndarray | None, *, conf_level: float = 0.95
) -> dict[str, np.ndarray]:
    """Fit true ML of the latent covariate model, one :func:`mlob_pp.fit_ml` per data set.

    Returns the plug-in format; the interval is Wald at `conf_level`, ``converged`` is the
    fit's flag and ``warning`` marks fits that emitted a warning.
    """
    from mlob_pp import fit_ml

    return _per_dataset(
        lambda df, i: fit_ml(_formula(_k(covariates)), df, "group"),
        _ml_extract, y, x, covariates, conf_level=conf_level,
    )


def _k(covariates: np.ndarray | None) -> int:
    return 0 if covariates is None else int(covariates.shape[-1])


def _ml_extract(fit: Any, conf_level: float) -> tuple[float, float, float, float, bool]:
    est = float(fit.coef["beta_b"])
    se = float(fit.se["beta_b"])
    lo, hi = _wald(np.float64(est), np.float64(se), conf_level)
    return est, se, float(lo), float(hi), bool(getattr(fit, "converged", True))


def mcmc_estimator(
    y: np.ndarray,
    x: np.ndarray,
    covariates: np.ndarray | None,
    *,
    conf_level: float = 0.95,
    random_seeds: Sequence[int] | None = None,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    rhat_max: float = 1.05,
) -> dict[str, np.ndarray]:
    """Full MCMC of the PyMC latent covariate model, one :func:`mlob_pp.fit_mcmc` per data set.

    The estimate is the posterior mean of ``beta_b``, the SE its posterior SD and the interval
    the equal-tailed `conf_level` credible interval; ``converged`` means R-hat of ``beta_b``
    <= `rhat_max`; fits that warned (e.g. divergences) are marked in ``warning``.
    """
    from mlob_pp import fit_mcmc

    seeds = list(random_seeds) if random_seeds is not None else [None] * len(y)

    def fit(df: Any, i: int) -> Any:
        return fit_mcmc(_formula(_k(covariates)), df, "group", draws=draws, tune=tune,
                        chains=chains, random_seed=seeds[i], conf_level=conf_level)

    def extract(res: Any, level: float) -> tuple[float, float, float, float, bool]:
        return _mcmc_extract(res, level, rhat_max)

    return _per_dataset(fit, extract, y, x, covariates, conf_level=conf_level)


def _mcmc_extract(res: Any, conf_level: float, rhat_max: float):
    row = res.summary(conf_level).loc["beta_b"]
    rhat = float(row.get("r_hat", np.nan))
    converged = bool(rhat <= rhat_max) if np.isfinite(rhat) else False
    return (float(row["estimate"]), float(row["std_error"]), float(row["ci_lower"]),
            float(row["ci_upper"]), converged)


def _per_dataset(fit, extract, y, x, covariates, *, conf_level):
    """Run `fit` on each data set as a DataFrame; errors and warnings are recorded per row."""
    B = len(y)
    out = {f: np.full(B, np.nan) for f in _FIELDS}
    out["converged"] = np.ones(B, dtype=bool)
    out["error"] = np.zeros(B, dtype=bool)
    out["warning"] = np.zeros(B, dtype=bool)
    for i in range(B):
        cov = None if covariates is None else covariates[i]
        df = frame_from_arrays(y[i], x[i], cov if cov is not None else np.empty(y[i].shape + (0,)))
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                res = fit(df, i)
                vals = extract(res, conf_level)
        except Exception:  # noqa: BLE001 - a failed fit is a counted failure, not a crash
            out["error"][i] = True
            continue
        out["warning"][i] = len(caught) > 0
        for f, v in zip(_FIELDS, vals[:4], strict=True):
            out[f][i] = v
        out["converged"][i] = vals[4]
    return out


# ---------------------------------------------------------------------------------------------
# one chunk of work (runs in this process or on a Dask worker)


@dataclass(frozen=True)
class _Task:
    cell: int
    params: dict[str, Any]
    start: int
    stop: int
    random_seed: int
    seed_block: int
    estimators: tuple[tuple[str, Callable | None], ...]
    arm_stop: dict[str, int]  # replications < arm_stop[name] are fitted (per-replication arms)
    conf_level: float
    mode: str
    mcmc_kwargs: dict[str, Any] = field(default_factory=dict)


def _empty(B: int) -> dict[str, np.ndarray]:
    d: dict[str, np.ndarray] = {f: np.full(B, np.nan) for f in _FIELDS}
    d.update({b: np.zeros(B, dtype=bool) for b in _BOOLS})
    return d


def _fill(dst: dict[str, np.ndarray], rows: slice, src: Mapping[str, Any], conf_level: float,
          ) -> None:
    m = rows.stop - rows.start
    est = np.asarray(src["estimate"], dtype=float).reshape(m)
    se = np.asarray(src["se"], dtype=float).reshape(m)
    if "ci_lower" in src and "ci_upper" in src:
        lo = np.asarray(src["ci_lower"], dtype=float).reshape(m)
        hi = np.asarray(src["ci_upper"], dtype=float).reshape(m)
    else:
        lo, hi = _wald(est, se, conf_level)
    dst["estimate"][rows], dst["se"][rows] = est, se
    dst["ci_lower"][rows], dst["ci_upper"][rows] = lo, hi
    dst["ran"][rows] = True
    if "converged" in src:
        dst["nonconverged"][rows] = ~np.asarray(src["converged"], dtype=bool).reshape(m)
    for key in ("error", "warning", *_FLAGS):
        if key in src:
            dst[key][rows] |= np.asarray(src[key], dtype=bool).reshape(m)
    # an errored fit has no numbers
    err = dst["error"][rows]
    for f in _FIELDS:
        dst[f][rows] = np.where(err, np.nan, dst[f][rows])


def _call_plugin(fn: Callable, y, x, c, conf_level: float) -> dict[str, Any]:
    """Call a batched estimator; if the batch raises, fit row by row and mark failed rows."""
    try:
        with np.errstate(all="ignore"):
            return dict(fn(y, x, c, conf_level=conf_level))
    except Exception:  # noqa: BLE001 - isolate the failing data sets below
        pass
    B = len(y)
    out: dict[str, Any] = {f: np.full(B, np.nan) for f in _FIELDS}
    out["error"] = np.zeros(B, dtype=bool)
    for i in range(B):
        try:
            with np.errstate(all="ignore"):
                r = fn(y[i : i + 1], x[i : i + 1], None if c is None else c[i : i + 1],
                       conf_level=conf_level)
        except Exception:  # noqa: BLE001 - counted as n_error
            out["error"][i] = True
            continue
        for key, val in r.items():
            arr = np.asarray(val).reshape(-1)
            if key not in out:
                out[key] = np.zeros(B, dtype=arr.dtype) if arr.dtype == bool else np.full(B, np.nan)
            out[key][i] = arr[0]
    return out


def _run_chunk(task: _Task) -> dict[str, Any]:
    """Generate one chunk's data and fit every estimator; return per-replication arrays."""
    B = task.stop - task.start
    seconds: dict[str, float] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    y, x, c = simulate_replications(
        task.params, task.start, task.stop, random_seed=task.random_seed,
        seed_block=task.seed_block,
    )
    seconds["generate"] = time.perf_counter() - t0
    seconds["cpu:generate"] = time.process_time() - c0
    results = {name: _empty(B) for name, _ in task.estimators}
    builtin_cf = [n for n, fn in task.estimators if fn is None and n in _CLOSED_FORM]
    if builtin_cf:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            cf = closed_form_estimators(y, x, c, conf_level=task.conf_level, mode=task.mode)
        except Exception:  # noqa: BLE001 - retry row by row, counting failures
            cf = {n: _call_plugin(_closed_form_one(n, task.mode), y, x, c, task.conf_level)
                  for n in builtin_cf}
        dt = (time.perf_counter() - t0) / len(builtin_cf)
        dc = (time.process_time() - c0) / len(builtin_cf)
        for n in builtin_cf:
            _fill(results[n], slice(0, B), cf[n], task.conf_level)
            seconds[n], seconds[f"cpu:{n}"] = dt, dc
    for name, fn in task.estimators:
        if fn is None and name in _CLOSED_FORM:
            continue
        stop = min(task.stop, task.arm_stop.get(name, task.stop))
        m = stop - task.start
        seconds[name] = seconds[f"cpu:{name}"] = 0.0
        if m <= 0:
            continue
        sub = slice(0, m)
        ys, xs, cs = y[sub], x[sub], c[sub]
        t0, c0 = time.perf_counter(), time.process_time()
        if fn is not None:
            out = _call_plugin(fn, ys, xs, cs, task.conf_level)
        elif name == "ml":
            out = ml_estimator(ys, xs, cs, conf_level=task.conf_level)
        else:  # mcmc
            seeds = [_replication_seed(task.random_seed, task.params, r)
                     for r in range(task.start, stop)]
            out = mcmc_estimator(ys, xs, cs, conf_level=task.conf_level, random_seeds=seeds,
                                 **task.mcmc_kwargs)
        seconds[name] = time.perf_counter() - t0
        seconds[f"cpu:{name}"] = time.process_time() - c0
        _fill(results[name], sub, out, task.conf_level)
    return {"cell": task.cell, "start": task.start, "stop": task.stop, "results": results,
            "seconds": seconds}


class _ClosedFormOne:
    """Picklable single-estimator view of :func:`closed_form_estimators` (row-wise retry)."""

    def __init__(self, name: str, mode: str) -> None:
        self.name, self.mode = name, mode

    def __call__(self, y, x, c, *, conf_level):
        return closed_form_estimators(y, x, c, conf_level=conf_level, mode=self.mode)[self.name]


def _closed_form_one(name: str, mode: str) -> _ClosedFormOne:
    return _ClosedFormOne(name, mode)


def _replication_seed(root: int, params: Mapping[str, Any], rep: int) -> int:
    """Seed of replication `rep`'s MCMC run, independent of the data streams."""
    ss = np.random.SeedSequence(root, spawn_key=(*cell_key(params), 2**31 + rep))
    return int(ss.generate_state(1, dtype=np.uint32)[0])


# ---------------------------------------------------------------------------------------------
# metrics


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
        Metric values and their Monte Carlo SEs (in the order of :data:`METRICS`).
    n_used : numpy.ndarray of int, shape (len(METRICS),)
        Number of replications each metric uses.

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
    val = dict.fromkeys(METRICS, np.nan)
    mc = dict.fromkeys(METRICS, np.nan)
    used = dict.fromkeys(METRICS, 0)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ok = np.isfinite(estimate)
        b = estimate[ok]
        m = b.size
        for k in ("bias", "relative_bias", "mse", "rmse", "empirical_se"):
            used[k] = m
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
        # coverage: intervals with non-NaN bounds (infinite intervals cover)
        okc = ok & ~np.isnan(ci_lower) & ~np.isnan(ci_upper)
        mcov = int(okc.sum())
        used["coverage"] = mcov
        if mcov >= 1:
            hit = (ci_lower[okc] <= truth) & (truth <= ci_upper[okc])
            p = float(hit.mean())
            val["coverage"], mc["coverage"] = p, float(np.sqrt(p * (1.0 - p) / mcov))
        # model SE: finite SEs
        oks = ok & np.isfinite(se)
        ms = int(oks.sum())
        used["mean_se"] = used["se_ratio"] = ms
        if ms >= 1:
            val["mean_se"] = float(se[oks].mean())
        if ms >= 2:
            sd_se = float(np.std(se[oks], ddof=1))
            mc["mean_se"] = sd_se / np.sqrt(ms)
            emp = float(np.std(estimate[oks], ddof=1))
            ratio = val["mean_se"] / emp if emp > 0 else np.nan
            val["se_ratio"] = ratio
            mc["se_ratio"] = abs(ratio) * float(
                np.sqrt(sd_se**2 / (ms * val["mean_se"] ** 2) + 1.0 / (2.0 * (ms - 1)))
            )
    return (
        np.array([val[k] for k in METRICS], dtype=float),
        np.array([mc[k] for k in METRICS], dtype=float),
        np.array([used[k] for k in METRICS], dtype=np.int64),
    )


def _counts(r: Mapping[str, np.ndarray]) -> np.ndarray:
    ran = r["ran"]
    ok = ran & ~r["error"]
    c = {
        "n_replications": ran.sum(),
        "n_error": (ran & r["error"]).sum(),
        "n_nonconverged": (ok & r["nonconverged"]).sum(),
        "n_nonfinite_estimate": (ok & ~np.isfinite(r["estimate"])).sum(),
        "n_nonfinite_se": (ok & ~np.isfinite(r["se"])).sum(),
        "n_warning": (ran & r["warning"]).sum(),
        "n_pole": (ran & r["pole"]).sum(),
        "n_degenerate": (ran & r["degenerate"]).sum(),
        "n_fallback_window": (ran & r["fallback_window"]).sum(),
        "n_se_degenerate": (ran & r["se_degenerate"]).sum(),
    }
    return np.array([int(c[k]) for k in COUNTS], dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# checkpointing


def _chunk_file(directory: Path, cell: int, start: int) -> Path:
    return directory / "chunks" / f"cell{cell:05d}_rep{start:07d}.npz"


def _save_chunk(directory: Path, res: Mapping[str, Any]) -> None:
    arrays: dict[str, np.ndarray] = {}
    for name, r in res["results"].items():
        for key, arr in r.items():
            arrays[f"r::{name}::{key}"] = arr
    for key, sec in res["seconds"].items():
        arrays[f"s::{key}"] = np.array(sec)
    arrays["meta"] = np.array([res["cell"], res["start"], res["stop"]], dtype=np.int64)
    path = _chunk_file(directory, res["cell"], res["start"])
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _load_chunk(path: Path) -> dict[str, Any]:
    with np.load(path) as f:
        cell, start, stop = (int(v) for v in f["meta"])
        results: dict[str, dict[str, np.ndarray]] = {}
        seconds: dict[str, float] = {}
        for key in f.files:
            if key.startswith("r::"):
                _, name, field_ = key.split("::")
                results.setdefault(name, {})[field_] = f[key]
            elif key.startswith("s::"):
                seconds[key[3:]] = float(f[key])
    return {"cell": cell, "start": start, "stop": stop, "results": results, "seconds": seconds}


def _open_checkpoint(directory: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Create the checkpoint directory or check that it belongs to the same study."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "chunks").mkdir(exist_ok=True)
    manifest = directory / "manifest.json"
    if manifest.exists():
        old = json.loads(manifest.read_text())
        old_cfg = old.get("config", {})
        if config.get("random_seed") is None:
            config["random_seed"] = old_cfg.get("random_seed")
        for key in sorted(set(old_cfg) | set(config)):
            if old_cfg.get(key) != config.get(key):
                raise ValueError(
                    f"`checkpoint` directory {str(directory)!r} holds a different study: "
                    f"{key!r} was {old_cfg.get(key)!r} there but is {config.get(key)!r} now; "
                    "use a new directory or the same settings"
                )
        return old
    if config.get("random_seed") is None:
        config["random_seed"] = int(np.random.SeedSequence().entropy % 2**63)
    doc = {"format": _FORMAT_VERSION, "created": _now(), "config": config}
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, manifest)
    return doc


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# public runner


@dataclass(frozen=True)
class ChunkInfo:
    """What ``callback`` receives after each finished chunk."""

    cell: int
    start: int
    stop: int
    done: int
    total: int


def _check_estimators(estimators: Any) -> tuple[tuple[str, Callable | None], ...]:
    if isinstance(estimators, str):
        estimators = (estimators,)
    if isinstance(estimators, Mapping):
        items = list(estimators.items())
    elif isinstance(estimators, Sequence):
        items = [(e, None) if isinstance(e, str) else tuple(e) for e in estimators]
    else:
        raise TypeError(
            "`estimators` must be a name, a sequence of names or a mapping name -> function; "
            f"got {type(estimators).__name__}"
        )
    out: list[tuple[str, Callable | None]] = []
    for item in items:
        if len(item) != 2 or not isinstance(item[0], str):
            raise TypeError(f"`estimators` entries must be names or (name, function); got {item!r}")
        name, fn = item
        if fn is None and name not in ESTIMATORS:
            raise ValueError(
                f"unknown estimator {name!r} in `estimators`; built-in: "
                f"{', '.join(ESTIMATORS)} (or pass a mapping name -> function)"
            )
        if fn is not None and not callable(fn):
            raise TypeError(f"estimator {name!r} must be callable; got {fn!r}")
        if name in (n for n, _ in out):
            raise ValueError(f"estimator {name!r} is listed twice in `estimators`")
        out.append((name, fn))
    if not out:
        raise ValueError("`estimators` must name at least one estimator; got none")
    return tuple(out)


def _check_subsets(
    subsets: Mapping[str, Any] | None,
    estimators: tuple[tuple[str, Callable | None], ...],
    design: Design,
    replications: int,
) -> tuple[dict[str, int], dict[str, np.ndarray], dict[str, Any]]:
    """Per estimator: replications to run and a boolean mask of cells (C order)."""
    names = [n for n, _ in estimators]
    given = dict(subsets or {})
    for key in given:
        if key not in names:
            raise ValueError(
                f"`subsets` names estimator {key!r}, which is not in `estimators` ({names})"
            )
    arm_stop: dict[str, int] = {}
    masks: dict[str, np.ndarray] = {}
    record: dict[str, Any] = {}
    for name, fn in estimators:
        spec = given.get(name, DEFAULT_SUBSETS.get(name) if fn is None else None)
        if spec is None:
            continue
        if not isinstance(spec, Mapping):
            raise TypeError(
                f"`subsets[{name!r}]` must be a mapping with keys 'replications' and 'cells'; "
                f"got {spec!r}"
            )
        unknown = set(spec) - {"replications", "cells"}
        if unknown:
            raise ValueError(
                f"`subsets[{name!r}]` allows keys 'replications' and 'cells'; got {sorted(unknown)}"
            )
        reps = spec.get("replications")
        reps = replications if reps is None else int(reps)
        if reps < 0:
            raise ValueError(f"`subsets[{name!r}]['replications']` must be >= 0; got {reps}")
        arm_stop[name] = min(reps, replications)
        cells = spec.get("cells")
        mask = np.ones(design.shape, dtype=bool)
        if cells is not None:
            if not isinstance(cells, Mapping):
                raise TypeError(
                    f"`subsets[{name!r}]['cells']` must be a mapping factor -> levels; "
                    f"got {cells!r}"
                )
            for axis, (factor, levels) in enumerate(design.factors.items()):
                if factor not in cells:
                    continue
                want = cells[factor]
                want = set(want if isinstance(want, Sequence | np.ndarray) else [want])
                keep = np.array([lv in want for lv in levels])
                shape = [1] * len(design.shape)
                shape[axis] = len(levels)
                mask &= keep.reshape(shape)
            bad = set(cells) - set(design.factors)
            if bad:
                raise ValueError(
                    f"`subsets[{name!r}]['cells']` names {sorted(bad)}, which are not factors of "
                    f"the design ({', '.join(design.factors)})"
                )
        masks[name] = mask.ravel()
        record[name] = {"replications": arm_stop[name],
                        "cells": None if cells is None else {k: list(np.atleast_1d(v).tolist())
                                                             for k, v in cells.items()}}
    return arm_stop, masks, record


def _get_client(scheduler: Any, n_workers: int | None):
    """Return (client, close) for `scheduler`: 'local', an address or a Client."""
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        return scheduler, lambda: None, f"dask client {scheduler.scheduler.address}"
    if scheduler == "local":
        # one thread per worker, also for numba's parallel grid search of the estimator
        cluster = LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1,
                               processes=True, dashboard_address=":0",
                               env={"NUMBA_NUM_THREADS": "1"})
        client = Client(cluster)

        def close() -> None:
            client.close()
            cluster.close()

        return client, close, f"dask LocalCluster ({len(cluster.workers)} workers)"
    if isinstance(scheduler, str) and "://" in scheduler:
        client = Client(scheduler)
        return client, client.close, f"dask scheduler {scheduler}"
    raise ValueError(
        "`scheduler` must be None (serial), 'local', a scheduler address such as "
        f"'tcp://host:8786' or a distributed.Client; got {scheduler!r}"
    )


def run_study(
    design: Any = "talk",
    replications: int = 5000,
    estimators: Any = ("mlob", "ml_moments"),
    random_seed: int | None = None,
    scheduler: Any = None,
    checkpoint: str | os.PathLike | None = None,
    *,
    subsets: Mapping[str, Any] | None = None,
    chunk_size: int = 1000,
    seed_block: int = 100,
    conf_level: float = 0.95,
    mode: str = "r",
    mcmc_kwargs: Mapping[str, Any] | None = None,
    n_workers: int | None = None,
    keep_replications: bool = False,
    progress: bool = True,
    callback: Callable[[ChunkInfo], None] | None = None,
):
    """Run a simulation study of estimators of ``beta_b`` and summarise it per cell.

    Parameters
    ----------
    design : "talk", Design or mapping, default "talk"
        The MLOB talk's 540 cells (:func:`~mlob_pp.comparisons.study.design.talk_design`), a
        :class:`~mlob_pp.comparisons.study.design.Design`, or a mapping of changes to the talk's
        design such as ``{"J": (5, 10), "rho_c": 0.0}``.
    replications : int, default 5000
        Replications per cell.
    estimators : name, sequence or mapping, default ("mlob", "ml_moments")
        Built-in names ``"mlob"``, ``"ml_moments"``, ``"ml"``, ``"mcmc"``, and/or a mapping
        ``name -> function`` for user estimators (see the module docstring for the protocol; a
        ``None`` value means the built-in).
    random_seed : int, optional
        Root seed. ``None`` draws fresh entropy and stores it in the attributes (and in the
        checkpoint manifest, from which a resumed run takes it).
    scheduler : None, "local", str or distributed.Client
        ``None`` runs serially in this process; ``"local"`` starts a
        ``distributed.LocalCluster`` (processes, one thread each, `n_workers` workers);
        ``"tcp://host:port"`` connects to a running scheduler. Results are identical.
    checkpoint : path, optional
        Directory for per-chunk result files and a manifest. An interrupted run called again
        with the same directory and settings skips the finished chunks.
    subsets : mapping, optional
        Per estimator, ``{"replications": R, "cells": {factor: levels}}``: fit only the first
        R replications of the matching cells. Defaults: :data:`DEFAULT_SUBSETS` for ``"ml"``
        and ``"mcmc"``, everything for the others.
    chunk_size : int, default 1000
        Replications of one cell per task and checkpoint file.
    seed_block : int, default 100
        Replications per random-number block (changing it changes the data).
    conf_level : float, default 0.95
        Nominal level of the intervals.
    mode : {"r", "stable"}, default "r"
        Mode of :func:`mlob_pp.mlob_batch` for ``"mlob"`` and ``"ml_moments"``.
    mcmc_kwargs : mapping, optional
        ``draws``, ``tune``, ``chains``, ``rhat_max`` of the ``"mcmc"`` arm (defaults 500, 500,
        2, 1.05).
    n_workers : int, optional
        Workers of the local cluster (default: number of CPUs).
    keep_replications : bool, default False
        Also return per-replication ``estimate``, ``se``, ``ci_lower``, ``ci_upper``
        (dimension ``replication``).
    progress : bool, default True
        Show a tqdm progress bar on stderr.
    callback : callable, optional
        Called with a :class:`ChunkInfo` after each chunk is stored; an exception raised there
        stops the run (finished chunks stay in the checkpoint).

    Returns
    -------
    xarray.Dataset
        Dimensions: the design factors (e.g. ``icc_x, J, n, beta_b, beta_w``), ``estimator``,
        ``metric`` (:data:`METRICS`), ``count`` (:data:`COUNTS`), ``phase`` (``generate`` and
        the estimators). Variables: ``value``, ``mcse`` and ``n_used`` (factors x estimator x
        metric), ``counts`` (factors x estimator x count), ``truth`` and ``icc_y`` (factors),
        ``seconds`` and ``cpu_seconds`` (factors x phase: wall and CPU time spent).
        Attributes: provenance and settings.

    Raises
    ------
    ValueError, TypeError
        For invalid arguments, or a checkpoint directory written by a different study.

    See Also
    --------
    mlob_pp.comparisons.study.design.talk_design, save_study, mlob_pp.comparisons.study.plots

    References
    ----------
    Morris, T. P., White, I. R., & Crowther, M. J. (2019). Using simulation studies to evaluate
    statistical methods. Statistics in Medicine, 38(11), 2074-2102.
    https://doi.org/10.1002/sim.8086

    Examples
    --------
    >>> ds = run_study({"J": (10,), "n": (5,), "icc_x": (0.1,), "beta_w": (0.2,)},
    ...                replications=200, random_seed=1, progress=False)
    >>> ds["value"].sel(metric="rmse").dims
    ('icc_x', 'J', 'n', 'beta_b', 'beta_w', 'estimator')
    """
    from mlob_pp.validate import check_bool, check_choice, check_int, check_probability

    t_start = time.perf_counter()
    design = as_design(design)
    replications = check_int(replications, "replications", minimum=1)
    chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    seed_block = check_int(seed_block, "seed_block", minimum=1)
    conf_level = check_probability(conf_level, "conf_level")
    mode = check_choice(mode, "mode", ("r", "stable"))
    keep_replications = check_bool(keep_replications, "keep_replications")
    progress = check_bool(progress, "progress")
    if random_seed is not None:
        random_seed = check_int(random_seed, "random_seed", minimum=0)
    est = _check_estimators(estimators)
    arm_stop, masks, subset_record = _check_subsets(subsets, est, design, replications)
    mk = dict(_MCMC_DEFAULTS)
    if mcmc_kwargs:
        bad = set(mcmc_kwargs) - set(_MCMC_DEFAULTS)
        if bad:
            raise ValueError(
                f"`mcmc_kwargs` allows {', '.join(_MCMC_DEFAULTS)}; got {sorted(bad)}"
            )
        mk.update(mcmc_kwargs)
    if n_workers is not None:
        n_workers = check_int(n_workers, "n_workers", minimum=1)

    config = {
        "design": json.loads(design.to_json()),
        "replications": replications,
        "random_seed": random_seed,
        "seed_block": seed_block,
        "chunk_size": chunk_size,
        "conf_level": conf_level,
        "mode": mode,
        "estimators": [[n, None if fn is None else _qualname(fn)] for n, fn in est],
        "subsets": subset_record,
        "mcmc_kwargs": mk if any(n == "mcmc" for n, _ in est) else None,
    }
    ckpt_dir = Path(checkpoint) if checkpoint is not None else None
    if ckpt_dir is not None:
        _open_checkpoint(ckpt_dir, config)  # fills config["random_seed"] if None
    elif config["random_seed"] is None:
        config["random_seed"] = int(np.random.SeedSequence().entropy % 2**63)
    root = int(config["random_seed"])

    cells = list(design.cells())
    tasks: list[_Task] = []
    for ci, params in enumerate(cells):
        stops = {n: (arm_stop[n] if masks[n][ci] else 0) for n in arm_stop}
        for start in range(0, replications, chunk_size):
            tasks.append(_Task(ci, params, start, min(start + chunk_size, replications), root,
                               seed_block, est, stops, conf_level, mode,
                               mk if "mcmc" in stops else {}))
    results: dict[tuple[int, int], dict[str, Any]] = {}
    todo: list[_Task] = []
    for task in tasks:
        path = _chunk_file(ckpt_dir, task.cell, task.start) if ckpt_dir else None
        if path is not None and path.exists():
            results[(task.cell, task.start)] = _load_chunk(path)
        else:
            todo.append(task)

    from tqdm import tqdm

    total_reps = len(cells) * replications
    done_reps = sum(r["stop"] - r["start"] for r in results.values())
    bar = tqdm(total=total_reps, initial=done_reps, unit="rep", unit_scale=True,
               desc="simulate", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    n_done = len(results)

    def finish(res: dict[str, Any]) -> None:
        nonlocal n_done
        results[(res["cell"], res["start"])] = res
        if ckpt_dir is not None:
            _save_chunk(ckpt_dir, res)
        n_done += 1
        bar.update(res["stop"] - res["start"])
        if callback is not None:
            callback(ChunkInfo(res["cell"], res["start"], res["stop"], n_done, len(tasks)))

    sched_text = "serial" if todo else "none (every chunk loaded from the checkpoint)"
    try:
        if scheduler is None or not todo:
            for task in todo:
                finish(_run_chunk(task))
        else:
            client, close, sched_text = _get_client(scheduler, n_workers)
            try:
                from distributed import as_completed

                futures = client.map(_run_chunk, todo, pure=False)
                for fut in as_completed(futures):
                    res = fut.result()
                    fut.release()
                    finish(res)
            finally:
                close()
    finally:
        bar.close()

    ds = _assemble(design, cells, replications, est, results, conf_level, keep_replications)
    ds.attrs.update(_attrs(config, design, sched_text, time.perf_counter() - t_start))
    return ds


def _qualname(fn: Callable) -> str:
    mod = getattr(fn, "__module__", None) or type(fn).__module__
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{mod}.{name}"


def _assemble(design, cells, replications, est, results, conf_level, keep_replications):
    import xarray as xr

    names = [n for n, _ in est]
    E, M, C = len(names), len(METRICS), len(COUNTS)
    ncell = len(cells)
    value = np.full((ncell, E, M), np.nan)
    mcse = np.full((ncell, E, M), np.nan)
    n_used = np.zeros((ncell, E, M), dtype=np.int64)
    counts = np.zeros((ncell, E, C), dtype=np.int64)
    phases = ["generate", *names]
    seconds = np.zeros((ncell, len(phases)))
    cpu_seconds = np.zeros((ncell, len(phases)))
    truth = np.array([float(c["beta_b"]) for c in cells])
    icc_y = np.array([implied_icc_y(c) for c in cells])
    per_rep = {f: np.full((ncell, E, replications), np.nan) for f in _FIELDS} \
        if keep_replications else None
    by_cell: dict[int, list[dict[str, Any]]] = {}
    for (cell, _start), res in results.items():
        by_cell.setdefault(cell, []).append(res)
    for ci in range(ncell):
        chunks = sorted(by_cell.get(ci, []), key=lambda r: r["start"])
        for ch in chunks:
            for p, ph in enumerate(phases):
                seconds[ci, p] += ch["seconds"].get(ph, 0.0)
                cpu_seconds[ci, p] += ch["seconds"].get(f"cpu:{ph}", np.nan)
        for e, name in enumerate(names):
            cat = {key: np.concatenate([ch["results"][name][key] for ch in chunks])
                   for key in (*_FIELDS, *_BOOLS)}
            ran = cat["ran"]
            v, s, u = performance(cat["estimate"][ran], cat["se"][ran], cat["ci_lower"][ran],
                                  cat["ci_upper"][ran], truth[ci])
            value[ci, e], mcse[ci, e], n_used[ci, e] = v, s, u
            counts[ci, e] = _counts(cat)
            if per_rep is not None:
                for f in _FIELDS:
                    per_rep[f][ci, e] = cat[f]
    shape = design.shape
    fdims = list(design.factors)
    coords: dict[str, Any] = {k: list(v) for k, v in design.factors.items()}
    coords.update(estimator=names, metric=list(METRICS), count=list(COUNTS), phase=phases)
    data_vars = {
        "value": ([*fdims, "estimator", "metric"], value.reshape(*shape, E, M)),
        "mcse": ([*fdims, "estimator", "metric"], mcse.reshape(*shape, E, M)),
        "n_used": ([*fdims, "estimator", "metric"], n_used.reshape(*shape, E, M)),
        "counts": ([*fdims, "estimator", "count"], counts.reshape(*shape, E, C)),
        "truth": (fdims, truth.reshape(shape)),
        "icc_y": (fdims, icc_y.reshape(shape)),
        "seconds": ([*fdims, "phase"], seconds.reshape(*shape, len(phases))),
        "cpu_seconds": ([*fdims, "phase"], cpu_seconds.reshape(*shape, len(phases))),
    }
    if per_rep is not None:
        coords["replication"] = np.arange(replications)
        for f in _FIELDS:
            data_vars[f] = ([*fdims, "estimator", "replication"],
                            per_rep[f].reshape(*shape, E, replications))
    ds = xr.Dataset(data_vars, coords=coords)
    ds["value"].attrs["description"] = "quality measure of the estimator of beta_b"
    ds["mcse"].attrs["description"] = "Monte Carlo standard error of value (Morris et al. 2019)"
    ds["n_used"].attrs["description"] = "replications used by the metric"
    ds["counts"].attrs["description"] = "failure and flag counts over the replications fitted"
    ds["truth"].attrs["description"] = "true beta_b"
    ds["icc_y"].attrs["description"] = "ICC of Y implied by the data-generating process"
    ds["seconds"].attrs["description"] = "wall seconds spent generating data and per estimator"
    ds["cpu_seconds"].attrs["description"] = "CPU seconds of the process (all its threads)"
    return ds


def _attrs(config: dict[str, Any], design: Design, scheduler: str, wall: float) -> dict[str, Any]:
    import xarray as xr

    from mlob_pp import __version__

    attrs: dict[str, Any] = {
        "title": "simulation study of estimators of the between-group slope beta_b",
        "created_at": _now(),
        "created_by": f"mlob_pp {__version__}",
        "inference_library": "mlob_pp.comparisons.run_study",
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "xarray_version": xr.__version__,
        "design_name": design.name,
        "design": design.to_json(),
        "replications": config["replications"],
        "random_seed": str(config["random_seed"]),
        "seed_block": config["seed_block"],
        "chunk_size": config["chunk_size"],
        "conf_level": config["conf_level"],
        "mode": config["mode"],
        "estimators": json.dumps(config["estimators"]),
        "subsets": json.dumps(config["subsets"]),
        "mcmc_kwargs": json.dumps(config["mcmc_kwargs"]),
        "scheduler": scheduler,
        "wall_seconds": float(wall),
        "dgp": (
            "X_ij = mu_b_j + e_ij, mu_b_j ~ N(0, icc_x), e_ij ~ N(0, 1 - icc_x); "
            "C_ij = rho_c X_ij + N(0, 1 - rho_c^2); Y_ij = beta_w (X_ij - mu_b_j) + "
            "beta_b mu_b_j + gamma C_ij + delta_j + eps_ij, delta_j ~ N(0, tau2), "
            "eps_ij ~ N(0, sigma2)"
        ),
        "references": (
            "Morris, White & Crowther (2019), doi:10.1002/sim.8086 (metrics and MCSEs); "
            "Luedtke et al. (2008), doi:10.1037/a0012869 (latent covariate model)"
        ),
    }
    for key, val in design.fixed.items():
        attrs[f"param_{key}"] = val
    return attrs


def save_study(ds: Any, path: str | os.PathLike) -> Path:
    """Write a study Dataset to netCDF (h5netcdf engine) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path, engine="h5netcdf")
    return path


def load_study(path: str | os.PathLike) -> Any:
    """Read a study Dataset written by :func:`save_study` (loaded into memory)."""
    import xarray as xr

    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()
