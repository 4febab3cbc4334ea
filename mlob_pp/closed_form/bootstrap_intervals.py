"""Bootstrap intervals: test inversion with common random numbers, and percentile types.

- ``"inversion"`` (default): every simulated data set is refitted at the generating slope
  ``beta_gen`` and at ``beta_gen + h`` with the same random draws; on the secant through the two
  refits, the slope ``beta_i`` at which data set ``i`` would reproduce the observed estimate is
  found (:func:`inversion_roots`), and the interval is the central ``conf_level`` range of the
  ``beta_i`` (:func:`inversion_interval`): the set of slopes a bootstrap test does not reject. It
  corrects the estimator's shrinkage bias. Where refits do not increase with the slope (no
  information about beta_b) a bound is infinite; :func:`unbounded_reason` says why.
- ``"bc"`` (Efron's bias-corrected percentile), ``"percentile"``, ``"basic"``
  (:func:`bootstrap_interval`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = [
    "INTERVALS",
    "bootstrap_interval",
    "inversion_step",
    "inversion_roots",
    "inversion_interval",
    "bias_constant",
    "unbounded_reason",
]

#: interval methods, the default first
INTERVALS: tuple[str, ...] = ("inversion", "bc", "percentile", "basic")


def bootstrap_interval(
    draws: np.ndarray, estimate: np.ndarray | float, conf_level: float = 0.95,
    interval: str = "bc",
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap interval from draws along the last axis (NaN draws ignored).

    Parameters
    ----------
    draws : ndarray (..., B)
        Bootstrap replicates of the estimator.
    estimate : float or ndarray (...)
        The estimate of the original data.
    conf_level : float
    interval : {"bc", "percentile", "basic"}
        ``"percentile"``: quantiles ``alpha/2, 1 - alpha/2`` of the draws. ``"bc"``: Efron's
        bias-corrected percentile interval, quantiles ``Phi(2 z0 -+ z)`` with
        ``z0 = Phi^-1(P(draw < estimate))`` (mid-ranks for ties). ``"basic"``:
        ``2 estimate - q(1 - alpha/2), 2 estimate - q(alpha/2)``.

    Returns
    -------
    lower, upper : ndarray (...)
    """
    draws = np.asarray(draws, dtype=float)
    est = np.asarray(estimate, dtype=float)
    alpha = 1.0 - conf_level
    probs = np.array([alpha / 2.0, 1.0 - alpha / 2.0])
    if interval == "bc":
        z0 = bias_constant(draws, est)
        zq = float(ndtri(1.0 - alpha / 2.0))
        lo_p = ndtr(2.0 * z0 - zq)
        hi_p = ndtr(2.0 * z0 + zq)
        lower = _nanquantile(draws, lo_p)
        upper = _nanquantile(draws, hi_p)
        return lower, upper
    q = np.nanquantile(draws, probs, axis=-1)
    if interval == "percentile":
        return q[0], q[1]
    return 2.0 * est - q[1], 2.0 * est - q[0]


def inversion_step(par: dict[str, np.ndarray]) -> np.ndarray:
    """Return the increment h of beta_b for the second (common random numbers) refit."""
    # about one sampling SD of the moment ratio: sqrt(s_y / (J s_x)) in beta units
    J = par["c_resid"].shape[1]
    n = par["c_resid"].shape[2]
    s_x = par["tau2_x"] + par["sigma2_x"] / n
    s_y = par["tau2"] + par["sigma2"] / n + par["beta_b"] ** 2 * par["tau2_x"]
    return np.sqrt(s_y / (J * s_x)) + 1e-8 * np.abs(par["beta_b"])


def inversion_roots(
    draws: np.ndarray, draws_up: np.ndarray, h: np.ndarray | float, beta_gen: np.ndarray | float,
    estimate: np.ndarray | float,
) -> np.ndarray:
    """Per simulated data set, the slope at which its refit would equal the observed estimate.

    With common random numbers the refit ``T_i(beta)`` of simulated data set i is known at the
    generating slope (``draws``) and at ``beta_gen + h`` (``draws_up``); the root of
    ``T_i(beta) = estimate`` on the secant through both points is returned. A non-increasing
    secant gives ``+inf`` if ``T_i`` stays below the estimate and ``-inf`` if above; where it
    equals the estimate (for example R's zero-variance fallback, ``T_i = 0`` at every slope)
    every slope reproduces it, and the root is ``+inf`` and ``-inf`` for alternate data sets,
    so that such replicates widen both ends of the interval.

    Parameters
    ----------
    draws, draws_up : ndarray (..., B)
    h, beta_gen, estimate : float or ndarray (...)

    Returns
    -------
    ndarray (..., B)
    """
    h = np.asarray(h, float)[..., None]
    beta_gen = np.asarray(beta_gen, float)[..., None]
    est = np.asarray(estimate, float)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (draws_up - draws) / h
        root = beta_gen + (est - draws) / slope
    bad = ~(slope > 0) | ~np.isfinite(root)
    alternate = np.where(np.arange(draws.shape[-1]) % 2 == 0, np.inf, -np.inf)
    side = np.where(draws < est, np.inf, np.where(draws > est, -np.inf, alternate))
    root = np.where(bad, side, root)
    return np.where(np.isfinite(draws) & np.isfinite(draws_up), root, np.nan)


