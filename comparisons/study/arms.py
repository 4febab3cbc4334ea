"""Estimator arms of a simulation study: one batched call per chunk of replications.

Every arm takes arrays shaped (B, J, n), (B, J, n), (B, J, n, k) and returns, per data set, the
estimate of ``beta_b``, its SE, the arm's own interval and, for some arms, further intervals
and diagnostics. Built-in arms (names from the one registry :data:`ESTIMATORS`):

``"mlob"``
    regularized closed-form MLOB (:func:`mlob_pp.mlob_batch`); interval ``analytic`` (Wald with
    the analytic SE) and, when ``n_boot > 0``, ``bootstrap`` (test-inversion parametric
    bootstrap, :func:`mlob_pp.closed_form.bootstrap.bootstrap_batch`);
``"ml_moments"``
    R MLOB's "ML" column, the moment ratio (same :func:`mlob_pp.mlob_batch` call); ``analytic``;
``"ml"``
    true maximum likelihood of the latent covariate model, batched
    (:func:`mlob_pp.ml_batch`); intervals ``wald`` and ``profile`` (profile likelihood);
``"mcmc"``
    full MCMC of the latent covariate model, batched (:func:`mlob_pp.mcmc_batch`); the estimate
    is the posterior mean, the SE the posterior SD, the interval the equal-tailed ``credible``
    interval; a data set with R-hat above ``rhat_max`` or bulk ESS below ``ess_min`` is counted
    as not converged (``n_high_rhat``, ``n_low_ess``); ``n_divergent`` counts data sets with at
    least one divergent transition after warm-up (they stay converged: a divergence is a
    warning that the posterior summary may be biased, not a convergence failure).

User arms: any function ``f(y, x, covariates, *, conf_level)`` returning a mapping with arrays
(B,) ``"estimate"``, ``"se"`` and optionally ``"ci_lower"``, ``"ci_upper"`` (default: Wald,
:func:`mlob_pp.tables.wald`), ``"converged"`` (bool) and bool flags ``"pole"``,
``"degenerate"``, ``"fallback_window"``, ``"se_degenerate"``; its interval is called ``ci``.
If a batch raises, the arm is called data set by data set and the failing ones are counted as
errors. With Dask the function is pickled to the workers: define it in an importable module, or
interactively (then it is shipped by value).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mlob_pp.closed_form.bootstrap import bootstrap_batch, inversion_interval
from mlob_pp.closed_form.core import mlob_batch
from mlob_pp.comparisons.convert import ESTIMATORS
from mlob_pp.comparisons.study.design import cell_key
from mlob_pp.mcmc.batch import mcmc_batch
from mlob_pp.ml.batch import ml_batch
from mlob_pp.tables import wald

__all__ = [
    "ESTIMATORS",
    "ARM_INTERVALS",
    "MCMC_DEFAULTS",
    "interval_kinds",
    "arm_seed",
    "closed_form_estimators",
    "bootstrap_intervals",
    "ml_estimator",
    "mcmc_estimator",
    "call_plugin",
]

#: intervals of each built-in arm, its own (reported in ``coverage``) first
ARM_INTERVALS: dict[str, tuple[str, ...]] = {
    "mlob": ("analytic", "bootstrap"),
    "ml_moments": ("analytic",),
    "ml": ("wald", "profile"),
    "mcmc": ("credible",),
}
#: interval name of a user arm
PLUGIN_INTERVAL = "ci"
#: settings of the MCMC arm (``draws``, ``tune``, ``chains``, ``target_accept``,
#: ``prior_slope_sd`` go to :func:`mlob_pp.mcmc_batch`).  ``target_accept`` is 0.95, not
#: mcmc_batch's 0.8: measured on 64 data sets per cell (benchmarks/bench_mcmc_batch.py
#: conditions), it cuts divergent transitions per data set 4-10 fold at J = 5-10 (e.g. J = 10,
#: n = 5: 50 -> 4.6 of 2,000) and the share not converged after reruns from 2-6 % to 0, for
#: 15-20 % more time.  ``prior_slope_sd`` is 2.5, not fit_mcmc's 5: ``Normal(0, 2.5)`` on the
#: standardised slopes (rstanarm's default for standardised coefficients) still allows a
#: between slope that explains a third of Y's variance at ICC_X = 0.05 at one prior SD, and
#: measured in cells with J = 5-20 and ICC_X 0.05-0.1 (benchmarks/bench_mcmc_geometry.py) it
#: cuts the cost per data set by about a third and the divergent transitions several fold.
MCMC_DEFAULTS: dict[str, Any] = {
    "draws": 500,
    "tune": 500,
    "chains": 4,
    "target_accept": 0.95,
    "prior_slope_sd": 2.5,
    "rhat_max": 1.01,
    "ess_min": 400.0,
}
CLOSED_FORM: tuple[str, ...] = ("mlob", "ml_moments")
FIELDS: tuple[str, ...] = ("estimate", "se", "ci_lower", "ci_upper")
DIAGNOSTICS: tuple[str, ...] = ("rhat", "ess_bulk")
# independent random streams per replication (data use the cell's seed blocks)
_STREAM = {"mcmc": 1, "bootstrap": 2}

assert set(ARM_INTERVALS) == set(ESTIMATORS)  # one registry of names


def interval_kinds(name: str, builtin: bool, n_boot: int) -> tuple[str, ...]:
    """Intervals an arm produces (its own first)."""
    if not builtin:
        return (PLUGIN_INTERVAL,)
    kinds = ARM_INTERVALS[name]
    return tuple(k for k in kinds if k != "bootstrap" or n_boot > 0)


def arm_seed(root: int, params: Mapping[str, Any], rep: int, stream: str) -> int:
    """Seed of replication `rep` of a cell for a random arm, independent of the data streams."""
    ss = np.random.SeedSequence(root, spawn_key=(*cell_key(params), 2**32 + _STREAM[stream], rep))
    return int(ss.generate_state(1, dtype=np.uint32)[0] >> 1)


def _get(res: Any, name: str, default: Any = None) -> Any:
    if isinstance(res, Mapping):
        return res.get(name, default)
    return getattr(res, name, default)


def closed_form_estimators(
    y: np.ndarray,
    x: np.ndarray,
    covariates: np.ndarray | None,
    *,
    conf_level: float = 0.95,
    mode: str = "r",
) -> dict[str, dict[str, np.ndarray]]:
    """Fit MLOB and the moment ratio to B data sets with one :func:`mlob_pp.mlob_batch` call.

    Returns ``{"mlob": {...}, "ml_moments": {...}}`` in the arm format (see the module
    docstring). The estimator's warnings are switched off; its flags are returned instead.
    """
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


class ClosedFormOne:
    """Picklable single-estimator view of :func:`closed_form_estimators` (row-wise retry)."""

    def __init__(self, name: str, mode: str) -> None:
        self.name, self.mode = name, mode

    def __call__(self, y, x, c, *, conf_level):
        return closed_form_estimators(y, x, c, conf_level=conf_level, mode=self.mode)[self.name]


def bootstrap_intervals(
    y: np.ndarray,
    x: np.ndarray,
    covariates: np.ndarray | None,
    *,
    conf_level: float,
    mode: str,
    n_boot: int,
    seeds: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """Test-inversion bootstrap intervals of MLOB, one seeded bootstrap per data set.

    One call of :func:`~mlob_pp.closed_form.bootstrap.bootstrap_batch` per data set with the
    replication's own seed, so an interval does not depend on the chunking.
    """
    seed_arg = (
        "random_seed"
        if "random_seed" in inspect.signature(bootstrap_batch).parameters
        else "random_state"
    )
    B = len(y)
    lo, hi = np.full(B, np.nan), np.full(B, np.nan)
    for i in range(B):
        cov = None if covariates is None else covariates[i : i + 1]
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = bootstrap_batch(
                    y[i : i + 1],
                    x[i : i + 1],
                    cov,
                    n_boot=n_boot,
                    mode=mode,
                    inversion=True,
                    **{seed_arg: int(seeds[i])},
                )
                a, b = inversion_interval(out["roots"], conf_level)
        except Exception:  # noqa: BLE001 - a failed bootstrap leaves a missing interval
            continue
        lo[i], hi[i] = float(a[0]), float(b[0])
    return lo, hi


def ml_estimator(
    y: np.ndarray, x: np.ndarray, covariates: np.ndarray | None, *, conf_level: float = 0.95
) -> dict[str, np.ndarray]:
    """Fit true ML of the latent covariate model to B data sets (:func:`mlob_pp.ml_batch`).

    Returns the arm format with the Wald interval and, as ``lo::profile`` / ``hi::profile``,
    the profile-likelihood interval; boundary fits are flagged ``degenerate``.
    """
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # boundary fits are flagged per data set below
        res = ml_batch(y, x, covariates, conf_level=conf_level)
    est = np.asarray(_get(res, "beta_b"), float)
    B = est.shape[0]
    out = {
        "estimate": est,
        "se": np.asarray(_get(res, "se_beta_b"), float),
        "ci_lower": np.asarray(_get(res, "ci_lower"), float),
        "ci_upper": np.asarray(_get(res, "ci_upper"), float),
        "lo::profile": np.asarray(_get(res, "profile_lower", np.full(B, np.nan)), float),
        "hi::profile": np.asarray(_get(res, "profile_upper", np.full(B, np.nan)), float),
    }
    conv = _get(res, "converged")
    if conv is not None:
        out["converged"] = np.asarray(conv, bool)
    boundary = _get(res, "boundary")
    if boundary is not None:
        out["degenerate"] = np.asarray(boundary, bool).reshape(B, -1).any(axis=1)
    return out


def mcmc_estimator(
    y: np.ndarray,
    x: np.ndarray,
    covariates: np.ndarray | None,
    *,
    conf_level: float = 0.95,
    random_seed: Any = None,
    draws: int = 500,
    tune: int = 500,
    chains: int = 4,
    target_accept: float = 0.95,
    prior_slope_sd: float = 2.5,
    rhat_max: float = 1.01,
    ess_min: float = 400.0,
) -> dict[str, np.ndarray]:
    """Full MCMC for B data sets (:func:`mlob_pp.mcmc_batch`), with convergence flags.

    The estimate is the posterior mean of ``beta_b``, the SE its posterior SD, the interval the
    equal-tailed `conf_level` credible interval. ``high_rhat``: rank-normalized R-hat above
    `rhat_max`; ``low_ess``: bulk ESS below `ess_min`; either makes the data set
    ``converged=False`` (as does ``mcmc_batch``'s own flag after its reruns with longer
    chains; ``rerun`` marks data sets that were rerun).
    """
    kwargs: dict[str, Any] = {
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "target_accept": target_accept,
        "prior_slope_sd": prior_slope_sd,
        "random_seed": random_seed,
    }
    if "conf_level" in inspect.signature(mcmc_batch).parameters:
        kwargs["conf_level"] = conf_level
    elif abs(conf_level - 0.95) > 1e-12:
        raise ValueError(
            f"`conf_level` must be 0.95 for the mcmc arm (mcmc_batch has no conf_level); "
            f"got {conf_level}"
        )
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = mcmc_batch(y, x, covariates, **kwargs)
    est = np.asarray(_get(res, "beta_b"), float)
    B = est.shape[0]
    rhat = np.asarray(_get(res, "rhat", np.full(B, np.nan)), float)
    ess = np.asarray(_get(res, "ess_bulk", np.full(B, np.nan)), float)
    high_rhat = ~(rhat <= rhat_max)
    low_ess = ~(ess >= ess_min)
    out = {
        "estimate": est,
        "se": np.asarray(_get(res, "se_beta_b"), float),
        "ci_lower": np.asarray(_get(res, "ci_lower"), float),
        "ci_upper": np.asarray(_get(res, "ci_upper"), float),
        "rhat": rhat,
        "ess_bulk": ess,
        "high_rhat": high_rhat,
        "low_ess": low_ess,
        "converged": ~(high_rhat | low_ess),
    }
    reruns = _get(res, "n_reruns")
    if reruns is not None:
        out["rerun"] = np.asarray(reruns).reshape(B) > 0
    div = _get(res, "n_divergent")
    if div is not None:
        out["divergent"] = np.asarray(div).reshape(B) > 0
    conv = _get(res, "converged")
    if conv is not None:
        out["converged"] &= np.asarray(conv, bool).reshape(B)
    return out


def call_plugin(fn: Callable, y, x, c, conf_level: float,
                per_row: Mapping[str, Sequence[Any]] | None = None) -> dict[str, Any]:
    """Call a batched arm; if the batch raises, fit row by row and mark failed rows.

    ``per_row`` holds keyword arguments with one entry per data set (e.g. seeds); the batch
    call gets them whole, a row call the row's entry as a one-element list.
    """
    per_row = dict(per_row or {})
    try:
        with np.errstate(all="ignore"):
            return dict(fn(y, x, c, conf_level=conf_level, **per_row))
    except Exception:  # noqa: BLE001 - isolate the failing data sets below
        pass
    B = len(y)
    out: dict[str, Any] = {f: np.full(B, np.nan) for f in FIELDS}
    out["error"] = np.zeros(B, dtype=bool)
    for i in range(B):
        try:
            with np.errstate(all="ignore"):
                r = fn(
                    y[i : i + 1],
                    x[i : i + 1],
                    None if c is None else c[i : i + 1],
                    conf_level=conf_level,
                    **{key: list(val[i : i + 1]) for key, val in per_row.items()},
                )
        except Exception:  # noqa: BLE001 - counted as n_error
            out["error"][i] = True
            continue
        for key, val in r.items():
            arr = np.asarray(val).reshape(-1)
            if key not in out:
                out[key] = np.zeros(B, dtype=arr.dtype) if arr.dtype == bool else np.full(B, np.nan)
            out[key][i] = arr[0]
    return out


def wald_bounds(estimate: np.ndarray, se: np.ndarray, conf_level: float):
    """Wald interval bounds (:func:`mlob_pp.tables.wald`)."""
    _z, _p, lo, hi = wald(estimate, se, conf_level)
    return lo, hi
