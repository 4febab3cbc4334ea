r"""PyMC counterparts of the variability models: one-way random-effects ANOVA and contextual model.

Null model (non-centred; :math:`z_j \sim N(0, 1)`):

.. math::

    Y_{ij} \sim N(\gamma_{00} + \tau z_j, \sigma^2), \qquad
    \tau^2 = \texttt{tau2},\ \sigma^2 = \texttt{sigma2},\
    \texttt{icc} = \tau^2/(\tau^2 + \sigma^2),

with ``school_mean`` :math:`= \gamma_{00} + \tau z_j` (dim ``group``), the Bayesian analogue of
the empirical-Bayes school means of :func:`mlob_pp.null_model`.

Contextual model with the observed group mean :math:`\bar X_j` (the manifest model, as
:func:`mlob_pp.contextual_model`; non-centred group effects :math:`\delta_j = \tau z_j`):

.. math::

    Y_{ij} \sim N(\alpha + \beta_w (X_{ij} - \bar X_j) + \beta_b \bar X_j + C_{ij}'\gamma
    + \delta_j, \sigma^2), \qquad \beta_c = \beta_b - \beta_w .

Internally :math:`\bar X_j` and the covariates are centred at their means (``alpha`` is mapped
back), so the intercept is not correlated with the slopes.

**Priors**, weakly informative and scaled to the data (:math:`s_y` = SD of Y):
``grand_mean, alpha ~ Normal(mean(Y), 10 s_y)``; every slope ``~ Normal(0, 10 s_y / s_v)`` with
:math:`s_v` the SD of its predictor; ``tau, sigma ~ HalfNormal(s_y)``.

Sampling uses nutpie (``pm.sample(nuts_sampler="nutpie")``); results are ArviZ 1.x
``DataTree`` objects with the names of the common format (``tau2``, ``sigma2``, ``icc``,
``grand_mean``, ``alpha``, ``beta_w``, ``beta_b``, ``beta_c``, ``gamma`` with dim ``term``, group
effects with dim ``group``). :func:`posterior_table` and :func:`compare_fits` put them next to the
REML/ML fits.

References
----------
Gelman, A., & Hill, J. (2007). *Data Analysis Using Regression and Multilevel/Hierarchical
Models*. Cambridge University Press. https://doi.org/10.1017/CBO9780511790942
Betancourt, M., & Girolami, M. (2015). Hamiltonian Monte Carlo for hierarchical models. In
*Current Trends in Bayesian Methodology with Applications*. CRC Press.
https://doi.org/10.1201/b18502-5
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.design import (
    check_frame,
    check_full_rank,
    check_variation,
    check_within_variation,
    column_values,
    group_index,
    has_variation,
)
from mlob_pp.formula.groups import resolve_group
from mlob_pp.formula.null import old_positional_call, parse_null_formula
from mlob_pp.formula.parse import parse_formula
from mlob_pp.provenance import make_attrs
from mlob_pp.validate import check_int, check_probability, reject_unknown, renamed_argument

__all__ = [
    "build_null_model",
    "build_contextual_model",
    "sample_null_model",
    "sample_contextual_model",
    "posterior_table",
    "compare_fits",
]

NULL_VARS = ("grand_mean", "tau2", "sigma2", "icc")
CONTEXTUAL_VARS = ("alpha", "beta_w", "beta_b", "beta_c", "gamma", "tau2", "sigma2", "icc")


def _labels(labels: np.ndarray) -> list:
    return [x.item() if isinstance(x, np.generic) else x for x in labels]


def build_null_model(y: np.ndarray, codes: np.ndarray, group_labels: Sequence[Any]) -> Any:
    """Build the non-centred PyMC null model.

    Parameters
    ----------
    y : ndarray, shape (N,)
        Outcome.
    codes : ndarray of int, shape (N,)
        Group index 0..J-1 of every row.
    group_labels : sequence, length J
        Coordinates of dim ``group``.

    Returns
    -------
    pymc.Model
    """
    import pymc as pm

    y = np.asarray(y, dtype=float)
    s_y = float(np.std(y)) or 1.0
    coords = {"group": _labels(np.asarray(group_labels)), "obs": np.arange(y.shape[0])}
    with pm.Model(coords=coords) as model:
        g = pm.Data("group_idx", np.asarray(codes, dtype=np.int64), dims="obs")
        grand_mean = pm.Normal("grand_mean", float(np.mean(y)), 10 * s_y)
        tau = pm.HalfNormal("tau", s_y)
        sigma = pm.HalfNormal("sigma", s_y)
        z = pm.Normal("z", 0.0, 1.0, dims="group")
        school_mean = pm.Deterministic("school_mean", grand_mean + tau * z, dims="group")
        pm.Normal("y", school_mean[g], sigma, observed=y, dims="obs")
        pm.Deterministic("tau2", tau**2)
        pm.Deterministic("sigma2", sigma**2)
        pm.Deterministic("icc", tau**2 / (tau**2 + sigma**2))
    return model


def build_contextual_model(
    y: np.ndarray,
    x: np.ndarray,
    covariates: np.ndarray,
    codes: np.ndarray,
    group_labels: Sequence[Any],
    covariate_names: Sequence[str] = (),
) -> Any:
    """Build the non-centred PyMC contextual model with the observed group mean of `x`.

    Parameters
    ----------
    y, x : ndarray, shape (N,)
        Outcome and target regressor X (split here into group mean and deviation).
    covariates : ndarray, shape (N, k)
        Further covariates (k may be 0).
    codes : ndarray of int, shape (N,)
        Group index 0..J-1.
    group_labels : sequence, length J
        Coordinates of dim ``group``.
    covariate_names : sequence of str
        Coordinates of dim ``term``.

    Returns
    -------
    pymc.Model
    """
    import pymc as pm

    y = np.asarray(y, dtype=float)
    codes = np.asarray(codes, dtype=np.int64)
    J = len(group_labels)
    n = np.bincount(codes, minlength=J)
    xbar = (np.bincount(codes, weights=x, minlength=J) / n)[codes]
    xw = x - xbar
    C = np.asarray(covariates, dtype=float).reshape(y.shape[0], -1)
    k = C.shape[1]
    s_y = float(np.std(y)) or 1.0
    mx, mc = float(np.mean(xbar)), C.mean(axis=0)
    sd = lambda v: float(np.std(v)) or 1.0  # noqa: E731
    coords = {
        "group": _labels(np.asarray(group_labels)),
        "obs": np.arange(y.shape[0]),
        "term": list(covariate_names),
    }
    with pm.Model(coords=coords) as model:
        g = pm.Data("group_idx", codes, dims="obs")
        alpha_c = pm.Normal("alpha_centred", float(np.mean(y)), 10 * s_y)
        beta_w = pm.Normal("beta_w", 0.0, 10 * s_y / sd(xw))
        beta_b = pm.Normal("beta_b", 0.0, 10 * s_y / sd(xbar))
        mu = alpha_c + beta_w * xw + beta_b * (xbar - mx)
        shift = beta_b * mx
        if k:
            gamma = pm.Normal("gamma", 0.0, 10 * s_y / np.array([sd(c) for c in C.T]),
                              dims="term")
            mu = mu + pm.math.dot(C - mc, gamma)
            shift = shift + pm.math.dot(mc, gamma)
        tau = pm.HalfNormal("tau", s_y)
        sigma = pm.HalfNormal("sigma", s_y)
        z = pm.Normal("z", 0.0, 1.0, dims="group")
        delta = pm.Deterministic("delta", tau * z, dims="group")
        pm.Normal("y", mu + delta[g], sigma, observed=y, dims="obs")
        pm.Deterministic("alpha", alpha_c - shift)
        pm.Deterministic("beta_c", beta_b - beta_w)
        pm.Deterministic("tau2", tau**2)
        pm.Deterministic("sigma2", sigma**2)
        pm.Deterministic("icc", tau**2 / (tau**2 + sigma**2))
    return model


def _sample(model, *, draws, tune, chains, random_seed, progressbar, attrs, estimator) -> Any:
    import pymc as pm

    draws = check_int(draws, "draws", minimum=1)
    tune = check_int(tune, "tune", minimum=0)
    chains = check_int(chains, "chains", minimum=1)
    idata = pm.sample(
        draws=draws,
        tune=tune,
        chains=chains,
        nuts_sampler="nutpie",
        random_seed=random_seed,
        progressbar=progressbar,
        model=model,
    )
    stamp = make_attrs(
        estimator,
        settings={"draws": draws, "tune": tune, "chains": chains, "sampler": "nutpie"},
        random_seed=random_seed,
        inference_library="pymc",
        extra=attrs,
    )
    idata.attrs.update(stamp)
    return idata


def sample_null_model(
    formula: Any,
    data: Any = None,
    group: Any = None,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    random_seed: Any = None,
    progress: bool = False,
    **deprecated: Any,
) -> Any:
    """Sample the Bayesian one-way random-effects ANOVA with nutpie.

    Parameters
    ----------
    formula : str
        ``"y ~ 1"`` (with `group`) or ``"y ~ 1 + (1 | school)"``.
    data : pandas.DataFrame
        One row per student.
    group : str, optional
        Grouping column (or give it in the formula); validated as in :func:`mlob_pp.null_model`.
    draws, tune, chains : int
        Sampler settings.
    random_seed : int or numpy.random.Generator, optional
        Seed.
    progress : bool
        Show nutpie's progress bar (``progressbar`` is the deprecated name).

    Returns
    -------
    xarray.DataTree
        ``posterior`` with ``grand_mean, tau2, sigma2, icc, tau, sigma`` and ``school_mean``,
        ``z`` (dim ``group``); ``attrs["estimator"] == "mcmc"``, ``attrs["model"] == "null"``.

    Notes
    -----
    The pre-0.2 call ``sample_null_model(data, "y", "g")`` still works, with a
    DeprecationWarning. The data are validated before the model is built.

    Examples
    --------
    >>> import mlob_pp
    >>> from mlob_pp.models.variability import sample_null_model
    >>> idata = sample_null_model("mAch ~ 1", mlob_pp.datasets.load("hsb"), "school",
    ...                           draws=200, tune=200, random_seed=1)  # doctest: +SKIP
    """
    progress = renamed_argument("sample_null_model", deprecated, "progressbar", "progress",
                                progress, default=False)
    reject_unknown("sample_null_model", deprecated)
    if old_positional_call("sample_null_model", formula, data,
                           "sample_null_model('y ~ 1', data, group='g')"):
        formula, data = f"{data} ~ 1", formula
    outcome, group = parse_null_formula(formula, group, "sample_null_model",
                                        "for predictors use sample_contextual_model")
    data = check_frame(data)
    y = column_values(data, outcome, "outcome", numeric=True)
    labels = column_values(data, group, "group", numeric=False)
    codes, uniques = group_index(labels, group)
    check_within_variation(y, codes, uniques.shape[0], outcome, role="outcome")
    model = build_null_model(y, codes, uniques)
    return _sample(
        model, draws=draws, tune=tune, chains=chains, random_seed=random_seed,
        progressbar=progress, estimator="mcmc",
        attrs={"model": "null", "outcome": outcome, "group": group, "n_obs": int(y.shape[0]),
               "n_groups": int(uniques.shape[0]), "formula": f"{outcome} ~ 1 + (1 | {group})"},
    )


def sample_contextual_model(
    formula: Any,
    data: Any = None,
    group: Any = None,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    random_seed: Any = None,
    progress: bool = False,
    **deprecated: Any,
) -> Any:
    """Sample the Bayesian contextual model (observed group means) with nutpie.

    Parameters
    ----------
    formula : str
        ``"y ~ x + covariates"`` (or with ``+ (1 | school)``); the first right-hand term is
        split (as in :func:`mlob_pp.contextual_model`).
    data : pandas.DataFrame
        One row per student.
    group : str, optional
        Grouping column (or give it in the formula).
    draws, tune, chains : int
        Sampler settings.
    random_seed : int or numpy.random.Generator, optional
        Seed.
    progress : bool
        Show nutpie's progress bar (``progressbar`` is the deprecated name).

    Returns
    -------
    xarray.DataTree
        ``posterior`` with ``alpha, beta_w, beta_b, beta_c, gamma`` (dim ``term``, if there are
        covariates), ``tau2, sigma2, icc`` and ``delta`` (dim ``group``);
        ``attrs["estimator"] == "manifest_mcmc"`` (the observed-group-mean model, not the latent
        covariate model of :func:`mlob_pp.fit_mcmc`), ``attrs["model"] ==
        "contextual_manifest"``.

    Notes
    -----
    The pre-0.2 call ``sample_contextual_model(data, formula, group)`` still works, with a
    DeprecationWarning. The design is checked (within and between variation of X, outcome
    variation, collinearity) before the model is built.
    """
    progress = renamed_argument("sample_contextual_model", deprecated, "progressbar", "progress",
                                progress, default=False)
    reject_unknown("sample_contextual_model", deprecated)
    if old_positional_call("sample_contextual_model", formula, data,
                           "sample_contextual_model('y ~ x', data, group='g')"):
        formula, data = data, formula
    formula, group = resolve_group(formula, group)
    mf = parse_formula(formula, data, group)
    _check_contextual_design(mf)
    model = build_contextual_model(
        mf.y, mf.x, mf.covariates, mf.group_codes, mf.group_labels, mf.covariate_names
    )
    return _sample(
        model, draws=draws, tune=tune, chains=chains, random_seed=random_seed,
        progressbar=progress, estimator="manifest_mcmc",
        attrs={"model": "contextual_manifest", "formula": formula, "group": group,
               "n_obs": mf.n_obs, "n_groups": mf.n_groups},
    )


def _check_contextual_design(mf: Any) -> None:
    """Check the split design as :func:`mlob_pp.contextual_model` does (before compiling)."""
    codes, J = mf.group_codes, mf.n_groups
    check_within_variation(mf.x, codes, J, mf.target, role="target")
    xbar_j = np.bincount(codes, weights=mf.x, minlength=J) / mf.group_sizes
    if not has_variation(xbar_j):
        raise ValueError(
            f"the group means of the target {mf.target!r} are all equal, so beta_b is not "
            "identified"
        )
    check_within_variation(mf.y, codes, J, mf.response, role="outcome")
    xw = mf.x - xbar_j[codes]
    names = ["beta_w", "beta_b", *(f"gamma_{c}" for c in mf.covariate_names)]
    for name, values in zip(names[2:], mf.covariates.T, strict=True):
        check_variation(values, name.removeprefix("gamma_"), role="`formula` term")
    check_full_rank(np.column_stack([xw, xbar_j[codes], mf.covariates]), names)


def posterior_table(
    idata: Any,
    var_names: Sequence[str] | None = None,
    *,
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Summarise posterior draws in the common format.

    Parameters
    ----------
    idata : xarray.DataTree
        Result of :func:`sample_null_model` or :func:`sample_contextual_model`.
    var_names : sequence of str, optional
        Scalar variables or ``gamma`` (default: those of the model that are present).
    conf_level : float
        Level of the equal-tailed credible interval.

    Returns
    -------
    pandas.DataFrame
        Index = labels (``gamma_<term>`` for ``gamma``); columns ``estimate`` (posterior mean),
        ``std_error`` (posterior SD), ``ci_lower``, ``ci_upper``, ``z``, ``p_value`` (NaN: not
        defined for MCMC), ``r_hat``, ``ess_bulk``, ``ess_tail``.
    """
    import arviz_stats as azs

    conf_level = check_probability(conf_level, "conf_level")
    post = idata["posterior"].to_dataset()
    if var_names is None:
        candidates = dict.fromkeys((*NULL_VARS[:1], *CONTEXTUAL_VARS, *NULL_VARS[1:]))
        var_names = [v for v in candidates if v in post]
    unknown = [v for v in var_names if v not in post]
    if unknown:
        raise ValueError(
            f"`var_names` has names not in the posterior: {unknown}; available: "
            f"{sorted(post.data_vars)}"
        )
    ds = post[list(var_names)]
    rhat = azs.rhat(ds)
    ess_b = azs.ess(ds, method="bulk")
    ess_t = azs.ess(ds, method="tail")
    lo, hi = (1 - conf_level) / 2, (1 + conf_level) / 2
    rows: dict[str, dict[str, float]] = {}
    for name in var_names:
        da = ds[name]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        labels = [(name, {})] if not extra else [
            (f"{name}_{c}", {extra[0]: c}) for c in da[extra[0]].values.tolist()
        ]
        for label, sel in labels:
            v = da.sel(sel).values.ravel()
            rows[label] = {
                "estimate": float(np.mean(v)),
                "std_error": float(np.std(v, ddof=1)),
                "ci_lower": float(np.quantile(v, lo)),
                "ci_upper": float(np.quantile(v, hi)),
                "z": np.nan,
                "p_value": np.nan,
                "r_hat": float(rhat[name].sel(sel)),
                "ess_bulk": float(ess_b[name].sel(sel)),
                "ess_tail": float(ess_t[name].sel(sel)),
            }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "parameter"
    return out


