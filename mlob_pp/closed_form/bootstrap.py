r"""Parametric bootstrap standard errors and intervals for the regularised MLOB estimator.

Generating model (the latent covariate model, Lüdtke et al. 2008, fitted to one balanced data
set of J groups of n members with moment (ANOVA) estimates)::

    X*_ij = mu_x + u_j + e_ij,                u_j ~ N(0, tau2_x),   e_ij ~ N(0, sigma2_x)
    C*_ij = c0 + Phi_b (xbar*_j - xbar*) + Phi_w (X*_ij - xbar*_j) + R_ij          (R fixed)
    Y*_ij = alpha + beta_b u_j + beta_w e_ij + C*_ij' gamma + delta_j + eps_ij,
                                              delta_j ~ N(0, tau2), eps_ij ~ N(0, sigma2)

The covariates are handled by conditioning: each observed covariate is regressed on the
observed group means of x (slope ``Phi_b``) and on the within-group deviations of x (slope
``Phi_w``); the residual matrix ``R`` is held fixed and the part of C explained by x is
regenerated from the simulated X*. This keeps the correlation between C and x (on which the
estimator's covariate adjustment acts) and treats the covariates' own variation as fixed, as
in a regression bootstrap. The variance components are ANOVA estimates truncated to
admissible values (``tau2_x`` and ``tau2`` at least 5 % of the sampling variance of a group
mean, ``sigma2_x`` and ``sigma2`` positive).

Each of the ``n_boot`` simulated data sets, shaped like the original ``(J, n, k)``, is refitted
with the closed-form estimator, in chunks; the standard deviation of the refits is the
bootstrap SE. Intervals:

- ``"inversion"`` (default): test inversion with common random numbers. Every simulated data
  set is refitted twice, at the generating slope ``beta_gen`` (the regularised estimate) and
  at ``beta_gen + h`` (the same random draws, ``y`` raised by ``h`` times the latent group
  mean); on the secant through the two refits, the slope ``beta_i`` at which data set ``i``
  would reproduce the observed estimate is found, and the interval is the central
  ``conf_level`` range of the ``beta_i`` (order statistics). This is the set of slopes that a
  bootstrap test does not reject, so it corrects the estimator's shrinkage bias, which the
  percentile-type intervals inherit (twice, for the percentile interval). Where the refits do
  not increase with the slope (no information about ``beta_b``: low ICC, few or small groups)
  a bound is infinite.
- ``"bc"``: Efron's bias-corrected percentile interval; ``"percentile"``; ``"basic"``.

The calibration study in ``docs/bootstrap.md`` (the MLOB talk's design) chose the default:
the percentile-type intervals cover 27-90 % where MLOB shrinks strongly (even J = 40, n = 30).

Refits (:func:`refit`) follow :func:`mlob_pp.closed_form.core.mlob_batch` step by step and use its
(compiled) grid search, but skip the SEs, the warnings, the pole diagnostics and R's bit-level
emulation of J = 3 and 5 (``mode="r"``): estimates are identical to ``mlob_batch`` except for
J = 3, 5 in ``mode="r"``, where the criterion has poles and the selected grid point is decided
by rounding noise either way (tested).

References
----------
.. [1] Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B.
   (2008). The multilevel latent covariate model. Psychological Methods, 13(3), 203-229.
   https://doi.org/10.1037/a0012869
.. [2] Efron, B. (1987). Better bootstrap confidence intervals. Journal of the American
   Statistical Association, 82(397), 171-185. https://doi.org/10.1080/01621459.1987.10478410
.. [3] Carpenter, J. (1999). Test inversion bootstrap confidence intervals. Journal of the Royal
   Statistical Society B, 61(1), 159-172. https://doi.org/10.1111/1467-9868.00169
.. [4] Davison, A. C., & Hinkley, D. V. (1997). Bootstrap Methods and their Application.
   Cambridge University Press. https://doi.org/10.1017/CBO9780511802843
"""

from __future__ import annotations

import numbers
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from mlob_pp.closed_form.core import (
    GRID_W,
    BatchResult,
    _block_stats,
    _covariate_adjust,
    _decompose,
    _grid_argmin,
    grid_tau02,
    mlob_batch,
    shape_parameters,
)
from mlob_pp.validate import check_choice, check_int, check_probability

__all__ = [
    "INTERVALS",
    "CENTERS",
    "GeneratingModel",
    "BootstrapResult",
    "fit_generating_model",
    "simulate_bootstrap",
    "refit",
    "bootstrap_interval",
    "inversion_roots",
    "inversion_interval",
    "parametric_bootstrap",
    "bootstrap_batch",
]

