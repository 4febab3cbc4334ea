r"""Profile-likelihood interval of the between slope for :func:`mlob_pp.ml_batch` (balanced data).

With :math:`\beta_b` held at a value :math:`b`, the model for :math:`u = Y - bX - C^\top\gamma`
and :math:`X` has a *diagonal* between covariance (the group effect of Y is independent of the
latent group mean of X once the between slope is removed), a free within covariance and a free
mean. So the profile log-likelihood :math:`\ell_p(b)` is the maximum over the covariate slopes
and the entries ``S00, S01 = V01, S11, V00, V11`` (``V = S + n Sigma_B``), found by a vectorized
Newton iteration with the analytic derivatives of :mod:`mlob_pp.ml.balanced`. The interval is
:math:`\{b : 2(\hat\ell - \ell_p(b)) \le \chi^2_1(\text{level})\}`; each end is the root of the
signed root deviance :math:`r(b) = \operatorname{sign}(b - \hat b)\sqrt{2(\hat\ell - \ell_p(b))}`
at :math:`\pm z`, found by continuation from the estimate (each inner maximisation starts from
the solution at the last point inside the interval, steps at most triple the distance from the
estimate) and then safeguarded Newton steps (:math:`\ell_p'(b)` is the partial derivative at the
inner maximum, bisection when a step does not halve the last one). An end is accepted when its
deviance is within 2e-6 (relative) of the cut-off. The profile need not be monotone on each
side (with a weak between variance of X it can dip and rise again); the search returns a
crossing of the cut-off reached from the estimate, and an end further than 1e6 (1 + SE) from
the estimate (standardised units) is reported as infinite.

As :math:`b \to \pm\infty` the constraint :math:`\Sigma_{B,YX} = b\,\Sigma_{B,XX}` tends to
:math:`\Sigma_{B,XX} = 0`, so the profile deviance tends to the likelihood-ratio statistic of
:math:`\tau^2_X = 0` (as for Fieller's interval of a ratio). When that statistic is below the
cut-off the interval is unbounded, ``(-inf, inf)``: the data do not show a between-group
variance of X, and no finite interval for the between slope has the stated coverage there
(Gleser & Hwang 1987). With few groups and a low ICC of X this is frequent, and it is exactly
where Wald intervals mislead.

References
----------
Gleser, L. J., & Hwang, J. T. (1987). The nonexistence of 100(1-alpha)% confidence sets of finite
expected diameter in errors-in-variables and related models. *The Annals of Statistics*, 15(4),
1351-1362. https://doi.org/10.1214/aos/1176350597

Venzon, D. J., & Moolgavkar, S. H. (1988). A method for computing profile-likelihood-based
confidence intervals. *Applied Statistics*, 37(1), 87-94. https://doi.org/10.2307/2347496
"""

from __future__ import annotations

import numpy as np

from mlob_pp.ml.balanced import (
    BalancedStats,
    ascent_step,
    derivatives,
    loglik,
    subset,
    transform,
)

__all__ = ["profile_interval"]

_REACH = 1e6  # search limit in units of (1 + SE), standardised data
#: (S00, S01, S11, V00, V01, V11) from the reduced coordinates of each constrained model
_RATIO = np.array([[0, 1, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0],
                   [1, 0, 0, 0, 0], [0, 0, 0, 0, 1]], dtype=float)  # (c, S00, S11, V00, V11)
_NO_BETWEEN_X = np.array([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0],
                          [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 1, 0, 0]],
                         dtype=float)  # (S00, S01, S11, V00, V01): V11 = S11


def _projection(k: int, m: np.ndarray) -> np.ndarray:
    p = np.zeros((k + 6, k + 5))
    p[:k, :k] = np.eye(k)
    p[k:, k:] = m
    return p


def _unpack(psi: np.ndarray, b: np.ndarray, k: int, m: np.ndarray):
    coef = np.concatenate([b[:, None], psi[:, :k]], axis=1)
    e = psi[:, k:] @ m.T  # (B, 6)
    s = np.stack([np.stack([e[:, 0], e[:, 1]], -1), np.stack([e[:, 1], e[:, 2]], -1)], -2)
    v = np.stack([np.stack([e[:, 3], e[:, 4]], -1), np.stack([e[:, 4], e[:, 5]], -1)], -2)
    return coef, s, v


def _value(stats, psi, b, k, m):
    coef, s, v = _unpack(psi, b, k, m)
    _, wz, dz = transform(stats, coef)
    return loglik(stats, wz, dz, s, v)


def _moments_at(stats, gamma, b):
    coef = np.concatenate([b[:, None], gamma], axis=1)
    _, wz, dz = transform(stats, coef)
    return wz / (stats.n_obs - stats.n_groups), stats.group_size * dz / stats.n_groups


