r"""Linear mixed models through per-group sufficient statistics (no N x N or per-row loops).

For :math:`y_j = X_j\beta + Z_j u_j + \varepsilon_j`, :math:`u_j \sim N(0, G)`,
:math:`\varepsilon_j \sim N(0, \sigma^2 I)`, write :math:`G = \sigma^2 \Gamma` with
:math:`\Gamma = LL'`. By Woodbury,
:math:`V_j^{-1}\sigma^2 = I - Z_j L M_j^{-1} L' Z_j'` with :math:`M_j = I + L' Z_j'Z_j L` and
:math:`\log|V_j/\sigma^2| = \log|M_j|`, so the (REML or ML) likelihood depends on the data only
through :math:`X'X, X'y, y'y` and the per-group cross-products :math:`Z_j'Z_j, Z_j'X_j,
Z_j'y_j` (Searle, Casella & McCulloch 1992, ch. 6; the same profiling as lme4, Bates et al.
2015). With :math:`A = X'V^{-1}X\sigma^2`, :math:`b = X'V^{-1}y\sigma^2` and
:math:`c = y'V^{-1}y\sigma^2`, :math:`\hat\beta = A^{-1}b` and the weighted residual sum of
squares is :math:`r = c - b'A^{-1}b`; profiling :math:`\sigma^2` out gives

.. math::

    -2\ell_{ML} = \sum_j \log|M_j| + N(1 + \log(2\pi r/N)), \qquad
    -2\ell_{REML} = \sum_j \log|M_j| + \log|A| + (N-p)(1 + \log(2\pi r/(N-p))),

(lme4's constants). For a random intercept (:math:`Z_j = 1`) :math:`\Gamma = \gamma` is the
variance ratio :math:`\tau^2/\sigma^2` and the criterion is a function of one number, minimised
here on :math:`\log\gamma` (bounded Brent) after a check of the boundary :math:`\gamma = 0`.

All arithmetic runs on standardised data (outcome and non-constant columns centred and scaled;
the intercept absorbs the shifts), so shifting the outcome by 1e9 or scaling it by 1e-12 gives
the same answers, mapped back exactly.

References
----------
Searle, S. R., Casella, G., & McCulloch, C. E. (1992). *Variance Components*. Wiley.
https://doi.org/10.1002/9780470316856
Bates, D., Mächler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models
using lme4. *Journal of Statistical Software*, 67(1). https://doi.org/10.18637/jss.v067.i01
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Standardiser",
    "MixedStats",
    "mixed_stats",
    "profiled_deviance",
    "profiled_sigma2",
    "loglik",
    "fit_random_intercept",
    "deviance_slope",
    "variance_information",
]

_LOG2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class Standardiser:
    """Affine map between original and standardised data (``y = shift + scale * y_std``).

    ``X_std = X @ T`` with ``T`` upper triangular (column 0 is the intercept, kept; every other
    column is centred and scaled when the design has an intercept, scaled otherwise) and
    ``Z_std = Z @ S`` (random-effects columns scaled only). Then ``beta = scale * T @ beta_std +
    shift * e_0``, ``G = scale**2 * S G_std S'`` and ``sigma2 = scale**2 * sigma2_std``.
    """

    shift: float
    scale: float
    T: np.ndarray
    S: np.ndarray

    @classmethod
    def from_data(cls, y: np.ndarray, X: np.ndarray, Z: np.ndarray) -> Standardiser:
        """Return the map that standardises `y`, `X` and `Z`."""
        p = X.shape[1]
        intercept = p > 0 and bool(np.all(X[:, 0] == 1.0))
        shift = float(np.mean(y)) if intercept else 0.0
        scale = _spread(y - shift)
        T = np.eye(p)
        for k in range(1 if intercept else 0, p):
            centre = float(np.mean(X[:, k])) if intercept else 0.0
            sd = _spread(X[:, k] - centre)
            T[k, k] = 1.0 / sd
            if intercept:
                T[0, k] = -centre / sd
        s = np.array([1.0 if np.all(Z[:, k] == 1.0) else 1.0 / _spread(Z[:, k])
                      for k in range(Z.shape[1])])
        return cls(shift=shift, scale=scale, T=T, S=np.diag(s))

    def apply(self, y: np.ndarray, X: np.ndarray, Z: np.ndarray):
        """Return the standardised ``(y, X, Z)``."""
        # column by column: T has a diagonal and a first row only (a tall matmul was 1 s at
        # 10^6 rows here)
        Xs = X * np.diag(self.T)
        if X.shape[1] and np.any(self.T[0, 1:]):
            Xs[:, 1:] += X[:, :1] * self.T[0, 1:]
        return (y - self.shift) / self.scale, Xs, Z * np.diag(self.S)

    @property
    def log_abs_det_T(self) -> float:
        """``log|det T|`` (enters the REML log-likelihood)."""
        return float(np.sum(np.log(np.abs(np.diag(self.T)))))

    def beta(self, beta_std: np.ndarray) -> np.ndarray:
        """Map fixed effects back to the original scale."""
        out = self.scale * self.T @ beta_std
        if self.shift:
            out[0] += self.shift
        return out

    def cov_beta(self, cov_std: np.ndarray) -> np.ndarray:
        """Map the fixed-effect covariance back."""
        return self.scale**2 * self.T @ cov_std @ self.T.T

    def G(self, G_std: np.ndarray) -> np.ndarray:
        """Map the random-effects covariance back."""
        return self.scale**2 * self.S @ G_std @ self.S.T

    def loglik(self, llf_std: float, n_obs: int, n_fe: int, reml: bool) -> float:
        """Map a log-likelihood of the standardised data to the original data."""
        if reml:
            return llf_std - (n_obs - n_fe) * np.log(self.scale) + self.log_abs_det_T
        return llf_std - n_obs * np.log(self.scale)


def _spread(v: np.ndarray) -> float:
    """Root mean square of `v`, computed without overflow (1 if `v` is all 0)."""
    m = float(np.max(np.abs(v))) if v.size else 0.0
    if m == 0.0 or not np.isfinite(m):
        return 1.0
    return m * float(np.sqrt(np.mean((v / m) ** 2)))


@dataclass(frozen=True)
class MixedStats:
    """Sufficient statistics of a two-level linear mixed model (standardised data).

    Attributes
    ----------
    n : ndarray, shape (J,)
        Group sizes.
    xtx, xty, yty
        :math:`X'X` (p, p), :math:`X'y` (p,), :math:`y'y`.
    ztz, ztx, zty
        Per group :math:`Z_j'Z_j` (J, q, q), :math:`Z_j'X_j` (J, q, p), :math:`Z_j'y_j` (J, q).
    """

    n: np.ndarray
    xtx: np.ndarray
    xty: np.ndarray
    yty: float
    ztz: np.ndarray
    ztx: np.ndarray
    zty: np.ndarray

    @property
    def n_obs(self) -> int:
        """Number of rows N."""
        return int(self.n.sum())

    @property
    def n_fe(self) -> int:
        """Number of fixed effects p."""
        return int(self.xtx.shape[0])

    @property
    def n_re(self) -> int:
        """Number of random effects per group q."""
        return int(self.ztz.shape[1])


def mixed_stats(y: np.ndarray, X: np.ndarray, Z: np.ndarray, codes: np.ndarray,
                n_groups: int) -> MixedStats:
    """Return the sufficient statistics of ``(y, X, Z)`` grouped by `codes` (one pass)."""
    q, p = Z.shape[1], X.shape[1]
    n = np.bincount(codes, minlength=n_groups).astype(float)
    ztz = np.empty((n_groups, q, q))
    ztx = np.empty((n_groups, q, p))
    zty = np.empty((n_groups, q))
    for a in range(q):
        za = Z[:, a]
        for b in range(a, q):
            ztz[:, a, b] = ztz[:, b, a] = np.bincount(codes, weights=za * Z[:, b],
                                                      minlength=n_groups)
        for k in range(p):
            ztx[:, a, k] = np.bincount(codes, weights=za * X[:, k], minlength=n_groups)
        zty[:, a] = np.bincount(codes, weights=za * y, minlength=n_groups)
    return MixedStats(n=n, xtx=X.T @ X, xty=X.T @ y, yty=float(y @ y), ztz=ztz, ztx=ztx,
                      zty=zty)


def _pieces(stats: MixedStats, L: np.ndarray):
    """Return ``(sum log|M_j|, A, b, c)`` at the relative covariance factor `L`."""
    q = stats.n_re
    if q == 1:  # random intercept: scalars per group
        g = float(L[0, 0]) ** 2
        m = 1.0 + g * stats.ztz[:, 0, 0]
        lam = g / m
        sx, sy = stats.ztx[:, 0, :], stats.zty[:, 0]
        A = stats.xtx - (sx.T * lam) @ sx
        b = stats.xty - (sx.T * lam) @ sy
        c = stats.yty - float(np.sum(lam * sy**2))
        return float(np.sum(np.log(m))), A, b, c
    Lt = L.T
    M = np.eye(q) + np.einsum("ab,jbc,cd->jad", Lt, stats.ztz, L)
    chol = np.linalg.cholesky(M)
    logdet = 2.0 * float(np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2))))
    ltzx = np.einsum("ab,jbk->jak", Lt, stats.ztx)  # L' Z_j' X_j
    ltzy = np.einsum("ab,jb->ja", Lt, stats.zty)
    wx = np.linalg.solve(chol, ltzx)  # chol^-1 L' Z' X
    wy = np.linalg.solve(chol, ltzy[..., None])[..., 0]
    A = stats.xtx - np.einsum("jak,jal->kl", wx, wx)
    b = stats.xty - np.einsum("jak,ja->k", wx, wy)
    c = stats.yty - float(np.sum(wy**2))
    return logdet, A, b, c


def _solve(stats: MixedStats, L: np.ndarray):
    logdet, A, b, c = _pieces(stats, L)
    cA = np.linalg.cholesky(A)
    w = np.linalg.solve(cA, b)
    r = max(c - float(w @ w), 0.0)
    beta = np.linalg.solve(cA.T, w)
    return logdet, cA, beta, r


def profiled_deviance(stats: MixedStats, L: np.ndarray, *, reml: bool) -> float:
    """Return -2 log-likelihood with beta and sigma2 profiled out, at relative factor `L`."""
    N, p = stats.n_obs, stats.n_fe
    try:
        logdet, cA, _, r = _solve(stats, np.atleast_2d(L))
    except np.linalg.LinAlgError:
        return np.inf
    if r <= 0.0:
        return -np.inf
    if reml:
        ldA = 2.0 * float(np.sum(np.log(np.diag(cA))))
        return logdet + ldA + (N - p) * (1.0 + _LOG2PI + np.log(r / (N - p)))
    return logdet + N * (1.0 + _LOG2PI + np.log(r / N))


def profiled_sigma2(stats: MixedStats, L: np.ndarray, *, reml: bool) -> float:
    """Return the (REML or ML) estimate of sigma2 at the relative covariance factor `L`."""
    _, _, _, r = _solve(stats, np.atleast_2d(L))
    return r / (stats.n_obs - stats.n_fe if reml else stats.n_obs)


def loglik(stats: MixedStats, G: np.ndarray, sigma2: float, *, reml: bool) -> float:
    """Return the log-likelihood at ``(G, sigma2)`` with only beta profiled out (lme4 constants).

    Used for the observed information of the variance parameters.
    """
    N, p = stats.n_obs, stats.n_fe
    G = np.atleast_2d(np.asarray(G, dtype=float))
    if sigma2 <= 0:
        return -np.inf
    w, v = np.linalg.eigh(G / sigma2)
    if w.min() < 0:
        return -np.inf
    L = v * np.sqrt(w)  # any factor with L L' = G / sigma2
    logdet, cA, _, r = _solve(stats, L)
    ldA = 2.0 * float(np.sum(np.log(np.diag(cA))))
    if reml:
        return -0.5 * (logdet + ldA - p * np.log(sigma2) + (N - p) * _LOG2PI
                       + N * np.log(sigma2) + r / sigma2)
    return -0.5 * (logdet + N * np.log(sigma2) + N * _LOG2PI + r / sigma2)


def fit_random_intercept(stats: MixedStats, *, reml: bool) -> dict:
    """Maximise the random-intercept (REML or ML) likelihood over the variance ratio.

    Parameters
    ----------
    stats : MixedStats
        Sufficient statistics with ``q = 1`` and ``Z = 1``.
    reml : bool
        REML or ML.

    Returns
    -------
    dict
        ``gamma`` (tau2 / sigma2), ``tau2``, ``sigma2``, ``beta``, ``cov_beta``, ``llf``,
        ``boundary`` (gamma = 0 is the maximum), ``evaluations``.
    """
    from scipy.optimize import minimize_scalar

    N, p = stats.n_obs, stats.n_fe

    def dev_log(t: float) -> float:
        return profiled_deviance(stats, np.array([[np.exp(0.5 * t)]]), reml=reml)

    dev0 = profiled_deviance(stats, np.zeros((1, 1)), reml=reml)
    # the variance ratio is scale free; search log(gamma) in [-30, 25] then polish
    grid = np.linspace(-30.0, 25.0, 56)
    values = np.array([dev_log(t) for t in grid])
    k = int(np.argmin(values))
    while k == grid.size - 1 and grid[-1] < 85.0:  # tiny within variance: search further up
        more = grid[-1] + np.arange(1.0, 11.0)
        grid = np.append(grid, more)
        values = np.append(values, [dev_log(t) for t in more])
        k = int(np.argmin(values))
    if k == grid.size - 1:
        raise ValueError(
            "`data`: the variance ratio tau2/sigma2 exceeds e^85: the outcome hardly varies within "
            "groups, so sigma2 is not estimable at double precision"
        )
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    res = minimize_scalar(dev_log, bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-10, "maxiter": 500})
    t_best, dev_best = float(res.x), float(res.fun)
    t_best, dev_best = _newton_polish(dev_log, t_best, dev_best)
    t_best, dev_best = _root_polish(stats, dev_log, t_best, dev_best, reml=reml)
    boundary = not dev_best < dev0 or t_best <= grid[0] + 1e-6
    gamma = 0.0 if boundary else float(np.exp(t_best))
    logdet, cA, beta, r = _solve(stats, np.array([[np.sqrt(gamma)]]))
    sigma2 = r / (N - p if reml else N)
    cov_beta = sigma2 * np.linalg.inv(cA @ cA.T)
    dev = dev0 if boundary else dev_best
    return {
        "gamma": gamma,
        "tau2": gamma * sigma2,
        "sigma2": sigma2,
        "beta": beta,
        "cov_beta": 0.5 * (cov_beta + cov_beta.T),
        "llf": -0.5 * dev,
        "boundary": boundary,
        "evaluations": int(grid.size + res.nfev + 4),
    }


def deviance_slope(stats: MixedStats, gamma: float, *, reml: bool) -> float:
    r"""Return d(profiled deviance)/d(gamma) of a random-intercept model, in closed form.

    With :math:`\lambda_j = \gamma/(1 + n_j\gamma)`, :math:`\lambda_j' = 1/(1 + n_j\gamma)^2`
    and :math:`s_j` the group sums of the GLS residuals, the envelope theorem gives
    :math:`r' = -\sum_j \lambda_j' s_j^2` and :math:`\partial\log|A| = -\sum_j \lambda_j'
    x_j' A^{-1} x_j` (:math:`x_j` the group sums of X).
    """
    n = stats.ztz[:, 0, 0]
    m = 1.0 + gamma * n
    dlam = 1.0 / m**2
    _, cA, beta, r = _solve(stats, np.array([[np.sqrt(gamma)]]))
    sx, sy = stats.ztx[:, 0, :], stats.zty[:, 0]
    resid_sums = sy - sx @ beta
    dr = -float(np.sum(dlam * resid_sums**2))
    slope = float(np.sum(n / m))
    if reml:
        w = np.linalg.solve(cA, sx.T)  # cA^-1 x_j, so x_j' A^-1 x_j = |w_j|^2
        slope += -float(np.sum(dlam * np.sum(w**2, axis=0)))
        return slope + (stats.n_obs - stats.n_fe) * dr / r
    return slope + stats.n_obs * dr / r


def _root_polish(stats, f, t: float, ft: float, *, reml: bool) -> tuple[float, float]:
    """Refine the optimum as the root of the closed-form slope (kept if not worse)."""
    from scipy.optimize import brentq

    def g(u: float) -> float:
        return deviance_slope(stats, float(np.exp(u)), reml=reml)

    lo, hi = t - 0.05, t + 0.05
    try:
        glo, ghi = g(lo), g(hi)
        if not (np.isfinite(glo) and np.isfinite(ghi)) or glo * ghi > 0:
            return t, ft
        u = brentq(g, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=200)
    except (ValueError, np.linalg.LinAlgError):
        return t, ft
    fu = f(u)
    return (u, fu) if fu <= ft + 1e-12 * max(1.0, abs(ft)) else (t, ft)


def _newton_polish(f, t: float, ft: float, h: float = 1e-4) -> tuple[float, float]:
    """Take a few Newton steps on a smooth 1-D function (finite differences), if better."""
    for _ in range(3):
        fp, fm = f(t + h), f(t - h)
        d1, d2 = (fp - fm) / (2 * h), (fp - 2 * ft + fm) / h**2
        if not (np.isfinite(d1) and np.isfinite(d2)) or d2 <= 0:
            break
        t_new = t - d1 / d2
        f_new = f(t_new)
        if not f_new < ft:
            break
        t, ft = t_new, f_new
    return t, ft


def variance_information(stats: MixedStats, G: np.ndarray, sigma2: float, *,
                         reml: bool) -> np.ndarray:
    """Return the covariance of the variance parameters from the observed information.

    Parameters are the lower triangle of G (row by row: ``G[0,0], G[1,0], G[1,1], ...``) and
    then sigma2; the Hessian of :func:`loglik` (beta profiled out) is taken by central
    differences with Richardson extrapolation (relative steps 1e-3 and 5e-4 of each parameter's
    scale), so its truncation error is O(1e-12) relative.

    Returns
    -------
    ndarray, shape (k, k)
        ``inv(-H)``; NaN if a variance is on the boundary 0 or ``-H`` is not positive definite.
    """
    G = np.atleast_2d(np.asarray(G, dtype=float))
    q = G.shape[0]
    rows, cols = np.tril_indices(q)
    theta = np.append(G[rows, cols], sigma2)
    k = theta.size
    if np.any(np.diag(G) <= 0) or sigma2 <= 0 or np.linalg.eigvalsh(G).min() <= 1e-6 * sigma2:
        return np.full((k, k), np.nan)
    diag = np.append(np.sqrt(np.diag(G)[rows] * np.diag(G)[cols]), sigma2)

    def f(t: np.ndarray) -> float:
        Gt = np.zeros((q, q))
        Gt[rows, cols] = t[:-1]
        Gt[cols, rows] = t[:-1]
        return loglik(stats, Gt, float(t[-1]), reml=reml)

    def hessian(rel: float) -> np.ndarray:
        h = rel * diag
        H = np.zeros((k, k))
        f0 = f(theta)
        for a in range(k):
            ea = np.eye(k)[a] * h[a]
            H[a, a] = (f(theta + ea) - 2 * f0 + f(theta - ea)) / h[a] ** 2
            for b in range(a):
                eb = np.eye(k)[b] * h[b]
                H[a, b] = H[b, a] = (f(theta + ea + eb) - f(theta + ea - eb)
                                     - f(theta - ea + eb) + f(theta - ea - eb)) / (4 * h[a] * h[b])
        return H

    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        H = (4.0 * hessian(5e-4) - hessian(1e-3)) / 3.0
    if not np.all(np.isfinite(H)) or not np.all(np.linalg.eigvalsh(-H) > 0):
        return np.full((k, k), np.nan)
    return np.linalg.inv(-H)
