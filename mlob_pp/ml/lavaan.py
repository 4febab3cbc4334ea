r"""The exogenous-covariate moments that lavaan 0.6 holds fixed in a two-level ``sem()`` fit.

With its default ``fixed.x = TRUE``, lavaan does not estimate the means and (co)variances of the
exogenous variables (here X and the covariates C) of a two-level model: it fixes them at the
estimates of the unrestricted (H1) two-level model, computed by the EM algorithm of
``lav_mvnorm_cluster_em_sat()``, and maximises the joint likelihood of all variables over the
remaining parameters. That EM starts at :math:`\Sigma_W = I`, :math:`\Sigma_B = I` (zero for
within-only variables), :math:`\mu_W = \mu_B = 0`, keeps a within mean :math:`\mu_W` *and* a
between mean :math:`\mu_B` for every variable (only their sum is identified) and stops when the
log-likelihood gains less than ``1e-4``. The level-2 mean that lavaan then fixes is
:math:`\mu_B` alone (a documented ``FIXME`` in lavaan), so the fixed mean of X is not the ML
estimate; for balanced groups of size n it is :math:`n / (n + 1)` times the grand mean.

lavaan's reported log-likelihood is the joint one of all variables minus ``loglik.x``, the
saturated single-level normal log-likelihood of the within-only exogenous variables (covariates
at level 1 only); :func:`lavaan_loglik_x` computes that term.

:func:`lavaan_exogenous` replays that EM on the sufficient statistics so that
``fit_ml(..., covariates="level_specific", fixed_x="lavaan")`` reproduces lavaan's estimates,
standard errors and log-likelihood.

References
----------
Rosseel, Y. (2012). lavaan: An R package for structural equation modeling. *Journal of
Statistical Software*, 48(2), 1-36. https://doi.org/10.18637/jss.v048.i02
"""

from __future__ import annotations

import numpy as np

from mlob_pp.ml.likelihood import Moments, SuffStats, loglik

__all__ = ["lavaan_exogenous", "lavaan_h1_em", "lavaan_loglik_x"]


def _fx(stats: SuffStats, sw, sb, mu_w, mu_b, within_only: np.ndarray) -> float:
    """Return lavaan's H1 log-likelihood at the EM iterate (no between part if within-only)."""
    sb = sb.copy()
    sb[within_only, :] = 0.0
    sb[:, within_only] = 0.0
    mu_y = mu_w + np.where(within_only, 0.0, mu_b)
    q = sw.shape[0]
    return loglik(stats, Moments(np.eye(q), mu_y, sw, sb))


def lavaan_h1_em(
    stats: SuffStats,
    within_only: np.ndarray,
    *,
    tol: float = 1e-4,
    max_iter: int = 5000,
    min_variance: float = 1e-5,
) -> dict:
    """Replay lavaan's saturated two-level EM (``lav_mvnorm_cluster_em_sat``, per cluster size).

    Parameters
    ----------
    stats : SuffStats
        Statistics of all level-1 variables.
    within_only : ndarray of bool
        Variables that only appear at level 1.
    tol, max_iter, min_variance
        lavaan's settings.

    Returns
    -------
    dict
        ``sigma_w``, ``sigma_b``, ``mu_w``, ``mu_b`` (the EM iterate at the stop), ``n_iter``.
    """
    p = stats.within.shape[0]
    n_obs, n_groups = stats.n_obs, stats.n_groups
    sizes, counts, msum, mout = stats.sizes, stats.counts, stats.mean_sum, stats.mean_outer
    y1y1 = stats.within + np.einsum("c,cab->ab", sizes, mout)
    sw = np.eye(p)
    sb = np.diag(np.where(within_only, 0.0, 1.0))  # level-2 variables only
    mu_w, mu_b = np.zeros(p), np.zeros(p)
    fx_old = _fx(stats, sw, sb, mu_w, mu_b, within_only)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        mu = mu_w + mu_b
        cw2 = np.zeros((p, p))
        cb = np.zeros((p, p))
        mw = np.zeros(p)
        mb = np.zeros(p)
        for c in range(sizes.shape[0]):
            nj, jc, m, s = sizes[c], counts[c], msum[c], mout[c]
            omega = (sw + nj * sb) / nj
            s1 = sb @ np.linalg.inv(omega)
            a = mu_b - s1 @ mu
            ev_sum = jc * a + s1 @ m
            ev_outer = jc * np.outer(a, a) + np.outer(a, s1 @ m) + np.outer(s1 @ m, a)
            ev_outer += s1 @ s @ s1.T
            covv = jc * (sb - s1 @ sb.T)
            covv = (covv + covv.T) / 2.0
            evv = covv + ev_outer
            ybar_ev = np.outer(m, a) + s @ s1.T  # sum_j ybar_j Ev_j'
            mw += nj * (m - ev_sum)
            mb += ev_sum
            cw2 += nj * (evv - ybar_ev - ybar_ev.T)
            cb += evv
        m_w = mw / n_obs
        m_b = mb / n_groups
        sw = (y1y1 + cw2) / n_obs - np.outer(m_w, m_w)
        sb = cb / n_groups - np.outer(m_b, m_b)
        mu_w, mu_b = m_w, m_b
        zero = np.flatnonzero(np.diag(sw) < min_variance)
        if zero.size:
            sw[zero, :] = 0.0
            sw[:, zero] = 0.0
            sw[zero, zero] = min_variance
        fx = _fx(stats, sw, sb, mu_w, mu_b, within_only)
        if fx - fx_old < tol:
            break
        fx_old = fx
    return {"sigma_w": sw, "sigma_b": sb, "mu_w": mu_w, "mu_b": mu_b, "n_iter": n_iter}


def lavaan_exogenous(stats: SuffStats, between_covariates: bool) -> dict:
    """Return the exogenous moments that lavaan fixes in a two-level fit of ``(Y, X, C...)``.

    Returns
    -------
    dict
        ``phi_w`` (within covariance of X and C), ``phi_b`` (between covariance of X and, if
        `between_covariates`, C), ``mu`` (means of X and C: level-2 means ``mu_B`` of the
        variables at both levels, level-1 means ``mu_W`` of within-only covariates).
    """
    p = stats.within.shape[0]
    within_only = np.zeros(p, dtype=bool)
    if not between_covariates:
        within_only[2:] = True
    em = lavaan_h1_em(stats, within_only)
    m_b = p - 1 if between_covariates else 1
    mu = np.where(within_only, em["mu_w"], em["mu_b"])[1:]
    return {
        "phi_w": em["sigma_w"][1:, 1:],
        "phi_b": em["sigma_b"][1 : 1 + m_b, 1 : 1 + m_b],
        "mu": mu,
        "n_iter": em["n_iter"],
    }


def lavaan_loglik_x(stats: SuffStats, columns: np.ndarray) -> float:
    """Return the saturated normal log-likelihood of `columns`, lavaan's ``loglik.x`` term.

    The covariance is the ML (divisor N) covariance over all N rows, ignoring the groups.
    """
    columns = np.asarray(columns, dtype=int)
    n_obs = stats.n_obs
    total = stats.within + np.einsum("c,cab->ab", stats.sizes, stats.mean_outer)
    mean = np.einsum("c,ca->a", stats.sizes, stats.mean_sum) / n_obs
    cov = total / n_obs - np.outer(mean, mean)
    cov = cov[np.ix_(columns, columns)]
    p = columns.shape[0]
    _, logdet = np.linalg.slogdet(cov)
    return float(-0.5 * n_obs * (p * np.log(2.0 * np.pi) + logdet + p))
