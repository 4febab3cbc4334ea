"""Maximisation of the two-level likelihood for :func:`mlob_pp.fit_ml`: BFGS, then Newton steps.

The parameters are in standardised units (:mod:`mlob_pp.ml.fit` centres and scales every column
first), so the fixed finite-difference steps below are relative to unit-scale quantities.
"""

from __future__ import annotations

import warnings

import numpy as np

from mlob_pp.ml.likelihood import SuffStats, loglik_grad

__all__ = ["maximize"]


def _objective(stats: SuffStats, spec, theta0: np.ndarray, fidx: np.ndarray):
    scale = np.maximum(1.0, np.abs(theta0)) * 1e-2
    n = float(stats.n_obs)

    def full(x):
        t = theta0.copy()
        t[fidx] = x
        return t

    def grad_full(t):
        return loglik_grad(stats, spec.implied, t, scale)

    def objective(x):
        value, g = grad_full(full(x))
        if g is None or not np.isfinite(value):
            return np.inf, np.zeros_like(x)
        return -value / n, -g[fidx] / n

    return full, grad_full, objective


def _hessian(grad_full, t: np.ndarray, rel: float = 1e-5) -> np.ndarray | None:
    """Return central differences of the analytic gradient (None where undefined)."""
    p = t.shape[0]
    h = np.empty((p, p))
    for i in range(p):
        step = rel * max(1.0, abs(t[i]))
        up, down = t.copy(), t.copy()
        up[i] += step
        down[i] -= step
        gu, gd = grad_full(up)[1], grad_full(down)[1]
        if gu is None or gd is None:
            return None
        h[:, i] = (gu - gd) / (2 * step)
    return (h + h.T) / 2


def _newton_step(grad_full, t, value, g, hess, fidx):
    """One damped Newton step (Levenberg damping until the likelihood does not decrease)."""
    hf = hess[np.ix_(fidx, fidx)]
    gf = g[fidx]
    lam = 0.0
    for _ in range(30):
        a = -hf + lam * np.diag(np.maximum(np.abs(np.diag(hf)), 1e-12))
        try:
            step = np.linalg.solve(a, gf)
        except np.linalg.LinAlgError:
            lam = max(lam * 10, 1e-6)
            continue
        trial = t.copy()
        trial[fidx] += step
        v_new, g_new = grad_full(trial)
        if g_new is not None and np.isfinite(v_new) and v_new >= value - 1e-12 * abs(value):
            return trial, v_new, g_new, float(step @ gf), lam
        lam = max(lam * 10, 1e-6)
    return None


def maximize(stats: SuffStats, spec, theta0: np.ndarray, free: np.ndarray, max_iter: int,
             tol: float):
    """Maximise the log-likelihood over the free parameters: BFGS, then Newton steps.

    Returns
    -------
    theta, hess, n_iter, converged
        The maximiser, the Hessian there (numerical, of the analytic gradient), the number of
        iterations and whether the Newton decrement fell below `tol` (or the scaled gradient
        below 1e-4).
    """
    from scipy.optimize import minimize

    fidx = np.flatnonzero(free)
    full, grad_full, objective = _objective(stats, spec, theta0, fidx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = minimize(objective, theta0[fidx], jac=True, method="BFGS",
                       options={"maxiter": max_iter, "gtol": 1e-7})
    x = res.x if np.isfinite(res.fun) else theta0[fidx]
    n_iter = int(res.nit)
    converged = False
    t = full(x)
    value, g = grad_full(t)
    hess = None
    polished = False
    for _ in range(min(50, max_iter)):
        hess = _hessian(grad_full, t)
        if hess is None or g is None:
            break
        out = _newton_step(grad_full, t, value, g, hess, fidx)
        n_iter += 1
        if out is None:
            break
        t, value, g, decrement, lam = out
        if abs(decrement) < tol and lam == 0.0:
            # one more (quadratically convergent) step: ill-conditioned maxima (few groups, a
            # between variance near zero) then agree to ~1e-12 whatever the path (row order)
            if polished:
                converged = True
                break
            polished = True
        else:
            polished = False
    if hess is None:
        return t, np.full((t.shape[0], t.shape[0]), np.nan), n_iter, False
    # final Hessian by Richardson extrapolation of three step sizes (error O(h^6)). Near a
    # singular covariance of the group means (smallest eigenvalue `ratio` relative to the within
    # covariance) the likelihood curves on that scale, so the steps shrink with it: at ratio
    # 9e-4 a fixed 1e-5 step gave a 3 % error in SE(beta_b); scaled steps agree with ml_batch's
    # analytic information to 1e-7 (measured)
    near = singular_class(stats, spec, t, rel=np.inf)
    base = 1e-5 * (1.0 if near is None else min(1.0, max(near[2] / 1e-2, 1e-3)))
    steps = [_hessian(grad_full, t, r) for r in (base, base / 2, base / 4)]
    if all(h is not None for h in steps):  # Richardson: error O(h^6)
        r1, r2 = (4.0 * steps[1] - steps[0]) / 3.0, (4.0 * steps[2] - steps[1]) / 3.0
        hess = (16.0 * r2 - r1) / 15.0
    if g is not None:
        gscale = np.abs(g[fidx]) * np.maximum(1.0, np.abs(t[fidx]))
        converged = converged or bool(np.max(gscale) < 1e-4)
    return t, hess, n_iter, converged


def singular_class(stats: SuffStats, spec, theta: np.ndarray, rel: float = 1e-3):
    r"""Find the group-size class whose group-mean covariance is (nearly) singular.

    The unrestricted two-level likelihood (between covariance not constrained to be positive
    semi-definite) grows without bound as the covariance :math:`V_c = \Sigma_W + n_c\Sigma_B`
    of the group means of a size class becomes singular along a direction in which those means
    do not scatter: this is always possible when the class holds fewer groups than the modelled
    vector has free dimensions (for example a single largest group). The estimate is then the
    interior local maximum, if there is one. When the optimiser ends without a stationary
    point at such a singular :math:`V_c` there is no maximum likelihood estimate.

    Returns
    -------
    tuple or None
        ``(size, count, ratio)`` of the class with the smallest generalized eigenvalue
        ``ratio`` of :math:`(V_c, \Sigma_W)` if it is below `rel` (scale-free), else None.
    """
    m = spec.implied(theta)
    try:
        inv_l = np.linalg.inv(np.linalg.cholesky(m.sigma_w))
    except np.linalg.LinAlgError:
        return None
    worst = None
    for size, count in zip(stats.sizes, stats.counts, strict=True):
        v = m.sigma_w + size * m.sigma_b
        ratio = float(np.linalg.eigvalsh(inv_l @ v @ inv_l.T)[0])
        if worst is None or ratio < worst[2]:
            worst = (int(size), int(count), ratio)
    return worst if worst is not None and worst[2] < rel else None
