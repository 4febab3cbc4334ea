r"""Batched likelihood of the latent covariate model for balanced data, from sufficient statistics.

For B balanced data sets of J groups of n units with raw vectors :math:`x_{ij} = (Y, X, C_1,
\dots, C_k)` (``p = k + 2`` columns), the shared-slope model of :mod:`mlob_pp.ml.fit` models
:math:`z = A x = (Y - b X - C^\top\gamma, X)` (``b = 0`` for the unrestricted fit; a fixed
:math:`\beta_b` for the profile likelihood) with free mean :math:`\mu`, within covariance
:math:`S = \Sigma_W` and :math:`V = \Sigma_W + n\Sigma_B` (the covariance of ``n`` times a group
mean). With :math:`\mu` at its maximum :math:`A \bar x` the log-likelihood is

.. math::

    \ell = -\tfrac12\big[2N\log 2\pi + (N - J)\log|S| + \operatorname{tr}(S^{-1} A W A^\top)
          + J\log|V| + n\operatorname{tr}(V^{-1} A B A^\top)\big],

with :math:`W` the pooled within-group cross-products and :math:`B` the cross-products of the
group means about the grand mean. Only these ``p x p`` matrices, the grand means, J and n enter,
so an evaluation costs the same for any J and n. Every function here works on a leading batch
axis; the 2 x 2 algebra is written out in closed form. Gradients and Hessians are analytic (in
the coefficients of A and the entries ``(S00, S01, S11, V00, V01, V11)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BalancedStats", "balanced_stats", "standardize", "subset", "transform", "loglik",
           "profile_loglik", "derivatives", "ascent_step", "det2", "inv2", "is_pd2", "VECH"]

_LOG2PI = float(np.log(2.0 * np.pi))
#: symmetric basis of 2 x 2 matrices for the coordinates (00, 01, 11)
VECH = np.array([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]])


@dataclass(frozen=True)
class BalancedStats:
    """Sufficient statistics of B balanced data sets (raw vectors with p columns).

    Attributes
    ----------
    within : ndarray (B, p, p)
        Pooled within-group cross-products.
    between : ndarray (B, p, p)
        Cross-products of the group means about the grand mean.
    grand : ndarray (B, p)
        Grand means.
    n_groups, group_size : int
        J and n.
    """

    within: np.ndarray
    between: np.ndarray
    grand: np.ndarray
    n_groups: int
    group_size: int

    @property
    def n_obs(self) -> int:
        """N = J n."""
        return self.n_groups * self.group_size


def balanced_stats(data: np.ndarray) -> BalancedStats:
    """Return :class:`BalancedStats` of `data` shaped (p, B, J, n) (one array per column)."""
    p, n_b, n_groups, size = data.shape
    means = data.mean(axis=3)  # (p, B, J)
    dev = (data - means[..., None]).reshape(p, n_b, n_groups * size).transpose(1, 0, 2)
    within = dev @ dev.transpose(0, 2, 1)
    grand = means.mean(axis=2).T  # (B, p)
    cen = (means - grand.T[..., None]).transpose(1, 0, 2)  # (B, p, J)
    between = cen @ cen.transpose(0, 2, 1)
    return BalancedStats(within, between, grand, int(n_groups), int(size))


def standardize(stats: BalancedStats) -> tuple[BalancedStats, np.ndarray, np.ndarray]:
    """Return the statistics of the columns centred and scaled to unit SD, and (loc, scale).

    The scale is the population SD over all N values, ``sqrt((W_jj + n B_jj) / N)`` (1 for a
    column without variation, which the design checks reject).
    """
    total = np.diagonal(stats.within, axis1=1, axis2=2) + stats.group_size * np.diagonal(
        stats.between, axis1=1, axis2=2)
    scale = np.sqrt(total / stats.n_obs)
    scale = np.where(scale > 0, scale, 1.0)
    outer = scale[:, :, None] * scale[:, None, :]
    std = BalancedStats(stats.within / outer, stats.between / outer,
                        np.zeros_like(stats.grand), stats.n_groups, stats.group_size)
    return std, stats.grand.copy(), scale


def subset(stats: BalancedStats, idx: np.ndarray) -> BalancedStats:
    """Return the statistics of the data sets `idx`."""
    return BalancedStats(stats.within[idx], stats.between[idx], stats.grand[idx],
                         stats.n_groups, stats.group_size)


def _negdef_rows(a: np.ndarray) -> np.ndarray:
    """Return whether each (unit-diagonal scaled) matrix of the batch is negative definite.

    A batched Cholesky factorisation of ``-a`` written out over the (small) dimension.
    """
    m = -a
    d = m.shape[-1]
    low = np.zeros_like(m)
    ok = np.ones(m.shape[0], dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(d):
            piv = m[:, j, j] - np.einsum("bk,bk->b", low[:, j, :j], low[:, j, :j])
            ok &= piv > 1e-12
            root = np.sqrt(np.where(piv > 0, piv, 1.0))
            low[:, j, j] = root
            if j + 1 < d:
                low[:, j + 1 :, j] = (m[:, j + 1 :, j] - np.einsum(
                    "bik,bk->bi", low[:, j + 1 :, :j], low[:, j, :j])) / root[:, None]
    return ok


def ascent_step(hess: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Return the Newton step ``-H^-1 g`` with H made negative definite.

    H is first scaled by its diagonal (so that the coordinates' units do not matter). Where it
    is negative definite the step is the Newton step; elsewhere its eigenvalues are reflected to
    negative values of at least 1e-10 times the largest.
    """
    d = 1.0 / np.sqrt(np.maximum(np.abs(np.diagonal(hess, axis1=1, axis2=2)), 1e-300))
    hs = hess * d[:, :, None] * d[:, None, :]
    gs = grad * d
    step = np.empty_like(gs)
    good = _negdef_rows(hs)
    if good.any():
        step[good] = -np.linalg.solve(hs[good], gs[good][..., None])[..., 0]
    bad = ~good
    if bad.any():
        vals, vecs = np.linalg.eigh(hs[bad])
        floor = 1e-10 * np.maximum(np.abs(vals).max(axis=1, keepdims=True), 1e-300)
        vals = -np.maximum(np.abs(vals), floor)
        proj = np.einsum("bji,bj->bi", vecs, gs[bad]) / vals
        step[bad] = -np.einsum("bij,bj->bi", vecs, proj)
    return step * d


