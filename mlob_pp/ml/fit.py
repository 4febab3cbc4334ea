r"""True maximum likelihood of the two-level latent covariate model (unbalanced groups, O(N)).

Model (MLOB talk eqs. 5-6; Lüdtke et al. 2008). For unit i in group j,

.. math::

    X_{ij} = \mu_X + u_j + e_{ij}, \qquad
    Y_{ij} = \alpha + \beta_b (\mu_X + u_j) + \beta_w e_{ij} + C_{ij}^\top \gamma
             + \delta_j + \varepsilon_{ij},

:math:`u_j \sim N(0, \tau^2_X)`, :math:`e_{ij} \sim N(0, \sigma^2_X)`,
:math:`\delta_j \sim N(0, \tau^2)`, :math:`\varepsilon_{ij} \sim N(0, \sigma^2)`; the group mean
:math:`\mu_{Xj} = \mu_X + u_j` of X is latent, :math:`\beta_c = \beta_b - \beta_w` is the
contextual effect and :math:`\mathrm{ICC}_X = \tau^2_X / (\tau^2_X + \sigma^2_X)`.

Two covariate forms (argument ``covariates``):

* ``"shared"`` (default, the model of the MLOB talk): one slope :math:`\gamma` per covariate at
  both levels; the likelihood is that of :math:`(Y, X)` given C.
* ``"level_specific"`` (the two-level SEM fitted by lavaan and Mplus): every covariate splits into
  a latent group part and a within part with free means and covariances, Y has the slopes
  :math:`\gamma_w` on the within parts and :math:`\gamma_b` on the group parts, and the likelihood
  is the joint one of :math:`(Y, X, C)`. With ``between_covariates=False`` the covariates are
  level-1 only (lavaan's ``level: 2  Y ~ X``): no between part, no :math:`\gamma_b`.

The marginal likelihood of the two-level multivariate normal model is computed from sufficient
statistics (pooled within-group cross-products and, per group size, sums of the group means and
of their outer products; :mod:`mlob_pp.ml.likelihood`), maximised with scipy (BFGS from ANOVA start
values, then Newton steps on a numerical Hessian of the analytic gradient). Standard errors come
from the observed information (the negative Hessian of the log-likelihood in the natural
parametrisation above) and the delta method for :math:`\beta_c` and :math:`\mathrm{ICC}_X`.
Variances are not bounded: a negative estimate (an inadmissible solution, "Heywood case") is
reported as such with an :class:`InadmissibleWarning`.

``fixed_x`` follows lavaan's ``fixed.x``: ``False`` estimates the moments of X (and of the
covariates) with everything else; ``True`` holds them at their estimates and takes the
standard errors of the other parameters from their block of the information (X moments treated
as known; their standard errors are NaN); ``"lavaan"`` holds them at the values lavaan 0.6 uses
(its unrestricted-model EM, :mod:`mlob_pp.ml.lavaan`), which reproduces ``lavaan::sem(...,
cluster=, estimator="ML")`` including its log-likelihood.

**ml versus ml_moments.** R MLOB's table labelled "ML" is not a likelihood maximum: it is a
moment ratio (the between-group covariance of Y and X over the between variance of X, from the
ANOVA decomposition of balanced data), reported by :func:`mlob_pp.mlob` under the name
``ml_moments``. This module maximises the likelihood itself (estimator name ``"ml"``), uses every
row of unbalanced data, and gives likelihood-based standard errors and a log-likelihood. For
balanced data without covariates both are ratios of between-group moments and are close, but
they differ in the divisor of the between-group moments (J for ML) and in every other case.

References
----------
Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B. (2008).
The multilevel latent covariate model: A new, more reliable approach to group-level effects in
contextual studies. *Psychological Methods*, 13(3), 203-229. https://doi.org/10.1037/a0012869

Rosseel, Y. (2012). lavaan: An R package for structural equation modeling. *Journal of
Statistical Software*, 48(2), 1-36. https://doi.org/10.18637/jss.v048.i02
"""

from __future__ import annotations

import datetime
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.validate import NumericalWarning, check_bool, check_choice, check_int
from mlob_pp.validate import check_probability as _check_probability
from mlob_pp.warnings import InadmissibleWarning

