r"""The closed-form MLOB estimator, batched over many balanced data sets.

Model (Dashuk, Hecht, Lüdtke, Robitzsch & Zitzmann 2024/2025; MLOB talk eqs. 1-24). For groups
j = 1..J of equal size n, target regressor x, outcome y and covariates C,

.. math::

    \hat\beta_{b} = \frac{\hat\tau_{yx}}{(1-\omega)\,\tau_0^2 + \omega\,\hat\tau_x},

where :math:`\hat\tau_x, \hat\tau_{yx}` are the ANOVA estimators of the between-group
(co)variances of x and of the covariate-adjusted outcome :math:`\tilde y = y - C\hat\gamma`,
and :math:`(\omega, \tau_0^2)` minimises an approximate mean squared error over a fixed
100 x 100 grid. The unregularised moment ratio :math:`\hat\tau_{yx} / \hat\tau_x` is what R MLOB
labels "ML" (we call it ``ml_moments``: it is not a likelihood maximiser; see
:func:`mlob_pp.fit_ml` for true maximum likelihood).

This module is numpy only (the closed forms live in :mod:`mlob_pp.closed_form.moments`).
Everything depends on the data through block sums, so one fit costs O(N k^2) and B data sets
shaped ``(B, J, n)`` are fitted at once. ``mode="r"`` reproduces R MLOB 0.0.2.0 (closed forms
of spec section 3.3; bit emulation for J = 3, 5), ``mode="stable"`` removes its fragilities
(scale-free thresholds, moment-consistent criterion, no poles).

References
----------
Dashuk, V., Hecht, M., Lüdtke, O., Robitzsch, A., & Zitzmann, S. (2025). An optimally
regularized estimator of multilevel latent variable models, with improved MSE performance.
R package MultiLevelOptimalBayes 0.0.2.0.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from mlob_pp.closed_form.moments import (
    GRID_W,
    grid_tau02,
    moment_fit,
    pole_flags,
    se_ratio,
    select_grid,
)
from mlob_pp.closed_form.r_emulation import r_x_statistics
from mlob_pp.tables import normal_quantile
from mlob_pp.validate import NumericalWarning, check_choice, check_probability

__all__ = ["mlob_batch", "fit_arrays", "BatchResult", "GRID_W", "grid_tau02", "warn_flags",
           "check_batch_design"]

#: rounding allowance: a spread below this many ulps of the largest |value| is "no variation"
_ULPS = 64.0


@dataclass(frozen=True)
class BatchResult:
    """Estimates of B data sets (arrays with leading dimension B).

    Attributes
    ----------
    beta_b, se_beta_b : ndarray (B,)
        Regularised MLOB estimate and its analytic SE.
    beta_b_ml, se_beta_b_ml : ndarray (B,)
        R MLOB's "ML" column: the moment ratio tau_yx / tau_x and its SE ("ml_moments").
    gamma, se_gamma : ndarray (B, k)
        Covariate coefficients and their analytic SEs (the same in both tables, as in R).
    ci_lower, ci_upper, ci_lower_ml, ci_upper_ml : ndarray (B,)
        Wald intervals at `conf_level` for beta_b (regularised and ML).
    w_opt, tau02_opt : ndarray (B,)
        Selected grid point.
    grid_index : ndarray of int (B,)
        0-based flattened grid index (tau0^2 fastest; R's index minus one).
    degenerate, fallback_window, pole, se_ml_degenerate : ndarray of bool (B,)
        Which R branches decided the result (see :func:`mlob_batch`). ``degenerate`` marks the
        data sets where R's zero-variance fallback fired (``mode="r"``: beta_b = 0, SE = 1, as
        R returns; ``mode="stable"``: NaN); these flags are set whether or not ``warn`` is.
    internals : dict
        Intermediate quantities (tau_x, sigma_x, tau_yx, ..., K1, T1, K2, T2, lo, hi).
    """

    beta_b: np.ndarray
    se_beta_b: np.ndarray
    beta_b_ml: np.ndarray
    se_beta_b_ml: np.ndarray
    gamma: np.ndarray
    se_gamma: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    ci_lower_ml: np.ndarray
    ci_upper_ml: np.ndarray
    w_opt: np.ndarray
    tau02_opt: np.ndarray
    grid_index: np.ndarray
    degenerate: np.ndarray
    fallback_window: np.ndarray
    pole: np.ndarray
    se_ml_degenerate: np.ndarray
    conf_level: float
    mode: str
    internals: dict = field(default_factory=dict, repr=False)

    @property
    def n_datasets(self) -> int:
        """Number of data sets B."""
        return int(self.beta_b.shape[0])



def _batch_arrays(y, x, covariates):
    """Check shapes and finiteness; return (y, x, C) shaped (B, J, n[, k]) and ``single``."""
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    single = x.ndim == 2
    if single:
        x, y = x[None], y[None]
        if covariates is not None:
            covariates = np.asarray(covariates, dtype=float)[None]
    if x.ndim != 3 or y.shape != x.shape:
        raise ValueError(
            f"`x` and `y` must have the same shape (B, J, n); got x {x.shape} and y {y.shape}"
        )
    B, J, n = x.shape
    if J < 2:
        raise ValueError(f"at least 2 groups are needed (axis -2 of `x`); got J = {J}")
    if n < 2:
        raise ValueError(f"groups need at least 2 members (axis -1 of `x`); got n = {n}")
    if covariates is None:
        C = np.empty((B, J, n, 0))
    else:
        C = np.asarray(covariates, dtype=float)
        if C.ndim == 3:
            C = C[..., None]
        if C.shape[:3] != x.shape:
            raise ValueError(
                f"`covariates` must have shape (B, J, n, k) matching x {x.shape}; got {C.shape}"
            )
    for name, arr in (("y", y), ("x", x), ("covariates", C)):
        _check_finite(name, arr, B)
    return y, x, C, single


def _where(mask: np.ndarray) -> str:
    bad = np.flatnonzero(mask)
    shown = ", ".join(str(i) for i in bad[:8]) + (", ..." if bad.size > 8 else "")
    return f"{bad.size} of {mask.size} data set(s) (index {shown})"


def _check_finite(name: str, arr: np.ndarray, B: int) -> None:
    finite = np.isfinite(arr)
    if finite.all():
        return
    bad = ~finite.reshape(B, -1).all(axis=1)
    raise ValueError(
        f"`{name}` has non-finite values (NaN or inf) in {_where(bad)}; every data set must be "
        "complete (drop or repair those data sets before calling mlob_batch)"
    )


def _check_prior(b_prior, B: int):
    if b_prior is None:
        return None
    b = np.asarray(b_prior, dtype=float)
    if b.ndim > 1 or (b.ndim == 1 and b.shape[0] != B):
        raise ValueError(f"`b_prior` must be a number or an array of shape ({B},); got shape "
                         f"{b.shape}")
    b = np.broadcast_to(b, (B,))
    if not np.all(np.isfinite(b)):
        raise ValueError(f"`b_prior` must be finite; got NaN or inf for {_where(~np.isfinite(b))}")
    return b


def _spread_ok(ss: np.ndarray, values: np.ndarray, count: int) -> np.ndarray:
    """Whether a sum of squared deviations exceeds rounding noise of the values' magnitude."""
    scale = np.max(np.abs(values.reshape(values.shape[0], -1)), axis=1)
    noise = count * (_ULPS * np.finfo(float).eps * scale) ** 2
    return ss > noise


