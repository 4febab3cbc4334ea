r"""PyMC model of the two-level latent covariate model, with the group effects integrated out.

The model (MLOB talk, eqs. 5-6; Lüdtke et al. 2008), for student :math:`i` in school :math:`j`:

.. math::

    X_{ij} &= \mu_{Xj} + e_{ij},\qquad \mu_{Xj} = \mu_x + u_j,\qquad
        u_j \sim N(0, \tau^2_x),\ e_{ij} \sim N(0, \sigma^2_x) \\
    Y_{ij} &= \alpha + \beta_b \mu_{Xj} + \beta_w (X_{ij} - \mu_{Xj}) + C_{ij}'\gamma
        + \delta_j + \varepsilon_{ij},\qquad
        \delta_j \sim N(0, \tau^2),\ \varepsilon_{ij} \sim N(0, \sigma^2)

with the contextual effect :math:`\beta_c = \beta_b - \beta_w` and
:math:`\mathrm{ICC}_x = \tau^2_x / (\tau^2_x + \sigma^2_x)`.  Optional group-level (level-2)
covariates :math:`W_j` shift the random intercept,
:math:`\beta_{0j} = \alpha + \beta_b \mu_{Xj} + W_j'\gamma_{l2} + \delta_j`; they are
exogenous (not modelled) and enter wherever :math:`\alpha` enters for group :math:`j`.

Two forms of the (level-1) covariates:

``"shared"`` (default; MLOB talk eqs. 5-6)
    One slope :math:`\gamma` per covariate at both levels; covariates are exogenous (not
    modelled), only X is split into a latent group mean and a within part.
``"level_specific"`` (two-level SEM, as lavaan and Mplus fit it)
    Every predictor :math:`V = (X, C_1, \dots, C_k)` splits into a latent group mean
    :math:`\mu_{Vj} \sim N_p(\mu, \Sigma_b)` and a within part
    :math:`V_{ij} - \mu_{Vj} \sim N_p(0, \Sigma_w)` (unrestricted covariances), and
    :math:`Y_{ij} = \alpha + (\beta_b, \gamma_b')\mu_{Vj} + (\beta_w, \gamma_w')(V_{ij} -
    \mu_{Vj}) + \delta_j + \varepsilon_{ij}`.

**Exact marginalisation.** Given the parameters, each group's data are jointly Gaussian, so
both group effects (the latent means :math:`\mu_{Vj}` and :math:`\delta_j`) are integrated out
analytically and the sampler only sees the ~10 structural parameters.  Write
:math:`p(V_j, Y_j) = p(V_j)\,p(Y_j \mid V_j)`:

* :math:`p(V_j)` is a random-intercept normal density that depends on the data through the
  group mean :math:`\bar V_j \sim N(\mu, \Sigma_b + \Sigma_w / n_j)` and the pooled
  within-group cross-products;
* given :math:`V_j`, :math:`\mu_{Vj} \sim N(m_j, P_j)` (its posterior from the predictors
  alone), so :math:`Y_j \mid V_j` is a random-intercept model with group mean
  :math:`\alpha + \beta_w' V_{ij} + c' m_j` (:math:`c = \beta_b - \beta_w`, and the plain
  covariate term :math:`C_{ij}'\gamma` in the shared form) and group variance
  :math:`T_j = \tau^2 + c' P_j c`.

The density therefore needs only sufficient statistics: group sizes and means
(``J x p``) and the pooled within-group cross-product matrix of :math:`(Y, V, C)`, so one
evaluation costs :math:`O(J p^3)` whatever the number of students, and unbalanced groups
enter exactly (nothing is deleted).  The group effects are afterwards drawn exactly from their
Gaussian conditional posterior :math:`p(\mu_{Vj}, \delta_j \mid \text{data}, \theta)` for every
posterior draw of :math:`\theta` (see :func:`draw_group_effects`), which gives draws from the
joint posterior.

**Standardised scale.** The model is written for data standardised by their grand means and
standard deviations (:func:`sufficient_statistics`), so the priors below are the same for every
data set (they are *scaled to the data* through the standardisation) and a compiled model can
be reused for new data of any size (:func:`build_model` keeps all data in ``pm.Data``
containers).  :func:`to_original_scale` maps the draws back.

**Priors** (on the standardised scale; rationale in brackets):

* ``alpha ~ Normal(0, 2.5)``, ``mu_x ~ Normal(0, 2.5)`` [centred data: intercepts and means are
  within a few SDs of 0];
* slopes ``beta_b, beta_w, gamma*, gamma_l2 ~ Normal(0, 5)`` (``gamma_l2``: level-2 covariates
  standardised by their mean and SD over the J groups) [weakly informative: a between slope can be
  several total-SD units when the ICC of X is small, since the latent group means vary by only
  :math:`\sqrt{\mathrm{ICC}_x}` total SDs]; ``build_model(..., slope_sd=2.5)`` gives
  ``Normal(0, 2.5)`` (the simulation study's MCMC arm: still a third of Y's variance explained
  through the group means at one prior SD when ICC_X = 0.05, and far cheaper to sample where
  ``beta_b`` is weakly identified);
* standard deviations ``tau, sigma, tau_x, sigma_x ~ HalfNormal(1)`` [each is at most about the
  total SD, which is 1, and a half-normal allows values near 0 without pushing them there];
* level-specific form: ``Sigma_b, Sigma_w ~ LKJCholeskyCov(eta=2, sd_dist=HalfNormal(1))``
  [mildly favours weaker correlations, same scale argument for the SDs].

References
----------
Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B. (2008).
The multilevel latent covariate model: A new, more reliable approach to group-level effects in
contextual studies. *Psychological Methods*, 13(3), 203-229. https://doi.org/10.1037/a0012869
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlob_pp.seeds import as_generator
from mlob_pp.simulate import simulate_arrays, simulate_frame

#: Default prior SD of the slopes, ``Normal(0, SLOPE_SD)`` on the standardised scale.
SLOPE_SD: float = 5.0

__all__ = [
    "COVARIATE_FORMS",
    "SLOPE_SD",
    "SufficientStatistics",
    "sufficient_statistics",
    "build_model",
    "import_pymc",
    "data_updates",
    "to_original_scale",
    "draw_group_effects",
    "pointwise_log_likelihood",
    "simulate",
]

COVARIATE_FORMS = ("shared", "level_specific")

_LOG2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class SufficientStatistics:
    """Standardised sufficient statistics of one data set for :func:`build_model`.

    Attributes
    ----------
    covariates : {"shared", "level_specific"}
        Form of the covariates.
    n : ndarray, shape (J,)
        Group sizes.
    ybar : ndarray, shape (J,)
        Group means of the standardised outcome.
    vbar : ndarray, shape (J, p)
        Group means of the standardised latent-split predictors (X, and in the level-specific
        form the covariates as well).
    cbar : ndarray, shape (J, k_plain)
        Group means of the standardised plain (not split) covariates (shared form).
    within : ndarray, shape (1 + p + k_plain, 1 + p + k_plain)
        Pooled within-group cross-products of the standardised (y, V, C_plain).
    center, scale : ndarray, shape (1 + p + k_plain,)
        Grand means and SDs used to standardise (y, V, C_plain).
    term_names : tuple of str
        Covariate names (the coords of dim ``term``).
    wbar : ndarray, shape (J, k_l2), optional
        Standardised group-level (level-2) covariates (``None``: none).
    w_center, w_scale : ndarray, shape (k_l2,), optional
        Means and SDs over the J groups used to standardise them.
    l2_names : tuple of str
        Names of the level-2 covariates (the coords of dim ``l2_term``).
    """

    covariates: str
    n: np.ndarray
    ybar: np.ndarray
    vbar: np.ndarray
    cbar: np.ndarray
    within: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    term_names: tuple[str, ...] = field(default=())
    wbar: np.ndarray | None = None
    w_center: np.ndarray | None = None
    w_scale: np.ndarray | None = None
    l2_names: tuple[str, ...] = field(default=())

    @property
    def n_l2(self) -> int:
        """Number of group-level (level-2) covariates."""
        return 0 if self.wbar is None else int(self.wbar.shape[1])

    @property
    def n_groups(self) -> int:
        """Number of groups J."""
        return int(self.n.shape[0])

    @property
    def n_obs(self) -> int:
        """Number of observations N."""
        return int(self.n.sum())

    @property
    def n_split(self) -> int:
        """Number p of predictors split into a latent between and a within part."""
        return int(self.vbar.shape[1])

    @property
    def structure(self) -> tuple[str, int, int, int]:
        """Key of the model structure: a compiled model is valid for equal keys.

        ``(form, number of split predictors, number of plain covariates, number of level-2
        covariates)``.  Without covariates both forms are the same model (and share the key).
        """
        k_plain = int(self.cbar.shape[1])
        form = "shared" if self.n_split == 1 and k_plain == 0 else self.covariates
        return (form, self.n_split, k_plain, self.n_l2)


def _group_sums(values: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    out = np.zeros((n_groups, values.shape[1]))
    np.add.at(out, codes, values)
    return out


def sufficient_statistics(
    y: np.ndarray,
    x: np.ndarray,
    covariates: np.ndarray,
    group_codes: np.ndarray,
    n_groups: int,
    *,
    form: str = "shared",
    term_names: tuple[str, ...] = (),
    group_covariates: np.ndarray | None = None,
    l2_names: tuple[str, ...] = (),
) -> SufficientStatistics:
    """Standardise the data and reduce them to the sufficient statistics of the model.

    Parameters
    ----------
    y, x : ndarray, shape (N,)
        Outcome and target predictor.
    covariates : ndarray, shape (N, k)
        Level-1 covariates (k may be 0).
    group_codes : ndarray of int, shape (N,)
        Group index 0..J-1 of every row.
    n_groups : int
        Number of groups J (every group must have at least one row).
    form : {"shared", "level_specific"}
        Form of the covariates (see the module docstring).
    term_names : tuple of str
        Names of the covariates.
    group_covariates : ndarray, shape (J, k_l2), optional
        Group-level (level-2) covariates, one row per group; standardised by their mean and
        SD over the J groups.  ``None`` (default): no level-2 covariates.
    l2_names : tuple of str
        Names of the level-2 covariates.

    Returns
    -------
    SufficientStatistics
    """
    covariates = np.asarray(covariates, dtype=float).reshape(len(y), -1)
    if form == "shared":
        cols = np.column_stack([y, x, covariates])
        p = 1
    else:
        cols = np.column_stack([y, x, covariates])
        p = 1 + covariates.shape[1]
    center = cols.mean(axis=0)
    scale = cols.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = (cols - center) / scale
    n = np.bincount(group_codes, minlength=n_groups).astype(float)
    means = _group_sums(z, group_codes, n_groups) / n[:, None]
    dev = z - means[group_codes]
    within = dev.T @ dev
    l2: dict[str, Any] = {}
    if group_covariates is not None:
        w = np.asarray(group_covariates, dtype=float).reshape(n_groups, -1)
        w_center = w.mean(axis=0)
        w_scale = w.std(axis=0)
        w_scale = np.where(w_scale > 0, w_scale, 1.0)
        l2 = {
            "wbar": (w - w_center) / w_scale,
            "w_center": w_center,
            "w_scale": w_scale,
            "l2_names": tuple(l2_names),
        }
    return SufficientStatistics(
        covariates=form,
        n=n,
        ybar=means[:, 0].copy(),
        vbar=means[:, 1 : 1 + p].copy(),
        cbar=means[:, 1 + p :].copy(),
        within=within,
        center=center,
        scale=scale,
        term_names=tuple(term_names),
        **l2,
    )


def data_updates(stats: SufficientStatistics) -> dict[str, np.ndarray]:
    """Values of the ``pm.Data`` containers of :func:`build_model` for `stats`."""
    out = {
        "n_j": stats.n,
        "ybar_j": stats.ybar,
        "vbar_j": stats.vbar,
        "within_sscp": stats.within,
    }
    if stats.cbar.shape[1]:
        out["cbar_j"] = stats.cbar
    if stats.n_l2:
        out["wbar_j"] = stats.wbar
    return out


def import_pymc() -> Any:
    """Import PyMC (first import inside a function), silencing its import-time deprecations.

    PyMC 6.3 imports names that PyTensor 3.3 has moved (``pytensor.ifelse.IfElse``), which
    emits a ``DeprecationWarning`` on the first import; it is not ours to fix.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import pymc
        import pytensor.tensor  # noqa: F401
    return pymc


