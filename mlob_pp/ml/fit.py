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
values, then Newton steps on a numerical Hessian of the analytic gradient). Every column is
first centred and scaled to unit standard deviation and the results are mapped back, so the
estimates are equivariant under rescaling and shifting of the data (and no tolerance depends on
the data's units). The shared form is maximised in its moment coordinates (the mean and the
within and between covariances of :math:`(Y - C^\top\gamma, X)`, :mod:`mlob_pp.ml.labels`),
which stay well conditioned when a between variance is near or below zero. Standard errors come
from the observed information (the negative Hessian of the log-likelihood) and the delta method.
Variances are not bounded: an estimate at or below zero (an inadmissible solution, "Heywood
case", frequent with few groups and a low ICC of X) is returned as the unbounded maximum (as
lavaan reports it), listed in ``MLResult.boundary`` and announced by an
:class:`~mlob_pp.warnings.InadmissibleWarning`; it is never an error.

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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp import __version__ as mlob_pp_version
from mlob_pp.design import check_full_rank, check_within_variation
from mlob_pp.formula.groups import resolve_group
from mlob_pp.formula.parse import parse_formula
from mlob_pp.ml.labels import VARIANCE_LABELS, shared_labels
from mlob_pp.ml.lavaan import lavaan_exogenous, lavaan_loglik_x
from mlob_pp.ml.likelihood import SuffStats, loglik, suff_stats
from mlob_pp.ml.optimize import maximize, singular_class
from mlob_pp.ml.result import MLResult
from mlob_pp.ml.spec import (
    Spec,
    level_specific_spec,
    moment_shared_spec,
    moment_shared_start,
    start_values,
)
from mlob_pp.validate import check_bool, check_choice, check_int, check_probability
from mlob_pp.warnings import InadmissibleWarning, NumericalWarning

__all__ = ["fit_ml", "MLResult", "InadmissibleWarning"]


@dataclass(frozen=True)
class _Options:
    covariates: str
    between_covariates: bool
    fixed_x: bool | str
    conf_level: float
    max_iter: int
    tol: float


@dataclass(frozen=True)
class _Data:
    """The parsed data: standardised statistics and the map back to the data's units."""

    frame: Any  # mlob_pp.formula.parse.ModelFrame
    stats: SuffStats  # of the standardised columns
    raw_stats: SuffStats
    loc: np.ndarray  # (p,) column means
    scale: np.ndarray  # (p,) column standard deviations


def _check_options(covariates, between_covariates, fixed_x, conf_level, max_iter, tol):
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
    conf_level = check_probability(conf_level, "conf_level", hint=" (e.g. 0.95 for a 95% interval)")
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    if not isinstance(tol, float | int) or isinstance(tol, bool) or not tol > 0:
        raise ValueError(f"`tol` must be a positive number; got {tol!r}")
    return _Options(covariates, between_covariates, fixed_x, conf_level, max_iter, float(tol))


def _prepare(formula: str, data: Any, group: str, missing: str) -> _Data:
    """Parse, check the design (scale-free, before any fitting) and standardise."""
    mf = parse_formula(formula, data, group, missing=missing, min_groups=3)
    raw = np.column_stack([mf.y, mf.x, mf.covariates])
    n_obs, p = raw.shape
    if n_obs - mf.n_groups < p + 1:
        raise ValueError(
            "`data` has too little within-group variation for ML: N - J = "
            f"{n_obs - mf.n_groups} must exceed {p} (number of variables)"
        )
    names = (mf.response, mf.target, *mf.covariate_names)
    for j, name in enumerate(names):
        check_within_variation(raw[:, j], mf.group_codes, mf.n_groups, name,
                               role="`formula` term")
    loc = raw.mean(axis=0)
    scale = raw.std(axis=0)
    std = (raw - loc) / scale
    stats = suff_stats(std, mf.group_codes, mf.n_groups)
    sums = np.zeros((mf.n_groups, p))
    np.add.at(sums, mf.group_codes, std)
    dev = std - (sums / np.bincount(mf.group_codes, minlength=mf.n_groups)[:, None])[
        mf.group_codes]
    check_full_rank(dev, names, argument="formula")
    return _Data(mf, stats, suff_stats(raw, mf.group_codes, mf.n_groups), loc, scale)


