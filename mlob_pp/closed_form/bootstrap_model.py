r"""The bootstrap's generating model: the latent covariate model fitted by moments.

Generating model (the latent covariate model, Lüdtke et al. 2008, fitted to one balanced data
set of J groups of n members with moment (ANOVA) estimates)::

    X*_ij = mu_x + u_j + e_ij,                u_j ~ N(0, tau2_x),   e_ij ~ N(0, sigma2_x)
    C*_ij = c0 + Phi_b (xbar*_j - xbar*) + Phi_w (X*_ij - xbar*_j) + R_ij          (R fixed)
    Y*_ij = alpha + beta_b u_j + beta_w e_ij + C*_ij' gamma + delta_j + eps_ij,
                                              delta_j ~ N(0, tau2), eps_ij ~ N(0, sigma2)

The covariates are handled by conditioning: each observed covariate is regressed on the
observed group means of x (slope ``Phi_b``) and on the within-group deviations of x (slope
``Phi_w``); the residual matrix ``R`` is held fixed and the part of C explained by x is
regenerated from the simulated X*. The variance components are ANOVA estimates truncated to
admissible values (``tau2_x`` and ``tau2`` at least 5 % of the sampling variance of a group
mean, ``sigma2_x`` and ``sigma2`` positive). Draws go through
:func:`mlob_pp.simulate.simulate_arrays`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlob_pp.closed_form.core import BatchResult, mlob_batch
from mlob_pp.simulate import simulate_arrays
from mlob_pp.validate import check_choice

__all__ = [
    "CENTERS",
    "SCALARS",
    "TRUNCATABLE",
    "GeneratingModel",
    "bootstrap_arrays",
    "fit_generating_model",
    "fit_models",
    "simulate_bootstrap",
    "simulate_models",
]

#: slope used to generate the bootstrap data: the regularised estimate or the moment ratio
CENTERS: tuple[str, ...] = ("mlob", "ml")
#: scalar parameters of the generating model
SCALARS = ("mu_x", "tau2_x", "sigma2_x", "alpha", "beta_b", "beta_w", "tau2", "sigma2")
#: variance components that may be raised to their floor
TRUNCATABLE = ("tau2_x", "sigma2_x", "tau2", "sigma2")
_VAR_FLOOR = 0.05  # tau2_x, tau2 >= _VAR_FLOOR * (within variance / n)


@dataclass(frozen=True)
class GeneratingModel:
    """The fitted two-level model from which bootstrap data sets are drawn.

    Attributes
    ----------
    mu_x, tau2_x, sigma2_x : float
        Mean, between and within variance of x (ANOVA, truncated).
    alpha, beta_b, beta_w, tau2, sigma2 : float
        Intercept, slopes and residual variances of y (``beta_b`` is the generating slope).
    gamma : ndarray (k,)
        Covariate coefficients (the estimator's own estimate).
    phi_b, phi_w : ndarray (k,)
        Slopes of the covariates on the group means and within deviations of x.
    c_resid : ndarray (J, n, k)
        Fixed part of the covariates (intercept plus residual of the regression on x).
    truncated : dict
        Which variance components were raised to their floor.
    center : str
        ``"mlob"`` or ``"ml"``: which estimate ``beta_b`` is.
    """

    mu_x: float
    tau2_x: float
    sigma2_x: float
    alpha: float
    beta_b: float
    beta_w: float
    tau2: float
    sigma2: float
    gamma: np.ndarray
    phi_b: np.ndarray
    phi_w: np.ndarray
    c_resid: np.ndarray = field(repr=False)
    truncated: dict = field(default_factory=dict)
    center: str = "mlob"

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(J, n, k)`` of the simulated data sets."""
        return tuple(int(s) for s in self.c_resid.shape)  # type: ignore[return-value]

    @classmethod
    def from_parameters(cls, par: dict[str, np.ndarray], i: int, center: str) -> GeneratingModel:
        """Return the model of data set `i` of :func:`fit_models` output `par`."""
        return cls(
            **{name: float(par[name][i]) for name in SCALARS}, gamma=par["gamma"][i],
            phi_b=par["phi_b"][i], phi_w=par["phi_w"][i], c_resid=par["c_resid"][i],
            truncated={name: bool(par["truncated_" + name][i]) for name in TRUNCATABLE},
            center=center,
        )

    def as_parameters(self) -> dict[str, np.ndarray]:
        """Return the parameters as a one-model batch (input of :func:`simulate_models`)."""
        par = {name: np.array([getattr(self, name)]) for name in SCALARS}
        par.update(gamma=self.gamma[None], phi_b=self.phi_b[None], phi_w=self.phi_w[None],
                   c_resid=self.c_resid[None])
        return par

    def to_dict(self) -> dict[str, float]:
        """Scalar parameters with the package's labels (``gamma_<i>`` for covariates)."""
        out = {name: float(getattr(self, name)) for name in
               ("alpha", "beta_b", "beta_w", "mu_x", "tau2_x", "sigma2_x", "tau2", "sigma2")}
        for i, g in enumerate(np.atleast_1d(self.gamma)):
            out[f"gamma_{i}"] = float(g)
        return out


def bootstrap_arrays(y, x, covariates):
    """Check one balanced data set (J, n[, k]); return float arrays (y, x, C)."""
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or y.shape != x.shape:
        raise ValueError(
            f"`x` and `y` must be arrays of the same shape (J, n) (one balanced data set); "
            f"got x {x.shape} and y {y.shape}"
        )
    J, n = x.shape
    if J < 2 or n < 2:
        raise ValueError(f"need at least 2 groups of at least 2 members; got (J, n) = {(J, n)}")
    if covariates is None:
        C = np.empty((J, n, 0))
    else:
        C = np.asarray(covariates, dtype=float)
        if C.ndim == 2:
            C = C[..., None]
        if C.ndim != 3 or C.shape[:2] != (J, n):
            raise ValueError(
                f"`covariates` must have shape (J, n, k) matching x {x.shape}; got {C.shape}"
            )
    for name, arr in (("y", y), ("x", x), ("covariates", C)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"`{name}` contains non-finite values (NaN or inf)")
    return y, x, C


def fit_generating_model(
    y: np.ndarray,
    x: np.ndarray,
    covariates: np.ndarray | None = None,
    *,
    center: str = "mlob",
    mode: str = "r",
) -> GeneratingModel:
    """Fit the bootstrap's generating model to one balanced data set by moments.

    Parameters
    ----------
    y, x : array_like, shape (J, n)
        Outcome and target regressor of one balanced data set.
    covariates : array_like, shape (J, n, k), optional
        Level-1 covariates.
    center : {"mlob", "ml"}
        Generating ``beta_b``: the regularised estimate or the moment ratio ``tau_yx / tau_x``
        (with ``tau_x`` truncated).
    mode : {"r", "stable"}
        Estimator mode used for the regularised estimate and gamma.

    Returns
    -------
    GeneratingModel
    """
    center = check_choice(center, "center", CENTERS)
    mode = check_choice(mode, "mode", ("r", "stable"))
    y, x, C = bootstrap_arrays(y, x, covariates)
    fit = mlob_batch(y[None], x[None], C[None] if C.shape[-1] else None, mode=mode, warn=False)
    par = fit_models(y[None], x[None], C[None], fit, center)
    return GeneratingModel.from_parameters(par, 0, center)


def fit_models(y, x, C, fit: BatchResult, center: str) -> dict[str, np.ndarray]:
    """Moment fit of the generating model to R data sets (R, J, n[, k]) at once.

    `fit` is :func:`~mlob_pp.closed_form.core.mlob_batch` of the same data sets. Returns a dict
    of arrays with leading dimension R (the :data:`SCALARS`, ``gamma``, ``phi_b``, ``phi_w``,
    ``c_resid`` and ``truncated_<name>`` flags).
    """
    R, J, n, k = C.shape
    it = fit.internals
    tau_x, sigma_x = it["tau_x"], it["sigma_x"]
    tau_yx, sigma_yx = it["tau_yx"], it["sigma_yx"]
    tau_y, sigma_y = it["tau_y"], it["sigma_y"]
    gamma = np.nan_to_num(fit.gamma, nan=0.0)
    out: dict[str, np.ndarray] = {}
    out["truncated_sigma2_x"] = ~(sigma_x > 0)
    sigma2_x = np.where(sigma_x > 0, sigma_x, 1e-12)
    floor_x = _VAR_FLOOR * sigma2_x / n
    out["truncated_tau2_x"] = ~(tau_x >= floor_x)
    tau2_x = np.maximum(np.nan_to_num(tau_x, nan=0.0), floor_x)
    beta_w = sigma_yx / sigma2_x
    sigma2 = sigma_y - beta_w * sigma_yx
    floor_e = 1e-6 * np.maximum(sigma_y, 1e-12)
    out["truncated_sigma2"] = ~(sigma2 >= floor_e)
    sigma2 = np.maximum(sigma2, floor_e)
    ratio = tau_yx / tau2_x
    beta_b = np.where(np.isfinite(fit.beta_b), fit.beta_b, ratio) if center == "mlob" else ratio
    # between residual variance of y given beta_b (moment form), truncated
    tau2 = tau_y - 2.0 * beta_b * tau_yx + beta_b * beta_b * tau_x
    floor_y = _VAR_FLOOR * sigma2 / n
    out["truncated_tau2"] = ~(tau2 >= floor_y)
    tau2 = np.maximum(np.nan_to_num(tau2, nan=0.0), floor_y)
    mu_x = x.mean(axis=(1, 2))
    y_adj = y - np.einsum("rjnk,rk->rjn", C, gamma) if k else y
    alpha = y_adj.mean(axis=(1, 2)) - beta_b * mu_x
    # covariates: C = c0 + Phi_b (xbar_j - xbar) + Phi_w (x - xbar_j) + R, R held fixed
    xbar_j = x.mean(axis=2)
    xb = xbar_j - xbar_j.mean(axis=1, keepdims=True)
    xw = x - xbar_j[:, :, None]
    if k:
        cbar_j = C.mean(axis=2)  # (R, J, k)
        sxx_b = np.einsum("rj,rj->r", xb, xb)[:, None]
        sxx_w = np.einsum("rjn,rjn->r", xw, xw)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            phi_b = np.einsum("rj,rjk->rk", xb, cbar_j - cbar_j.mean(axis=1, keepdims=True))
            phi_b = np.where(sxx_b > 0, phi_b / sxx_b, 0.0)
            phi_w = np.einsum("rjn,rjnk->rk", xw, C - cbar_j[:, :, None, :])
            phi_w = np.where(sxx_w > 0, phi_w / sxx_w, 0.0)
        c_resid = C - xb[:, :, None, None] * phi_b[:, None, None, :] \
            - xw[..., None] * phi_w[:, None, None, :]
    else:
        phi_b = phi_w = np.zeros((R, 0))
        c_resid = C
    out.update(mu_x=mu_x, tau2_x=tau2_x, sigma2_x=sigma2_x, alpha=alpha, beta_b=beta_b,
               beta_w=beta_w, tau2=tau2, sigma2=sigma2, gamma=gamma, phi_b=phi_b, phi_w=phi_w,
               c_resid=c_resid)
    return out


def simulate_bootstrap(
    model: GeneratingModel, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw `size` data sets from a fitted generating model.

    Parameters
    ----------
    model : GeneratingModel
    size : int
        Number of data sets.
    rng : numpy.random.Generator
        Draws, in this order, ``u`` (size, J), ``delta`` (size, J), then ``e`` and ``eps``
        as one standard-normal array (2, size, J, n).

    Returns
    -------
    y, x : ndarray (size, J, n)
    covariates : ndarray (size, J, n, k)
    """
    y, x, C, _ = simulate_models(model.as_parameters(), size, rng)
    return y[0], x[0], C[0]


def simulate_models(par: dict[str, np.ndarray], size: int, rng: np.random.Generator):
    """``size`` data sets from each of R generating models: arrays (R, size, J, n[, k]).

    Returns ``y, x, covariates, mu`` (``mu``: the latent group means of x, (R, size, J)).
    """
    R, J, n, _ = par["c_resid"].shape
    names = ("alpha", "beta_b", "beta_w", "mu_x", "tau2_x", "sigma2_x", "tau2", "sigma2", "gamma",
             "phi_w", "phi_b")
    kw = {key: par[key] for key in names}
    return simulate_arrays((R, size), J, n, rng, c_resid=par["c_resid"], **kw)
