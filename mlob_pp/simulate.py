r"""The one data generator of the two-level latent covariate model.

.. math::

    X_{ij} = \mu_j + e_{ij}, \quad \mu_j \sim N(\mu_x, \tau^2_x), \quad
    e_{ij} \sim N(0, \sigma^2_x)

    C_{ij} = \phi_w e_{ij} + \phi_b (\mu_j - \mu_x) + s_c z_{ij}, \quad z_{ij} \sim N(0, 1)

    Y_{ij} = \alpha + \beta_w e_{ij} + \beta_b \mu_j + C_{ij}'\gamma + \delta_j + \varepsilon_{ij},
    \quad \delta_j \sim N(0, \tau^2), \quad \varepsilon_{ij} \sim N(0, \sigma^2)

(Lüdtke et al. 2008). The covariates C are either drawn from this model (independent per
covariate) or given as fixed residuals around the observed group means of X
(``c_resid``: :math:`C_{ij} = \phi_w (X_{ij} - \bar X_j) + \phi_b (\bar X_j - \bar X) +
r_{ij}`), which is how the parametric bootstrap holds the covariates' own structure fixed.

Random draws, in this order: ``mu`` (..., J), ``delta`` (..., J), then one standard-normal
array (2 + k_drawn, ..., J, n) holding ``e``, the drawn covariate noises and ``eps``. The
simulation study (:mod:`mlob_pp.comparisons.study.design`), the bootstrap
(:mod:`mlob_pp.closed_form.bootstrap`) and the model tests all draw through
:func:`simulate_arrays`.

References
----------
Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B. (2008).
The multilevel latent covariate model. *Psychological Methods*, 13(3), 203-229.
https://doi.org/10.1037/a0012869
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["simulate_arrays", "simulate_frame"]


def _col(value: Any, batch_ndim: int) -> np.ndarray:
    """Reshape a parameter over the leading batch axes to broadcast against (*shape, J)."""
    v = np.asarray(value, dtype=float)
    if v.ndim == 0:
        return v
    return v.reshape(v.shape + (1,) * (batch_ndim + 1 - v.ndim))


def simulate_arrays(
    shape: tuple[int, ...],
    J: int,
    n: int,
    rng: np.random.Generator,
    *,
    beta_b: Any,
    beta_w: Any,
    alpha: Any = 0.0,
    mu_x: Any = 0.0,
    tau2_x: Any = 1.0,
    sigma2_x: Any = 1.0,
    tau2: Any = 0.1,
    sigma2: Any = 1.0,
    gamma: Any = (),
    phi_w: Any = None,
    phi_b: Any = None,
    s_c: Any = 1.0,
    c_resid: np.ndarray | None = None,
):
    """Draw data sets of the latent covariate model as arrays.

    Parameters
    ----------
    shape : tuple of int
        Batch shape, e.g. ``(B,)`` or ``(R, B)``. Parameters may be scalars or arrays shaped
        like the leading batch axes (``(R,)`` for ``shape=(R, B)``; covariate parameters
        ``(R, k)``).
    J, n : int
        Number of groups and group size (balanced).
    rng : numpy.random.Generator
        Source of randomness (see the module docstring for the order of draws).
    beta_b, beta_w, alpha, mu_x, tau2_x, sigma2_x, tau2, sigma2 : float or array
        Parameters of the model.
    gamma : sequence of float or array (..., k)
        Covariate slopes; ``k = 0`` for no covariate.
    phi_w, phi_b : array (..., k), optional
        Within and between slopes of the covariates on X (default 0).
    s_c : float or array (..., k), default 1
        Residual SD of drawn covariates.
    c_resid : numpy.ndarray, optional
        Fixed covariate residuals shaped ``(leading, J, n, k)`` (``leading`` = all batch axes
        but the last); when given, no covariate noise is drawn and C is built around the
        observed group means of X.

    Returns
    -------
    y, x : numpy.ndarray, shape (*shape, J, n)
    covariates : numpy.ndarray, shape (*shape, J, n, k)
    mu : numpy.ndarray, shape (*shape, J)
        The latent group means of X.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> y, x, c, mu = simulate_arrays((4,), 10, 5, rng, beta_b=0.5, beta_w=0.2, gamma=[0.3],
    ...                               phi_w=[0.4], phi_b=[0.4])
    >>> y.shape, c.shape, mu.shape
    ((4, 10, 5), (4, 10, 5, 1), (4, 10))
    """
    shape = tuple(int(s) for s in shape)
    nb = len(shape)
    gamma = np.asarray(gamma, dtype=float)
    k = gamma.shape[-1] if gamma.ndim else 0
    drawn = 0 if c_resid is not None else k

    def col(v):
        return _col(v, nb)

    u = rng.standard_normal((*shape, J))
    u *= np.sqrt(col(tau2_x))
    delta = rng.standard_normal((*shape, J))
    delta *= np.sqrt(col(tau2))
    z = rng.standard_normal((2 + drawn, *shape, J, n))
    e, eps = z[0], z[-1]
    e *= np.sqrt(col(sigma2_x))[..., None]
    mu = u + col(mu_x)
    x = e + mu[..., None]
    y = eps
    y *= np.sqrt(col(sigma2))[..., None]
    y += col(beta_w)[..., None] * e
    y += (col(alpha) + col(beta_b) * mu + delta)[..., None]
    C = np.empty((*shape, J, n, k))

    def cov_par(v, i):
        v = np.zeros(k) if v is None else np.asarray(v, dtype=float)
        v = np.broadcast_to(v, (*v.shape[:-1], k)) if v.ndim else np.full(k, float(v))
        return _col(v[..., i], nb + 1) if v.ndim > 1 else v[i]

    if c_resid is None:
        for i in range(k):
            ci = C[..., i]
            np.multiply(z[1 + i], cov_par(s_c, i), out=ci)
            ci += cov_par(phi_w, i) * e
            ci += cov_par(phi_b, i) * u[..., None]
            y += cov_par(gamma, i) * ci
    elif k:
        xbar_j = x.mean(axis=-1)
        xb = (xbar_j - xbar_j.mean(axis=-1, keepdims=True))[..., None]
        xw = x - xbar_j[..., None]
        resid = np.asarray(c_resid, dtype=float)
        resid = resid.reshape(resid.shape[:-3] + (1,) + resid.shape[-3:])
        for i in range(k):  # one covariate at a time: no (..., J, n, k) temporaries
            ci = C[..., i]
            np.multiply(xw, cov_par(phi_w, i), out=ci)
            ci += cov_par(phi_b, i) * xb
            ci += resid[..., i]
            y += cov_par(gamma, i) * ci
    return y, x, C, mu


def simulate_frame(y: np.ndarray, x: np.ndarray, covariates: np.ndarray, *,
                   names: tuple[str, str, str, str] = ("Y", "X", "C", "group"),
                   labels: Any = None, attrs: dict[str, Any] | None = None):
    """Long DataFrame of one data set shaped (J, n) / (J, n, k): outcome, X, covariates, group.

    Parameters
    ----------
    y, x : numpy.ndarray, shape (J, n)
    covariates : numpy.ndarray, shape (J, n, k)
    names : tuple of str
        Column names for outcome, X, covariate stem (``C`` or ``C1``, ``C2`` ...) and group.
    labels : sequence, optional
        Group labels (default 1..J).
    attrs : dict, optional
        Stored in ``DataFrame.attrs``.
    """
    import pandas as pd

    J, n = y.shape
    yname, xname, cname, gname = names
    cols: dict[str, Any] = {yname: y.ravel(), xname: x.ravel()}
    k = covariates.shape[-1]
    for i in range(k):
        cols[cname if k == 1 else f"{cname}{i + 1}"] = covariates[..., i].ravel()
    lab = np.arange(1, J + 1) if labels is None else np.asarray(labels)
    cols[gname] = np.repeat(lab, n)
    df = pd.DataFrame(cols)
    if attrs:
        df.attrs.update(attrs)
    return df