def _setup(d: _Data, opts: _Options) -> tuple[Spec, np.ndarray, np.ndarray]:
    """Return the parametrisation, start values (standardised units) and the free parameters."""
    names = d.frame.covariate_names
    k = len(names)
    if opts.covariates == "shared":
        spec = moment_shared_spec(names)
        theta0 = moment_shared_start(d.stats, k)
    else:
        spec = level_specific_spec(names, opts.between_covariates)
        theta0 = start_values("level_specific", d.stats, k, opts.between_covariates)
    free = np.ones(theta0.shape[0], dtype=bool)
    if opts.fixed_x == "lavaan":
        # lavaan's EM is not scale-equivariant: replay it on the data as given
        exo = lavaan_exogenous(d.raw_stats, opts.between_covariates)
        a, m = d.scale[1:], d.loc[1:]
        m_b = exo["phi_b"].shape[0]
        exo = {"mu": (exo["mu"] - m) / a, "phi_w": exo["phi_w"] / np.outer(a, a),
               "phi_b": exo["phi_b"] / np.outer(a[:m_b], a[:m_b])}
        theta0 = _set_exogenous(spec.names, theta0, exo)
        free[list(spec.exogenous)] = False
    return spec, theta0, free


def _set_exogenous(names: tuple[str, ...], theta: np.ndarray, exo: dict) -> np.ndarray:
    """Put lavaan's fixed exogenous moments into the level-specific parameter vector."""
    theta = theta.copy()
    mu_pos = [i for i, n in enumerate(names) if n.startswith("mu_")]
    theta[mu_pos] = exo["mu"]
    for key, mat in (("phi_w", exo["phi_w"]), ("phi_b", exo["phi_b"])):
        pos = [i for i, n in enumerate(names) if n.startswith(key + "[")]
        m = mat.shape[0]
        theta[pos] = [mat[a, b] for a in range(m) for b in range(a, m)]
    return theta


def _column_of(var: str, cov_names: tuple[str, ...]) -> int:
    return 1 if var == "x" else 2 + cov_names.index(var)


def _units(spec: Spec, cov_names, loc, scale) -> tuple[np.ndarray, np.ndarray]:
    """Linear map ``theta_data = L theta_std + offset`` of every parameter to the data's units."""
    names = spec.names
    p = len(names)
    lin, off = np.zeros((p, p)), np.zeros(p)
    ay = scale[0]

    def col(v):
        return _column_of(v, tuple(cov_names))

    shared = "m_z" in names

    def gamma_col(n):
        return col(n[6:] if shared else n[8:])

    for i, n in enumerate(names):
        if n in ("beta_b", "beta_w"):
            lin[i, i] = ay / scale[1]
        elif n.startswith("gamma_"):
            lin[i, i] = ay / scale[gamma_col(n)]
        elif n in ("sigma2", "tau2", "S[z,z]", "B[z,z]"):
            lin[i, i] = ay**2
        elif n in ("S[z,x]", "B[z,x]"):
            lin[i, i] = ay * scale[1]
        elif n in ("S[x,x]", "B[x,x]"):
            lin[i, i] = scale[1] ** 2
        elif n == "m_x":
            lin[i, i], off[i] = scale[1], loc[1]
        elif n.startswith(("phi_w[", "phi_b[")):
            u, v = n[n.index("[") + 1 : -1].split(",")
            lin[i, i] = scale[col(u)] * scale[col(v)]
        elif n.startswith("mu_"):
            c = col(n[3:])
            lin[i, i], off[i] = scale[c], loc[c]
    # intercepts (m_z of the shared form, alpha of the level-specific one) absorb the shifts
    # of the regressors that act at level 2
    idx = {n: i for i, n in enumerate(names)}
    head = idx["m_z" if shared else "alpha"]
    lin[head, head], off[head] = ay, loc[0]
    slopes = {} if shared else {"beta_b": 1}
    for n in names:
        if n.startswith("gamma_") and (shared or n.startswith("gamma_b_")):
            slopes[n] = gamma_col(n)
    for n, c in slopes.items():
        lin[head, idx[n]] = -ay / scale[c] * loc[c]
    return lin, off