def _start_ratio(stats, gamma, b):
    """Start at `b` from the unrestricted moments of ``(y - b x - C'gamma, x)``."""
    s, v = _moments_at(stats, gamma, b)
    c = s[:, 0, 1]
    v00 = np.maximum(v[:, 0, 0], 1.01 * c**2 / v[:, 1, 1])
    return np.column_stack([gamma, c, s[:, 0, 0], s[:, 1, 1], v00, v[:, 1, 1]])


def _shift(psi: np.ndarray, delta: np.ndarray, k: int) -> np.ndarray:
    """Carry a solution at ``b`` to ``b + delta``: ``u -> u - delta x`` in S and V.

    The between parts keep their off-diagonal equal to the within one (the constraint), so this
    is a close start for the next inner maximisation, not the exact solution.
    """
    out = psi.copy()
    c, s00, s11, v00, v11 = (psi[:, k + i] for i in range(5))
    out[:, k] = c - delta * s11
    out[:, k + 1] = s00 - 2.0 * delta * c + delta**2 * s11
    v00_new = v00 - 2.0 * delta * c + delta**2 * v11
    out[:, k + 3] = np.maximum(v00_new, 1.01 * out[:, k] ** 2 / v11)
    return out


def _start_no_between(stats, gamma):
    """Start of the model without between variance of X (``V11 = S11``)."""
    s, v = _moments_at(stats, gamma, np.zeros(gamma.shape[0]))
    v00 = np.maximum(v[:, 0, 0], 1.01 * v[:, 0, 1] ** 2 / s[:, 1, 1])
    return np.column_stack([gamma, s[:, 0, 0], s[:, 0, 1], s[:, 1, 1], v00, v[:, 0, 1]])


def _inner(stats, psi, b, k, m, max_iter=25, tol=1e-9):
    """Maximise over the reduced coordinates at fixed `b` (vectorized damped Newton)."""
    proj = _projection(k, m)
    cols = np.arange(1, k + 1)
    psi = psi.copy()
    value = _value(stats, psi, b, k, m)
    done = ~np.isfinite(value)
    for _ in range(max_iter):
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        sub = subset(stats, act)
        coef, s, v = _unpack(psi[act], b[act], k, m)
        grad, hess = derivatives(sub, coef, cols, s, v)
        g = grad @ proj
        step = ascent_step(proj.T @ hess @ proj, g)
        dec = np.abs(np.einsum("bi,bi->b", step, g))
        small = dec < tol  # converged: take the last (tiny) Newton step as it is
        psi[act[small]] += step[small]
        done[act[small]] = True
        act, step = act[~small], step[~small]
        if act.size == 0:
            break
        sub = subset(stats, act)
        new, val, better = _line_search(sub, psi[act], step, value[act], b[act], k, m)
        psi[act[better]] = new[better]
        value[act[better]] = val[better]
        done[act[~better]] = True
    return psi, value


def _line_search(stats, psi, step, current, b, k, m, halvings=30):
    """Halve the steps until the log-likelihood does not decrease (beyond rounding)."""
    slack = 1e-11 * (1.0 + np.abs(current))
    t = np.ones(psi.shape[0])
    new = psi + step
    val = _value(stats, new, b, k, m)
    for _ in range(halvings):
        worse = ~(val >= current - slack)
        if not worse.any():
            break
        t[worse] *= 0.5
        new[worse] = psi[worse] + t[worse, None] * step[worse]
        val[worse] = _value(subset(stats, np.flatnonzero(worse)), new[worse], b[worse], k, m)
    return new, val, val >= current - slack


def _slope(stats, psi, b, k):
    """Return the derivative of the log-likelihood in ``beta_b`` at the inner maximum."""
    coef, s, v = _unpack(psi, b, k, _RATIO)
    grad, _ = derivatives(stats, coef, np.array([0]), s, v)
    return grad[:, 0]


