"""Pooling fits: Rubin's rules over random balancings, and pooled bootstrap intervals."""

from __future__ import annotations

import numpy as np

from mlob_pp.closed_form.bootstrap_intervals import inversion_interval
from mlob_pp.closed_form.core import BatchResult
from mlob_pp.tables import wald

__all__ = ["rubin", "combine_balancings", "combine_bootstrap"]


def rubin(est: np.ndarray, se: np.ndarray) -> tuple[float, float]:
    """Rubin's rules: mean estimate and sqrt(mean within var + (1 + 1/m) between var)."""
    m = est.shape[0]
    if m == 1:
        return float(est[0]), float(se[0])
    within = np.mean(se**2)
    between = np.var(est, ddof=1)
    return float(np.mean(est)), float(np.sqrt(within + (1 + 1 / m) * between))


def combine_balancings(res: BatchResult, jk, covariate_names: tuple[str, ...]):
    """Terms, estimates and SEs of both tables pooled over the balancings (Rubin's rules)."""
    terms = ("beta_b", *(f"gamma_{c}" for c in covariate_names))
    se_beta = res.se_beta_b if jk is None else jk[0]
    se_gamma = res.se_gamma if jk is None else jk[1]
    est = [rubin(res.beta_b, se_beta)]
    est_ml = [rubin(res.beta_b_ml, res.se_beta_b_ml)]
    for j in range(len(covariate_names)):
        g = rubin(res.gamma[:, j], se_gamma[:, j])
        est.append(g)
        est_ml.append(g)
    a = np.array(est, dtype=float).reshape(-1, 2)
    b = np.array(est_ml, dtype=float).reshape(-1, 2)
    return terms, a[:, 0], a[:, 1], b[:, 0], b[:, 1]


def combine_bootstrap(est: np.ndarray, boots: list, conf_level: float):
    """SEs, intervals and p values of the regularised table from one or several bootstraps.

    One balancing: the bootstrap's own SEs, intervals and p values (Wald p for the gammas).
    Several: Rubin's rules for the SEs, Wald intervals for the gammas and, for beta_b, the
    test-inversion interval and p value of the pooled inversion roots.
    """
    m = len(boots)
    se_rows = np.array([[b.se_beta_b, *np.atleast_1d(b.se_gamma)] for b in boots], float)
    est_rows = np.array([[b.estimate, *np.atleast_1d(b.gamma)] for b in boots], float)
    if m == 1:
        b = boots[0]
        std = se_rows[0]
        lo = np.concatenate([[b.ci_lower], np.atleast_1d(b.ci_lower_gamma)])
        hi = np.concatenate([[b.ci_upper], np.atleast_1d(b.ci_upper_gamma)])
        _, p, _, _ = wald(est, std, conf_level)
        p[0] = b.p_value
        return std, np.column_stack([lo, hi]), p
    within = np.mean(se_rows**2, axis=0)
    between = np.var(est_rows, axis=0, ddof=1)
    std = np.sqrt(within + (1 + 1 / m) * between)
    _, p, lo, hi = wald(est, std, conf_level)
    if all(b.roots is not None for b in boots):
        roots = np.concatenate([b.roots for b in boots])
        lo[0], hi[0] = (float(v) for v in inversion_interval(roots, conf_level))
        finite = roots[~np.isnan(roots)]
        p[0] = float(min(1.0, 2 * min(np.mean(finite <= 0), np.mean(finite >= 0))))
    return std, np.column_stack([lo, hi]), p
