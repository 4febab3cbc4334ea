r"""Converters of every estimator's result to one common ArviZ format (``xarray.DataTree``).

All three estimators of the latent covariate model (Lüdtke et al. 2008)

.. math::

    X_{ij} = \mu_x + u_j + e_{ij}, \qquad
    Y_{ij} = \alpha + \beta_b(\mu_x + u_j) + \beta_w(X_{ij} - \mu_x - u_j)
             + C_{ij}'\gamma + \delta_j + \varepsilon_{ij}

end in the same layout, so that ArviZ functions and :func:`mlob_pp.comparisons.compare` treat
them alike:

``posterior`` (dims ``chain``, ``draw``)
    Draws of ``beta_b``, ``beta_w``, ``beta_c``, ``gamma`` (dim ``term``, R-style covariate
    names as coordinates), ``alpha``, ``mu_x``, ``tau2_x``, ``sigma2_x``, ``icc_x``, ``tau2``,
    ``sigma2`` — whichever the estimator provides. For the closed-form MLOB and for true ML these
    are draws from the estimator's normal sampling distribution (``posterior_kind =
    "normal_approximation"``); for PyMC they are the MCMC draws (``posterior_kind = "mcmc"``).
``point_estimate`` (closed form and ML only)
    The exact estimates, with the same variable names and dims as ``posterior`` minus
    ``chain``/``draw``; its child nodes ``point_estimate/std_error`` (standard errors) and
    ``point_estimate/conf_interval`` (Wald or R-MLOB intervals, extra dim
    ``ci_bound = ["lower", "upper"]``) hold the same variables.
``log_likelihood``
    ML: ``loglik``, the total log-likelihood at the maximum (no sample dims). MCMC: the pointwise
    log-likelihood written by PyMC (``chain``, ``draw``, ``obs``...). MLOB: absent (the
    estimator has no likelihood).
``observed_data``, ``sample_stats``, ...
    Kept from PyMC where present.

Every group and the root carry the same provenance attributes, built by :func:`make_attrs`:
``estimator``, ``mlob_pp_version``, ``created_at``, ``creation_library``,
``inference_library`` (+ version), ``posterior_kind``, ``settings`` (JSON text), ``random_seed``,
``conf_level``, ``formula``, ``group``, ``n_obs``, ``n_groups``. Attribute values are strings
and numbers only, so a result written to netCDF reads back unchanged.

References
----------
Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B. (2008).
The multilevel latent covariate model. *Psychological Methods*, 13(3), 203-229.
https://doi.org/10.1037/a0012869
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from mlob_pp.provenance import make_attrs
from mlob_pp.seeds import seed_attr

__all__ = [
    "PARAMETERS",
    "VECTOR_PARAMETERS",
    "DISPLAY_ORDER",
    "ESTIMATORS",
    "from_mlob",
    "from_ml",
    "from_pymc",
    "make_attrs",
    "labels_to_dataset",
]

#: Scalar parameters of the latent covariate model, in display order.
PARAMETERS: tuple[str, ...] = (
    "beta_b",
    "beta_w",
    "beta_c",
    "alpha",
    "mu_x",
    "tau2_x",
    "sigma2_x",
    "icc_x",
    "tau2",
    "sigma2",
)
#: Covariate coefficient vectors (dim ``term``); the Series label is ``<name>_<term>``.
VECTOR_PARAMETERS: tuple[str, ...] = ("gamma_w", "gamma_b", "gamma")
#: Order of the variables in every group (and of the rows of comparison tables).
DISPLAY_ORDER: tuple[str, ...] = (
    "beta_b",
    "beta_w",
    "beta_c",
    "gamma",
    "gamma_w",
    "gamma_b",
    *PARAMETERS[3:],
)
#: Estimator names used in ``attrs["estimator"]``.
ESTIMATORS: tuple[str, ...] = ("mlob", "ml_moments", "ml", "mcmc")

_SAMPLE_DIMS = ("chain", "draw")
_MLOB_ESTIMATORS = ("mlob", "ml_moments")
_SUMMARY_ALIASES = {"mlob": "mlob", "ml_moments": "ml"}


# ------------------------------------------------------------------------ labels <-> dataset


def _split_label(label: str, terms: Sequence[str] | None) -> tuple[str, str | None]:
    """Split a Series label into (variable, term); ``gamma_ses`` -> ``("gamma", "ses")``."""
    if label in PARAMETERS:
        return label, None
    for prefix in VECTOR_PARAMETERS:  # gamma_w_/gamma_b_ before gamma_
        start = prefix + "_"
        if label.startswith(start):
            term = label[len(start) :]
            if prefix != "gamma" and terms is not None and term not in terms:
                # a covariate literally called "w_..." or "b_...": plain gamma
                if label[len("gamma_") :] in terms:
                    return "gamma", label[len("gamma_") :]
            return prefix, term
    return label, None


def labels_to_dataset(
    values: pd.Series | Mapping[str, Any],
    *,
    terms: Sequence[str] | None = None,
    extra_dims: Mapping[str, Sequence[Any]] | None = None,
) -> xr.Dataset:
    """Turn labelled values (``beta_b``, ``gamma_ses``, ...) into a Dataset of named variables.

    Parameters
    ----------
    values : Series or mapping
        Index = Series labels of the common names (``beta_b``, ``gamma_<term>``,
        ``gamma_w_<term>``, ``gamma_b_<term>``, ``tau2``, ...); each value is a scalar or an
        array whose trailing shape is given by `extra_dims` (e.g. draws or CI bounds).
    terms : sequence of str, optional
        R-style covariate names, used to keep their order and to resolve ambiguous labels.
    extra_dims : mapping, optional
        Leading dims of every value (e.g. ``{"chain": [0, 1], "draw": range(100)}``); the
        ``term`` dim is appended last.

    Returns
    -------
    xarray.Dataset
        Scalar parameters as variables with `extra_dims`, covariate coefficients as
        ``gamma`` (dims ``*extra_dims, term``) and likewise ``gamma_w``/``gamma_b``.
    """
    extra_dims = dict(extra_dims or {})
    dims = tuple(extra_dims)
    shape = tuple(len(v) for v in extra_dims.values())
    scalars: dict[str, np.ndarray] = {}
    vectors: dict[str, dict[str, np.ndarray]] = {}
    for label, value in dict(values).items():
        name, term = _split_label(str(label), terms)
        arr = np.broadcast_to(np.asarray(value, dtype=float), shape)
        if term is None:
            scalars[name] = arr
        else:
            vectors.setdefault(name, {})[term] = arr
    data_vars: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    coords: dict[str, Any] = {k: np.asarray(list(v)) for k, v in extra_dims.items()}
    term_sets = {tuple(v) for v in vectors.values()}
    for name in vectors:
        found = list(vectors[name])
        if terms is not None:
            found = [t for t in terms if t in vectors[name]] + [t for t in found if t not in terms]
        dim = "term" if len(term_sets) == 1 or name == "gamma" else f"term_{name[-1]}"
        coords[dim] = np.asarray(found, dtype=str)
        data_vars[name] = (
            (*dims, dim),
            np.stack([vectors[name][t] for t in found], axis=-1) if found else np.empty(shape),
        )
    for name, arr in scalars.items():
        data_vars[name] = (dims, np.array(arr))
    order = [p for p in DISPLAY_ORDER if p in data_vars] + [
        p for p in data_vars if p not in DISPLAY_ORDER
    ]
    data_vars = {name: data_vars[name] for name in order}
    return xr.Dataset(data_vars, coords=coords)


# ------------------------------------------------------------------------ normal draws


def _normal_draws(
    estimate: pd.Series,
    std_error: pd.Series,
    vcov: pd.DataFrame | None,
    *,
    chains: int,
    draws: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Draw from N(estimate, vcov) (correlated where `vcov` covers labels, else independent)."""
    n = chains * draws
    out: dict[str, np.ndarray] = {}
    covered: list[str] = []
    if vcov is not None:
        covered = [
            lab
            for lab in estimate.index
            if lab in vcov.index and lab in vcov.columns and np.isfinite(estimate[lab])
        ]
        cov = vcov.loc[covered, covered].to_numpy(dtype=float) if covered else None
        if cov is not None and not np.all(np.isfinite(cov)):
            covered, cov = [], None
        if covered and cov is not None:
            cov = (cov + cov.T) / 2
            evals, evecs = np.linalg.eigh(cov)
            root = evecs * np.sqrt(np.clip(evals, 0.0, None))
            z = rng.standard_normal((n, len(covered)))
            sample = estimate[covered].to_numpy(dtype=float) + z @ root.T
            for i, lab in enumerate(covered):
                out[lab] = sample[:, i]
    for lab in estimate.index:
        if lab in out:
            continue
        if (
            lab == "beta_c"
            and "beta_b" in out
            and "beta_w" in out
            and "beta_b" in covered
            and "beta_w" in covered
        ):
            out[lab] = out["beta_b"] - out["beta_w"]  # derived: keeps the correlation
            continue
        se = float(std_error.get(lab, np.nan))
        out[lab] = float(estimate[lab]) + se * rng.standard_normal(n)
    return {lab: v.reshape(chains, draws) for lab, v in out.items()}