__all__ = ["fit_ml", "MLResult", "InadmissibleWarning"]

_COLUMNS = ("estimate", "std_error", "ci_lower", "ci_upper", "z", "p_value")


@dataclass(frozen=True)
class MLResult:
    """Result of :func:`fit_ml`.

    Attributes
    ----------
    coef, se : pandas.Series
        Estimates and standard errors, indexed by ``beta_b, beta_w, beta_c, gamma_<term>`` (or
        ``gamma_w_<term>, gamma_b_<term>``), ``alpha, mu_x, tau2_x, sigma2_x, icc_x, tau2,
        sigma2``.
    vcov : pandas.DataFrame
        Covariance matrix of the estimates (same labels).
    loglik : float
        Maximised log-likelihood (of ``(Y, X)`` given C for ``covariates="shared"``, of
        ``(Y, X, C)`` for ``"level_specific"``).
    converged : bool
        Whether the gradient vanished and the Hessian is negative definite at the solution.
    n_iter : int
        Optimiser iterations (quasi-Newton plus Newton).
    nuisance : pandas.Series
        Other free parameters of the level-specific form (means and covariances of the
        covariates' within and between parts), with standard errors in ``nuisance_se``.
    formula, group, covariates, between_covariates, fixed_x, conf_level, n_obs, n_groups
        Provenance of the fit; ``settings`` holds the rest (tolerances, timing, versions).
    """

    coef: pd.Series
    se: pd.Series
    vcov: pd.DataFrame
    loglik: float
    converged: bool
    n_iter: int
    formula: str
    group: str
    covariates: str
    between_covariates: bool
    fixed_x: bool | str
    conf_level: float
    n_obs: int
    n_groups: int
    group_sizes: tuple[int, ...]
    nuisance: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    nuisance_se: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    inadmissible: tuple[str, ...] = ()
    settings: dict = field(default_factory=dict)

    method = "ml"

    def summary_frame(self) -> pd.DataFrame:
        """Table with columns ``estimate, std_error, ci_lower, ci_upper, z, p_value``.

        The interval is the Wald interval ``estimate +/- q * std_error`` at `conf_level`
        (for example 0.95), and the p-value is two-sided, ``2 * norm.sf(|z|)``.
        """
        from scipy.stats import norm

        q = norm.ppf(0.5 + self.conf_level / 2.0)
        est = self.coef.to_numpy()
        se = self.se.to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            z = est / se
        return pd.DataFrame(
            {
                "estimate": est,
                "std_error": se,
                "ci_lower": est - q * se,
                "ci_upper": est + q * se,
                "z": z,
                "p_value": 2.0 * norm.sf(np.abs(z)),
            },
            index=self.coef.index,
        )

    def __str__(self) -> str:
        head = (
            f"True ML fit of the two-level latent covariate model ({self.covariates} covariate "
            f"slopes{'' if self.between_covariates else ', covariates at level 1 only'}"
            f"{'' if self.fixed_x is False else f', fixed_x={self.fixed_x!r}'})\n"
            f"formula: {self.formula}   group: {self.group}\n"
            f"N = {self.n_obs} in J = {self.n_groups} groups (sizes {min(self.group_sizes)}-"
            f"{max(self.group_sizes)})   logLik = {self.loglik:.4f}   converged: "
            f"{self.converged} ({self.n_iter} iterations)\n"
        )
        table = self.summary_frame()
        pct = f"{100 * self.conf_level:g}%"
        table.columns = ["estimate", "std_error", f"{pct} lower", f"{pct} upper", "z", "p"]
        body = table.to_string(float_format=lambda v: f"{v:.6g}")
        tail = ""
        if self.inadmissible:
            tail = "\ninadmissible (negative variance): " + ", ".join(self.inadmissible)
        return head + body + tail

    __repr__ = __str__


def _check_conf_level(conf_level: Any) -> float:
    return _check_probability(conf_level, "conf_level", hint=" (e.g. 0.95 for a 95% interval)")


