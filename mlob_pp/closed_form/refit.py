"""The bootstrap's refit: regularised estimates of many data sets, without SEs or warnings."""

from __future__ import annotations

import numpy as np

from mlob_pp.closed_form.moments import moment_fit, select_grid

__all__ = ["refit"]


def refit(
    y: np.ndarray, x: np.ndarray, covariates: np.ndarray | None = None, *, mode: str = "r"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Regularised estimates of B data sets, without SEs: the bootstrap's refit.

    Runs the same steps as :func:`mlob_pp.closed_form.core.mlob_batch`
    (:func:`~mlob_pp.closed_form.moments.moment_fit` and
    :func:`~mlob_pp.closed_form.moments.select_grid`) but skips input validation, the SEs, the
    warnings, R's bit emulation for J = 3, 5 and the pole diagnostics. Degenerate data sets
    give R's fallback 0 (``mode="r"``) or NaN (``mode="stable"``), exactly as the core.

    Parameters
    ----------
    y, x : ndarray (B, J, n)
    covariates : ndarray (B, J, n, k), optional
    mode : {"r", "stable"}

    Returns
    -------
    beta_b, beta_b_ml : ndarray (B,)
        Regularised estimate and moment ratio.
    gamma : ndarray (B, k)
    """
    stable = mode == "stable"
    B, J, n = x.shape
    C = np.empty((B, J, n, 0)) if covariates is None else covariates
    m = moment_fit(y, x, C, stable)
    _, _, valid, w_opt, tau02_opt = select_grid(m, m["beta_ml"], stable)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        beta_bay = m["tau_yx"] / ((1.0 - w_opt) * tau02_opt + w_opt * m["tau_x"])
    if stable:
        beta_bay = np.where(m["degenerate"] | ~valid, np.nan, beta_bay)
    else:
        beta_bay = np.where(m["degenerate"], 0.0, beta_bay)
    gamma = np.where(m["singular"][:, None], np.nan, m["gamma"])
    return beta_bay, m["beta_ml"], gamma