def _as_rng(random_seed: Any) -> np.random.Generator:
    """Return a numpy Generator from None, a non-negative int or a Generator."""
    if isinstance(random_seed, np.random.Generator):
        return random_seed
    if random_seed is None or (
        isinstance(random_seed, (int, np.integer)) and not isinstance(random_seed, bool)
    ):
        if random_seed is not None and random_seed < 0:
            raise ValueError(
                f"`random_seed` must be a non-negative integer seed; got {random_seed}"
            )
        return np.random.default_rng(random_seed)
    raise TypeError(
        "`random_seed` must be None, a non-negative int or a numpy Generator; "
        f"got {type(random_seed).__name__}"
    )


def _check_shape(chains: Any, draws: Any) -> tuple[int, int]:
    from mlob_pp.validate import check_int

    return check_int(chains, "chains", minimum=1), check_int(draws, "draws", minimum=1)


def _build_tree(
    *,
    estimate: pd.Series,
    std_error: pd.Series,
    ci_lower: pd.Series,
    ci_upper: pd.Series,
    vcov: pd.DataFrame | None,
    terms: Sequence[str] | None,
    chains: int,
    draws: int,
    random_seed: Any,
    attrs: dict[str, Any],
    log_likelihood: xr.Dataset | None = None,
) -> xr.DataTree:
    rng = _as_rng(random_seed)
    sample = _normal_draws(estimate, std_error, vcov, chains=chains, draws=draws, rng=rng)
    sample_dims = {"chain": np.arange(chains), "draw": np.arange(draws)}
    posterior = labels_to_dataset(sample, terms=terms, extra_dims=sample_dims)
    point = labels_to_dataset(estimate, terms=terms)
    se = labels_to_dataset(std_error.reindex(estimate.index), terms=terms)
    bounds = {
        lab: np.array([ci_lower.get(lab, np.nan), ci_upper.get(lab, np.nan)])
        for lab in estimate.index
    }
    ci = labels_to_dataset(bounds, terms=terms, extra_dims={"ci_bound": ["lower", "upper"]})
    # ci_bound last, like arviz_stats.eti
    ci = ci.transpose(*[d for d in ci.dims if d != "ci_bound"], "ci_bound")
    nodes: dict[str, xr.Dataset] = {
        "posterior": posterior,
        "point_estimate": point,
        "point_estimate/std_error": se,
        "point_estimate/conf_interval": ci,
    }
    if log_likelihood is not None:
        nodes["log_likelihood"] = log_likelihood
    tree = xr.DataTree.from_dict(nodes)
    _stamp(tree, attrs)
    return tree