#: interval methods, the default first
INTERVALS: tuple[str, ...] = ("inversion", "bc", "percentile", "basic")
#: slope used to generate the bootstrap data: the regularised estimate or the moment ratio
CENTERS: tuple[str, ...] = ("mlob", "ml")
_CHUNK = 250  # data sets per refit chunk (seeded per chunk: results do not depend on n_jobs)
_VAR_FLOOR = 0.05  # tau2_x, tau2 >= _VAR_FLOOR * (within variance / n)


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class GeneratingModel:
    """The fitted two-level model from which bootstrap data sets are drawn.

    Attributes
    ----------
    mu_x, tau2_x, sigma2_x : float
        Mean, between and within variance of x (ANOVA, truncated).
    alpha, beta_b, beta_w, tau2, sigma2 : float
        Intercept, slopes and residual variances of y (``beta_b`` is the generating slope).
    gamma : ndarray (k,)
        Covariate coefficients (the estimator's own estimate).
    phi_b, phi_w : ndarray (k,)
        Slopes of the covariates on the group means and within deviations of x.
    c_resid : ndarray (J, n, k)
        Fixed part of the covariates (intercept plus residual of the regression on x).
    truncated : dict
        Which variance components were raised to their floor.
    center : str
        ``"mlob"`` or ``"ml"``: which estimate ``beta_b`` is.
    """

    mu_x: float
    tau2_x: float
    sigma2_x: float
    alpha: float
    beta_b: float
    beta_w: float
    tau2: float
    sigma2: float
    gamma: np.ndarray
    phi_b: np.ndarray
    phi_w: np.ndarray
    c_resid: np.ndarray = field(repr=False)
    truncated: dict = field(default_factory=dict)
    center: str = "mlob"

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(J, n, k)`` of the simulated data sets."""
        return tuple(int(s) for s in self.c_resid.shape)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, float]:
        """Scalar parameters with the package's labels (``gamma_<i>`` for covariates)."""
        out = {name: float(getattr(self, name)) for name in
               ("alpha", "beta_b", "beta_w", "mu_x", "tau2_x", "sigma2_x", "tau2", "sigma2")}
        for i, g in enumerate(np.atleast_1d(self.gamma)):
            out[f"gamma_{i}"] = float(g)
        return out