def fit_ml(
    formula: str,
    data: Any,
    group: str,
    *,
    covariates: str = "shared",
    between_covariates: bool = True,
    fixed_x: bool | str = False,
    conf_level: float = 0.95,
    missing: str = "raise",
    max_iter: int = 500,
    tol: float = 1e-9,
) -> MLResult:
    """Fit the two-level latent covariate model by maximum likelihood.

    Parameters
    ----------
    formula : str
        ``"y ~ x + c1 + c2"``: outcome, target regressor X (first right-hand term, whose group
        mean is latent) and level-1 covariates (any further terms; interactions and factors as
        in :func:`mlob_pp.formula.parse.parse_formula`).
    data : pandas.DataFrame
        One row per level-1 unit; groups may be unbalanced and in any row order.
    group : str
        Name of the grouping column.
    covariates : {"shared", "level_specific"}
        ``"shared"``: one slope ``gamma_<term>`` per covariate at both levels (MLOB's model);
        ``"level_specific"``: within slopes ``gamma_w_<term>`` and between slopes
        ``gamma_b_<term>`` on latent group parts of the covariates (lavaan/Mplus two-level SEM).
    between_covariates : bool
        Only for ``"level_specific"``: ``False`` makes the covariates level-1-only variables
        (no between part, no ``gamma_b``), as lavaan's ``level: 2  Y ~ X``.
    fixed_x : {False, True, "lavaan"}
        ``False``: estimate the moments of X (and of the covariates) jointly. ``True``: treat
        them as known at their estimates (standard errors of the other parameters from their
        block of the information). ``"lavaan"`` (``"level_specific"`` only): hold them at the
        values lavaan 0.6 fixes with its default ``fixed.x = TRUE`` (see
        :mod:`mlob_pp.ml.lavaan`); this reproduces lavaan's two-level ML fit.
    conf_level : float
        Confidence level of the Wald intervals in :meth:`MLResult.summary_frame` (0.95 is a 95%
        interval; note that R MLOB's ``conf.level`` is the significance level instead).
    missing : {"raise", "drop"}
        Missing-value handling, as in :func:`mlob_pp.formula.parse.parse_formula`.
    max_iter : int
        Maximum number of quasi-Newton iterations (and of the Newton steps that follow, at most
        50).
    tol : float
        Convergence tolerance on the Newton decrement of the log-likelihood.

    Returns
    -------
    MLResult

    Raises
    ------
    ValueError
        For an unknown `covariates` or `fixed_x`, ``between_covariates=False`` with shared
        slopes, ``fixed_x="lavaan"`` with shared slopes, fewer than 3 groups, no within-group
        variation, or a covariate that is constant (or collinear) within groups.
    TypeError
        For arguments of the wrong type (and through :func:`~mlob_pp.formula.parse.parse_formula`).

    Warns
    -----
    InadmissibleWarning
        If a variance estimate is negative (or zero).
    mlob_pp.validate.NumericalWarning
        If the optimiser did not converge.

    See Also
    --------
    mlob_pp.mlob : the closed-form MLOB estimator (and R MLOB's ``ml_moments`` column).

    References
    ----------
    Lüdtke, O. et al. (2008). The multilevel latent covariate model. *Psychological Methods*,
    13(3), 203-229. https://doi.org/10.1037/a0012869

    Examples
    --------
    >>> import mlob_pp
    >>> hsb = mlob_pp.datasets.load("hsb")
    >>> fit = mlob_pp.fit_ml("mAch ~ ses + minrty + sx", hsb, "school")
    >>> print(round(fit.coef["beta_b"], 2), round(fit.se["beta_b"], 2), fit.converged)
    4.99 0.38 True
    >>> lav = mlob_pp.fit_ml("mAch ~ ses + minrty + sx", hsb, "school",
    ...                      covariates="level_specific", fixed_x="lavaan")
    >>> print(round(lav.coef["beta_b"], 2), round(lav.loglik, 1))
    5.43 -37364.1
    """
    from mlob_pp.formula.parse import parse_formula
    from mlob_pp.ml.likelihood import suff_stats
    from mlob_pp.ml.spec import level_specific_spec, shared_spec, start_values

    covariates = check_choice(covariates, "covariates", ("shared", "level_specific"))
    between_covariates = check_bool(between_covariates, "between_covariates")
    if not (isinstance(fixed_x, bool | np.bool_) or fixed_x == "lavaan"):
        raise ValueError(f"`fixed_x` must be False, True or 'lavaan'; got {fixed_x!r}")
    fixed_x = fixed_x if isinstance(fixed_x, str) else bool(fixed_x)
    if covariates == "shared" and not between_covariates:
        raise ValueError(
            "`between_covariates=False` needs covariates='level_specific' (a shared slope acts at "
            "both levels); got covariates='shared'"
        )
    if covariates == "shared" and fixed_x == "lavaan":
        raise ValueError(
            "`fixed_x='lavaan'` reproduces lavaan's two-level SEM and needs "
            "covariates='level_specific'; got covariates='shared'"
        )
    conf_level = _check_conf_level(conf_level)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    if not isinstance(tol, float | int) or isinstance(tol, bool) or not tol > 0:
        raise ValueError(f"`tol` must be a positive number; got {tol!r}")

    mf = parse_formula(formula, data, group, missing=missing, min_groups=3)
    k = mf.covariates.shape[1]
    raw = np.column_stack([mf.y, mf.x, mf.covariates])
    stats = suff_stats(raw, mf.group_codes, mf.n_groups)
    sizes = mf.group_sizes
    if stats.n_obs - stats.n_groups < raw.shape[1] + 1:
        raise ValueError(
            "`data` has too little within-group variation for ML: N - J = "
            f"{stats.n_obs - stats.n_groups} must exceed {raw.shape[1]} (number of variables)"
        )
    wdiag = np.diag(stats.within)
    names_all = (mf.response, mf.target, *mf.covariate_names)
    flat = [n for n, v in zip(names_all, wdiag, strict=True) if not v > 1e-12 * (1 + abs(v))]
    if flat:
        raise ValueError(
            f"variable(s) {', '.join(map(repr, flat))} do not vary within groups; ML of the "
            "latent covariate model needs within-group variation of the outcome, X and every "
            "covariate (drop group-level covariates from the formula)"
        )
    if np.linalg.matrix_rank(stats.within) < raw.shape[1]:
        raise ValueError(
            "the within-group parts of the outcome, X and the covariates are collinear in "
            f"{formula!r}; remove redundant covariates"
        )

    if covariates == "shared":
        spec = shared_spec(mf.covariate_names)
    else:
        spec = level_specific_spec(mf.covariate_names, between_covariates)
    theta0 = start_values(covariates, stats, k, between_covariates)
    free = np.ones(theta0.shape[0], dtype=bool)
    if fixed_x == "lavaan":
        from mlob_pp.ml.lavaan import lavaan_exogenous

        exo = lavaan_exogenous(stats, between_covariates)
        theta0 = _set_exogenous(spec.names, theta0, exo)
        free[list(spec.exogenous)] = False

    tic = time.perf_counter()
    theta, hess, n_iter, converged = _maximize(stats, spec, theta0, free, max_iter, tol)
    elapsed = time.perf_counter() - tic
    from mlob_pp.ml.likelihood import loglik as _loglik

    ll_joint = _loglik(stats, spec.implied(theta))
    ll = ll_joint
    if fixed_x == "lavaan" and not between_covariates and k > 0:
        from mlob_pp.ml.lavaan import lavaan_loglik_x

        ll = ll_joint - lavaan_loglik_x(stats, np.arange(2, 2 + k))

    # information of the free parameters; X moments known under fixed_x
    known = ~free.copy()
    if fixed_x is True:
        known[list(spec.exogenous)] = True
    vcov_theta = np.full((theta.shape[0], theta.shape[0]), 0.0)
    idx = np.flatnonzero(~known)
    info = -hess[np.ix_(idx, idx)]
    if np.all(np.isfinite(info)) and np.all(np.linalg.eigvalsh((info + info.T) / 2) > 0):
        vcov_theta[np.ix_(idx, idx)] = np.linalg.inv(info)
    else:
        vcov_theta[np.ix_(idx, idx)] = np.nan
        converged = False

    labels, est, grad = _public(spec, theta, covariates, mf.covariate_names)
    vc = grad @ vcov_theta @ grad.T
    depends = np.abs(grad[:, ~known]).sum(axis=1) > 0
    vc[~depends, :] = np.nan
    vc[:, ~depends] = np.nan
    se = np.sqrt(np.where(np.diag(vc) >= 0, np.diag(vc), np.nan))

    nuis_idx = [i for i, n in enumerate(spec.names) if n.startswith(("phi_", "mu_"))]
    nuis_idx = [i for i in nuis_idx if spec.names[i] not in ("phi_w[x,x]", "phi_b[x,x]", "mu_x")]
    nuis_se = np.sqrt(np.abs(np.diag(vcov_theta)))[nuis_idx]
    nuis_se = np.where(known[nuis_idx], np.nan, nuis_se)

    bad = tuple(n for n, i in spec.variances.items() if not theta[i] > 0)
    label_map = {"phi_w[x,x]": "sigma2_x", "phi_b[x,x]": "tau2_x"}
    bad = tuple(label_map.get(b, b) for b in bad)
    if bad:
        warnings.warn(
            "inadmissible ML solution: variance estimate(s) "
            + ", ".join(f"{b} = {_value(spec, theta, b, label_map):.4g}" for b in bad)
            + " are not positive (Heywood case); the model may be over-parametrised for these "
            "data (for example collinear between parts of X and the covariates)",
            InadmissibleWarning,
            stacklevel=2,
        )
    if not converged:
        warnings.warn(
            f"ML optimisation did not converge after {n_iter} iterations (gradient not zero or "
            "Hessian not negative definite); estimates and standard errors are unreliable",
            NumericalWarning,
            stacklevel=2,
        )

    import scipy

    from mlob_pp import __version__ as mlob_pp_version

    return MLResult(
        coef=pd.Series(est, index=labels, name="estimate"),
        se=pd.Series(se, index=labels, name="std_error"),
        vcov=pd.DataFrame(vc, index=labels, columns=labels),
        loglik=float(ll),
        converged=bool(converged),
        n_iter=int(n_iter),
        formula=formula,
        group=group,
        covariates=covariates,
        between_covariates=between_covariates,
        fixed_x=fixed_x,
        conf_level=conf_level,
        n_obs=mf.n_obs,
        n_groups=mf.n_groups,
        group_sizes=tuple(int(s) for s in sizes),
        nuisance=pd.Series(theta[nuis_idx], index=[spec.names[i] for i in nuis_idx], dtype=float),
        nuisance_se=pd.Series(nuis_se, index=[spec.names[i] for i in nuis_idx], dtype=float),
        inadmissible=bad,
        settings={
            "method": "ml",
            "loglik_joint": float(ll_joint),
            "information": "observed",
            "optimizer": "scipy BFGS + Newton",
            "tol": float(tol),
            "max_iter": max_iter,
            "elapsed_s": elapsed,
            "response": mf.response,
            "target": mf.target,
            "covariate_names": tuple(mf.covariate_names),
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "mlob_pp_version": mlob_pp_version,
            "numpy_version": np.__version__,
            "scipy_version": scipy.__version__,
        },
    )