def _inference(spec, theta, hess, free, opts, d: _Data):
    """Estimates, covariance and standard errors of the public labels, in the data's units."""
    known = ~free
    if opts.fixed_x is True:
        known[list(spec.exogenous)] = True
    p = theta.shape[0]
    vcov_s = np.zeros((p, p))
    idx = np.flatnonzero(~known)
    info = -hess[np.ix_(idx, idx)]
    ok = bool(np.all(np.isfinite(info)) and np.all(np.linalg.eigvalsh((info + info.T) / 2) > 0))
    vcov_s[np.ix_(idx, idx)] = np.linalg.inv(info) if ok else np.nan
    cov_names = d.frame.covariate_names
    lin, off = _units(spec, cov_names, d.loc, d.scale)
    theta_d = lin @ theta + off
    vcov_t = lin @ vcov_s @ lin.T
    if opts.covariates == "shared":
        k = len(cov_names)
        t = theta_d
        s = np.array([[t[k + 2], t[k + 3]], [t[k + 3], t[k + 4]]])
        sb = np.array([[t[k + 5], t[k + 6]], [t[k + 6], t[k + 7]]])
        labels, est, grad = shared_labels(t[None, :k], t[None, k : k + 2], s[None], sb[None])
        labels = [f"gamma_{cov_names[int(n[6:])]}" if n.startswith("gamma_") else n
                  for n in labels]
        est, grad = est[0], grad[0]
    else:
        labels, est, grad = _public_level_specific(spec, theta_d, cov_names)
    vc = grad @ vcov_t @ grad.T
    depends = np.abs(grad[:, ~known]).sum(axis=1) > 0
    vc[~depends, :] = np.nan
    vc[:, ~depends] = np.nan
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.where(np.diag(vc) >= 0, np.diag(vc), np.nan))
    nuis = [i for i, n in enumerate(spec.names) if n.startswith(("phi_", "mu_"))
            and n not in ("phi_w[x,x]", "phi_b[x,x]", "mu_x")]
    nuis_se = np.where(known[nuis], np.nan, np.sqrt(np.abs(np.diag(vcov_t)))[nuis])
    return {"labels": labels, "est": est, "se": se, "vcov": vc, "ok": ok, "theta": theta_d,
            "nuisance": pd.Series(theta_d[nuis], index=[spec.names[i] for i in nuis],
                                  dtype=float),
            "nuisance_se": pd.Series(nuis_se, index=[spec.names[i] for i in nuis], dtype=float)}


def _public_level_specific(spec, theta, cov_names):
    """Contract labels, estimates and the gradient of each label in the structural parameters."""
    idx = {n: i for i, n in enumerate(spec.names)}
    p = theta.shape[0]
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


def _loglik(spec, theta_s, d: _Data, opts: _Options) -> tuple[float, float]:
    """Joint and reported log-likelihood in the data's units (Jacobian of the standardisation)."""
    k = len(d.frame.covariate_names)
    logs = np.log(d.scale)
    modelled = logs[:2].sum() if opts.covariates == "shared" else logs.sum()
    joint = loglik(d.stats, spec.implied(theta_s)) - d.stats.n_obs * modelled
    if opts.fixed_x == "lavaan" and not opts.between_covariates and k > 0:
        cols = np.arange(2, 2 + k)
        llx = lavaan_loglik_x(d.stats, cols) - d.stats.n_obs * logs[2:].sum()
        return float(joint), float(joint - llx)
    return float(joint), float(joint)


def _boundary(spec, inf) -> tuple[str, ...]:
    """Variance parameters at or below zero (labels, then level-specific covariate variances)."""
    est = dict(zip(inf["labels"], inf["est"], strict=True))
    out = [lab for lab in VARIANCE_LABELS if not est[lab] > 0]
    theta = inf["theta"]
    out += [n for n, i in spec.variances.items()
            if n.startswith("phi_") and n not in ("phi_w[x,x]", "phi_b[x,x]")
            and not theta[i] > 0]
    return tuple(out)


