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

This module is numpy only. Everything depends on the data through block sums, so one fit costs
O(N k^2) and B data sets shaped ``(B, J, n)`` are fitted at once. ``mode="r"`` reproduces
R MLOB 0.0.2.0 (closed forms of spec section 3.3; bit emulation for J = 3, 5), ``mode="stable"``
removes its fragilities (scale-free thresholds, moment-consistent criterion, no poles).

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
from scipy.special import ndtr, ndtri

from mlob_pp.validate import NumericalWarning, check_choice, check_probability

__all__ = ["mlob_batch", "BatchResult", "GRID_W", "grid_tau02"]

#: omega grid exactly as R's ``seq(0.01, 1, by = 0.01)``.
GRID_W = np.minimum(0.01 + np.arange(100) * 0.01, 1.0)
_R_THRESHOLD = 1e-7
_R_FLOOR = 0.01
_R_FALLBACK = (0.01, 10.0)
_STABLE_FLOOR = 0.01  # times s_x
_STABLE_FALLBACK = (0.01, 10.0)  # times s_x
_STABLE_REL_THRESHOLD = 1e-12
_CHUNK_ELEMENTS = 4_000_000  # grid points evaluated per chunk (memory bound)


def grid_tau02(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Return the tau0^2 grid, R's ``seq(lo, hi, length.out = 100)``, shape (..., 100)."""
    lo = np.asarray(lo, dtype=float)[..., None]
    hi = np.asarray(hi, dtype=float)[..., None]
    step = (hi - lo) / 99.0
    grid = lo + np.arange(100.0) * step
    grid[..., -1] = hi[..., 0]
    return grid


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
        Which R branches decided the result (see :func:`mlob_batch`).
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


def _block_stats(u_dev: np.ndarray, v_dev: np.ndarray, ub_dev: np.ndarray,
                 vb_dev: np.ndarray, n: int, J: int) -> tuple[np.ndarray, np.ndarray]:
    """tau(u, v) and sigma(u, v) from within deviations and centred block means."""
    spa = n * np.einsum("...j,...j->...", ub_dev, vb_dev)
    spd = np.einsum("...jn,...jn->...", u_dev, v_dev)
    mpa = spa / (J - 1)
    mpd = spd / ((n - 1) * J)
    return (mpa - mpd) / n, mpd


def _decompose(u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block means, within deviations and centred block means of u (..., J, n)."""
    means = np.add.reduce(u, axis=-1) / u.shape[-1]
    within = u - means[..., None]
    centred = means - (np.add.reduce(means, axis=-1) / means.shape[-1])[..., None]
    return means, within, centred


def _se_ratio(K2, T2, Kd, Td, stable: bool):
    """SD of a ratio of independent Gammas Gamma(K2, T2) / Gamma(Kd, Td) (R's formula)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        se = np.abs(T2 / (Td * (Kd - 1.0)) * np.sqrt(np.abs(K2 * (Kd + K2 - 1.0) / (Kd - 2.0))))
        if stable:
            se = np.where(Kd > 2.0, se, np.inf)
    return se


def _criterion(w, t, s1, q1, K2, T2, b, stable: bool):
    """Evaluate the grid criterion (spec section 3.6) in R's operation order (broadcasting)."""
    D = ((1.0 - w) * t) + (w * s1)
    D2 = D * D
    w2 = w * w
    A1 = D2 - (2.0 * w2) * q1
    A2 = D2 - (4.0 * w2) * q1
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if stable:
            # moment-matched E[1/B^2] = D^2 / (A1 A2): scale-consistent; poles excluded
            value = ((K2 * T2 * T2) * (K2 + 1.0)) * D2 / (A1 * A2)
            value = value - ((2.0 * b) * K2 * T2) * D / A1
            value = np.where((A1 > 0) & (A2 > 0) & (D > 0), value, np.nan)
        else:
            first = (((K2 * T2**2) * (K2 + 1.0)) * D) / (A1 * A2)
            value = (first - (((2.0 * b) * K2) * T2 * D) / A1) + b
    return value


def _grid_argmin(s1, q1, K2, T2, b, lo, hi, stable: bool):
    """First arg-min over the flattened 100 x 100 grid (tau0^2 fastest), NaN skipped."""
    from mlob_pp.closed_form import grid as grid_kernel

    if stable:
        # consistent moments: the numerator sum of lambda * chi2_1 terms has mean s2 = c and
        # variance 2 q2, i.e. scale 2 T2 in R's half-scale convention (the denominator's D and
        # 2 w^2 q1 already use the full moments)
        T2 = 2.0 * T2
    if grid_kernel.AVAILABLE:
        return grid_kernel.grid_argmin_compiled(GRID_W, s1, q1, K2, T2, b, lo, hi, stable)
    return _grid_argmin_numpy(s1, q1, K2, T2, b, lo, hi, stable)


def _grid_argmin_numpy(s1, q1, K2, T2, b, lo, hi, stable: bool):
    """Numpy version of :func:`_grid_argmin` (chunked over data sets)."""
    B = s1.shape[0]
    index = np.zeros(B, dtype=np.intp)
    best = np.full(B, np.nan)
    any_valid = np.zeros(B, dtype=bool)
    chunk = max(1, _CHUNK_ELEMENTS // 10_000)
    w = GRID_W[None, :, None]
    for start in range(0, B, chunk):
        sl = slice(start, min(B, start + chunk))
        t = grid_tau02(lo[sl], hi[sl])[:, None, :]
        crit = _criterion(
            w, t, s1[sl, None, None], q1[sl, None, None], K2[sl, None, None],
            T2[sl, None, None], b[sl, None, None], stable,
        ).reshape(t.shape[0], -1)
        finite_or_neg_inf = ~np.isnan(crit)
        valid = finite_or_neg_inf.any(axis=1)
        crit = np.where(finite_or_neg_inf, crit, np.inf)
        idx = np.argmin(crit, axis=1)
        index[sl] = idx
        best[sl] = np.where(valid, crit[np.arange(crit.shape[0]), idx], np.nan)
        any_valid[sl] = valid
    return index, best, any_valid


def _pole_flags(s1, q1, lo, hi, index, J, best):
    """Whether the chosen grid point sits at or next to a pole of the R criterion (J <= 5)."""
    B = s1.shape[0]
    flags = np.zeros(B, dtype=bool)
    if J > 5:
        return flags
    wi, ti = np.divmod(index, 100)
    t_grid = grid_tau02(lo, hi)
    for bi in range(B):
        ws = GRID_W[max(0, wi[bi] - 1): wi[bi] + 2][:, None]
        ts = t_grid[bi, max(0, ti[bi] - 1): ti[bi] + 2][None, :]
        D = (1.0 - ws) * ts + ws * s1[bi]
        A1 = D * D - 2.0 * ws * ws * q1[bi]
        A2 = D * D - 4.0 * ws * ws * q1[bi]
        near = np.any(np.abs(A1) <= 1e-8 * D * D) or np.any(np.abs(A2) <= 1e-8 * D * D)
        flags[bi] = bool(near or np.any(A1 <= 0) or np.any(A2 <= 0) or best[bi] < 0)
    return flags


def _covariate_adjust(y, x_means, x_within, x_centred, tau_x, sigma_x, C, n, J):
    """Residualise the covariates on x (spec section 2.7); return gamma, SE, adjusted y."""
    k = C.shape[-1]
    Cm = np.moveaxis(C, -1, -3)  # (B, k, J, n)
    c_means, c_within, c_centred = _decompose(Cm)
    tau_xc, sigma_xc = _block_stats(x_within[:, None], c_within, x_centred[:, None], c_centred,
                                    n, J)
    with np.errstate(divide="ignore", invalid="ignore"):
        phi_b = tau_xc / tau_x[:, None]
        phi_w = sigma_xc / sigma_x[:, None]
    # C~ = C - phi_b x_b - phi_w x_w
    Ct = (Cm - phi_b[..., None, None] * x_means[:, None, :, None]
          - phi_w[..., None, None] * x_within[:, None])
    Bn = Ct.shape[0]
    Ct_flat = Ct.reshape(Bn, k, -1)
    Ct_c = Ct_flat - Ct_flat.mean(axis=-1, keepdims=True)
    y_flat = y.reshape(Bn, -1)
    y_c = y_flat - y_flat.mean(axis=-1, keepdims=True)
    gram = np.einsum("bkn,bln->bkl", Ct_c, Ct_c)
    rhs = np.einsum("bkn,bn->bk", Ct_c, y_c)
    scale = np.sqrt(np.einsum("bkk->bk", gram))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = gram / (scale[:, :, None] * scale[:, None, :])
    corr = np.where(np.isfinite(corr), corr, 0.0)
    rcond = np.linalg.cond(corr) if k > 1 else np.where(scale[:, 0] > 0, 1.0, np.inf)
    singular = ~(np.isfinite(rcond) & (rcond < 1e12)) | np.any(scale <= 0, axis=1)
    gram_safe = np.where(singular[:, None, None], np.eye(k), gram)
    gamma = np.linalg.solve(gram_safe, rhs[..., None])[..., 0]
    gamma = np.where(singular[:, None], np.nan, gamma)
    N = n * J
    resid = y_flat[:, None, :] - Ct_flat * gamma[:, :, None]
    v = np.einsum("bkn,bkn->bk", resid, resid) / (N - 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        se_gamma = np.sqrt(v / np.einsum("bkn,bkn->bk", Ct_c, Ct_c))
    y_adj = y - np.einsum("bjnk,bk->bjn", C, gamma)
    return gamma, se_gamma, y_adj, singular


def shape_parameters(tau_x, sigma_x, tau_yx, sigma_yx, tau_y, sigma_y, n: int, J: int,
                     stable: bool, s1q1=None) -> dict:
    """R MLOB's Gamma shapes/scales (spec 3.3), degenerate flags and tau0^2 window (3.5).

    ``s1q1`` overrides the L1 sums (R's bit emulation for J = 3, 5).
    """
    B = np.shape(tau_x)[0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s_x = tau_x + sigma_x / n
        s_y = tau_y + sigma_y / n
        c = tau_yx + sigma_yx / n
        a = np.sqrt(np.abs(s_x) * s_y)
        rho = np.where(a > 0, c / a, 0.0)
        half = a / (2.0 * (J - 1))
        lam_plus = np.maximum(1.0 + rho, 0.0) * half
        lam_minus = -np.maximum(1.0 - rho, 0.0) * half
        l1 = np.abs(s_x) / (J - 1)
        if stable:
            big = np.maximum(np.abs(lam_plus), np.abs(lam_minus))
            lam_plus = np.where(np.abs(lam_plus) < _STABLE_REL_THRESHOLD * big, 0.0, lam_plus)
            lam_minus = np.where(np.abs(lam_minus) < _STABLE_REL_THRESHOLD * big, 0.0, lam_minus)
        else:
            l1 = np.where(l1 < _R_THRESHOLD, 0.0, l1)
            lam_plus = np.where(np.abs(lam_plus) < _R_THRESHOLD, 0.0, lam_plus)
            lam_minus = np.where(np.abs(lam_minus) < _R_THRESHOLD, 0.0, lam_minus)
        if s1q1 is not None:
            s1, q1 = s1q1
        else:
            s1 = (J - 1) * l1
            q1 = (J - 1) * (l1 * l1)
        s2 = (J - 1) * (lam_plus + lam_minus)
        q2 = (J - 1) * (lam_plus * lam_plus + lam_minus * lam_minus)
        K1 = s1**2 / (2.0 * q1)
        T1 = q1 / s1
        K2 = s2**2 / (2.0 * q2)
        T2 = q2 / s2
        degenerate = ~(np.isfinite(K2) & np.isfinite(T2))

        radius = np.sqrt(K1) * T1
        if stable:
            floor = _STABLE_FLOOR * np.abs(s_x)
            fb_lo, fb_hi = _STABLE_FALLBACK[0] * np.abs(s_x), _STABLE_FALLBACK[1] * np.abs(s_x)
        else:
            floor = np.full(B, _R_FLOOR)
            fb_lo, fb_hi = np.full(B, _R_FALLBACK[0]), np.full(B, _R_FALLBACK[1])
        lo = np.maximum(floor, tau_x - 5.0 * radius)
        hi = np.maximum(floor, tau_x + 5.0 * radius)
        fallback = ~(np.isfinite(lo) & np.isfinite(hi)) | (lo >= hi)
        lo = np.where(fallback, fb_lo, lo)
        hi = np.where(fallback, fb_hi, hi)
    return {"s_x": s_x, "s_y": s_y, "s1": s1, "q1": q1, "s2": s2, "q2": q2, "K1": K1,
            "T1": T1, "K2": K2, "T2": T2, "degenerate": degenerate, "lo": lo, "hi": hi,
            "fallback": fallback}


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
        invariant to rescaling x and y. Recommended for J <= 5.
    warn : bool
        Emit one :class:`~mlob_pp.validate.NumericalWarning` per kind of degenerate branch,
        with the number of data sets affected.
    b_prior : array_like, shape (B,), optional
        Slope used in the criterion; defaults to each data set's own moment ratio (R's
        behaviour outside its jackknife).

    Returns
    -------
    BatchResult

    Raises
    ------
    ValueError
        For inconsistent shapes, fewer than 2 groups or groups of fewer than 2 members.

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
    stable = mode == "stable"
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
    k = C.shape[-1]

    x_means, x_within, x_centred = _decompose(x)
    tau_x, sigma_x = _block_stats(x_within, x_within, x_centred, x_centred, n, J)
    emulate = (not stable) and J in (3, 5)
    s1_em = q1_em = None
    if emulate:
        from mlob_pp.closed_form.r_emulation import r_x_statistics

        stats = np.array([r_x_statistics(x[i]) for i in range(B)])
        tau_x, sigma_x, s1_em, q1_em = stats.T

    if k:
        gamma, se_gamma, y_adj, singular = _covariate_adjust(
            y, x_means, x_within, x_centred, tau_x, sigma_x, C, n, J
        )
    else:
        gamma = np.empty((B, 0))
        se_gamma = np.empty((B, 0))
        y_adj = y
        singular = np.zeros(B, dtype=bool)

    y_means, y_within, y_centred = _decompose(y_adj)
    tau_yx, sigma_yx = _block_stats(x_within, y_within, x_centred, y_centred, n, J)
    tau_y, sigma_y = _block_stats(y_within, y_within, y_centred, y_centred, n, J)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        beta_ml = tau_yx / tau_x
        b = beta_ml if b_prior is None else np.broadcast_to(np.asarray(b_prior, float), (B,))
    sh = shape_parameters(tau_x, sigma_x, tau_yx, sigma_yx, tau_y, sigma_y, n, J, stable,
                          None if not emulate else (s1_em, q1_em))
    s_y, s1, q1, K1, T1 = sh["s_y"], sh["s1"], sh["q1"], sh["K1"], sh["T1"]
    K2, T2 = sh["K2"], sh["T2"]
    s2, q2, lo, hi, fallback = sh["s2"], sh["q2"], sh["lo"], sh["hi"], sh["fallback"]
    degenerate = sh["degenerate"]

    active = ~degenerate
    index = np.zeros(B, dtype=np.intp)
    best = np.full(B, np.nan)
    valid = np.zeros(B, dtype=bool)
    if active.any():
        ai = np.flatnonzero(active)
        index[ai], best[ai], valid[ai] = _grid_argmin(
            s1[ai], q1[ai], K2[ai], T2[ai], b[ai], lo[ai], hi[ai], stable
        )
    w_opt = GRID_W[index // 100]
    tau02_opt = grid_tau02(lo, hi)[np.arange(B), index % 100]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        beta_bay = tau_yx / ((1.0 - w_opt) * tau02_opt + w_opt * tau_x)
        num = w_opt * T1 * K1 + (1.0 - w_opt) * tau02_opt
        den = w_opt**2 * T1**2 * K1
        KB = num**2 / den
        TB = den / num
        se_bay = _se_ratio(K2, T2, KB, TB, stable)
        se_ml = _se_ratio(K2, T2, K1, T1, stable)
        se_ml_degen = np.sqrt(np.abs(s_y / (J * tau_x)))

    pole = np.zeros(B, dtype=bool)
    if not stable and J <= 5 and active.any():
        ai = np.flatnonzero(active)
        pole[ai] = _pole_flags(s1[ai], q1[ai], lo[ai], hi[ai], index[ai], J, best[ai])
    se_ml_flag = np.full(B, (not stable) and J <= 5)

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
    gamma = np.where(singular[:, None], np.nan, gamma)
    se_gamma = np.where(singular[:, None], np.nan, se_gamma)

    zq = float(ndtri(1.0 - (1.0 - conf_level) / 2.0))
    result = BatchResult(
        beta_b=beta_bay,
        se_beta_b=se_bay,
        beta_b_ml=beta_ml,
        se_beta_b_ml=se_ml,
        gamma=gamma,
        se_gamma=se_gamma,
        ci_lower=beta_bay - zq * se_bay,
        ci_upper=beta_bay + zq * se_bay,
        ci_lower_ml=beta_ml - zq * se_ml,
        ci_upper_ml=beta_ml + zq * se_ml,
        w_opt=w_opt,
        tau02_opt=tau02_opt,
        grid_index=index,
        degenerate=degenerate,
        fallback_window=fallback & active,
        pole=pole,
        se_ml_degenerate=se_ml_flag,
        conf_level=conf_level,
        mode=mode,
        internals={
            "tau_x": tau_x, "sigma_x": sigma_x, "tau_yx": tau_yx, "sigma_yx": sigma_yx,
            "tau_y": tau_y, "sigma_y": sigma_y, "s1": s1, "q1": q1, "s2": s2, "q2": q2,
            "K1": K1, "T1": T1, "K2": K2, "T2": T2, "lo": lo, "hi": hi, "criterion": best,
            "collinear": singular, "J": J, "n": n, "k": k,
        },
    )
    if warn:
        _warn_flags(result, B)
    return result


def _warn_flags(res: BatchResult, B: int) -> None:
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


def wald(estimate: np.ndarray, se: np.ndarray, conf_level: float):
    """Return z, two-sided p (R's ``2 * (1 - pnorm(|z|))``) and the interval bounds."""
    estimate = np.asarray(estimate, dtype=float)
    se = np.asarray(se, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(np.isinf(se), 0.0 * np.sign(estimate), estimate / se)
    p = 2.0 * (1.0 - ndtr(np.abs(z)))
    zq = float(ndtri(1.0 - (1.0 - conf_level) / 2.0))
    return z, p, estimate - zq * se, estimate + zq * se