def _value(spec, theta, label, label_map) -> float:
    inv = {v: k for k, v in label_map.items()}
    return float(theta[spec.variances[inv.get(label, label)]])


def _set_exogenous(names: tuple[str, ...], theta: np.ndarray, exo: dict) -> np.ndarray:
    """Put lavaan's fixed exogenous moments into the level-specific parameter vector."""
    theta = theta.copy()
    mu_pos = [i for i, n in enumerate(names) if n.startswith("mu_")]
    theta[mu_pos] = exo["mu"]
    for key, mat in (("phi_w", exo["phi_w"]), ("phi_b", exo["phi_b"])):
        pos = [i for i, n in enumerate(names) if n.startswith(key + "[")]
        m = mat.shape[0]
        vech = [mat[a, b] for a in range(m) for b in range(a, m)]
        theta[pos] = vech
    return theta


def _public(spec, theta, covariates, cov_names):
    """Contract labels, estimates and the gradient of each label in the structural parameters."""
    idx = {n: i for i, n in enumerate(spec.names)}
    p = theta.shape[0]
    if covariates == "shared":
        alias = {"tau2_x": "tau2_x", "sigma2_x": "sigma2_x"}
        gam = [f"gamma_{c}" for c in cov_names]
    else:
        alias = {"tau2_x": "phi_b[x,x]", "sigma2_x": "phi_w[x,x]"}
        gam = [f"gamma_w_{c}" for c in cov_names]
        gam += [f"gamma_b_{c}" for c in cov_names if f"gamma_b_{c}" in idx]
    labels = ["beta_b", "beta_w", "beta_c", *gam, "alpha", "mu_x", "tau2_x", "sigma2_x",
              "icc_x", "tau2", "sigma2"]
    rows, est = [], []
    for lab in labels:
        g = np.zeros(p)
        if lab == "beta_c":
            g[idx["beta_b"]], g[idx["beta_w"]] = 1.0, -1.0
            val = theta[idx["beta_b"]] - theta[idx["beta_w"]]
        elif lab == "icc_x":
            t, s = theta[idx[alias["tau2_x"]]], theta[idx[alias["sigma2_x"]]]
            tot = t + s
            val = t / tot
            g[idx[alias["tau2_x"]]] = s / tot**2
            g[idx[alias["sigma2_x"]]] = -t / tot**2
        else:
            i = idx[alias.get(lab, lab)]
            g[i] = 1.0
            val = theta[i]
        rows.append(g)
        est.append(val)
    return labels, np.array(est), np.array(rows)


