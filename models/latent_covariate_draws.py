"""Posterior draws of the latent covariate model: data scale, group effects, pointwise loglik.

Post-processing of draws of :func:`mlob_pp.models.latent_covariate.build_model` (split from
that module; its names are re-exported there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from mlob_pp.models.latent_covariate import SufficientStatistics

__all__ = ["to_original_scale", "draw_group_effects", "pointwise_log_likelihood"]

_LOG2PI = float(np.log(2.0 * np.pi))


def _split_draws(post: dict[str, np.ndarray], stats: SufficientStatistics) -> dict[str, Any]:
    """Standardised-scale draws as arrays with a flat sample axis first."""
    p = stats.n_split

    def flat(name: str) -> np.ndarray:
        arr = np.asarray(post[name], dtype=float)
        return arr.reshape(-1, *arr.shape[2:])

    out = {
        "alpha": flat("alpha_z"),
        "mu": flat("mu_z"),
        "beta_b": flat("beta_b_z"),
        "beta_w": flat("beta_w_z"),
        "tau2": flat("tau_z") ** 2,
        "sigma2": flat("sigma_z") ** 2,
    }
    s = out["alpha"].shape[0]
    out["gamma"] = flat("gamma_z") if "gamma_z" in post else np.zeros((s, 0))
    out["gamma_l2"] = flat("gamma_l2_z") if "gamma_l2_z" in post else np.zeros((s, 0))
    if p == 1:
        out["sig_b"] = (flat("tau_x_z") ** 2)[:, None, None]
        out["sig_w"] = (flat("sigma_x_z") ** 2)[:, None, None]
    else:
        out["sig_b"] = _chol_to_cov(flat("chol_b"), p)
        out["sig_w"] = _chol_to_cov(flat("chol_w"), p)
    return out


def _chol_to_cov(packed: np.ndarray, p: int) -> np.ndarray:
    """Covariance matrices from PyMC's packed lower-triangular Cholesky factors."""
    if packed.ndim == 3:  # already (S, p, p)
        chol = packed
    else:
        chol = np.zeros((packed.shape[0], p, p))
        rows, cols = np.tril_indices(p)
        chol[:, rows, cols] = packed
    return chol @ np.swapaxes(chol, 1, 2)


def to_original_scale(
    post: dict[str, np.ndarray], stats: SufficientStatistics
) -> dict[str, np.ndarray]:
    """Map standardised-scale draws to the parameters of the model on the data's scale.

    Parameters
    ----------
    post : dict of str to ndarray
        Draws of the free variables of :func:`build_model`, shape ``(chain, draw, ...)``.
    stats : SufficientStatistics
        The statistics the model was fitted to.

    Returns
    -------
    dict of str to ndarray
        Flat draws (sample axis first) of ``alpha, beta_b, beta_w, beta_c, mu_x, tau2_x,
        sigma2_x, icc_x, tau2, sigma2`` and ``gamma`` (shared) or ``gamma_b, gamma_w,
        mu_c, tau2_c, sigma2_c`` (level-specific; last axis ``term``), and ``gamma_l2``
        (last axis ``l2_term``) with level-2 covariates.
    """
    z = _split_draws(post, stats)
    p = stats.n_split
    sy = stats.scale[0]
    my = stats.center[0]
    sv = stats.scale[1 : 1 + p]
    mv = stats.center[1 : 1 + p]
    sc = stats.scale[1 + p :]
    mc = stats.center[1 + p :]
    beta_b = z["beta_b"] * sy / sv
    beta_w = z["beta_w"] * sy / sv
    gamma = z["gamma"] * sy / sc if sc.size else z["gamma"]
    alpha = my + sy * z["alpha"] - beta_b @ mv - gamma @ mc
    if stats.n_l2:
        gamma_l2 = z["gamma_l2"] * sy / stats.w_scale
        alpha = alpha - gamma_l2 @ stats.w_center
    mu = mv + sv * z["mu"]
    outer = sv[:, None] * sv[None, :]
    sig_b = z["sig_b"] * outer
    sig_w = z["sig_w"] * outer
    tau2_v = np.diagonal(sig_b, axis1=1, axis2=2)
    sigma2_v = np.diagonal(sig_w, axis1=1, axis2=2)
    out = {
        "alpha": alpha,
        "beta_b": beta_b[:, 0],
        "beta_w": beta_w[:, 0],
        "beta_c": beta_b[:, 0] - beta_w[:, 0],
        "mu_x": mu[:, 0],
        "tau2_x": tau2_v[:, 0],
        "sigma2_x": sigma2_v[:, 0],
        "icc_x": tau2_v[:, 0] / (tau2_v[:, 0] + sigma2_v[:, 0]),
        "tau2": z["tau2"] * sy**2,
        "sigma2": z["sigma2"] * sy**2,
    }
    if stats.covariates == "shared":
        out["gamma"] = gamma
    else:
        out["gamma_b"] = beta_b[:, 1:]
        out["gamma_w"] = beta_w[:, 1:]
        out["mu_c"] = mu[:, 1:]
        out["tau2_c"] = tau2_v[:, 1:]
        out["sigma2_c"] = sigma2_v[:, 1:]
    if stats.n_l2:
        out["gamma_l2"] = gamma_l2
    return out


