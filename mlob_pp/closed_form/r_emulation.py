"""Bit-level emulation of R MLOB's floating-point path for J = 3 and J = 5.

For J = 3 and J = 5 R MLOB's grid criterion has an exact pole at omega = 1, and which grid point
wins (and the ML standard error, which divides by K1 - 1 or K1 - 2) is decided by the rounding
noise in R's "eigenvalues" L1, which are mathematically all equal. To reproduce R there (the
package's own iris example has J = 3), this module recomputes tau_x, sigma_x and the L1 sums
in R's operation order (spec section 7.3):

1. ``mean(v)``: long-double sequential sum / length, plus R's second pass;
   ``colMeans``: long-double sequential sum per block / n; ``sum(v)``: long-double sequential sum.
2. tau/sigma from SSA = n sum(xbar_j^2) - nJ xbar^2 and SSD = sum(x^2) - n sum(xbar_j^2).
3. Each L1 entry m = 1..J-1 as the reference-BLAS accumulation of the chain
   ``((S V') A) V) S`` restricted to its non-zero terms.
4. s1 = long-double sum of L1, q1 = sequential double sum of squares.

The numbers are exact relative to R on x86-64 with 80-bit ``long double`` (``numpy.longdouble``).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["r_x_statistics", "HAVE_LONG_DOUBLE"]

HAVE_LONG_DOUBLE = np.finfo(np.longdouble).nmant >= 63


def _ld_seq_sum(values: np.ndarray) -> np.longdouble:
    """Sequential (not pairwise) long-double sum, as R's C loops."""
    if values.size == 0:
        return np.longdouble(0.0)
    return np.add.accumulate(values.astype(np.longdouble))[-1]


def _r_mean(values: np.ndarray) -> float:
    n = values.size
    s = _ld_seq_sum(values) / np.longdouble(n)
    if np.isfinite(float(s)):
        t = np.add.accumulate(values.astype(np.longdouble) - s)[-1]
        s = s + t / np.longdouble(n)
    return float(s)


def _r_col_means(blocks: np.ndarray) -> np.ndarray:
    """R colMeans of an n x J matrix given as (J, n) blocks."""
    n = blocks.shape[1]
    sums = np.add.accumulate(blocks.astype(np.longdouble), axis=1)[:, -1]
    return (sums / np.longdouble(n)).astype(np.float64)


def _r_sum(values: np.ndarray) -> float:
    return float(_ld_seq_sum(values))


def r_x_statistics(x: np.ndarray) -> tuple[float, float, float, float]:
    """Return R's ``tau_x, sigma_x, s1, q1`` for one balanced data set.

    Parameters
    ----------
    x : ndarray, shape (J, n)
        The target regressor in blocks (one row per group, rows in R's block order).

    Returns
    -------
    tau_x, sigma_x, s1, q1 : float
        Between and within variance of x, and the sum and sum of squares of R's L1 vector
        (after R's absolute 1e-7 threshold).
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    J, n = x.shape
    flat = x.reshape(-1)
    xbar_j = _r_col_means(x)
    xbar = _r_mean(flat)
    sum_xbar2 = _r_sum(xbar_j * xbar_j)
    ssa = n * sum_xbar2 - float(n * J) * (xbar * xbar)
    ssd = _r_sum(flat * flat) - n * sum_xbar2
    msa = ssa / (J - 1)
    msd = ssd / ((n - 1) * J)
    tau = (msa - msd) / n
    sigma = msd

    s_scale = math.sqrt(abs((n + 1) * (tau + sigma / n)))
    a_ind = -1.0 / (n * (n - 1) * J)
    a_mean = (n * J - 1) / ((n - 1) * (J - 1) * J)
    l1 = np.zeros(J - 1)
    for m in range(1, J):
        root = math.sqrt(m * (m + 1) * (n + 1))
        v_minus = -1.0 / root
        v_plus = m / root
        acc = 0.0
        term = v_minus * ((s_scale * v_minus) * a_ind)
        for _ in range(m * n):
            acc += term
        term = v_plus * ((s_scale * v_plus) * a_ind)
        for _ in range(n):
            acc += term
        term = v_minus * ((s_scale * v_minus) * a_mean)
        for _ in range(m):
            acc += term
        acc += v_plus * ((s_scale * v_plus) * a_mean)
        l1[m - 1] = acc * s_scale
    l1[np.abs(l1) < 1e-7] = 0.0
    s1 = _r_sum(l1)
    q1 = 0.0
    for value in l1:
        q1 += value * value
    return tau, sigma, s1, q1
