r"""Marginal log-likelihood of a two-level multivariate normal model from sufficient statistics.

Every observation vector :math:`z_{ij}` (``q`` variables, unit ``i`` in group ``j`` of size
:math:`n_j`) follows

.. math::

    z_{ij} = \mu + b_j + w_{ij}, \qquad b_j \sim N(0, \Sigma_B), \quad
    w_{ij} \sim N(0, \Sigma_W),

so a group's vector is normal with the compound-symmetric covariance
:math:`I_{n_j} \otimes \Sigma_W + J_{n_j} \otimes \Sigma_B`. Its log-density splits into a
within part and a between part (the group mean :math:`\bar z_j` has covariance
:math:`V_j / n_j`, :math:`V_j = \Sigma_W + n_j \Sigma_B`):

.. math::

    \ell = -\tfrac12 \Big[ N q \log 2\pi + (N - J) \log|\Sigma_W|
        + \operatorname{tr}(\Sigma_W^{-1} W)
        + \sum_j \big( \log|V_j| + n_j (\bar z_j - \mu)^\top V_j^{-1} (\bar z_j - \mu) \big)
        \Big],

with :math:`W` the pooled within-group cross-product matrix. Groups of equal size share
:math:`V_j`, so the statistics are :math:`W` and, per group-size class, the number of groups, the
sum of the group means and the sum of their outer products: the cost of one evaluation is
:math:`O(C q^3)` for :math:`C` distinct group sizes, after an :math:`O(N q^2)` pass over the data.

The modelled vector may be a linear transform :math:`z = A x` of the raw data vector :math:`x`
(used for covariates with a slope shared by both levels, ``y - c^\top \gamma``), with
:math:`A`, :math:`\mu`, :math:`\Sigma_W`, :math:`\Sigma_B` functions of the structural
parameters. The gradient is analytic in :math:`(A, \mu, \Sigma_W, \Sigma_B)` and chained through
the Jacobian of those moments; the moments of the models in :mod:`mlob_pp.ml.fit` are polynomials of
degree at most two in each single parameter (such as :math:`\beta_w^2 \sigma^2_X`), so central
differences along each coordinate give that Jacobian exactly (up to rounding).

References
----------
Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B. (2008).
The multilevel latent covariate model. *Psychological Methods*, 13(3), 203-229.
https://doi.org/10.1037/a0012869

McDonald, R. P., & Goldstein, H. (1989). Balanced versus unbalanced designs for linear
structural relations in two-level data. *British Journal of Mathematical and Statistical
Psychology*, 42(2), 215-232. https://doi.org/10.1111/j.2044-8317.1989.tb00911.x
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["SuffStats", "suff_stats", "Moments", "loglik", "loglik_grad", "moment_jacobian"]

_LOG2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class SuffStats:
    r"""Sufficient statistics of raw data vectors ``x_ij`` (``p`` columns) for the two-level MVN.

    Attributes
    ----------
    n_obs, n_groups : int
        N and J.
    within : ndarray, shape (p, p)
        Pooled within-group cross-products :math:`\\sum_{ij} (x_{ij} - \\bar x_j)(\\cdot)^\\top`.
    sizes : ndarray of int, shape (C,)
        Distinct group sizes.
    counts : ndarray, shape (C,)
        Number of groups of each size.
    mean_sum : ndarray, shape (C, p)
        Sum of the group means over the groups of each size.
    mean_outer : ndarray, shape (C, p, p)
        Sum of the outer products of the group means over the groups of each size.
    """

    n_obs: int
    n_groups: int
    within: np.ndarray
    sizes: np.ndarray
    counts: np.ndarray
    mean_sum: np.ndarray
    mean_outer: np.ndarray


def suff_stats(data: np.ndarray, codes: np.ndarray, n_groups: int) -> SuffStats:
    """Compute :class:`SuffStats` of `data` (N, p) with group codes 0..J-1 in one pass."""
    data = np.asarray(data, dtype=float)
    sizes_j = np.bincount(codes, minlength=n_groups)
    sums = np.zeros((n_groups, data.shape[1]))
    np.add.at(sums, codes, data)
    means = sums / sizes_j[:, None]
    dev = data - means[codes]
    within = dev.T @ dev
    sizes, inverse = np.unique(sizes_j, return_inverse=True)
    counts = np.bincount(inverse, minlength=sizes.shape[0]).astype(float)
    mean_sum = np.zeros((sizes.shape[0], data.shape[1]))
    np.add.at(mean_sum, inverse, means)
    mean_outer = np.zeros((sizes.shape[0], data.shape[1], data.shape[1]))
    np.add.at(mean_outer, inverse, means[:, :, None] * means[:, None, :])
    return SuffStats(
        n_obs=int(data.shape[0]),
        n_groups=int(n_groups),
        within=within,
        sizes=sizes.astype(float),
        counts=counts,
        mean_sum=mean_sum,
        mean_outer=mean_outer,
    )


@dataclass(frozen=True)
class Moments:
    """Model-implied transform and moments: ``z = A x``, mean ``mu``, ``sigma_w``, ``sigma_b``."""

    transform: np.ndarray  # (q, p)
    mu: np.ndarray  # (q,)
    sigma_w: np.ndarray  # (q, q)
    sigma_b: np.ndarray  # (q, q)

    def flat(self) -> np.ndarray:
        """All entries as one vector (for Jacobians)."""
        return np.concatenate(
            [self.transform.ravel(), self.mu, self.sigma_w.ravel(), self.sigma_b.ravel()]
        )


def _pieces(stats: SuffStats, m: Moments):
    """Return transformed statistics, inverses and log-determinants (None if not PD)."""
    a = m.transform
    w = a @ stats.within @ a.T
    msum = stats.mean_sum @ a.T  # (C, q)
    mouter = np.einsum("qp,cpr,sr->cqs", a, stats.mean_outer, a)
    v = m.sigma_w[None] + stats.sizes[:, None, None] * m.sigma_b[None]
    try:
        lw = np.linalg.cholesky(m.sigma_w)
        lv = np.linalg.cholesky(v)
    except np.linalg.LinAlgError:
        return None
    logdet_w = 2.0 * np.log(np.diag(lw)).sum()
    logdet_v = 2.0 * np.log(np.diagonal(lv, axis1=1, axis2=2)).sum(axis=1)
    inv_w = np.linalg.inv(m.sigma_w)
    inv_v = np.linalg.inv(v)
    mu = m.mu
    dev = (
        mouter
        - msum[:, :, None] * mu[None, None, :]
        - mu[None, :, None] * msum[:, None, :]
        + stats.counts[:, None, None] * np.outer(mu, mu)[None]
    )
    return w, msum, dev, inv_w, inv_v, logdet_w, logdet_v


def loglik(stats: SuffStats, m: Moments) -> float:
    """Log-likelihood at the implied moments (``-inf`` if a covariance is not positive definite)."""
    pieces = _pieces(stats, m)
    if pieces is None:
        return -np.inf
    w, _, dev, inv_w, inv_v, logdet_w, logdet_v = pieces
    q = m.mu.shape[0]
    n, jc = stats.sizes, stats.counts
    quad = np.einsum("cab,cba->c", inv_v, dev)
    total = (
        stats.n_obs * q * _LOG2PI
        + (stats.n_obs - stats.n_groups) * logdet_w
        + np.sum(inv_w * w)
        + np.sum(jc * logdet_v)
        + np.sum(n * quad)
    )
    return float(-0.5 * total)


def _moment_grad(stats: SuffStats, m: Moments) -> np.ndarray | None:
    """Gradient of the log-likelihood in the entries of ``(A, mu, sigma_w, sigma_b)``."""
    pieces = _pieces(stats, m)
    if pieces is None:
        return None
    w, msum, dev, inv_w, inv_v, _, _ = pieces
    n, jc = stats.sizes, stats.counts
    a, mu = m.transform, m.mu
    vdv = inv_v @ dev @ inv_v  # (C, q, q)
    per_class = jc[:, None, None] * inv_v - n[:, None, None] * vdv
    g_w = -0.5 * (
        (stats.n_obs - stats.n_groups) * inv_w - inv_w @ w @ inv_w + per_class.sum(axis=0)
    )
    g_b = -0.5 * np.einsum("c,cab->ab", n, per_class)
    resid = msum - jc[:, None] * mu[None]
    g_mu = np.einsum("c,cab,cb->a", n, inv_v, resid)
    # d/dA of -1/2 [tr(Sw^-1 A W A') + sum_c n_c tr(V_c^-1 (A S_c A' - A m_c mu' - mu m_c' A'))]
    va = inv_v @ a  # (C, q, p)
    g_a = -(
        inv_w @ a @ stats.within
        + np.einsum("c,cqp,cpr->qr", n, va, stats.mean_outer)
        - np.einsum("c,cqs,s,cr->qr", n, inv_v, mu, stats.mean_sum)
    )
    return np.concatenate([g_a.ravel(), g_mu, g_w.ravel(), g_b.ravel()])


def moment_jacobian(
    implied: Callable[[np.ndarray], Moments], theta: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """Return the Jacobian of ``implied(theta).flat()`` by central differences.

    Exact (up to rounding) when every moment is at most quadratic in each single parameter.
    """
    cols = []
    for k in range(theta.shape[0]):
        h = scale[k]
        up = theta.copy()
        up[k] += h
        down = theta.copy()
        down[k] -= h
        cols.append((implied(up).flat() - implied(down).flat()) / (2.0 * h))
    return np.column_stack(cols)


def loglik_grad(
    stats: SuffStats,
    implied: Callable[[np.ndarray], Moments],
    theta: np.ndarray,
    scale: np.ndarray,
) -> tuple[float, np.ndarray | None]:
    """Log-likelihood and its gradient in the structural parameters `theta`."""
    m = implied(theta)
    value = loglik(stats, m)
    if not np.isfinite(value):
        return value, None
    g = _moment_grad(stats, m)
    jac = moment_jacobian(implied, theta, scale)
    return value, jac.T @ g
