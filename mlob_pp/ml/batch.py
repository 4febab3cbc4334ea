r"""Batched true ML of the latent covariate model: many balanced data sets at once.

:func:`ml_batch` fits the shared-slope model of :func:`mlob_pp.fit_ml` (its default,
``covariates="shared"``) to B balanced data sets given as arrays, from sufficient statistics
(:mod:`mlob_pp.ml.balanced`): its cost per data set does not depend on J or n once the
cross-products are formed. The model is just-identified in the moments of ``(Y - C'gamma, X)``,
so for given covariate slopes the maximum over the means and covariances is closed form
(``Sigma_W = W/(N - J)``, ``Sigma_W + n Sigma_B = n B/J``); only the k covariate slopes are found
by a vectorized Newton iteration (exact Hessian of the profile likelihood, step halving).
Standard errors come from the observed information in the moments (analytic) and the delta
method, exactly as :func:`~mlob_pp.fit_ml` computes them. Each data set is standardised
(centred and scaled per column) before the fit and the results are mapped back, so the estimates
are equivariant under rescaling and shifting.

As in :func:`~mlob_pp.fit_ml`, variances are not bounded: a between variance estimated at or below
zero (a Heywood case, frequent with few groups and a low ICC of X) is returned with its
estimate and flagged in ``boundary`` (with one :class:`~mlob_pp.warnings.InadmissibleWarning` for
the batch). The profile-likelihood interval of ``beta_b`` (:mod:`mlob_pp.ml.profile`) is given
beside the Wald interval, since Wald intervals undercover with few groups.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.design import RANK_RTOL, RTOL
from mlob_pp.ml.balanced import (
    BalancedStats,
    ascent_step,
    balanced_stats,
    derivatives,
    profile_loglik,
    standardize,
    subset,
    transform,
)
from mlob_pp.ml.labels import shared_labels
from mlob_pp.ml.profile import profile_interval
from mlob_pp.tables import normal_quantile, wald
from mlob_pp.validate import check_probability
from mlob_pp.warnings import InadmissibleWarning, NumericalWarning

__all__ = ["ml_batch", "MLBatchResult", "LABELS"]

#: parameters reported for every data set (``gamma_<j>`` after ``beta_c`` when k > 0)
LABELS = ("beta_b", "beta_w", "beta_c", "alpha", "mu_x", "tau2_x", "sigma2_x", "icc_x", "tau2",
          "sigma2")


@dataclass(frozen=True)
class MLBatchResult:
    """Result of :func:`ml_batch`: arrays over the B data sets.

    Attributes
    ----------
    beta_b, se_beta_b, ci_lower, ci_upper : ndarray (B,)
        Between slope, its standard error and the Wald interval at `conf_level`.
    profile_lower, profile_upper : ndarray (B,)
        Profile-likelihood interval of ``beta_b`` (``-inf``/``inf`` where the profile does not
        fall below the cut-off: an unbounded interval; NaN where the search failed).
    beta_w, se_beta_w, beta_c, se_beta_c, tau2, sigma2, tau2_x, sigma2_x, icc_x : ndarray (B,)
        Further estimates (and standard errors ``se_<name>`` in `std_errors`).
    gamma, se_gamma : ndarray (B, k)
        Covariate slopes.
    estimates, std_errors : dict of str to ndarray
        Every parameter (labels as :func:`mlob_pp.fit_ml`: ``gamma_<j>`` is ``gamma_c<j+1>``).
    loglik : ndarray (B,)
        Maximised log-likelihood of ``(Y, X)`` given the covariates.
    converged : ndarray of bool (B,)
        Newton iteration converged and the information is positive definite.
    no_maximum : ndarray of bool (B,)
        Data sets whose likelihood has no maximum (it grows without bound towards a singular
        covariance of the group means, possible when J <= k + 2); all their values are NaN
        and ``converged`` is False. As ``MLResult.no_maximum`` of :func:`mlob_pp.fit_ml`.
    boundary : ndarray of bool (B,)
        A between variance (``tau2_x`` or ``tau2``) estimated at or below zero (Heywood case);
        ``boundary_x`` flags ``tau2_x <= 0`` alone.
    n_iter : ndarray of int (B,)
    conf_level : float
    n_groups, group_size : int
    """

    estimates: dict
    std_errors: dict
    loglik: np.ndarray
    converged: np.ndarray
    boundary: np.ndarray
    n_iter: np.ndarray
    profile_lower: np.ndarray
    profile_upper: np.ndarray
    conf_level: float
    n_groups: int
    group_size: int
    no_maximum: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    settings: dict = field(default_factory=dict)

    estimator = "ml"

    def __getattr__(self, name: str) -> Any:
        est = object.__getattribute__(self, "estimates")
        ses = object.__getattribute__(self, "std_errors")
        if name in est:
            return est[name]
        if name.startswith("se_") and name[3:] in ses:
            return ses[name[3:]]
        if name in ("gamma", "se_gamma"):
            src = est if name == "gamma" else ses
            keys = [k for k in src if k.startswith("gamma_")]
            return np.stack([src[k] for k in keys], axis=-1) if keys else np.zeros(
                (self.loglik.shape[0], 0))
        raise AttributeError(name)

    @property
    def boundary_x(self) -> np.ndarray:
        """Data sets whose between variance of X (``tau2_x``) is at or below zero.

        There the between slope is not identified (its profile interval is unbounded unless
        ``tau2_x = 0`` is rejected); ``tau2 <= 0`` alone leaves ``beta_b`` well defined.
        """
        return ~(self.estimates["tau2_x"] > 0)

    @property
    def ci_lower(self) -> np.ndarray:
        """Lower Wald bound of ``beta_b``."""
        return wald(self.beta_b, self.se_beta_b, self.conf_level)[2]

    @property
    def ci_upper(self) -> np.ndarray:
        """Upper Wald bound of ``beta_b``."""
        return wald(self.beta_b, self.se_beta_b, self.conf_level)[3]

    def to_frame(self) -> pd.DataFrame:
        """One row per data set: estimates, ``se_<name>``, intervals and flags."""
        cols = dict(self.estimates)
        cols.update({f"se_{k}": v for k, v in self.std_errors.items()})
        cols.update(ci_lower=self.ci_lower, ci_upper=self.ci_upper,
                    profile_lower=self.profile_lower, profile_upper=self.profile_upper,
                    loglik=self.loglik, converged=self.converged, boundary=self.boundary)
        return pd.DataFrame(cols)

    def __repr__(self) -> str:
        b = self.loglik.shape[0]
        return (f"<MLBatchResult ml: {b} data sets, J = {self.n_groups}, n = {self.group_size}; "
                f"{int(self.boundary.sum())} at the boundary, "
                f"{int((~self.converged).sum())} not converged>")


def _as_array(value: Any, name: str, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a numeric array; got {type(value).__name__}") from None
    if arr.ndim != ndim:
        raise ValueError(
            f"`{name}` must have {ndim} dimensions ({'(B, J, n)' if ndim == 3 else '(B, J, n, k)'}"
            f"); got shape {arr.shape}"
        )
    if np.isfinite(arr.sum()):
        return arr
    bad = ~np.isfinite(arr)
    if bad.any():
        sets = np.unique(np.argwhere(bad)[:, 0])
        raise ValueError(
            f"`{name}` must be finite; data set(s) {sets[:10].tolist()} contain NaN or inf"
        )
    return arr


def _validate(y: Any, x: Any, covariates: Any) -> np.ndarray:
    """Return the raw data (p, B, J, n) after the checks of the arrays."""
    y = _as_array(y, "y", 3)
    x = _as_array(x, "x", 3)
    if x.shape != y.shape:
        raise ValueError(f"`x` must have the shape of `y` {y.shape}; got {x.shape}")
    cov = np.zeros(y.shape + (0,)) if covariates is None else _as_array(covariates, "covariates", 4)
    if cov.shape[:3] != y.shape:
        raise ValueError(
            f"`covariates` must be shaped (B, J, n, k) = {y.shape + ('k',)}; got {cov.shape}"
        )
    b, n_groups, size = y.shape
    if b < 1:
        raise ValueError("`y` must hold at least one data set (B >= 1); got B = 0")
    if n_groups < 3:
        raise ValueError(f"`y` must have at least 3 groups (axis 1) for ML; got J = {n_groups}")
    p = 2 + cov.shape[3]
    if n_groups * (size - 1) < p + 1:
        raise ValueError(
            f"`y` has too little within-group variation for ML: N - J = {n_groups * (size - 1)} "
            f"must exceed {p} (the number of variables); got n = {size}"
        )
    return np.stack([y, x, *np.moveaxis(cov, 3, 0)])


def _check_design(stats: BalancedStats, names: list[str]) -> None:
    """Scale-free checks (as :mod:`mlob_pp.design`): within variation and within rank."""
    wd = np.diagonal(stats.within, axis1=1, axis2=2)
    total = wd + stats.group_size * np.diagonal(stats.between, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.sqrt(wd / total)
    flat = ~(share > RTOL)
    if flat.any():
        b, j = np.argwhere(flat)[0]
        arg = names[j] if j < 2 else "covariates"
        raise ValueError(
            f"`{arg}`: column {names[j]!r} does not vary within groups in data set(s) "
            f"{np.unique(np.argwhere(flat)[:, 0])[:10].tolist()}; ML of the latent covariate "
            "model needs within-group variation of y, x and every covariate"
        )
    d = 1.0 / np.sqrt(wd)
    corr = stats.within * d[:, :, None] * d[:, None, :]
    ev = np.linalg.eigvalsh(corr)
    # from the Gram matrix the smallest eigenvalue is known to about 1e3 eps of the largest
    bad = ev[:, 0] <= max(RANK_RTOL**2, 1e3 * np.finfo(float).eps) * ev[:, -1]
    if bad.any():
        raise ValueError(
            "`covariates`: the within-group parts of y, x and the covariates are collinear in "
            f"data set(s) {np.flatnonzero(bad)[:10].tolist()}; remove redundant covariates"
        )


def _start_gamma(stats: BalancedStats) -> np.ndarray:
    """Within-group least squares of y on (x, C): the covariate slopes (B, k)."""
    w = stats.within
    coef = np.linalg.solve(w[:, 1:, 1:], w[:, 1:, 0:1])[..., 0]
    return coef[:, 1:]


def _newton_gamma(stats: BalancedStats, gamma: np.ndarray, max_iter: int, tol: float):
    """Maximise the profile likelihood over the covariate slopes (vectorized Newton)."""
    n_b, k = gamma.shape
    n_iter = np.zeros(n_b, dtype=int)
    converged = np.ones(n_b, dtype=bool) if k == 0 else np.zeros(n_b, dtype=bool)
    if k == 0:
        return gamma, converged, n_iter, np.zeros(n_b, dtype=bool)
    m1 = stats.n_obs - stats.n_groups
    cols = np.arange(1, k + 1)

    def coef_of(g):
        return np.concatenate([np.zeros((g.shape[0], 1)), g], axis=1)

    def value(g, sub):
        _, wz, dz = transform(subset(stats, sub), coef_of(g))
        return profile_loglik(subset(stats, sub), wz, dz)

    start = gamma.copy()
    failed = np.zeros(n_b, dtype=bool)
    active = np.arange(n_b)
    current = value(gamma, active)
    for _ in range(max_iter):
        if active.size == 0:
            break
        sub = subset(stats, active)
        g = gamma[active]
        _, wz, dz = transform(sub, coef_of(g))
        s, v = wz / m1, stats.group_size * dz / stats.n_groups
        grad, hess = derivatives(sub, coef_of(g), cols, s, v)
        # a set whose Newton ran into a singular between covariance (no maximum) is dropped
        with np.errstate(all="ignore"):
            h_ss = hess[:, k:, k:]
            bad = ~(np.isfinite(hess).all(axis=(1, 2)) & np.isfinite(grad).all(axis=1))
            if (~bad).any():
                bad[~bad] = ~(np.linalg.cond(h_ss[~bad]) < 1e12)
        if bad.any():
            failed[active[bad]] = True
            keep = ~bad
            active, g, grad, hess = active[keep], g[keep], grad[keep], hess[keep]
            if active.size == 0:
                break
        hp = _schur(hess, k)
        step = ascent_step(hp, grad[:, :k])
        decrement = np.einsum("bi,bi->b", step, grad[:, :k])
        t = np.ones(active.size)
        new = g + step
        val = value(new, active)
        for _ in range(40):
            worse = ~(val >= current[active] - 1e-12 * np.abs(current[active]))
            if not worse.any():
                break
            t[worse] *= 0.5
            new[worse] = g[worse] + t[worse, None] * step[worse]
            val[worse] = value(new[worse], active[worse])
        gamma[active] = new
        current[active] = np.maximum(val, current[active])
        n_iter[active] += 1
        done = (np.abs(decrement) < tol) & (t == 1.0)
        converged[active[done]] = True
        active = active[~done]
    gamma[failed] = start[failed]  # finite values for the (discarded) downstream algebra
    converged[failed] = False
    return gamma, converged, n_iter, failed


def _no_maximum(s: np.ndarray, v: np.ndarray, converged: np.ndarray, failed: np.ndarray,
                rel: float = 1e-3) -> np.ndarray:
    """Flag the sets without a maximum: the Newton failed at, or stopped near, a singular V.

    The smallest generalized eigenvalue of (V, S) measures how close the covariance of the group
    means is to singular, relative to the within covariance (scale-free), as in
    :func:`mlob_pp.ml.optimize.singular_class`.
    """
    with np.errstate(all="ignore"):
        inv_l = np.linalg.inv(np.linalg.cholesky(s))
        ratio = np.linalg.eigvalsh(inv_l @ v @ inv_l.transpose(0, 2, 1))[:, 0]
    return failed | (~converged & ~(ratio >= rel))


def _schur(hess: np.ndarray, k: int) -> np.ndarray:
    """Hessian of the likelihood profiled over the trailing coordinates."""
    h_cc, h_cs, h_ss = hess[:, :k, :k], hess[:, :k, k:], hess[:, k:, k:]
    return h_cc - h_cs @ np.linalg.solve(h_ss, h_cs.transpose(0, 2, 1))


def _moments(stats: BalancedStats, gamma: np.ndarray):
    """Closed-form S, V and mean of z = (y - C'gamma, x) at the maximum."""
    coef = np.concatenate([np.zeros((gamma.shape[0], 1)), gamma], axis=1)
    a, wz, dz = transform(stats, coef)
    s = wz / (stats.n_obs - stats.n_groups)
    v = stats.group_size * dz / stats.n_groups
    mu = np.einsum("bij,bj->bi", a, stats.grand)
    return coef, s, v, mu


def _to_between(k: int, size: int) -> np.ndarray:
    """Jacobian of (gamma, mu, S, Sigma_B) in (gamma, mu, S, V), ``Sigma_B = (V - S)/n``."""
    d = k + 8
    out = np.eye(d)
    for i in range(3):
        out[k + 5 + i, k + 2 + i] = -1.0 / size
        out[k + 5 + i, k + 5 + i] = 1.0 / size
    return out


def _back_transform(names, est, vcov, loc, scale):
    """Map standardised estimates (B, L) and covariances (B, L, L) to the data's units."""
    n_b, n_l = est.shape
    lin = np.zeros((n_b, n_l, n_l))
    off = np.zeros((n_b, n_l))
    idx = {n: i for i, n in enumerate(names)}
    ay, ax = scale[:, 0], scale[:, 1]
    unit = {"beta_b": ay / ax, "beta_w": ay / ax, "beta_c": ay / ax, "tau2_x": ax**2,
            "sigma2_x": ax**2, "icc_x": np.ones(n_b), "tau2": ay**2, "sigma2": ay**2,
            "mu_x": ax}
    for n, i in idx.items():
        if n.startswith("gamma_"):
            lin[:, i, i] = ay / scale[:, 2 + int(n[6:])]
        elif n in unit:
            lin[:, i, i] = unit[n]
    off[:, idx["mu_x"]] = loc[:, 1]
    ia = idx["alpha"]
    lin[:, ia, ia] = ay
    lin[:, ia, idx["beta_b"]] = -ay / ax * loc[:, 1]
    for n, i in idx.items():
        if n.startswith("gamma_"):
            j = 2 + int(n[6:])
            lin[:, ia, i] = -ay / scale[:, j] * loc[:, j]
    off[:, ia] = loc[:, 0]
    raw = np.einsum("bij,bj->bi", lin, est) + off
    return raw, lin @ vcov @ lin.transpose(0, 2, 1)


def ml_batch(y: Any, x: Any, covariates: Any = None, *, conf_level: float = 0.95) -> MLBatchResult:
    """Fit true ML of the latent covariate model to B balanced data sets at once.

    Parameters
    ----------
    y, x : array_like (B, J, n)
        Outcome and target regressor of B data sets of J groups of n units.
    covariates : array_like (B, J, n, k), optional
        Level-1 covariates with one slope at both levels (``gamma``), as
        :func:`mlob_pp.fit_ml` with ``covariates="shared"``.
    conf_level : float, default 0.95
        Level of the Wald and profile-likelihood intervals of ``beta_b``.

    Returns
    -------
    MLBatchResult
        Arrays (B,): ``beta_b``, ``se_beta_b``, ``ci_lower``, ``ci_upper``, ``profile_lower``,
        ``profile_upper``, ``beta_w``, ``tau2`` ... and the flags ``converged``, ``boundary``.
        Equal to ``fit_ml("y ~ x + c...", data, group)`` on each data set (estimates and
        standard errors to about 1e-8 relative).

    Raises
    ------
    TypeError
        If an argument is not numeric.
    ValueError
        For wrong shapes, non-finite values, fewer than 3 groups, too little within-group data,
        a column without within-group variation or collinear within-group parts (the message
        names the data sets).

    Warns
    -----
    InadmissibleWarning
        Once, if some data sets have a between variance at or below zero (see ``boundary``).
    NumericalWarning
        Once, if some fits did not converge (see ``converged``).

    Examples
    --------
    >>> import numpy as np, mlob_pp
    >>> from mlob_pp.simulate import simulate_arrays
    >>> y, x = simulate_arrays((4,), 20, 10, np.random.default_rng(1), beta_b=0.5,
    ...                        beta_w=0.2, tau2=0.5)[:2]
    >>> res = mlob_pp.ml_batch(y, x)
    >>> res.beta_b.shape, bool(res.converged.all())
    ((4,), True)
    """
    conf_level = check_probability(conf_level, "conf_level", hint=" (e.g. 0.95)")
    raw = _validate(y, x, covariates)
    k = raw.shape[0] - 2
    names_cols = ["y", "x", *(f"covariates[..., {j}]" for j in range(k))]
    stats, loc, scale = standardize(balanced_stats(raw))
    _check_design(stats, names_cols)
    gamma, converged, n_iter, failed = _newton_gamma(stats, _start_gamma(stats), 100, 1e-12)
    if k:
        nomax = _no_maximum(*_moments(stats, gamma)[1:3], converged, failed)
        if stats.n_groups <= k + 2:
            # J <= k + 2 group means can always be made collinear by some gamma: the likelihood
            # is unbounded, and a stationary point Newton may find is not an estimate
            nomax = np.ones_like(nomax)
        gamma[nomax] = _start_gamma(subset(stats, np.flatnonzero(nomax)))
    else:  # without covariates the maximum is closed form
        nomax = np.zeros(gamma.shape[0], dtype=bool)
    coef, s, v, mu = _moments(stats, gamma)
    names, est_s, jac = shared_labels(gamma, mu, s, (v - s) / stats.group_size)
    jac = jac @ _to_between(k, stats.group_size)
    cols = np.arange(1, k + 1)
    _, hess = derivatives(stats, coef, cols, s, v, with_mean=True)
    info = -(hess + hess.transpose(0, 2, 1)) / 2
    ok = np.all(np.linalg.eigvalsh(info) > 0, axis=1) & converged
    vc_phi = np.full_like(info, np.nan)
    if ok.any():
        vc_phi[ok] = np.linalg.inv(info[ok])
    vc_s = jac @ vc_phi @ jac.transpose(0, 2, 1)
    est, vc = _back_transform(names, est_s, vc_s, loc, scale)
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.where(np.diagonal(vc, axis1=1, axis2=2) >= 0,
                              np.diagonal(vc, axis1=1, axis2=2), np.nan))
    _, wz, dz = transform(stats, coef)
    ll = profile_loglik(stats, wz, dz) - stats.n_obs * np.log(scale[:, 0] * scale[:, 1])
    labels = [f"gamma_c{int(n[6:]) + 1}" if n.startswith("gamma_") else n for n in names]
    i_t2x, i_t2 = names.index("tau2_x"), names.index("tau2")
    boundary = ~(est_s[:, i_t2x] > 0) | ~(est_s[:, i_t2] > 0)
    i_bb = names.index("beta_b")
    lo, hi = profile_interval(stats, gamma, est_s[:, i_bb], se[:, i_bb] * scale[:, 1] / scale[:, 0],
                              ll_max=profile_loglik(stats, wz, dz),
                              q=normal_quantile(conf_level), ok=ok)
    unit = scale[:, 0] / scale[:, 1]
    for arr in (est, se, ll, lo, hi):  # no maximum: nothing to report
        arr[nomax] = np.nan
    boundary[nomax] = False
    _warn(boundary, ok, nomax)
    return MLBatchResult(
        estimates={lab: est[:, i] for i, lab in enumerate(labels)},
        std_errors={lab: se[:, i] for i, lab in enumerate(labels)},
        loglik=ll, converged=ok, boundary=boundary, n_iter=n_iter,
        profile_lower=lo * unit, profile_upper=hi * unit, conf_level=conf_level,
        n_groups=stats.n_groups, group_size=stats.group_size, no_maximum=nomax,
        settings={"method": "ml", "covariates": "shared", "information": "observed",
                  "optimizer": "closed form in the moments + Newton on gamma",
                  "interval_method": "wald and profile"},
    )


def _warn(boundary: np.ndarray, ok: np.ndarray, nomax: np.ndarray) -> None:
    if nomax.any():
        warnings.warn(
            f"{int(nomax.sum())} of {nomax.size} data sets have no maximum likelihood estimate "
            "(the likelihood grows without bound towards a singular covariance of the group "
            "means; few groups): their estimates are NaN, flagged in `no_maximum`",
            InadmissibleWarning, stacklevel=3,
        )
    ok = ok | nomax
    if boundary.any():
        warnings.warn(
            f"{int(boundary.sum())} of {boundary.size} data sets have a between variance "
            "(tau2_x or tau2) estimated at or below zero (Heywood case); their estimates are "
            "returned unbounded and flagged in `boundary`",
            InadmissibleWarning, stacklevel=3,
        )
    if not ok.all():
        warnings.warn(
            f"{int((~ok).sum())} of {ok.size} ML fits did not converge or have a singular "
            "information matrix (flagged in `converged`; their standard errors are NaN)",
            NumericalWarning, stacklevel=3,
        )