def _no_estimate(inf: dict) -> dict:
    """Blank every estimate and standard error (there is no maximum to report)."""
    out = dict(inf)
    for key in ("est", "se", "vcov", "theta"):
        out[key] = np.full_like(inf[key], np.nan)
    for key in ("nuisance", "nuisance_se"):
        out[key] = inf[key] * np.nan
    return out


def _warn(boundary, inf, converged, n_iter, spike=None) -> None:
    if spike is not None:
        size, count, _ = spike
        warnings.warn(
            "no maximum likelihood estimate exists: the likelihood has no local maximum and "
            "grows without bound as the covariance of the group means of the "
            f"{count} group(s) of size {size} becomes singular (between variances far below "
            "zero; typical of few groups). Estimates, standard errors and the log-likelihood "
            "are NaN and `no_maximum` is True; use mlob() or fit_mcmc(), or more groups",
            InadmissibleWarning,
            stacklevel=3,
        )
        return
    if boundary:
        est = dict(zip(inf["labels"], inf["est"], strict=True))
        shown = ", ".join(
            f"{b} = {est[b]:.4g}" if b in est else b for b in boundary
        )
        warnings.warn(
            f"boundary ML solution: variance estimate(s) {shown} are not positive (Heywood "
            "case); the unbounded maximum is returned and listed in `boundary`. A between "
            "variance at or below zero leaves the between slope weakly identified (trust no "
            "Wald interval here); it is frequent with few groups and a low ICC of X",
            InadmissibleWarning,
            stacklevel=3,
        )
    if not converged:
        warnings.warn(
            f"ML optimisation did not converge after {n_iter} iterations (gradient not zero or "
            "Hessian not negative definite); estimates and standard errors are unreliable",
            NumericalWarning,
            stacklevel=3,
        )