@dataclass(frozen=True)
class BootstrapResult:
    """Parametric bootstrap of the regularised between-group slope of one data set.

    Attributes
    ----------
    estimate : float
        The regularised estimate ``beta_b`` of the original data.
    se_beta_b : float
        Bootstrap SE: standard deviation of the finite refits.
    ci_lower, ci_upper : float
        Interval for ``beta_b`` at ``conf_level`` by method ``interval``.
    interval : str
        ``"inversion"``, ``"bc"``, ``"percentile"`` or ``"basic"``.
    conf_level, n_boot, n_failed : float, int, int
        Level, number of refits and how many of them gave a non-finite estimate (dropped).
    center, mode : str
        Generating slope (``"mlob"`` or ``"ml"``) and the estimator's mode.
    z0 : float
        Bias-correction constant ``Phi^-1(P(beta_b* < estimate))`` (used by ``"bc"``).
    generating : GeneratingModel
        The fitted generating model.
    draws_beta_b, draws_beta_b_ml : ndarray (n_boot,)
        Refitted regularised estimates and moment ratios.
    gamma, se_gamma, ci_lower_gamma, ci_upper_gamma : ndarray (k,)
        Covariate estimates, bootstrap SEs and intervals (same method).
    draws_gamma : ndarray (n_boot, k)
        Refitted covariate coefficients.
    roots : ndarray (n_boot,) or None
        For ``interval="inversion"``: per simulated data set, the slope at which its refit
        equals the observed estimate (the interval is their central quantile range).
    """

    estimate: float
    se_beta_b: float
    ci_lower: float
    ci_upper: float
    interval: str
    conf_level: float
    n_boot: int
    n_failed: int
    center: str
    mode: str
    z0: float
    generating: GeneratingModel = field(repr=False)
    draws_beta_b: np.ndarray = field(repr=False)
    draws_beta_b_ml: np.ndarray = field(repr=False)
    gamma: np.ndarray = field(repr=False)
    se_gamma: np.ndarray = field(repr=False)
    ci_lower_gamma: np.ndarray = field(repr=False)
    ci_upper_gamma: np.ndarray = field(repr=False)
    draws_gamma: np.ndarray = field(repr=False)
    roots: np.ndarray | None = field(default=None, repr=False)

    @property
    def p_value(self) -> float:
        """Two-sided bootstrap p-value of ``beta_b = 0``, consistent with the interval.

        ``2 min(P(r <= 0), P(r >= 0))`` over the inversion roots r (``"inversion"``) or the
        refits (other methods): the ``conf_level`` interval excludes 0 when the p-value is
        below ``1 - conf_level`` (up to the quantile interpolation).
        """
        r = self.roots if self.roots is not None else self.draws_beta_b
        r = r[~np.isnan(r)]
        if r.size == 0:
            return float("nan")
        return float(min(1.0, 2.0 * min(np.mean(r <= 0.0), np.mean(r >= 0.0))))

    @property
    def method(self) -> str:
        """Short description for summaries and ``attrs``, e.g. ``"parametric bootstrap (bc)"``."""
        return f"parametric bootstrap ({self.interval}, n_boot={self.n_boot})"

    def __str__(self) -> str:
        pct = f"{100 * self.conf_level:g} %"
        lines = [
            f"Parametric bootstrap of beta_b ({self.n_boot} refits, {self.n_failed} failed; "
            f"generated around the {self.center} estimate; mode={self.mode!r})",
            f"  estimate {self.estimate: .4f}   bootstrap SE {self.se_beta_b:.4f}",
            f"  {pct} {self.interval} interval [{self.ci_lower:.4f}, {self.ci_upper:.4f}]",
        ]
        for i, g in enumerate(np.atleast_1d(self.gamma)):
            lines.append(
                f"  gamma_{i} {g: .4f}   SE {self.se_gamma[i]:.4f}   "
                f"[{self.ci_lower_gamma[i]:.4f}, {self.ci_upper_gamma[i]:.4f}]"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------- generator
def _as_arrays(y, x, covariates):
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or y.shape != x.shape:
        raise ValueError(
            f"`x` and `y` must be arrays of the same shape (J, n) (one balanced data set); "
            f"got x {x.shape} and y {y.shape}"
        )
    J, n = x.shape
    if J < 2 or n < 2:
        raise ValueError(f"need at least 2 groups of at least 2 members; got (J, n) = {(J, n)}")
    if covariates is None:
        C = np.empty((J, n, 0))
    else:
        C = np.asarray(covariates, dtype=float)
        if C.ndim == 2:
            C = C[..., None]
        if C.ndim != 3 or C.shape[:2] != (J, n):
            raise ValueError(
                f"`covariates` must have shape (J, n, k) matching x {x.shape}; got {C.shape}"
            )
    for name, arr in (("y", y), ("x", x), ("covariates", C)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"`{name}` contains non-finite values (NaN or inf)")
    return y, x, C


def fit_generating_model(
    y: np.ndarray,
    x: np.ndarray,
    covariates: np.ndarray | None = None,
    *,
    center: str = "mlob",
    mode: str = "r",
) -> GeneratingModel:
    """Fit the bootstrap's generating model to one balanced data set by moments.

    Parameters
    ----------
    y, x : array_like, shape (J, n)
        Outcome and target regressor of one balanced data set.
    covariates : array_like, shape (J, n, k), optional
        Level-1 covariates.
    center : {"mlob", "ml"}
        Generating ``beta_b``: the regularised estimate or the moment ratio ``tau_yx / tau_x``
        (with ``tau_x`` truncated).
    mode : {"r", "stable"}
        Estimator mode used for the regularised estimate and gamma.

    Returns
    -------
    GeneratingModel
    """
    center = check_choice(center, "center", CENTERS)
    mode = check_choice(mode, "mode", ("r", "stable"))
    y, x, C = _as_arrays(y, x, covariates)
    fit = mlob_batch(y[None], x[None], C[None] if C.shape[-1] else None, mode=mode, warn=False)
    par = _fit_models(y[None], x[None], C[None], fit, center)
    scal = {name: float(par[name][0]) for name in _SCALARS}
    return GeneratingModel(
        **scal, gamma=par["gamma"][0], phi_b=par["phi_b"][0], phi_w=par["phi_w"][0],
        c_resid=par["c_resid"][0],
        truncated={name: bool(par["truncated_" + name][0]) for name in _TRUNCATABLE},
        center=center,
    )


_SCALARS = ("mu_x", "tau2_x", "sigma2_x", "alpha", "beta_b", "beta_w", "tau2", "sigma2")
_TRUNCATABLE = ("tau2_x", "sigma2_x", "tau2", "sigma2")


def _fit_models(y, x, C, fit: BatchResult, center: str) -> dict[str, np.ndarray]:
    """Moment fit of the generating model to R data sets (R, J, n[, k]) at once."""
    R, J, n, k = C.shape
    it = fit.internals
    tau_x, sigma_x = it["tau_x"], it["sigma_x"]
    tau_yx, sigma_yx = it["tau_yx"], it["sigma_yx"]
    tau_y, sigma_y = it["tau_y"], it["sigma_y"]
    gamma = np.nan_to_num(fit.gamma, nan=0.0)
    out: dict[str, np.ndarray] = {}
    out["truncated_sigma2_x"] = ~(sigma_x > 0)
    sigma2_x = np.where(sigma_x > 0, sigma_x, 1e-12)
    floor_x = _VAR_FLOOR * sigma2_x / n
    out["truncated_tau2_x"] = ~(tau_x >= floor_x)
    tau2_x = np.maximum(np.nan_to_num(tau_x, nan=0.0), floor_x)
    beta_w = sigma_yx / sigma2_x
    sigma2 = sigma_y - beta_w * sigma_yx
    floor_e = 1e-6 * np.maximum(sigma_y, 1e-12)
    out["truncated_sigma2"] = ~(sigma2 >= floor_e)
    sigma2 = np.maximum(sigma2, floor_e)
    ratio = tau_yx / tau2_x
    beta_b = np.where(np.isfinite(fit.beta_b), fit.beta_b, ratio) if center == "mlob" else ratio
    # between residual variance of y given beta_b (moment form), truncated
    tau2 = tau_y - 2.0 * beta_b * tau_yx + beta_b * beta_b * tau_x
    floor_y = _VAR_FLOOR * sigma2 / n
    out["truncated_tau2"] = ~(tau2 >= floor_y)
    tau2 = np.maximum(np.nan_to_num(tau2, nan=0.0), floor_y)
    mu_x = x.mean(axis=(1, 2))
    y_adj = y - np.einsum("rjnk,rk->rjn", C, gamma) if k else y
    alpha = y_adj.mean(axis=(1, 2)) - beta_b * mu_x
    # covariates: C = c0 + Phi_b (xbar_j - xbar) + Phi_w (x - xbar_j) + R, R held fixed
    xbar_j = x.mean(axis=2)
    xb = xbar_j - xbar_j.mean(axis=1, keepdims=True)
    xw = x - xbar_j[:, :, None]
    if k:
        cbar_j = C.mean(axis=2)  # (R, J, k)
        sxx_b = np.einsum("rj,rj->r", xb, xb)[:, None]
        sxx_w = np.einsum("rjn,rjn->r", xw, xw)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            phi_b = np.einsum("rj,rjk->rk", xb, cbar_j - cbar_j.mean(axis=1, keepdims=True))
            phi_b = np.where(sxx_b > 0, phi_b / sxx_b, 0.0)
            phi_w = np.einsum("rjn,rjnk->rk", xw, C - cbar_j[:, :, None, :])
            phi_w = np.where(sxx_w > 0, phi_w / sxx_w, 0.0)
        c_resid = C - xb[:, :, None, None] * phi_b[:, None, None, :] \
            - xw[..., None] * phi_w[:, None, None, :]
    else:
        phi_b = phi_w = np.zeros((R, 0))
        c_resid = C
    out.update(mu_x=mu_x, tau2_x=tau2_x, sigma2_x=sigma2_x, alpha=alpha, beta_b=beta_b,
               beta_w=beta_w, tau2=tau2, sigma2=sigma2, gamma=gamma, phi_b=phi_b, phi_w=phi_w,
               c_resid=c_resid)
    return out


def simulate_bootstrap(
    model: GeneratingModel, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw `size` data sets from a fitted generating model.

    Parameters
    ----------
    model : GeneratingModel
    size : int
        Number of data sets.
    rng : numpy.random.Generator
        Draws, in this order, ``u`` (size, J), ``delta`` (size, J), then ``e`` and ``eps``
        as one standard-normal array (2, size, J, n).

    Returns
    -------
    y, x : ndarray (size, J, n)
    covariates : ndarray (size, J, n, k)
    """
    par = {name: np.array([getattr(model, name)]) for name in _SCALARS}
    par.update(gamma=model.gamma[None], phi_b=model.phi_b[None], phi_w=model.phi_w[None],
               c_resid=model.c_resid[None])
    y, x, C, _ = _simulate(par, size, rng)
    return y[0], x[0], C[0]


def _simulate(par: dict[str, np.ndarray], size: int, rng: np.random.Generator):
    """``size`` data sets from each of R generating models: arrays (R, size, J, n[, k])."""
    from mlob_pp.simulate import simulate_arrays

    R, J, n, _ = par["c_resid"].shape
    names = ("alpha", "beta_b", "beta_w", "mu_x", "tau2_x", "sigma2_x", "tau2", "sigma2", "gamma",
             "phi_w", "phi_b")
    kw = {key: par[key] for key in names}
    return simulate_arrays((R, size), J, n, rng, c_resid=par["c_resid"], **kw)


# --------------------------------------------------------------------------- fast refit
def refit(
    y: np.ndarray, x: np.ndarray, covariates: np.ndarray | None = None, *, mode: str = "r"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Regularised estimates of B data sets, without SEs: the bootstrap's refit.

    Follows :func:`mlob_pp.closed_form.core.mlob_batch` step by step (same closed forms, same
    operation order, same degenerate branches, the core's grid search) but skips the SEs, the
    warnings, R's bit emulation for J = 3, 5 and the pole diagnostics.

    Parameters
    ----------
    y, x : ndarray (B, J, n)
    covariates : ndarray (B, J, n, k), optional
    mode : {"r", "stable"}

    Returns
    -------
    beta_b, beta_b_ml : ndarray (B,)
        Regularised estimate and moment ratio.
    gamma : ndarray (B, k)
    """
    stable = mode == "stable"
    B, J, n = x.shape
    C = np.empty((B, J, n, 0)) if covariates is None else covariates
    k = C.shape[-1]
    x_means, x_within, x_centred = _decompose(x)
    tau_x, sigma_x = _block_stats(x_within, x_within, x_centred, x_centred, n, J)
    if k:
        gamma, _, y_adj, singular = _covariate_adjust(
            y, x_means, x_within, x_centred, tau_x, sigma_x, C, n, J
        )
    else:
        gamma, y_adj, singular = np.empty((B, 0)), y, np.zeros(B, dtype=bool)
    _, y_within, y_centred = _decompose(y_adj)
    tau_yx, sigma_yx = _block_stats(x_within, y_within, x_centred, y_centred, n, J)
    tau_y, sigma_y = _block_stats(y_within, y_within, y_centred, y_centred, n, J)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        beta_ml = tau_yx / tau_x
    b = beta_ml
    sh = shape_parameters(tau_x, sigma_x, tau_yx, sigma_yx, tau_y, sigma_y, n, J, stable)
    s1, q1, K2, T2 = sh["s1"], sh["q1"], sh["K2"], sh["T2"]
    lo, hi, degenerate = sh["lo"], sh["hi"], sh["degenerate"]
    index = np.zeros(B, dtype=np.intp)
    active = np.flatnonzero(~degenerate)
    if active.size:
        index[active] = _grid_argmin(s1[active], q1[active], K2[active], T2[active],
                                     b[active], lo[active], hi[active], stable)[0]
    w_opt = GRID_W[index // 100]
    tau02_opt = grid_tau02(lo, hi)[np.arange(B), index % 100]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        beta_bay = tau_yx / ((1.0 - w_opt) * tau02_opt + w_opt * tau_x)
    if stable:
        beta_bay = np.where(degenerate, np.nan, beta_bay)
    else:
        beta_bay = np.where(degenerate, 0.0, beta_bay)
    gamma = np.where(singular[:, None], np.nan, gamma)
    return beta_bay, beta_ml, gamma


# --------------------------------------------------------------------------- intervals
def bootstrap_interval(
    draws: np.ndarray, estimate: np.ndarray | float, conf_level: float = 0.95,
    interval: str = "bc",
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap interval from draws along the last axis (NaN draws ignored).

    Parameters
    ----------
    draws : ndarray (..., B)
        Bootstrap replicates of the estimator.
    estimate : float or ndarray (...)
        The estimate of the original data.
    conf_level : float
    interval : {"bc", "percentile", "basic"}
        ``"percentile"``: quantiles ``alpha/2, 1 - alpha/2`` of the draws. ``"bc"``: Efron's
        bias-corrected percentile interval, quantiles ``Phi(2 z0 -+ z)`` with
        ``z0 = Phi^-1(P(draw < estimate))`` (mid-ranks for ties). ``"basic"``:
        ``2 estimate - q(1 - alpha/2), 2 estimate - q(alpha/2)``.

    Returns
    -------
    lower, upper : ndarray (...)
    """
    draws = np.asarray(draws, dtype=float)
    est = np.asarray(estimate, dtype=float)
    alpha = 1.0 - conf_level
    probs = np.array([alpha / 2.0, 1.0 - alpha / 2.0])
    if interval == "bc":
        z0 = _z0(draws, est)
        zq = float(ndtri(1.0 - alpha / 2.0))
        lo_p = ndtr(2.0 * z0 - zq)
        hi_p = ndtr(2.0 * z0 + zq)
        lower = _nanquantile(draws, lo_p)
        upper = _nanquantile(draws, hi_p)
        return lower, upper
    q = np.nanquantile(draws, probs, axis=-1)
    if interval == "percentile":
        return q[0], q[1]
    return 2.0 * est - q[1], 2.0 * est - q[0]


def _step(par: dict[str, np.ndarray]) -> np.ndarray:
    """Increment h of beta_b for the second (common random numbers) refit, per model."""
    # about one sampling SD of the moment ratio: sqrt(s_y / (J s_x)) in beta units
    J = par["c_resid"].shape[1]
    n = par["c_resid"].shape[2]
    s_x = par["tau2_x"] + par["sigma2_x"] / n
    s_y = par["tau2"] + par["sigma2"] / n + par["beta_b"] ** 2 * par["tau2_x"]
    return np.sqrt(s_y / (J * s_x)) + 1e-8 * np.abs(par["beta_b"])


def inversion_roots(
    draws: np.ndarray, draws_up: np.ndarray, h: np.ndarray | float, beta_gen: np.ndarray | float,
    estimate: np.ndarray | float,
) -> np.ndarray:
    """Per simulated data set, the slope at which its refit would equal the observed estimate.

    With common random numbers the refit ``T_i(beta)`` of simulated data set i is known at the
    generating slope (``draws``) and at ``beta_gen + h`` (``draws_up``); the root of
    ``T_i(beta) = estimate`` on the secant through both points is returned. A non-increasing
    secant gives ``+inf`` if ``T_i`` stays below the estimate and ``-inf`` otherwise.

    Parameters
    ----------
    draws, draws_up : ndarray (..., B)
    h, beta_gen, estimate : float or ndarray (...)

    Returns
    -------
    ndarray (..., B)
    """
    h = np.asarray(h, float)[..., None]
    beta_gen = np.asarray(beta_gen, float)[..., None]
    est = np.asarray(estimate, float)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (draws_up - draws) / h
        root = beta_gen + (est - draws) / slope
    bad = ~(slope > 0) | ~np.isfinite(root)
    root = np.where(bad, np.where(draws < est, np.inf, -np.inf), root)
    return np.where(np.isfinite(draws) & np.isfinite(draws_up), root, np.nan)


def inversion_interval(
    roots: np.ndarray, conf_level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Central ``conf_level`` range of inversion roots along the last axis (linear quantiles).

    Infinite roots are kept (an infinite bound means the data do not bound beta_b). To pool
    several balanced subsets of one data set, concatenate their roots.

    The set of slopes not rejected by the bootstrap test at level ``1 - conf_level``. NaN
    roots (failed refits) are ignored.

    Parameters
    ----------
    roots : ndarray (..., B)
        From :func:`inversion_roots` or ``BootstrapResult.roots``.
    conf_level : float

    Returns
    -------
    lower, upper : ndarray (...)
    """
    alpha = 1.0 - conf_level
    big = 1e300
    r = np.clip(np.asarray(roots, float), -big, big)  # +-inf -> +-1e300 (NaN stays NaN)
    with np.errstate(invalid="ignore", over="ignore"):
        q = np.nanquantile(r, [alpha / 2.0, 1.0 - alpha / 2.0], axis=-1)
    q = np.where(q >= 1e299, np.inf, np.where(q <= -1e299, -np.inf, q))
    return q[0], q[1]


def _z0(draws: np.ndarray, est: np.ndarray) -> np.ndarray:
    finite = np.isfinite(draws)
    m = finite.sum(axis=-1)
    e = est[..., None]
    below = np.sum(finite & (draws < e), axis=-1) + 0.5 * np.sum(finite & (draws == e), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = below / m
    # keep z0 finite: at most one draw's worth from 0 and 1
    p = np.clip(p, 0.5 / np.maximum(m, 1), 1.0 - 0.5 / np.maximum(m, 1))
    return ndtri(p)


def _nanquantile(draws: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Quantile ``p[...]`` of ``draws[..., :]`` (one probability per row)."""
    p = np.broadcast_to(np.asarray(p, float), draws.shape[:-1])
    flat = draws.reshape(-1, draws.shape[-1])
    out = np.array([np.nanquantile(row, pi) if np.isfinite(pi) and np.isfinite(row).any()
                    else np.nan for row, pi in zip(flat, p.reshape(-1), strict=True)])
    return out.reshape(draws.shape[:-1])


# --------------------------------------------------------------------------- front
def _check_n_jobs(n_jobs: Any) -> int:
    n_jobs = check_int(n_jobs, "n_jobs")
    if n_jobs not in (1, 2):
        raise ValueError(f"`n_jobs` must be 1 or 2 (this machine has 2 cores); got {n_jobs}")
    return n_jobs


def _seed_sequence(random_state: Any) -> np.random.SeedSequence:
    if random_state is None or isinstance(random_state, numbers.Integral):
        if isinstance(random_state, bool):
            raise TypeError(
                f"`random_state` must be None, an int or a numpy Generator; got {random_state!r}"
            )
        if random_state is not None and random_state < 0:
            raise ValueError(f"`random_state` must be a non-negative integer seed; got "
                             f"{random_state}")
        return np.random.SeedSequence(random_state)
    if isinstance(random_state, np.random.Generator):
        return np.random.SeedSequence(int(random_state.integers(0, 2**63)))
    if isinstance(random_state, np.random.SeedSequence):
        return random_state
    if hasattr(random_state, "unif_rand"):  # mlob_pp.RRandom: derive a numpy seed from it
        return np.random.SeedSequence(int(random_state.unif_rand() * 2**53))
    raise TypeError(
        "`random_state` must be None, an int, a numpy Generator or mlob_pp.RRandom; got "
        f"{type(random_state).__name__}"
    )


def parametric_bootstrap(
    y: np.ndarray,
    x: np.ndarray,
    covariates: np.ndarray | None = None,
    *,
    n_boot: int = 2000,
    conf_level: float = 0.95,
    mode: str = "r",
    interval: str = "inversion",
    center: str = "mlob",
    random_state: Any = None,
    n_jobs: int = 1,
) -> BootstrapResult:
    """Parametric bootstrap SE and interval for the regularised ``beta_b`` of one data set.

    Parameters
    ----------
    y, x : array_like, shape (J, n)
        Outcome and target regressor of one balanced data set (rows = groups).
    covariates : array_like, shape (J, n, k), optional
        Level-1 covariates (held fixed up to their regression on x; see the module notes).
    n_boot : int, default 2000
        Number of simulated data sets (refits).
    conf_level : float, default 0.95
        Interval level.
    mode : {"r", "stable"}
        Estimator mode of the refits (as :func:`mlob_pp.closed_form.core.mlob_batch`).
    interval : {"inversion", "bc", "percentile", "basic"}, default "inversion"
        Interval method (module notes, :func:`bootstrap_interval`). ``"inversion"`` costs a
        second refit per simulated data set (common random numbers) and is the only method
        that corrects the estimator's shrinkage bias; it may return infinite bounds when the
        data carry no information on ``beta_b``. Its gamma intervals are percentile intervals.
    center : {"mlob", "ml"}, default "mlob"
        Which estimate generates the bootstrap data.
    random_state : None, int, numpy.random.Generator or mlob_pp.RRandom
        Seed. Chunks of 250 simulated data sets draw from child seeds, so the result does not
        depend on `n_jobs`.
    n_jobs : {1, 2}
        Threads for the refits (the compiled grid search releases the GIL).

    Returns
    -------
    BootstrapResult

    Raises
    ------
    ValueError
        For ``n_boot < 1``, a bad `interval`, `center`, `mode`, `n_jobs` or shapes.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> u = rng.normal(0, 0.5, size=(20, 1))
    >>> x = u + rng.normal(size=(20, 10))
    >>> y = 0.5 * u + 0.2 * (x - u) + rng.normal(size=(20, 10))
    >>> res = parametric_bootstrap(y, x, n_boot=200, random_state=1)
    >>> res.interval, res.n_boot
    ('inversion', 200)
    """
    n_boot = check_int(n_boot, "n_boot", minimum=1)
    conf_level = check_probability(conf_level, "conf_level")
    mode = check_choice(mode, "mode", ("r", "stable"))
    interval = check_choice(interval, "interval", INTERVALS)
    center = check_choice(center, "center", CENTERS)
    n_jobs = _check_n_jobs(n_jobs)
    seed = _seed_sequence(random_state)
    y, x, C = _as_arrays(y, x, covariates)
    k = C.shape[-1]
    obs = mlob_batch(y[None], x[None], C[None] if k else None, mode=mode, warn=False)
    estimate = float(obs.beta_b[0])
    gamma_hat = obs.gamma[0]
    par = _fit_models(y[None], x[None], C[None], obs, center)
    model = GeneratingModel(
        **{name: float(par[name][0]) for name in _SCALARS}, gamma=par["gamma"][0],
        phi_b=par["phi_b"][0], phi_w=par["phi_w"][0], c_resid=par["c_resid"][0],
        truncated={name: bool(par["truncated_" + name][0]) for name in _TRUNCATABLE},
        center=center,
    )

    starts = list(range(0, n_boot, _CHUNK))
    children = seed.spawn(len(starts))

    h = _step(par)[0]

    def work(i: int):
        size = min(_CHUNK, n_boot - starts[i])
        yb, xb, cb, mb = _simulate(par, size, np.random.default_rng(children[i]))
        cov = cb[0] if k else None
        b, bml, g = refit(yb[0], xb[0], cov, mode=mode)
        if interval != "inversion":
            return b, bml, g, np.full_like(b, np.nan)
        # common random numbers: the same data with beta_b raised by h
        b_up = refit(yb[0] + h * mb[0][..., None], xb[0], cov, mode=mode)[0]
        return b, bml, g, b_up

    if n_jobs == 1 or len(starts) == 1:
        parts = [work(i) for i in range(len(starts))]
    else:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            parts = list(pool.map(work, range(len(starts))))
    draws = np.concatenate([p[0] for p in parts])
    draws_ml = np.concatenate([p[1] for p in parts])
    draws_gamma = np.concatenate([p[2] for p in parts]).reshape(n_boot, k)

    finite = np.isfinite(draws)
    n_failed = int(n_boot - finite.sum())
    se = float(np.std(draws[finite], ddof=1)) if finite.sum() > 1 else np.nan
    if interval == "inversion":
        draws_up = np.concatenate([p[3] for p in parts])
        roots = inversion_roots(draws, draws_up, h, model.beta_b, estimate)
        lower, upper = inversion_interval(roots, conf_level)
    else:
        roots = None
        lower, upper = bootstrap_interval(draws, estimate, conf_level, interval)
    z0 = float(_z0(draws, np.asarray(estimate)))
    if k:
        gd = draws_gamma.T  # (k, B)
        se_gamma = np.nanstd(gd, axis=-1, ddof=1)
        g_method = "percentile" if interval == "inversion" else interval
        glo, ghi = bootstrap_interval(gd, gamma_hat, conf_level, g_method)
    else:
        se_gamma = glo = ghi = np.empty(0)
    return BootstrapResult(
        estimate=estimate, se_beta_b=se, ci_lower=float(lower), ci_upper=float(upper),
        interval=interval, conf_level=conf_level, n_boot=n_boot, n_failed=n_failed,
        center=center, mode=mode, z0=z0, generating=model, draws_beta_b=draws,
        draws_beta_b_ml=draws_ml, gamma=np.asarray(gamma_hat, float),
        se_gamma=np.asarray(se_gamma, float), ci_lower_gamma=np.asarray(glo, float),
        ci_upper_gamma=np.asarray(ghi, float), draws_gamma=draws_gamma, roots=roots,
    )


def bootstrap_batch(
    y: np.ndarray,
    x: np.ndarray,
    covariates: np.ndarray | None = None,
    *,
    n_boot: int = 200,
    mode: str = "r",
    center: str = "mlob",
    random_state: Any = None,
    max_elements: int = 4_000_000,
    inversion: bool = True,
) -> dict[str, np.ndarray]:
    """Bootstrap draws for each of R data sets at once (for simulation studies).

    Parameters
    ----------
    y, x : ndarray (R, J, n)
    covariates : ndarray (R, J, n, k), optional
    n_boot : int
    mode, center : str
        As in :func:`parametric_bootstrap`.
    random_state : None, int or numpy.random.Generator
    max_elements : int
        Bound on ``R_chunk * n_boot * J * n`` per refit call (memory).
    inversion : bool
        Also refit with ``beta_b`` raised (common random numbers) and return the inversion
        ``roots`` (R, n_boot).

    Returns
    -------
    dict
        ``beta_b``, ``beta_b_ml``, ``se_beta_b``, ``se_beta_b_ml`` (R,): the estimator on the
        data (analytic SEs); ``draws_beta_b``, ``draws_beta_b_ml`` (R, n_boot).
    """
    n_boot = check_int(n_boot, "n_boot", minimum=1)
    mode = check_choice(mode, "mode", ("r", "stable"))
    center = check_choice(center, "center", CENTERS)
    rng = np.random.default_rng(_seed_sequence(random_state))
    y = np.asarray(y, float)
    x = np.asarray(x, float)
    R, J, n = x.shape
    C = np.empty((R, J, n, 0)) if covariates is None else np.asarray(covariates, float)
    k = C.shape[-1]
    obs = mlob_batch(y, x, C if k else None, mode=mode, warn=False)
    par = _fit_models(y, x, C, obs, center)
    draws = np.empty((R, n_boot))
    draws_ml = np.empty((R, n_boot))
    draws_up = np.empty((R, n_boot))
    h = _step(par)
    step = max(1, max_elements // (n_boot * J * n))
    for a in range(0, R, step):
        sl = slice(a, min(R, a + step))
        sub = {key: val[sl] for key, val in par.items()}
        yb, xb, cb, mb = _simulate(sub, n_boot, rng)
        m = yb.shape[0]
        shape = (m * n_boot, J, n)
        cov = cb.reshape(*shape, k) if k else None
        b, bm, _ = refit(yb.reshape(shape), xb.reshape(shape), cov, mode=mode)
        draws[sl] = b.reshape(m, n_boot)
        draws_ml[sl] = bm.reshape(m, n_boot)
        if inversion:
            yb += h[sl, None, None, None] * mb[..., None]
            draws_up[sl] = refit(yb.reshape(shape), xb.reshape(shape), cov,
                                 mode=mode)[0].reshape(m, n_boot)
    out = {
        "beta_b": obs.beta_b, "beta_b_ml": obs.beta_b_ml, "se_beta_b": obs.se_beta_b,
        "se_beta_b_ml": obs.se_beta_b_ml, "draws_beta_b": draws, "draws_beta_b_ml": draws_ml,
        "beta_gen": par["beta_b"],
    }
    if inversion:
        out["roots"] = inversion_roots(draws, draws_up, h, par["beta_b"], obs.beta_b)
    return out