def _ends(stats, gamma, b_hat, se, ll_max, q, side, max_iter=50):
    """Return the end of the interval on the side ``side`` (-1 or +1) of every problem."""
    n_b, k = gamma.shape
    reach = _REACH * (1.0 + np.where(np.isfinite(se), se, 0.0))
    first = np.where(np.isfinite(se) & (se > 0), q * se, 1.0)
    b_in = b_hat.copy()
    psi_in = _start_ratio(stats, gamma, b_hat)
    b_out = np.full(n_b, np.nan)
    b = b_hat + side * first
    last_step = np.full(n_b, np.inf)
    result = np.full(n_b, np.nan)
    active = np.arange(n_b)
    for _ in range(max_iter):
        if active.size == 0:
            break
        sub = subset(stats, active)
        start = _shift(psi_in[active], b[active] - b_in[active], k)
        psi, val = _inner(sub, start, b[active], k, _RATIO)
        r = side[active] * np.sqrt(np.maximum(2.0 * (ll_max[active] - val), 0.0))
        slope = _slope(sub, psi, b[active], k)
        with np.errstate(divide="ignore", invalid="ignore"):
            rprime = -slope / r
        # deviance within 2e-6 of the cut-off (relative): where the profile is flat the end is
        # ill-determined in b anyway, and a tighter target only costs iterations
        hit = np.abs(np.abs(r) - q) < 1e-6 * q
        width = np.abs(b_out[active] - b_in[active])
        hit |= width < 1e-9 * (1.0 + np.abs(b[active]))  # bracket at rounding level
        result[active[hit]] = b[active[hit]]
        inside = np.abs(r) < q
        ia, oa = active[inside], active[~inside & np.isfinite(r)]
        b_in[ia], psi_in[ia] = b[ia], psi[inside]
        b_out[oa] = b[oa]
        new, step = _propose(b_hat[active], b[active], r, rprime, b_in[active], b_out[active],
                             last_step[active], q, side[active], first[active])
        gone = ~np.isfinite(b_out[active]) & (np.abs(new - b_hat[active]) > reach[active])
        result[active[gone & ~hit]] = side[active[gone & ~hit]] * np.inf
        last_step[active] = step
        b[active] = new
        active = active[~hit & ~gone & np.isfinite(new)]
    return result


def _propose(b_hat, b, r, rprime, b_in, b_out, last_step, q, side, first):
    """Next trial point: Newton on the signed root, kept in the bracket, continuation steps."""
    target = side * q
    has_out = np.isfinite(b_out)
    with np.errstate(divide="ignore", invalid="ignore"):
        newton = b + (target - r) / rprime
    ok = np.isfinite(newton) & (side * (newton - b_in) > 0)
    bracketed = has_out & ok & (side * (b_out - newton) > 0)
    slow = np.abs(newton - b) > 0.5 * last_step
    bisect = 0.5 * (b_in + b_out)
    reach_in = np.maximum(3.0 * np.abs(b_in - b_hat), first)
    cap = b_hat + side * reach_in
    open_new = np.where(ok, np.where(side * (newton - cap) > 0, cap, newton), cap)
    new = np.where(has_out, np.where(bracketed & ~slow, newton, bisect), open_new)
    return new, np.abs(new - b)


def _unbounded(stats, gamma, ll_max, q):
    """Whether the deviance of tau2_x = 0 (the limit at infinity) is below the cut-off."""
    k = gamma.shape[1]
    psi = _start_no_between(stats, gamma)
    _, val = _inner(stats, psi, np.zeros(gamma.shape[0]), k, _NO_BETWEEN_X)
    return 2.0 * (ll_max - val) < q**2


def profile_interval(stats: BalancedStats, gamma: np.ndarray, beta_b: np.ndarray,
                     se: np.ndarray, *, ll_max: np.ndarray, q: float, ok: np.ndarray):
    """Return the profile-likelihood interval of ``beta_b`` (standardised units).

    Parameters
    ----------
    stats : BalancedStats
        Standardised statistics of the B data sets.
    gamma, beta_b, se : ndarray
        Maximum likelihood covariate slopes (B, k), between slope and its standard error (B,).
    ll_max : ndarray (B,)
        Maximised log-likelihood.
    q : float
        Normal quantile of the level (the cut-off is ``q**2``).
    ok : ndarray of bool (B,)
        Data sets with a valid fit (others get NaN).

    Returns
    -------
    lower, upper : ndarray (B,)
        Ends of the interval; ``-inf``/``inf`` if unbounded, NaN if the search failed.
    """
    lower = np.full(beta_b.shape, np.nan)
    upper = np.full(beta_b.shape, np.nan)
    idx = np.flatnonzero(ok & np.isfinite(beta_b))
    if idx.size == 0:
        return lower, upper
    sub = subset(stats, idx)
    flat = _unbounded(sub, gamma[idx], ll_max[idx], q)
    lower[idx[flat]], upper[idx[flat]] = -np.inf, np.inf
    idx, keep = idx[~flat], np.flatnonzero(~flat)
    if idx.size:
        sub = subset(sub, keep)
        # both ends in one vectorized search: rows 0..m-1 lower, m..2m-1 upper
        m = idx.size
        both = np.concatenate([np.arange(m), np.arange(m)])
        side = np.repeat([-1.0, 1.0], m)
        ends = _ends(subset(sub, both), gamma[idx][both], beta_b[idx][both], se[idx][both],
                     ll_max[idx][both], q, side)
        lower[idx], upper[idx] = ends[:m], ends[m:]
    return lower, upper