def draw_group_effects(
    post: dict[str, np.ndarray], stats: SufficientStatistics, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    r"""Draw the group effects from their exact conditional posterior, one per posterior draw.

    Given the parameters, :math:`g_j = (\mu_{Vj}, \delta_j)` is Gaussian with prior
    :math:`\mu_{Vj} \sim N(m_j, P_j)` (posterior from the predictors, see the module
    docstring), :math:`\delta_j \sim N(0, \tau^2)`, and one Gaussian observation of the
    group's mean outcome residual
    :math:`\bar r_j = c'\mu_{Vj} + \delta_j + \bar\varepsilon_j`,
    :math:`\bar\varepsilon_j \sim N(0, \sigma^2/n_j)` (the within-group residuals do not
    involve :math:`g_j`).  A rank-one Gaussian update gives the conditional posterior.

    Parameters
    ----------
    post : dict of str to ndarray
        Draws of the free variables of :func:`build_model`, shape ``(chain, draw, ...)``.
    stats : SufficientStatistics
        The statistics the model was fitted to.
    rng : numpy.random.Generator
        Random generator.

    Returns
    -------
    dict of str to ndarray
        ``mu_xj`` (S, J), ``delta`` (S, J) and, in the level-specific form, ``mu_cj``
        (S, J, k), on the data's scale, with S the number of draws.
    """
    z = _split_draws(post, stats)
    p = stats.n_split
    n = stats.n
    sig_b, sig_w = z["sig_b"], z["sig_w"]
    s_draws = sig_b.shape[0]
    # m_j, P_j from the predictors: S_j = Sigma_b + Sigma_w / n_j
    s_mat = sig_b[:, None] + sig_w[:, None] / n[None, :, None, None]  # (S, J, p, p)
    d = stats.vbar[None] - z["mu"][:, None, :]  # (S, J, p)
    k_gain = np.einsum("sab,sjbc->sjac", sig_b, np.linalg.inv(s_mat))  # Sigma_b S_j^-1
    m = z["mu"][:, None, :] + np.einsum("sjab,sjb->sja", k_gain, d)
    pcov = sig_b[:, None] - np.einsum("sjab,sbc->sjac", k_gain, sig_b)
    pcov = 0.5 * (pcov + np.swapaxes(pcov, -1, -2))
    # prior of g = (mu_V, delta): mean (m, 0), covariance blockdiag(P, tau2)
    dim = p + 1
    mean0 = np.concatenate([m, np.zeros((s_draws, stats.n_groups, 1))], axis=-1)
    cov0 = np.zeros((s_draws, stats.n_groups, dim, dim))
    cov0[..., :p, :p] = pcov
    cov0[..., p, p] = z["tau2"][:, None]
    c = z["beta_b"] - z["beta_w"]
    h = np.concatenate([c, np.ones((s_draws, 1))], axis=-1)  # (S, dim)
    rbar = stats.ybar[None] - z["alpha"][:, None] - np.einsum("jp,sp->sj", stats.vbar,
                                                              z["beta_w"])
    if stats.cbar.shape[1]:
        rbar = rbar - np.einsum("jk,sk->sj", stats.cbar, z["gamma"])
    if stats.n_l2:
        rbar = rbar - np.einsum("jk,sk->sj", stats.wbar, z["gamma_l2"])
    ph = np.einsum("sjab,sb->sja", cov0, h)  # (S, J, dim)
    q = np.einsum("sja,sa->sj", ph, h) + z["sigma2"][:, None] / n[None, :]
    innov = rbar - np.einsum("sja,sa->sj", mean0, h)
    mean1 = mean0 + ph * (innov / q)[..., None]
    cov1 = cov0 - np.einsum("sja,sjb->sjab", ph, ph) / q[..., None, None]
    cov1 = 0.5 * (cov1 + np.swapaxes(cov1, -1, -2)) + 1e-12 * np.eye(dim)
    chol = np.linalg.cholesky(cov1)
    g = mean1 + np.einsum("sjab,sjb->sja", chol, rng.standard_normal(mean1.shape))
    sv = stats.scale[1 : 1 + p]
    mv = stats.center[1 : 1 + p]
    mu_v = mv + sv * g[..., :p]
    out = {"mu_xj": mu_v[..., 0], "delta": g[..., p] * stats.scale[0]}
    if stats.covariates == "level_specific":
        out["mu_cj"] = mu_v[..., 1:]
    return out


def pointwise_log_likelihood(
    y: np.ndarray,
    x: np.ndarray,
    covariates: np.ndarray,
    group_codes: np.ndarray,
    params: dict[str, np.ndarray],
    effects: dict[str, np.ndarray],
    form: str,
    group_covariates: np.ndarray | None = None,
) -> np.ndarray:
    r"""Log density of every outcome given the parameters *and the drawn group effects*.

    ``log N(y_ij | alpha + beta_b mu_Xj + beta_w (x_ij - mu_Xj) + C_ij' gamma + delta_j,
    sigma2)`` (level-specific form: ``gamma_b' mu_Cj + gamma_w' (C_ij - mu_Cj)`` instead of
    ``C_ij' gamma``), for each draw: the conditional (given the group effects) pointwise
    log-likelihood of the outcome, as used for PSIS-LOO of a multilevel model when leaving out
    single students.  With `group_covariates` (shape (J, k_l2), data's scale) the mean also
    has ``W_j' gamma_l2``.

    Returns
    -------
    ndarray, shape (S, N)
    """
    n_draws = params["alpha"].shape[0]
    out = np.empty((n_draws, y.shape[0]))
    step = max(1, 2_000_000 // max(1, y.shape[0] * max(1, covariates.shape[1])))
    for start in range(0, n_draws, step):
        sl = slice(start, start + step)
        mu_xj = effects["mu_xj"][sl][:, group_codes]
        mean = (
            params["alpha"][sl, None]
            + params["beta_b"][sl, None] * mu_xj
            + params["beta_w"][sl, None] * (x[None, :] - mu_xj)
            + effects["delta"][sl][:, group_codes]
        )
        if covariates.shape[1]:
            if form == "shared":
                mean += params["gamma"][sl] @ covariates.T
            else:
                mu_cj = effects["mu_cj"][sl][:, group_codes, :]  # (s, N, k)
                slope_c = params["gamma_b"][sl] - params["gamma_w"][sl]
                mean += np.einsum("snk,sk->sn", mu_cj, slope_c)
                mean += params["gamma_w"][sl] @ covariates.T
        if group_covariates is not None and group_covariates.shape[1]:
            mean += (params["gamma_l2"][sl] @ group_covariates.T)[:, group_codes]
        s2 = params["sigma2"][sl, None]
        out[sl] = -0.5 * (_LOG2PI + np.log(s2)) - 0.5 * (y[None, :] - mean) ** 2 / s2
    return out