def check_batch_design(y: np.ndarray, x: np.ndarray) -> None:
    """Raise ``ValueError`` for data sets whose x or y has no variation (relative to scale).

    x must vary within groups and its group means must differ; y must vary. "No variation"
    means a spread below 64 ulps of the largest absolute value (rounding noise), so the decision
    does not depend on units or shifts.
    """
    B, J, n = x.shape
    xm = x.mean(axis=2, keepdims=True)
    within = np.einsum("bjn,bjn->b", x - xm, x - xm)
    means = xm[..., 0]
    between = n * np.einsum("bj,bj->b", means - means.mean(axis=1, keepdims=True),
                            means - means.mean(axis=1, keepdims=True))
    yc = y - y.mean(axis=(1, 2), keepdims=True)
    total_y = np.einsum("bjn,bjn->b", yc, yc)
    for ok, what in ((_spread_ok(within, x, J * n), "`x` is constant within every group "
                      "(no within-group variation)"),
                     (_spread_ok(between, x, J * n), "the group means of `x` are all equal "
                      "(no between-group variation)"),
                     (_spread_ok(total_y, y, J * n), "`y` is constant")):
        if not ok.all():
            raise ValueError(f"{what} in {_where(~ok)}; beta_b is not identified there")


def mlob_batch(
    y: np.ndarray,
    x: np.ndarray,
    covariates: np.ndarray | None = None,
    *,
    conf_level: float = 0.95,
    mode: str = "r",
    warn: bool = True,
    b_prior: np.ndarray | None = None,
) -> BatchResult:
    """Fit the closed-form MLOB estimator to B balanced data sets at once.

    Parameters
    ----------
    y, x : array_like, shape (B, J, n) or (J, n)
        Outcome and target regressor; axis -2 indexes the J groups, axis -1 the n members.
    covariates : array_like, shape (B, J, n, k) or (J, n, k), optional
        Level-1 covariates.
    conf_level : float
        Confidence level of the Wald intervals (0.95 means a 95 % interval; R's
        ``conf.level`` is the significance level 1 - conf_level).
    mode : {"r", "stable"}
        ``"r"`` reproduces R MLOB 0.0.2.0 including its quirks (absolute thresholds, a
        criterion with poles for J <= 5 whose winner is decided by rounding noise, emulated
        bit for bit for J = 3 and 5). ``"stable"`` uses scale-free thresholds and a
        moment-consistent criterion (E[1/B^2] = D^2 / ((D^2 - V)(D^2 - 2V)) and the full
        mean of the numerator, where R uses D and half of it), excludes poles, and reports an
        infinite SE where the ratio-of-Gammas variance does not exist (J <= 5); results are
        equivariant under rescaling and shifting x and y.
    warn : bool
        Emit one :class:`~mlob_pp.warnings.NumericalWarning` per kind of degenerate branch,
        with the number of data sets affected. The per-data-set flags (``degenerate``,
        ``fallback_window``, ``pole``) are set either way.
    b_prior : float or array_like, shape (B,), optional
        Slope used in the criterion; defaults to each data set's own moment ratio (R's
        behaviour outside its jackknife). Must be finite.

    Returns
    -------
    BatchResult

    Raises
    ------
    ValueError
        For inconsistent shapes, fewer than 2 groups or groups of fewer than 2 members; for
        non-finite values in `y`, `x`, `covariates` or `b_prior` (the message lists the data
        sets); for data sets where x does not vary within groups, its group means are all equal,
        or y is constant. One bad data set fails the whole call: validate or drop it first.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> u = rng.normal(size=(3, 10, 1))
    >>> x = u + rng.normal(size=(3, 10, 8))
    >>> y = 0.5 * u + 0.2 * (x - u) + rng.normal(size=(3, 10, 8))
    >>> res = mlob_batch(y, x)
    >>> res.beta_b.shape
    (3,)
    """
    conf_level = check_probability(conf_level, "conf_level")
    mode = check_choice(mode, "mode", ("r", "stable"))
    y, x, C, _ = _batch_arrays(y, x, covariates)
    b_prior = _check_prior(b_prior, x.shape[0])
    check_batch_design(y, x)
    result = fit_arrays(y, x, C, conf_level=conf_level, mode=mode, b_prior=b_prior)
    if warn:
        warn_flags(result, x.shape[0])
    return result