def _rows(coef: np.ndarray, p: int) -> np.ndarray:
    """Return A (B, 2, p) with first row ``(1, -coef)`` and second row ``e_x``."""
    a = np.zeros((coef.shape[0], 2, p))
    a[:, 0, 0] = 1.0
    a[:, 0, 1:] = -coef
    a[:, 1, 1] = 1.0
    return a


def transform(stats: BalancedStats, coef: np.ndarray):
    """Return ``A``, ``A W A'`` and ``A B A'`` for coefficients ``(b, gamma)`` (B, p - 1)."""
    a = _rows(coef, stats.within.shape[-1])
    wz = a @ stats.within @ a.transpose(0, 2, 1)
    dz = a @ stats.between @ a.transpose(0, 2, 1)
    return a, wz, dz


def det2(m: np.ndarray) -> np.ndarray:
    """Return determinants of 2 x 2 matrices (..., 2, 2)."""
    return m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]


def inv2(m: np.ndarray) -> np.ndarray:
    """Return inverses of symmetric 2 x 2 matrices (..., 2, 2)."""
    d = det2(m)
    out = np.empty_like(m)
    out[..., 0, 0] = m[..., 1, 1] / d
    out[..., 1, 1] = m[..., 0, 0] / d
    out[..., 0, 1] = out[..., 1, 0] = -m[..., 0, 1] / d
    return out


def is_pd2(m: np.ndarray) -> np.ndarray:
    """Return whether symmetric 2 x 2 matrices are positive definite."""
    return (m[..., 0, 0] > 0) & (det2(m) > 0)