def inversion_interval(
    roots: np.ndarray, conf_level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Central ``conf_level`` range of inversion roots along the last axis (linear quantiles).

    Infinite roots are kept (an infinite bound means the data do not bound beta_b). To pool
    several balanced subsets of one data set, concatenate their roots.

    The set of slopes not rejected by the bootstrap test at level ``1 - conf_level``. NaN
    roots (failed refits) are ignored.

    Parameters
    ----------
    roots : ndarray (..., B)
        From :func:`inversion_roots` or ``BootstrapResult.roots``.
    conf_level : float

    Returns
    -------
    lower, upper : ndarray (...)
    """
    alpha = 1.0 - conf_level
    roots = np.asarray(roots, float)
    probs = [alpha / 2.0, 1.0 - alpha / 2.0]
    # +-inf stand in as +-big (NaN stays NaN) with two values of big: a quantile that gives an
    # infinite root any weight in its linear interpolation changes with big and is infinite
    # (a fixed threshold let e.g. 0.25 * 1e300 through as a finite bound)
    big = 1e300
    with np.errstate(invalid="ignore", over="ignore"):
        q1 = np.nanquantile(np.clip(roots, -big, big), probs, axis=-1)
        q2 = np.nanquantile(np.clip(roots, -2.0 * big, 2.0 * big), probs, axis=-1)
    q = np.where(q2 > q1, np.inf, np.where(q2 < q1, -np.inf, q1))
    return q[0], q[1]


def bias_constant(draws: np.ndarray, est: np.ndarray) -> np.ndarray:
    """Return Efron's z0 = Phi^-1(P(draw < estimate)) (mid-ranks for ties; kept finite)."""
    finite = np.isfinite(draws)
    m = finite.sum(axis=-1)
    e = est[..., None]
    below = np.sum(finite & (draws < e), axis=-1) + 0.5 * np.sum(finite & (draws == e), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = below / m
    # keep z0 finite: at most one draw's worth from 0 and 1
    p = np.clip(p, 0.5 / np.maximum(m, 1), 1.0 - 0.5 / np.maximum(m, 1))
    return ndtri(p)


def _nanquantile(draws: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Quantile ``p[...]`` of ``draws[..., :]`` (one probability per row)."""
    p = np.broadcast_to(np.asarray(p, float), draws.shape[:-1])
    flat = draws.reshape(-1, draws.shape[-1])
    out = np.array([np.nanquantile(row, pi) if np.isfinite(pi) and np.isfinite(row).any()
                    else np.nan for row, pi in zip(flat, p.reshape(-1), strict=True)])
    return out.reshape(draws.shape[:-1])


def unbounded_reason(lower: float, upper: float, roots: np.ndarray | None,
                     conf_level: float) -> str | None:
    """Return a one-line reason when a bootstrap interval is unbounded (``None`` if bounded).

    An infinite bound of the test-inversion interval means that in more than
    ``(1 - conf_level) / 2`` of the simulated data sets the refitted estimate did not increase
    with the generating slope (or never reached the observed estimate): the data carry too
    little between-group information to bound beta_b on that side.
    """
    if np.isfinite(lower) and np.isfinite(upper):
        return None
    side = ("both sides" if not (np.isfinite(lower) or np.isfinite(upper))
            else ("above" if np.isfinite(lower) else "below"))
    share = ""
    if roots is not None:
        r = np.asarray(roots, float)
        r = r[~np.isnan(r)]
        if r.size:
            share = f"{100 * np.mean(np.isinf(r)):.0f} % of the bootstrap refits "
    tail_pct = 100 * (1 - conf_level) / 2
    return (
        f"unbounded {side}: {share or 'too many bootstrap refits '}(more than the {tail_pct:g} % "
        "tail) do not respond to beta_b, so these data carry too little between-group "
        "information to bound it (few or small groups, low ICC of x)"
    )
