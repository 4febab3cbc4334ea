r"""The closed forms of MLOB: ANOVA moments, Gamma shapes, the grid criterion and its search.

Everything depends on the data through block sums (O(N k^2) per data set); arrays carry a leading
batch axis B. :func:`moment_fit` runs the shared steps (moments of x, covariate adjustment,
moments of the adjusted y, Gamma shapes and the tau0^2 window) for both the batched estimator
(:func:`mlob_pp.closed_form.core.mlob_batch`) and the bootstrap's refit
(:func:`mlob_pp.closed_form.refit.refit`), so the two cannot drift apart.

``mode="r"`` constants reproduce R MLOB 0.0.2.0 (spec sections 3.3-3.6); ``stable=True`` uses
scale-free thresholds and the moment-consistent criterion without poles.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "GRID_W",
    "grid_tau02",
    "block_stats",
    "decompose",
    "se_ratio",
    "criterion",
    "grid_argmin",
    "grid_argmin_numpy",
    "pole_flags",
    "covariate_adjust",
    "shape_parameters",
    "moment_fit",
    "select_grid",
]

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


def block_stats(u_dev: np.ndarray, v_dev: np.ndarray, ub_dev: np.ndarray,
                 vb_dev: np.ndarray, n: int, J: int) -> tuple[np.ndarray, np.ndarray]:
    """tau(u, v) and sigma(u, v) from within deviations and centred block means."""
    spa = n * np.einsum("...j,...j->...", ub_dev, vb_dev)
    spd = np.einsum("...jn,...jn->...", u_dev, v_dev)
    mpa = spa / (J - 1)
    mpd = spd / ((n - 1) * J)
    return (mpa - mpd) / n, mpd


def decompose(u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block means, within deviations and centred block means of u (..., J, n)."""
    means = np.add.reduce(u, axis=-1) / u.shape[-1]
    within = u - means[..., None]
    centred = means - (np.add.reduce(means, axis=-1) / means.shape[-1])[..., None]
    return means, within, centred


def se_ratio(K2, T2, Kd, Td, stable: bool):
    """SD of a ratio of independent Gammas Gamma(K2, T2) / Gamma(Kd, Td) (R's formula)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        se = np.abs(T2 / (Td * (Kd - 1.0)) * np.sqrt(np.abs(K2 * (Kd + K2 - 1.0) / (Kd - 2.0))))
        if stable:
            se = np.where(Kd > 2.0, se, np.inf)
    return se


def criterion(w, t, s1, q1, K2, T2, b, stable: bool):
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


def grid_argmin(s1, q1, K2, T2, b, lo, hi, stable: bool):
    """First arg-min over the flattened 100 x 100 grid (tau0^2 fastest), NaN skipped."""
    from mlob_pp.closed_form import grid as grid_kernel

    if stable:
        # consistent moments: the numerator sum of lambda * chi2_1 terms has mean s2 = c and
        # variance 2 q2, i.e. scale 2 T2 in R's half-scale convention (the denominator's D and
        # 2 w^2 q1 already use the full moments)
        T2 = 2.0 * T2
    if grid_kernel.AVAILABLE:
        return grid_kernel.grid_argmin_compiled(GRID_W, s1, q1, K2, T2, b, lo, hi, stable)
    return grid_argmin_numpy(s1, q1, K2, T2, b, lo, hi, stable)


def grid_argmin_numpy(s1, q1, K2, T2, b, lo, hi, stable: bool):
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
        crit = criterion(
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


def pole_flags(s1, q1, lo, hi, index, J, best):
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


def covariate_adjust(y, x_means, x_within, x_centred, tau_x, sigma_x, C, n, J):
    """Residualise the covariates on x (spec section 2.7); return gamma, SE, adjusted y."""
    k = C.shape[-1]
    Cm = np.moveaxis(C, -1, -3)  # (B, k, J, n)
    c_means, c_within, c_centred = decompose(Cm)
    tau_xc, sigma_xc = block_stats(x_within[:, None], c_within, x_centred[:, None], c_centred,
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


def moment_fit(y: np.ndarray, x: np.ndarray, C: np.ndarray, stable: bool,
               x_stats=None) -> dict:
    """Moments, covariate adjustment, Gamma shapes and tau0^2 window of B data sets.

    Parameters
    ----------
    y, x : ndarray (B, J, n)
    C : ndarray (B, J, n, k)
        Covariates (k may be 0).
    stable : bool
        Stable mode (scale-free thresholds).
    x_stats : tuple of ndarray, optional
        ``(tau_x, sigma_x, s1, q1)`` overriding the moments of x (R's bit emulation, J = 3, 5).

    Returns
    -------
    dict
        ``tau_x, sigma_x, tau_yx, sigma_yx, tau_y, sigma_y, beta_ml, gamma, se_gamma,
        singular`` and the entries of :func:`shape_parameters`.
    """
    B, J, n = x.shape
    k = C.shape[-1]
    x_means, x_within, x_centred = decompose(x)
    tau_x, sigma_x = block_stats(x_within, x_within, x_centred, x_centred, n, J)
    s1q1 = None
    if x_stats is not None:
        tau_x, sigma_x, s1_em, q1_em = x_stats
        s1q1 = (s1_em, q1_em)
    if k:
        gamma, se_gamma, y_adj, singular = covariate_adjust(
            y, x_means, x_within, x_centred, tau_x, sigma_x, C, n, J
        )
    else:
        gamma, se_gamma = np.empty((B, 0)), np.empty((B, 0))
        y_adj, singular = y, np.zeros(B, dtype=bool)
    _, y_within, y_centred = decompose(y_adj)
    tau_yx, sigma_yx = block_stats(x_within, y_within, x_centred, y_centred, n, J)
    tau_y, sigma_y = block_stats(y_within, y_within, y_centred, y_centred, n, J)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        beta_ml = tau_yx / tau_x
    out = shape_parameters(tau_x, sigma_x, tau_yx, sigma_yx, tau_y, sigma_y, n, J, stable, s1q1)
    out.update(tau_x=tau_x, sigma_x=sigma_x, tau_yx=tau_yx, sigma_yx=sigma_yx, tau_y=tau_y,
               sigma_y=sigma_y, beta_ml=beta_ml, gamma=gamma, se_gamma=se_gamma,
               singular=singular)
    return out


def select_grid(sh: dict, b: np.ndarray, stable: bool):
    """Grid search of the data sets whose shapes are not degenerate.

    Returns ``index, best, valid, w_opt, tau02_opt`` (B,): the 0-based flattened grid index
    (tau0^2 fastest), the criterion there, whether any grid point was valid, and the point.
    """
    degenerate = sh["degenerate"]
    B = degenerate.shape[0]
    index = np.zeros(B, dtype=np.intp)
    best = np.full(B, np.nan)
    valid = np.zeros(B, dtype=bool)
    ai = np.flatnonzero(~degenerate)
    if ai.size:
        index[ai], best[ai], valid[ai] = grid_argmin(
            sh["s1"][ai], sh["q1"][ai], sh["K2"][ai], sh["T2"][ai], b[ai], sh["lo"][ai],
            sh["hi"][ai], stable,
        )
    w_opt = GRID_W[index // 100]
    tau02_opt = grid_tau02(sh["lo"], sh["hi"])[np.arange(B), index % 100]
    return index, best, valid, w_opt, tau02_opt
