r"""Log density of the latent covariate model from per-data-set summary numbers (JAX).

The model and its priors are those of :func:`mlob_pp.models.latent_covariate.build_model`
(shared covariate form, one split predictor X, ``k`` plain level-1 covariates, no level-2
covariates), written for *balanced* data sets (J groups of n).  With equal group sizes every
per-group term of that model is a linear function of the group means, so the sum over groups
collapses to the between-group cross-products of the group means: one evaluation needs only

* ``within`` (q x q): pooled within-group cross-products of the standardised (y, x, C),
* ``between`` (q x q): cross-products of the group means around their mean,
* ``mbar`` (q,): mean of the group means (0 up to rounding after standardisation),
* ``J`` and ``n``,

with ``q = 2 + k``, so its cost does not depend on J or n.

The parameter vector is PyMC's unconstrained one, in this order::

    alpha_z, mu_z, beta_b_z, beta_w_z, gamma_z[0..k-1],
    log tau_z, log sigma_z, log tau_x_z, log sigma_x_z

and the log density (priors and log-Jacobians of the log transforms included) equals
``model.compile_logp(jacobian=True)`` of the PyMC model at the same point, tested to 1e-8 in
differences between points; the two differ by one additive constant of about 1e-7, PyMC's
rounding of ``log(sqrt(2 pi))`` in its prior densities (ours equals SciPy's densities).

Priors (standardised scale, as in the PyMC model): ``alpha_z, mu_z ~ Normal(0, 2.5)``;
``beta_b_z, beta_w_z, gamma_z ~ Normal(0, slope_sd)`` (``slope_sd`` 5 by default, as in
:func:`mlob_pp.fit_mcmc`; the simulation study's MCMC arm uses 2.5, see
:data:`mlob_pp.comparisons.study.arms.MCMC_DEFAULTS`); ``tau_z, sigma_z, tau_x_z, sigma_x_z ~
HalfNormal(1)``.

JAX is imported lazily by :func:`import_jax`; this module can be imported without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlob_pp.models.latent_covariate import SLOPE_SD
from mlob_pp.optional import require

__all__ = [
    "PRIORS",
    "SLOPE_SD",
    "priors",
    "import_jax",
    "batch_statistics",
    "parameter_names",
    "n_parameters",
    "make_logdensity",
    "logdensity_numpy",
]



def priors(slope_sd: float = SLOPE_SD) -> dict[str, str]:
    """Priors of the sampled model (standardised scale), as stored in result attrs."""
    slope = f"Normal(0, {slope_sd:g})"
    return {
        "alpha_z": "Normal(0, 2.5)",
        "mu_z": "Normal(0, 2.5)",
        "beta_b_z": slope,
        "beta_w_z": slope,
        "gamma_z": slope,
        "tau_z": "HalfNormal(1)",
        "sigma_z": "HalfNormal(1)",
        "tau_x_z": "HalfNormal(1)",
        "sigma_x_z": "HalfNormal(1)",
    }


#: Priors with the default slope SD.
PRIORS: dict[str, str] = priors()

_LOG2PI = float(np.log(2.0 * np.pi))
_LOG_HALFNORMAL_CONST = float(np.log(2.0) - 0.5 * np.log(2.0 * np.pi))
_LOG_NORMAL_CONST = -0.5 * _LOG2PI


def import_jax() -> Any:
    """Import JAX with 64-bit floats, or raise an ImportError naming the ``[mcmc]`` extra."""
    jax = require("jax", "mcmc", "mcmc_batch")
    jax.config.update("jax_enable_x64", True)
    return jax


def parameter_names(k: int) -> list[str]:
    """Names of the unconstrained parameters for ``k`` covariates."""
    return [
        "alpha_z", "mu_z", "beta_b_z", "beta_w_z", *[f"gamma_z[{i}]" for i in range(k)],
        "log_tau_z", "log_sigma_z", "log_tau_x_z", "log_sigma_x_z",
    ]


def n_parameters(k: int) -> int:
    """Length of the unconstrained parameter vector for ``k`` covariates."""
    return 8 + k


def batch_statistics(
    y: np.ndarray, x: np.ndarray, covariates: np.ndarray | None = None, *,
    standardize: bool = True,
) -> dict[str, np.ndarray]:
    """Summary numbers of balanced data sets shaped (B, J, n) [and (B, J, n, k)].

    Parameters
    ----------
    y, x : ndarray, shape (B, J, n)
        Outcome and predictor.
    covariates : ndarray, shape (B, J, n, k), optional
        Level-1 covariates.
    standardize : bool, default True
        Standardise every column by its grand mean and SD (ddof 0) per data set, as
        :func:`mlob_pp.models.latent_covariate.sufficient_statistics` does.  ``False`` keeps
        the data's scale (simulation-based calibration of the fixed-scale model).

    Returns
    -------
    dict
        ``within`` and ``between`` (B, q, q), ``mbar`` (B, q), ``center`` and ``scale``
        (B, q), ``J`` and ``n`` (float).
    """
    k = 0 if covariates is None else covariates.shape[-1]
    cols = [y[..., None], x[..., None]]
    if k:
        cols.append(covariates)
    z = np.concatenate(cols, axis=-1)  # (B, J, n, q)
    n_sets, n_groups, size = z.shape[:3]
    if standardize:
        center = z.mean(axis=(1, 2))
        scale = z.std(axis=(1, 2))
        scale = np.where(scale > 0, scale, 1.0)
        z = (z - center[:, None, None, :]) / scale[:, None, None, :]
    else:
        center = np.zeros((n_sets, z.shape[-1]))
        scale = np.ones((n_sets, z.shape[-1]))
    means = z.mean(axis=2)  # (B, J, q)
    dev = z - means[:, :, None, :]
    within = np.einsum("bjia,bjic->bac", dev, dev)
    mbar = means.mean(axis=1)
    mdev = means - mbar[:, None, :]
    between = np.einsum("bja,bjc->bac", mdev, mdev)
    return {
        "within": within, "between": between, "mbar": mbar, "center": center,
        "scale": scale, "J": float(n_groups), "n": float(size),
    }


def _logdensity(xp: Any, theta: Any, within: Any, between: Any, mbar: Any, J: Any, n: Any,
                k: int, slope_sd: float = SLOPE_SD) -> Any:
    """Log density at one unconstrained point (``xp`` is numpy or jax.numpy)."""
    alpha, mu, beta_b, beta_w = theta[0], theta[1], theta[2], theta[3]
    gamma = theta[4 : 4 + k]
    u_tau, u_sigma, u_tau_x, u_sigma_x = theta[4 + k], theta[5 + k], theta[6 + k], theta[7 + k]
    tau2, s2 = xp.exp(2.0 * u_tau), xp.exp(2.0 * u_sigma)
    t2x, s2x = xp.exp(2.0 * u_tau_x), xp.exp(2.0 * u_sigma_x)
    # priors (+ log-Jacobians of the log transforms)
    lp = (
        4 * _LOG_NORMAL_CONST
        - 2 * np.log(2.5) - 0.5 * (alpha**2 + mu**2) / 2.5**2
        - (2 + k) * np.log(slope_sd)
        - 0.5 * (beta_b**2 + beta_w**2 + sum(gamma[i] ** 2 for i in range(k))) / slope_sd**2
        + k * _LOG_NORMAL_CONST
        + 4 * _LOG_HALFNORMAL_CONST
        - 0.5 * (tau2 + s2 + t2x + s2x)
        + (u_tau + u_sigma + u_tau_x + u_sigma_x)
    )
    n_obs = J * n
    c = beta_b - beta_w
    s = t2x + s2x / n
    # predictors: within part and group means
    sum_d2 = between[1, 1] + J * (mbar[1] - mu) ** 2
    ll_v = (
        -0.5 * (n_obs - J) * (_LOG2PI + 2.0 * u_sigma_x)
        - 0.5 * within[1, 1] / s2x
        - 0.5 * J * (_LOG2PI + xp.log(s) + xp.log(n))
        - 0.5 * sum_d2 / s
    )
    gain = t2x / s
    t = tau2 + c**2 * (t2x - t2x * gain)
    # outcome given the predictors: within residual SS b' W b, b = (1, -beta_w, -gamma), and
    # the group mean residuals rbar_j = a' m_j + const, a = (1, -beta_w - c gain, -gamma);
    # quadratic forms unrolled (q is 2 + k, tiny), which vectorises far better than matmuls
    b_vec = [1.0, -beta_w, *[-gamma[i] for i in range(k)]]
    a_vec = [1.0, -beta_w - c * gain, *[-gamma[i] for i in range(k)]]
    const = -alpha - c * mu + c * gain * mu
    ssw = _quadratic(b_vec, within)
    a_mbar = sum(a_vec[i] * mbar[i] for i in range(len(a_vec)))
    sum_r2 = _quadratic(a_vec, between) + J * (a_mbar + const) ** 2
    v = s2 + n * t
    ll_y = (
        -0.5 * n_obs * _LOG2PI
        - 0.5 * (n_obs - J) * 2.0 * u_sigma
        - 0.5 * ssw / s2
        - 0.5 * J * xp.log(v)
        - 0.5 * n * sum_r2 / v
    )
    return lp + ll_v + ll_y


def _quadratic(vec: list[Any], mat: Any) -> Any:
    """``vec' mat vec`` for a symmetric ``mat``, unrolled."""
    q = len(vec)
    out = sum(vec[i] ** 2 * mat[i, i] for i in range(q))
    for i in range(q):
        for j in range(i):
            out = out + 2.0 * vec[i] * vec[j] * mat[i, j]
    return out


def logdensity_numpy(theta: np.ndarray, stats: dict[str, Any], index: int,
                     slope_sd: float = SLOPE_SD) -> float:
    """Log density of data set ``index`` of `stats` at `theta` (NumPy, for checks)."""
    theta = np.asarray(theta, dtype=float)
    k = theta.shape[0] - 8
    return float(_logdensity(np, theta, stats["within"][index], stats["between"][index],
                             stats["mbar"][index], stats["J"], stats["n"], k, slope_sd))


def make_logdensity(k: int, slope_sd: float = SLOPE_SD) -> Any:
    """JAX log density ``f(theta, within, between, mbar, J, n)`` for ``k`` covariates.

    `slope_sd` is the prior SD of the slopes ``beta_b_z``, ``beta_w_z``, ``gamma_z``.
    """
    jax = import_jax()
    jnp = jax.numpy

    def logdensity(theta, within, between, mbar, J, n):
        return _logdensity(jnp, theta, within, between, mbar, J, n, k, slope_sd)

    return logdensity