def fit_ml(
    formula: str,
    data: Any,
    group: str | None = None,
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
        in :func:`mlob_pp.formula.parse.parse_formula`). The group may be given lme4-style
        instead of `group`: ``"y ~ x + c1 + (1 | school)"`` (identical results).
    data : pandas.DataFrame
        One row per level-1 unit; groups may be unbalanced and in any row order.
    group : str, optional
        Name of the grouping column (required unless the formula has a ``(1 | group)`` term).
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
        :mod:`mlob_pp.ml.lavaan`); this reproduces lavaan's two-level ML fit (including its
        lack of equivariance under shifts of X).
    conf_level : float
        Confidence level of the Wald intervals in :meth:`MLResult.to_frame` (0.95 is a 95%
        interval; note that R MLOB's ``conf.level`` is the significance level instead).
    missing : {"raise", "drop"}
        Missing-value handling, as in :func:`mlob_pp.formula.parse.parse_formula`.
    max_iter : int
        Maximum number of quasi-Newton iterations (and of the Newton steps that follow, at most
        50).
    tol : float
        Convergence tolerance on the Newton decrement of the log-likelihood (standardised
        units).

    Returns
    -------
    MLResult
        On the shared result protocol (``params``, ``bse``, ``conf_int()``, ``summary()``,
        ``to_frame()``, ``to_datatree()``); ``boundary`` lists variances at or below zero.

    Raises
    ------
    ValueError
        For an unknown `covariates` or `fixed_x`, ``between_covariates=False`` with shared
        slopes, ``fixed_x="lavaan"`` with shared slopes, fewer than 3 groups, a term without
        within-group variation, or collinear within-group parts (decided relative to the
        data's scale, :mod:`mlob_pp.design`).
    TypeError
        For arguments of the wrong type (and through :func:`~mlob_pp.formula.parse.parse_formula`).

    Warns
    -----
    mlob_pp.warnings.InadmissibleWarning
        If a variance estimate is at or below zero (a boundary solution, Heywood case), or if
        no maximum exists: the likelihood then grows without bound towards a singular
        covariance of the group means (few groups, between variances far below zero), and the
        result has NaN estimates and ``no_maximum=True``.
    mlob_pp.warnings.NumericalWarning
        If the optimiser did not converge.

    See Also
    --------
    mlob_pp.ml_batch : the same fit (shared form) for many balanced data sets at once.
    mlob_pp.mlob : the closed-form MLOB estimator (and R MLOB's ``ml_moments`` column).

    References
    ----------
    Lüdtke, O. et al. (2008). The multilevel latent covariate model. *Psychological Methods*,
    13(3), 203-229. https://doi.org/10.1037/a0012869

    Examples
    --------
    >>> import mlob_pp
    >>> hsb = mlob_pp.datasets.load("hsb")
    >>> fit = mlob_pp.fit_ml("mAch ~ ses + minrty + sx + (1 | school)", hsb)
    >>> print(round(fit.coef["beta_b"], 2), round(fit.se["beta_b"], 2), fit.converged)
    4.99 0.38 True
    >>> lav = mlob_pp.fit_ml("mAch ~ ses + minrty + sx", hsb, "school",
    ...                      covariates="level_specific", fixed_x="lavaan")
    >>> print(round(lav.coef["beta_b"], 2), round(lav.loglik, 1))
    5.43 -37364.1
    """
    opts = _check_options(covariates, between_covariates, fixed_x, conf_level, max_iter, tol)
    fixed_formula, group = resolve_group(formula, group)
    d = _prepare(fixed_formula, data, group, missing)
    spec, theta0, free = _setup(d, opts)
    tic = time.perf_counter()
    theta, hess, n_iter, converged = maximize(d.stats, spec, theta0, free, opts.max_iter,
                                              opts.tol)
    elapsed = time.perf_counter() - tic
    inf = _inference(spec, theta, hess, free, opts, d)
    converged = converged and inf["ok"]
    spike = None if converged else singular_class(d.stats, spec, theta)
    k = d.stats.within.shape[0] - 2
    if (spike is None and opts.covariates == "shared" and len(d.stats.sizes) == 1
            and int(d.stats.counts[0]) <= k + 2):
        # balanced data with J <= k + 2 groups: some gamma makes the group means collinear, so
        # the likelihood is unbounded and a local maximum is not an estimate (as ml_batch)
        spike = (int(d.stats.sizes[0]), int(d.stats.counts[0]), 0.0)
    if spike is not None:  # no maximum: the end point depends on the optimiser, not the data
        inf = _no_estimate(inf)
        ll_joint = ll = np.nan
        boundary = ()
    else:
        ll_joint, ll = _loglik(spec, theta, d, opts)
        boundary = _boundary(spec, inf)
    _warn(boundary, inf, converged, n_iter, spike)
    return _result(formula, group, opts, d, inf, ll_joint, ll, converged, n_iter, boundary,
                   elapsed, spike)


def _result(formula, group, opts, d, inf, ll_joint, ll, converged, n_iter, boundary, elapsed,
            spike):
    import scipy

    mf = d.frame
    labels = inf["labels"]
    return MLResult(
        estimates=pd.Series(inf["est"], index=labels, name="estimate"),
        std_errors=pd.Series(inf["se"], index=labels, name="std_error"),
        vcov=pd.DataFrame(inf["vcov"], index=labels, columns=labels),
        loglik=float(ll), converged=bool(converged), n_iter=int(n_iter), formula=formula,
        group=group, covariates=opts.covariates, between_covariates=opts.between_covariates,
        fixed_x=opts.fixed_x, conf_level=opts.conf_level, n_obs=mf.n_obs, n_groups=mf.n_groups,
        group_sizes=tuple(int(s) for s in mf.group_sizes), nuisance=inf["nuisance"],
        nuisance_se=inf["nuisance_se"], boundary=boundary, no_maximum=spike is not None,
        settings={
            "method": "ml", "loglik_joint": float(ll_joint), "information": "observed",
            "optimizer": "scipy BFGS + Newton (standardised data)", "tol": opts.tol,
            "max_iter": opts.max_iter, "elapsed_s": elapsed, "response": mf.response,
            "target": mf.target, "covariate_names": tuple(mf.covariate_names),
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "mlob_pp_version": mlob_pp_version, "numpy_version": np.__version__,
            "scipy_version": scipy.__version__,
        },
    )