def build_model(stats: SufficientStatistics, *, slope_sd: float = SLOPE_SD) -> Any:
    """Build the PyMC model (standardised scale, group effects integrated out).

    Parameters
    ----------
    stats : SufficientStatistics
        From :func:`sufficient_statistics`.
    slope_sd : float, default 5
        SD of the ``Normal(0, slope_sd)`` priors of the slopes (the module's priors use 5;
        :func:`mlob_pp.mcmc_batch` takes the same choice as ``prior_slope_sd``).

    Returns
    -------
    pymc.Model
        Free variables (standardised scale): ``alpha_z``, ``mu_z`` (dim ``split``),
        ``beta_b_z``/``beta_w_z`` (dim ``split``: X first, then in the level-specific form the
        covariates), ``gamma_z`` (dim ``term``, shared form with covariates), ``gamma_l2_z``
        (dim ``l2_term``, with level-2 covariates), and the scale
        parameters ``tau_z``, ``sigma_z`` (Y) and ``tau_x_z``, ``sigma_x_z`` (shared form) or
        ``chol_b``, ``chol_w`` (level-specific form).  The log-likelihood is a
        ``pm.Potential`` named ``loglik``; the data live in ``pm.Data`` containers (see
        :func:`data_updates`), so the model can be compiled once and refitted to new data of
        the same structure.
    """
    pm = import_pymc()
    import pytensor.tensor as pt

    p = stats.n_split
    k_plain = stats.cbar.shape[1]
    split_names = ["x", *(stats.term_names if stats.covariates == "level_specific" else ())]
    coords: dict[str, Any] = {"split": split_names}
    if k_plain:
        coords["term"] = list(stats.term_names)
    k_l2 = stats.n_l2
    if k_l2:
        coords["l2_term"] = list(stats.l2_names)
    with pm.Model(coords=coords) as model:
        n = pm.Data("n_j", stats.n)
        ybar = pm.Data("ybar_j", stats.ybar)
        vbar = pm.Data("vbar_j", stats.vbar)
        within = pm.Data("within_sscp", stats.within)
        cbar = pm.Data("cbar_j", stats.cbar) if k_plain else None
        wbar = pm.Data("wbar_j", stats.wbar) if k_l2 else None

        alpha = pm.Normal("alpha_z", 0.0, 2.5)
        mu = pm.Normal("mu_z", 0.0, 2.5, dims="split")
        beta_b = pm.Normal("beta_b_z", 0.0, slope_sd, dims="split")
        beta_w = pm.Normal("beta_w_z", 0.0, slope_sd, dims="split")
        gamma = pm.Normal("gamma_z", 0.0, slope_sd, dims="term") if k_plain else None
        gamma_l2 = pm.Normal("gamma_l2_z", 0.0, slope_sd, dims="l2_term") if k_l2 else None
        tau = pm.HalfNormal("tau_z", 1.0)
        sigma = pm.HalfNormal("sigma_z", 1.0)

        n_groups = n.shape[0]
        n_obs = pt.sum(n)
        c = beta_b - beta_w
        if p == 1:
            tau_x = pm.HalfNormal("tau_x_z", 1.0)
            sigma_x = pm.HalfNormal("sigma_x_z", 1.0)
            t2x, s2x = tau_x**2, sigma_x**2
            s_j = t2x + s2x / n
            d_j = vbar[:, 0] - mu[0]
            ll_v = (
                -0.5 * (n_obs - n_groups) * (_LOG2PI + pt.log(s2x))
                - 0.5 * within[1, 1] / s2x
                + pt.sum(-0.5 * (_LOG2PI + pt.log(s_j) + pt.log(n)) - 0.5 * d_j**2 / s_j)
            )
            cm_j = c[0] * (mu[0] + t2x * d_j / s_j)
            t_j = tau**2 + c[0] ** 2 * (t2x - t2x**2 / s_j)
        else:
            sd_dist = pm.HalfNormal.dist(1.0, shape=p)
            chol_b, _, _ = pm.LKJCholeskyCov("chol_b", n=p, eta=2.0, sd_dist=sd_dist)
            chol_w, _, _ = pm.LKJCholeskyCov(
                "chol_w", n=p, eta=2.0, sd_dist=pm.HalfNormal.dist(1.0, shape=p)
            )
            # small p x p algebra unrolled into elementwise ops over the J groups (much faster
            # to compile and to run under numba than batched LAPACK calls)
            sig_b = chol_b @ chol_b.T
            sig_w = chol_w @ chol_w.T
            lw = [[chol_w[a, b] for b in range(p)] for a in range(p)]
            # tr(Sigma_w^-1 W_VV) = tr(L^-1 W_VV L^-T): A = L^-1 W_VV, then diag of L^-1 A'
            cols = [_forward_solve(lw, [within[1 + a, 1 + b] for a in range(p)]) for b in range(p)]
            cols2 = [_forward_solve(lw, [cols[b][a] for b in range(p)]) for a in range(p)]
            trace_term = sum(cols2[a][a] for a in range(p))
            ll_v_within = -0.5 * (n_obs - n_groups) * (
                p * _LOG2PI + 2.0 * sum(pt.log(chol_w[a, a]) for a in range(p))
            ) - 0.5 * trace_term
            s_mat = [[sig_b[a, b] + sig_w[a, b] / n for b in range(p)] for a in range(p)]
            l_j = _cholesky(s_mat)
            d_j = [vbar[:, a] - mu[a] for a in range(p)]
            sb_c = [pt.sum(sig_b[a, :] * c) for a in range(p)]
            a_j = _forward_solve(l_j, d_j)
            s_vec = _forward_solve(l_j, sb_c)
            ll_v = ll_v_within + pt.sum(
                -0.5 * p * (_LOG2PI + pt.log(n))
                - sum(pt.log(l_j[a][a]) for a in range(p))
                - 0.5 * sum(a_j[a] ** 2 for a in range(p))
            )
            cm_j = pt.dot(c, mu) + sum(s_vec[a] * a_j[a] for a in range(p))
            t_j = (
                tau**2
                + sum(c[a] * sb_c[a] for a in range(p))
                - sum(s_vec[a] ** 2 for a in range(p))
            )

        s2 = sigma**2
        # within residual sum of squares b' W b with b = (1, -beta_w, -gamma)
        b_vec = pt.concatenate([pt.ones(1), -beta_w, -gamma]) if k_plain else pt.concatenate(
            [pt.ones(1), -beta_w]
        )
        ssw = pt.dot(b_vec, pt.dot(within, b_vec))
        rbar = ybar - alpha - pt.dot(vbar, beta_w) - cm_j
        if k_plain:
            rbar = rbar - pt.dot(cbar, gamma)
        if k_l2:
            rbar = rbar - pt.dot(wbar, gamma_l2)
        v_j = s2 + n * t_j
        ll_y = (
            -0.5 * n_obs * _LOG2PI
            - 0.5 * (n_obs - n_groups) * pt.log(s2)
            - 0.5 * ssw / s2
            + pt.sum(-0.5 * pt.log(v_j) - 0.5 * n * rbar**2 / v_j)
        )
        pm.Potential("loglik", ll_v + ll_y)
    return model