def loglik(stats: BalancedStats, wz, dz, s, v) -> np.ndarray:
    """Log-likelihood (B,) at ``S = s``, ``V = v`` (``-inf`` where not positive definite)."""
    n_obs, n_groups, size = stats.n_obs, stats.n_groups, stats.group_size
    ok = is_pd2(s) & is_pd2(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        si, vi = inv2(s), inv2(v)
        val = -0.5 * (
            2 * n_obs * _LOG2PI
            + (n_obs - n_groups) * np.log(det2(s))
            + np.einsum("bij,bji->b", si, wz)
            + n_groups * np.log(det2(v))
            + size * np.einsum("bij,bji->b", vi, dz)
        )
    return np.where(ok, val, -np.inf)


def profile_loglik(stats: BalancedStats, wz, dz) -> np.ndarray:
    """Log-likelihood maximised over S and V: ``S = Wz/(N-J)``, ``V = n Dz/J``."""
    m1, n_groups, size = stats.n_obs - stats.n_groups, stats.n_groups, stats.group_size
    with np.errstate(invalid="ignore", divide="ignore"):
        val = -0.5 * (
            2 * stats.n_obs * (_LOG2PI + 1.0)
            + m1 * np.log(det2(wz) / m1**2)
            + n_groups * np.log(det2(dz) * (size / n_groups) ** 2)
        )
    return np.where((det2(wz) > 0) & (det2(dz) > 0), val, -np.inf)


def _pair(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return ``T[b, a, c] = tr(E_a x E_c y)`` for the basis :data:`VECH` (B, 3, 3).

    Closed form for symmetric x, y with entries (x0, x1, x2) = (x00, x01, x11).
    """
    x0, x1, x2 = x[:, 0, 0], x[:, 0, 1], x[:, 1, 1]
    y0, y1, y2 = y[:, 0, 0], y[:, 0, 1], y[:, 1, 1]
    t01 = x0 * y1 + x1 * y0
    t02 = x1 * y1
    t12 = x2 * y1 + x1 * y2
    rows = [
        [x0 * y0, t01, t02],
        [t01, 2.0 * x1 * y1 + x2 * y0 + x0 * y2, t12],
        [t02, t12, x2 * y2],
    ]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def _inner(m: np.ndarray) -> np.ndarray:
    """Return ``tr(E_a M)`` (B, 3) for symmetric M (B, 2, 2)."""
    return np.stack([m[:, 0, 0], 2.0 * m[:, 0, 1], m[:, 1, 1]], axis=-1)


def derivatives(stats: BalancedStats, coef, cols, s, v, *, with_mean: bool = False):
    """Gradient and Hessian of the log-likelihood (mean at its maximum unless `with_mean`).

    Coordinates, in order: the coefficients ``coef[:, cols]`` (the entries of A's first row
    that are free, as positions in ``coef``), ``S`` (vech: 00, 01, 11), ``V`` (vech), and with
    `with_mean` the mean ``mu`` (2) placed after the coefficients (the Hessian then is that of
    the full likelihood at ``mu = A xbar``; the mean's gradient is zero there).

    Returns
    -------
    grad : ndarray (B, d)
    hess : ndarray (B, d, d)
    """
    n_groups, size = stats.n_groups, stats.group_size
    m1 = stats.n_obs - n_groups
    a, wz, dz = transform(stats, coef)
    si, vi = inv2(s), inv2(v)
    aw = a @ stats.within  # (B, 2, p)
    ab = a @ stats.between
    c_idx = np.asarray(cols, dtype=int) + 1  # raw column of each free coefficient
    k = c_idx.size
    sws = si @ wz @ si
    vdv = vi @ dz @ vi
    g_s = -0.5 * (m1 * _inner(si) - _inner(sws))
    g_v = -0.5 * (n_groups * _inner(vi) - size * _inner(vdv))
    r_w = aw[:, :, c_idx]  # (B, 2, k)
    r_b = ab[:, :, c_idx]
    g_c = np.einsum("bj,bjl->bl", si[:, 0, :], r_w) + size * np.einsum(
        "bj,bjl->bl", vi[:, 0, :], r_b
    )
    h_ss = -0.5 * (-m1 * _pair(si, si) + 2.0 * _pair(si, sws))
    h_vv = -0.5 * (-n_groups * _pair(vi, vi) + 2.0 * size * _pair(vi, vdv))
    e0 = np.array([1.0, 0.0])
    # dWz_l = -(e0 r' + r e0'); d/dcoef_l of g_S[a] = 1/2 tr(E_a Si dWz_l Si)
    dwz = -(e0[None, None, :, None] * r_w.transpose(0, 2, 1)[:, :, None, :])
    dwz = dwz + dwz.transpose(0, 1, 3, 2)  # (B, k, 2, 2)
    ddz = -(e0[None, None, :, None] * r_b.transpose(0, 2, 1)[:, :, None, :])
    ddz = ddz + ddz.transpose(0, 1, 3, 2)
    h_sc = 0.5 * np.einsum("aij,bjk,blkm,bmi->bal", VECH, si, dwz, si)
    h_vc = 0.5 * size * np.einsum("aij,bjk,blkm,bmi->bal", VECH, vi, ddz, vi)
    wc = stats.within[:, c_idx][:, :, c_idx]
    bc = stats.between[:, c_idx][:, :, c_idx]
    h_cc = -(si[:, 0, 0, None, None] * wc + size * vi[:, 0, 0, None, None] * bc)
    n_b = s.shape[0]
    n_mu = 2 if with_mean else 0
    d = k + n_mu + 6
    grad = np.zeros((n_b, d))
    hess = np.zeros((n_b, d, d))
    grad[:, :k] = g_c
    grad[:, k + n_mu : k + n_mu + 3] = g_s
    grad[:, k + n_mu + 3 :] = g_v
    ps, pv = slice(k + n_mu, k + n_mu + 3), slice(k + n_mu + 3, d)
    hess[:, :k, :k] = h_cc
    hess[:, ps, ps] = h_ss
    hess[:, pv, pv] = h_vv
    hess[:, ps, :k] = h_sc
    hess[:, :k, ps] = h_sc.transpose(0, 2, 1)
    hess[:, pv, :k] = h_vc
    hess[:, :k, pv] = h_vc.transpose(0, 2, 1)
    if with_mean:
        xbar_c = stats.grand[:, c_idx]  # (B, k)
        nj = size * n_groups
        hess[:, :k, :k] -= nj * vi[:, 0, 0, None, None] * xbar_c[:, :, None] * xbar_c[:, None, :]
        hess[:, k : k + 2, k : k + 2] = -nj * vi
        h_mc = -nj * vi[:, :, 0, None] * xbar_c[:, None, :]  # (B, 2, k)
        hess[:, k : k + 2, :k] = h_mc
        hess[:, :k, k : k + 2] = h_mc.transpose(0, 2, 1)
    return grad, hess