def _stamp(tree: xr.DataTree, attrs: Mapping[str, Any]) -> None:
    """Set the provenance attributes on the root and on every group (node)."""
    for node in tree.subtree:
        node.attrs = {**node.attrs, **attrs}


# ---------------------------------------------------------------------------- converters


def _getattr_any(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return default


def from_mlob(
    res: Any,
    *,
    estimator: str = "mlob",
    chains: int = 4,
    draws: int = 1000,
    random_seed: Any = None,
) -> xr.DataTree:
    """Convert a closed-form MLOB result to the common DataTree format.

    Parameters
    ----------
    res : MLOBResult
        Result of :func:`mlob_pp.mlob` (any object with ``summary_frame(kind)``, ``conf_level``,
        ``settings``, ``balancing``, ``formula``, ``group``, ``n_obs``, ``n_groups``,
        ``covariate_names`` works).
    estimator : {"mlob", "ml_moments"}, default "mlob"
        Which of R MLOB's two tables to convert: the regularized (optimally Bayes) estimator, or
        its "ML" column, a moment ratio (called ``"ml_moments"`` here to keep it apart from true
        ML).
    chains, draws : int, default 4 and 1000
        Shape of the normal-approximation draws in ``posterior``; use the MCMC shape so ArviZ
        plots can put the estimators side by side.
    random_seed : int, Generator or None, optional
        Seed of the normal-approximation draws (independent normals from the SEs: MLOB reports
        no covariance between its coefficients).

    Returns
    -------
    xarray.DataTree
        Groups ``posterior`` (``beta_b``, ``gamma`` with dim ``term``), ``point_estimate`` and
        its children ``std_error`` and ``conf_interval`` (dim ``ci_bound``); no
        ``log_likelihood`` (MLOB has none). Attributes: see :func:`make_attrs`, plus
        ``balancing`` (JSON) and ``posterior_kind = "normal_approximation"``.

    Raises
    ------
    ValueError
        If `estimator` is not ``"mlob"`` or ``"ml_moments"``, or `chains`/`draws` < 1.
    TypeError
        If `res` has no ``summary_frame`` method.

    See Also
    --------
    from_ml, from_pymc, mlob_pp.comparisons.compare

    References
    ----------
    Dashkin, V., et al. MultiLevelOptimalBayes (MLOB), R package 0.0.2.0.
    https://github.com/MLOB-dev/MLOB

    Examples
    --------
    >>> import mlob_pp
    >>> from mlob_pp.comparisons import from_mlob
    >>> df = mlob_pp.datasets.load("hsb")
    >>> res = mlob_pp.mlob("mAch ~ ses + minrty + sx", df, "school",
    ...                    balancing_limit=0.5, random_state=1)  # doctest: +SKIP
    >>> dt = from_mlob(res, chains=2, draws=500, random_seed=1)  # doctest: +SKIP
    >>> dt.point_estimate["beta_b"]  # doctest: +SKIP
    """
    if estimator not in _MLOB_ESTIMATORS:
        raise ValueError(
            f"`estimator` must be one of {_MLOB_ESTIMATORS} (R MLOB's regularized table or its "
            f"'ML' moment-ratio column); got {estimator!r}"
        )
    if not callable(getattr(res, "summary_frame", None)):
        raise TypeError(
            "`res` must be an MLOBResult (an object with a summary_frame() method); "
            f"got {type(res).__name__}"
        )
    chains, draws = _check_shape(chains, draws)
    table = res.summary_frame(_SUMMARY_ALIASES[estimator])
    terms = list(_getattr_any(res, "covariate_names", default=[]) or [])
    settings = dict(getattr(res, "settings", {}) or {})
    conf_level = float(_getattr_any(res, "conf_level", default=0.95))
    attrs = make_attrs(
        estimator,
        settings=settings,
        random_seed=settings.get("random_state"),
        inference_library="mlob_pp",
        extra={
            "posterior_kind": "normal_approximation",
            "draws_random_seed": seed_attr(random_seed),
            "conf_level": conf_level,
            "formula": getattr(res, "formula", None),
            "group": getattr(res, "group", None),
            "n_obs": getattr(res, "n_obs", None),
            "n_groups": getattr(res, "n_groups", None),
            "group_size": getattr(res, "group_size", None),
            "se_method": (getattr(res, "se_method", None) if estimator == "mlob"
                          else "analytic"),
            "interval_method": (getattr(res, "interval_method", "wald") if estimator == "mlob"
                                else "wald"),
            "balancing": {  # counts only: the kept row positions stay on the result
                k: v
                for k, v in dict(getattr(res, "balancing", None) or {}).items()
                if k != "kept_rows"
            }
            or None,
        },
    )
    return _build_tree(
        estimate=table["estimate"],
        std_error=table["std_error"],
        ci_lower=table["ci_lower"],
        ci_upper=table["ci_upper"],
        vcov=None,
        terms=terms,
        chains=chains,
        draws=draws,
        random_seed=random_seed,
        attrs=attrs,
    )


_ML_SETTINGS = ("covariates", "method", "optimizer", "tol", "maxiter", "reml")


def from_ml(
    res: Any,
    *,
    chains: int = 4,
    draws: int = 1000,
    random_seed: Any = None,
    conf_level: float | None = None,
) -> xr.DataTree:
    """Convert a true-ML result of the latent covariate model to the common DataTree format.

    Parameters
    ----------
    res : MLResult
        Result of :func:`mlob_pp.fit_ml` (any object with ``coef``, ``se`` and optionally
        ``vcov``, ``loglik``, ``converged``, ``summary_frame()`` works).
    chains, draws : int, default 4 and 1000
        Shape of the normal-approximation draws in ``posterior``.
    random_seed : int, Generator or None, optional
        Seed of the draws. They come from the multivariate normal N(coef, vcov) over the
        parameters that ``vcov`` covers (so correlations are kept; ``beta_c`` is derived as
        ``beta_b - beta_w`` when ``vcov`` lacks it) and from independent normals otherwise.
    conf_level : float, optional
        Level of the Wald intervals in ``point_estimate/conf_interval`` when they are computed
        here; by default the intervals of ``res.summary_frame()`` (or 0.95 Wald intervals).

    Returns
    -------
    xarray.DataTree
        Groups ``posterior``, ``point_estimate`` (+ ``std_error``, ``conf_interval``) and
        ``log_likelihood`` (variable ``loglik``: the total log-likelihood at the maximum, no
        sample dims); attributes as in :func:`make_attrs` with ``estimator = "ml"`` and
        ``converged``.

    Raises
    ------
    TypeError
        If `res` has no ``coef``/``se`` Series.
    ValueError
        If `chains`/`draws` < 1 or `conf_level` is not in (0, 1).

    References
    ----------
    Lüdtke, O., et al. (2008). The multilevel latent covariate model. *Psychological Methods*,
    13(3), 203-229. https://doi.org/10.1037/a0012869
    """
    from scipy import stats

    from mlob_pp.validate import check_probability

    coef = getattr(res, "coef", None)
    se = getattr(res, "se", None)
    if not isinstance(coef, pd.Series) or not isinstance(se, pd.Series):
        raise TypeError(
            "`res` must be an MLResult (an object with `coef` and `se` pandas Series); "
            f"got {type(res).__name__}"
        )
    chains, draws = _check_shape(chains, draws)
    table = None
    if callable(getattr(res, "summary_frame", None)):
        table = res.summary_frame()
    own_level = float(_getattr_any(res, "conf_level", default=0.95))
    if conf_level is not None:
        conf_level = check_probability(conf_level, "conf_level")
    if (
        table is not None
        and {"ci_lower", "ci_upper"} <= set(table.columns)
        and (conf_level is None or np.isclose(conf_level, own_level))
    ):
        lower, upper = table["ci_lower"], table["ci_upper"]
        level = own_level
    else:
        level = 0.95 if conf_level is None else conf_level
        q = stats.norm.ppf(0.5 + level / 2)
        lower, upper = coef - q * se, coef + q * se
    vcov = getattr(res, "vcov", None)
    settings = dict(getattr(res, "settings", {}) or {})
    for key in _ML_SETTINGS:
        if key not in settings and hasattr(res, key):
            settings[key] = getattr(res, key)
    log_likelihood = None
    loglik = getattr(res, "loglik", None)
    if loglik is not None:
        log_likelihood = xr.Dataset({"loglik": ((), float(loglik))})
        log_likelihood["loglik"].attrs["description"] = (
            "total log-likelihood at the maximum (not pointwise; no sample dims)"
        )
    attrs = make_attrs(
        "ml",
        settings=settings,
        random_seed=None,
        inference_library="mlob_pp",
        extra={
            "posterior_kind": "normal_approximation",
            "draws_random_seed": seed_attr(random_seed),
            "conf_level": level,
            "converged": getattr(res, "converged", None),
            "formula": getattr(res, "formula", None),
            "group": getattr(res, "group", None),
            "n_obs": getattr(res, "n_obs", None),
            "n_groups": getattr(res, "n_groups", None),
        },
    )
    terms = list(_getattr_any(res, "covariate_names", default=[]) or []) or None
    return _build_tree(
        estimate=coef,
        std_error=se,
        ci_lower=lower,
        ci_upper=upper,
        vcov=vcov if isinstance(vcov, pd.DataFrame) else None,
        terms=terms,
        chains=chains,
        draws=draws,
        random_seed=random_seed,
        attrs=attrs,
        log_likelihood=log_likelihood,
    )


_MCMC_SETTINGS = (
    "covariates",
    "draws",
    "tune",
    "chains",
    "random_seed",
    "conf_level",
    "compile_time",
    "sampling_time",
)


def from_pymc(
    idata: Any,
    *,
    settings: Mapping[str, Any] | None = None,
    random_seed: Any = None,
) -> xr.DataTree:
    """Stamp a PyMC result of the latent covariate model with the common-format attributes.

    Parameters
    ----------
    idata : xarray.DataTree or MCMCResult
        What ``pymc.sample`` returned (ArviZ 1.x DataTree) or a result of
        :func:`mlob_pp.fit_mcmc` (its ``idata`` is used, and its ``settings`` /
        ``random_seed`` / ``formula`` / ``group`` attributes if present). The posterior must
        use the common names (``beta_b``, ``gamma`` with dim ``term``, ...).
    settings : mapping, optional
        Sampler settings to record (default: the result's ``settings`` or the sampler attributes
        of the posterior).
    random_seed : int, Generator or None, optional
        Seed to record (default: the result's ``random_seed`` / ``settings["random_seed"]``).

    Returns
    -------
    xarray.DataTree
        A copy with every group kept (``posterior``, ``sample_stats``, ``log_likelihood``,
        ``observed_data``, ...), ``term`` coordinates as strings and provenance attributes
        (``estimator = "mcmc"``, ``posterior_kind = "mcmc"``, ``inference_library = "pymc"``).
        No ``point_estimate`` group: :func:`~mlob_pp.comparisons.compare` summarizes the draws.

    Raises
    ------
    TypeError
        If `idata` is neither a DataTree nor an object with an ``idata`` DataTree.
    ValueError
        If it has no ``posterior`` group with ``chain`` and ``draw`` dims.
    """
    result = None
    if not isinstance(idata, xr.DataTree):
        result = idata
        idata = getattr(idata, "idata", None)
        if not isinstance(idata, xr.DataTree):
            raise TypeError(
                "`idata` must be an xarray.DataTree (ArviZ 1.x InferenceData) or an MCMCResult "
                f"with an `idata` attribute; got {type(result).__name__}"
            )
    if "posterior" not in idata.children:
        raise ValueError(
            f"`idata` must have a 'posterior' group; got groups {sorted(idata.children)}"
        )
    post = idata["posterior"]
    if not {"chain", "draw"} <= set(post.dims):
        raise ValueError(
            f"`idata.posterior` must have dims ('chain', 'draw'); got {tuple(post.dims)}"
        )
    tree = idata.copy(deep=False)
    for node in tree.subtree:
        for dim in ("term", "term_w", "term_b"):
            if dim in node.coords and dim in node.dataset.indexes:
                ds = node.to_dataset(inherit=False)
                if dim in ds.coords:
                    node.dataset = ds.assign_coords({dim: ds[dim].astype(str).values})
    settings = dict(settings or getattr(result, "settings", None) or {})
    if not settings and result is not None:
        for key in _MCMC_SETTINGS:
            value = getattr(result, key, None)
            if isinstance(value, (int, float, str, bool, np.integer, np.floating)):
                settings[key] = value
    if not settings:
        for key in ("tuning_steps", "sampling_time"):
            if key in post.attrs:
                settings[key] = post.attrs[key]
        settings.setdefault("chains", int(post.sizes["chain"]))
        settings.setdefault("draws", int(post.sizes["draw"]))
    if random_seed is None:
        random_seed = _getattr_any(result, "random_seed", default=settings.get("random_seed"))
    attrs = make_attrs(
        "mcmc",
        settings=settings,
        random_seed=random_seed,
        inference_library="pymc",
        extra={
            "posterior_kind": "mcmc",
            "formula": getattr(result, "formula", None),
            "group": getattr(result, "group", None),
            "n_obs": getattr(result, "n_obs", None),
            "n_groups": getattr(result, "n_groups", None),
        },
    )
    _stamp(tree, attrs)
    return tree