def _cholesky(mat: list[list[Any]]) -> list[list[Any]]:
    """Cholesky factor of a small symmetric matrix given as nested lists of tensors."""
    import pytensor.tensor as pt

    p = len(mat)
    low: list[list[Any]] = [[0.0] * p for _ in range(p)]
    for i in range(p):
        for k in range(i + 1):
            acc = mat[i][k] - sum((low[i][m] * low[k][m] for m in range(k)), 0.0)
            low[i][k] = pt.sqrt(acc) if i == k else acc / low[k][k]
    return low


def _forward_solve(low: list[list[Any]], rhs: list[Any]) -> list[Any]:
    """Solve ``L a = rhs`` for lower-triangular ``L`` given as nested lists of tensors."""
    out: list[Any] = []
    for i in range(len(rhs)):
        acc = rhs[i] - sum((low[i][m] * out[m] for m in range(i)), 0.0)
        out.append(acc / low[i][i])
    return out


def simulate(
    n_groups: int = 40,
    group_size: int | np.ndarray = 30,
    *,
    beta_b: float = 1.0,
    beta_w: float = 0.5,
    gamma: tuple[float, ...] = (0.3,),
    alpha: float = 0.0,
    mu_x: float = 0.0,
    tau2_x: float = 0.25,
    sigma2_x: float = 1.0,
    tau2: float = 0.2,
    sigma2: float = 1.0,
    phi_w: Any = None,
    phi_b: Any = None,
    s_c: Any = 1.0,
    tau2_c: float = 0.0,
    random_seed: Any = None,
) -> tuple[Any, dict[str, float]]:
    """Simulate one data set of the latent covariate model (a data frame) and return the truth.

    A thin wrapper over :func:`mlob_pp.simulate.simulate_arrays` (the one generator) and
    :func:`mlob_pp.simulate.simulate_frame`: covariates ``C = phi_w e + phi_b u + s_c z``
    (:mod:`mlob_pp.simulate`).  With ``tau2_c > 0`` the covariates get their own between-group
    variation, independent of X: ``C = phi_w (X - Xbar_j) + phi_b (Xbar_j - Xbar) + r`` with
    residuals ``r_ij = z_ij + sqrt(tau2_c) v_j`` (``z, v ~ N(0, 1)``, passed to
    ``simulate_arrays`` as ``c_resid``), so that level-specific covariate slopes are
    identified.  With unequal `group_size` (one size per group), a balanced
    data set with the largest size is drawn and each group keeps its first rows (rows are
    independent given the group effects, so this is a draw of the unbalanced design).

    Returns
    -------
    data : pandas.DataFrame
        Columns ``y, x, c1..ck, g`` (group labels ``g000``, ``g001`` ...).
    truth : dict of str to float
        The parameters, with the contract's labels (``gamma_c1`` ...).
    """
    rng = as_generator(random_seed)
    sizes = np.broadcast_to(np.asarray(group_size, dtype=int), (n_groups,))
    k = len(gamma)
    n_max = int(sizes.max())
    c_resid = None
    if tau2_c > 0 and k:
        c_resid = rng.standard_normal((n_groups, n_max, k))
        c_resid += np.sqrt(tau2_c) * rng.standard_normal((n_groups, 1, k))
    y, x, cov, _ = simulate_arrays(
        (1,), n_groups, n_max, rng, beta_b=beta_b, beta_w=beta_w, alpha=alpha,
        mu_x=mu_x, tau2_x=tau2_x, sigma2_x=sigma2_x, tau2=tau2, sigma2=sigma2,
        gamma=np.asarray(gamma, dtype=float) if k else (), phi_w=phi_w, phi_b=phi_b, s_c=s_c,
        c_resid=c_resid,
    )
    labels = [f"g{j:03d}" for j in range(n_groups)]
    frame = simulate_frame(y[0], x[0], cov[0], names=("y", "x", "c", "g"), labels=labels)
    if k == 1:
        frame = frame.rename(columns={"c": "c1"})
    frame = frame[["y", "x", *[f"c{i + 1}" for i in range(k)], "g"]]
    if np.any(sizes != sizes.max()):
        position = np.tile(np.arange(sizes.max()), n_groups)
        frame = frame.loc[position < np.repeat(sizes, sizes.max())].reset_index(drop=True)
    truth = {
        "beta_b": beta_b,
        "beta_w": beta_w,
        "beta_c": beta_b - beta_w,
        **{f"gamma_c{i + 1}": float(v) for i, v in enumerate(gamma)},
        "alpha": alpha,
        "mu_x": mu_x,
        "tau2_x": tau2_x,
        "sigma2_x": sigma2_x,
        "icc_x": tau2_x / (tau2_x + sigma2_x),
        "tau2": tau2,
        "sigma2": sigma2,
    }
    return frame, truth


# post-processing of draws lives in latent_covariate_draws (re-exported here)
from mlob_pp.models.latent_covariate_draws import (  # noqa: E402
    draw_group_effects,
    pointwise_log_likelihood,
    to_original_scale,
)