def fit_arrays(y: np.ndarray, x: np.ndarray, C: np.ndarray, *, conf_level: float, mode: str,
               b_prior: np.ndarray | None = None) -> BatchResult:
    """Fit checked arrays (B, J, n) and (B, J, n, k): the estimator without checks or warnings.

    :func:`mlob_batch` checks its input and then calls this; :func:`mlob_pp.mlob` calls it
    directly after checking the design of the whole data set.
    """
    stable = mode == "stable"
    B, J, n = x.shape
    x_stats = None
    if (not stable) and J in (3, 5):
        x_stats = np.array([r_x_statistics(x[i]) for i in range(B)]).T
    m = moment_fit(y, x, C, stable, x_stats)
    b = m["beta_ml"] if b_prior is None else b_prior
    index, best, valid, w_opt, tau02_opt = select_grid(m, b, stable)
    return _assemble(m, index, best, valid, w_opt, tau02_opt, conf_level, mode, J, n,
                     C.shape[-1])


def _assemble(m: dict, index, best, valid, w_opt, tau02_opt, conf_level: float, mode: str,
              J: int, n: int, k: int) -> BatchResult:
    """Estimates, SEs, R's degenerate branches and Wald intervals from the selected grid point."""
    stable = mode == "stable"
    B = index.shape[0]
    degenerate, active = m["degenerate"], ~m["degenerate"]
    tau_x, tau_yx, K1, T1 = m["tau_x"], m["tau_yx"], m["K1"], m["T1"]
    beta_ml = m["beta_ml"]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        beta_bay = tau_yx / ((1.0 - w_opt) * tau02_opt + w_opt * tau_x)
        num = w_opt * T1 * K1 + (1.0 - w_opt) * tau02_opt
        den = w_opt**2 * T1**2 * K1
        se_bay = se_ratio(m["K2"], m["T2"], num**2 / den, den / num, stable)
        se_ml = se_ratio(m["K2"], m["T2"], K1, T1, stable)
        se_ml_degen = np.sqrt(np.abs(m["s_y"] / (J * tau_x)))
    pole = np.zeros(B, dtype=bool)
    if not stable and J <= 5 and active.any():
        ai = np.flatnonzero(active)
        pole[ai] = pole_flags(m["s1"][ai], m["q1"][ai], m["lo"][ai], m["hi"][ai], index[ai], J,
                              best[ai])
    if stable:
        invalid = degenerate | ~valid
        beta_bay = np.where(invalid, np.nan, beta_bay)
        se_bay = np.where(invalid, np.nan, se_bay)
        se_ml = np.where(degenerate, np.nan, se_ml)
    else:
        beta_bay = np.where(degenerate, 0.0, beta_bay)
        se_bay = np.where(degenerate, 1.0, se_bay)
        se_ml = np.where(degenerate, se_ml_degen, se_ml)
        w_opt = np.where(degenerate, np.nan, w_opt)
        tau02_opt = np.where(degenerate, np.nan, tau02_opt)
    singular = m["singular"]
    gamma = np.where(singular[:, None], np.nan, m["gamma"])
    se_gamma = np.where(singular[:, None], np.nan, m["se_gamma"])
    zq = normal_quantile(conf_level)
    internals = {key: m[key] for key in ("tau_x", "sigma_x", "tau_yx", "sigma_yx", "tau_y",
                                         "sigma_y", "s1", "q1", "s2", "q2", "K1", "T1", "K2",
                                         "T2", "lo", "hi")}
    internals.update(criterion=best, collinear=singular, J=J, n=n, k=k)
    return BatchResult(
        beta_b=beta_bay, se_beta_b=se_bay, beta_b_ml=beta_ml, se_beta_b_ml=se_ml,
        gamma=gamma, se_gamma=se_gamma,
        ci_lower=beta_bay - zq * se_bay, ci_upper=beta_bay + zq * se_bay,
        ci_lower_ml=beta_ml - zq * se_ml, ci_upper_ml=beta_ml + zq * se_ml,
        w_opt=w_opt, tau02_opt=tau02_opt, grid_index=index, degenerate=degenerate,
        fallback_window=m["fallback"] & active, pole=pole,
        se_ml_degenerate=np.full(B, (not stable) and J <= 5), conf_level=conf_level, mode=mode,
        internals=internals,
    )