def _maximize(stats, spec, theta0, free, max_iter, tol):
    """Maximise the log-likelihood over the free parameters: BFGS, then Newton steps."""
    from scipy.optimize import minimize

    from mlob_pp.ml.likelihood import loglik_grad

    scale = np.maximum(1.0, np.abs(theta0)) * 1e-2
    n = float(stats.n_obs)
    fidx = np.flatnonzero(free)

    def full(x):
        t = theta0.copy()
        t[fidx] = x
        return t

    def grad_full(t):
        return loglik_grad(stats, spec.implied, t, scale)

    def objective(x):
        value, g = grad_full(full(x))
        if g is None or not np.isfinite(value):
            return np.inf, np.zeros_like(x)
        return -value / n, -g[fidx] / n

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = minimize(
            objective, theta0[fidx], jac=True, method="BFGS",
            options={"maxiter": max_iter, "gtol": 1e-7},
        )
    x = res.x if np.isfinite(res.fun) else theta0[fidx]
    n_iter = int(res.nit)

    def hessian(t):
        p = t.shape[0]
        h = np.empty((p, p))
        for i in range(p):
            step = 1e-5 * max(1.0, abs(t[i]))
            up, down = t.copy(), t.copy()
            up[i] += step
            down[i] -= step
            gu, gd = grad_full(up)[1], grad_full(down)[1]
            if gu is None or gd is None:
                return None
            h[:, i] = (gu - gd) / (2 * step)
        return (h + h.T) / 2

    converged = False
    t = full(x)
    value, g = grad_full(t)
    hess = None
    for _ in range(min(50, max_iter)):
        hess = hessian(t)
        if hess is None or g is None:
            break
        hf = hess[np.ix_(fidx, fidx)]
        gf = g[fidx]
        lam = 0.0
        accepted = False
        for _ in range(30):
            a = -hf + lam * np.diag(np.maximum(np.abs(np.diag(hf)), 1e-12))
            try:
                step = np.linalg.solve(a, gf)
            except np.linalg.LinAlgError:
                lam = max(lam * 10, 1e-6)
                continue
            trial = t.copy()
            trial[fidx] += step
            v_new, g_new = grad_full(trial)
            if g_new is not None and np.isfinite(v_new) and v_new >= value - 1e-12 * abs(value):
                accepted = True
                break
            lam = max(lam * 10, 1e-6)
        n_iter += 1
        if not accepted:
            break
        decrement = float(step @ gf)
        t, value, g = trial, v_new, g_new
        if abs(decrement) < tol and lam == 0.0:
            converged = True
            break
    if hess is None:
        hess = np.full((t.shape[0], t.shape[0]), np.nan)
    else:
        new = hessian(t)
        hess = new if new is not None else hess
        if g is not None:
            gscale = np.abs(g[fidx]) * np.maximum(1.0, np.abs(t[fidx]))
            converged = converged or bool(np.max(gscale) < 1e-4)
    return t, hess, n_iter, converged