def compare_fits(fits: Mapping[str, Any], *, conf_level: float = 0.95) -> pd.DataFrame:
    """Put REML/ML fits and posterior draws side by side in the common format.

    Parameters
    ----------
    fits : mapping of str to result
        Estimator name (e.g. ``"reml"``, ``"ml"``, ``"mcmc"``) to a result of
        :func:`mlob_pp.null_model`, :func:`mlob_pp.contextual_model` (anything with
        ``.table()``) or a posterior ``DataTree``.
    conf_level : float
        Level of the credible intervals of posterior draws.

    Returns
    -------
    pandas.DataFrame
        Index (``parameter``, ``estimator``); the columns of the common format.

    Raises
    ------
    TypeError
        If `fits` is not a mapping or holds an object that is neither a fit nor a DataTree.
    """
    if not isinstance(fits, Mapping) or not fits:
        raise TypeError(
            f"`fits` must be a non-empty mapping of estimator name to result; got {fits!r}"
        )
    tables = []
    for name, fit in fits.items():
        if hasattr(fit, "table"):
            t = fit.table()
        elif hasattr(fit, "children") and "posterior" in fit.children:
            t = posterior_table(fit, conf_level=conf_level)
        else:
            raise TypeError(
                f"`fits[{name!r}]` must be a variability result or a posterior DataTree; got "
                f"{type(fit).__name__}"
            )
        tables.append(t.rename_axis("parameter").assign(estimator=str(name)))
    out = pd.concat(tables)
    order = list(dict.fromkeys(out.index))
    out = out.reset_index().set_index(["parameter", "estimator"])
    return out.loc[order]