def warn_flags(res: BatchResult, B: int) -> None:
    """Emit one NumericalWarning per kind of flagged branch (with counts when B > 1)."""

    def count(mask: np.ndarray) -> str:
        return "" if B == 1 else f" ({int(mask.sum())} of {B} data sets)"

    if res.degenerate.any():
        msg = (
            "Singularities in the between-group estimation: the between-group covariance of x "
            "and y is zero or below R's absolute 1e-7 threshold"
        )
        if res.mode == "r":
            msg += "; R's fallback (beta_b = 0, SE = 1) was returned, use mode='stable'"
        else:
            msg += "; beta_b is NaN"
        warnings.warn(msg + count(res.degenerate), NumericalWarning, stacklevel=3)
    if res.fallback_window.any():
        warnings.warn(
            "Please check grouping, as it does not explain the variation and may be "
            "meaningless: the tau0^2 search window collapsed and the fallback window was used"
            + count(res.fallback_window),
            NumericalWarning,
            stacklevel=3,
        )
    if res.pole.any():
        warnings.warn(
            f"the selected grid point (omega, tau0^2) lies at or next to a pole of R MLOB's "
            f"criterion (J = {res.internals['J']} <= 5): the regularised estimate is decided by "
            "floating-point noise, not by a minimum MSE; use mode='stable'" + count(res.pole),
            NumericalWarning,
            stacklevel=3,
        )
    if res.se_ml_degenerate.any():
        J = res.internals["J"]
        why = (
            "divides by rounding noise (K1 - 1 or K1 - 2 is 0)"
            if J in (3, 5)
            else "takes absolute values of a negative variance (K1 < 2)"
        )
        warnings.warn(
            f"the ML (moment ratio) standard error for J = {J} {why}: the variance of the ratio "
            "does not exist for J <= 5, so this SE is meaningless",
            NumericalWarning,
            stacklevel=3,
        )
    if np.any(res.internals["collinear"]):
        warnings.warn(
            "covariates are collinear after residualising on x: gamma is NaN" + count(
                res.internals["collinear"]),
            NumericalWarning,
            stacklevel=3,
        )
