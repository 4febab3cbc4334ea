r"""Converters of every estimator's result to the common format (``xarray.DataTree``).

The estimators of the latent covariate model (Lüdtke et al. 2008)

.. math::

    X_{ij} = \mu_x + u_j + e_{ij}, \qquad
    Y_{ij} = \alpha + \beta_b(\mu_x + u_j) + \beta_w(X_{ij} - \mu_x - u_j)
             + C_{ij}'\gamma + \delta_j + \varepsilon_{ij}

end in one layout (``docs/architecture_common_format.md``), which says what the numbers are:

``estimate`` (closed-form MLOB, ``ml_moments``, ML)
    The exact table of a point estimator, built by :func:`mlob_pp.common_format.estimate_tree`:
    coordinates ``term`` (``beta_b``, ``gamma_<term>``, ``tau2``, ...) and ``ci_bound``;
    variables ``estimate``, ``std_error``, ``ci`` (dims ``term, ci_bound``), ``z``,
    ``p_value``; attrs ``conf_level``, ``interval_method``, ``se_method``. There is no
    ``posterior``: ArviZ functions that need one raise
    :class:`mlob_pp.common_format.NotAPosteriorError`.
``normal_approximation`` (only on request, ``draws=``)
    Draws from the estimator's normal sampling distribution, dims ``chain``, ``draw`` (named for
    what they are; never ``posterior``).
``posterior``, ``sample_stats`` (PyMC MCMC)
    The real MCMC draws; ``log_likelihood`` (pointwise) only when asked for.

Every group and the root carry the provenance attributes of
:func:`mlob_pp.provenance.make_attrs`.

References
----------
Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B. (2008).
The multilevel latent covariate model. *Psychological Methods*, 13(3), 203-229.
https://doi.org/10.1037/a0012869
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from mlob_pp.common_format import (
    ESTIMATE_GROUP,
    as_point_estimate,
    estimate_frame,
    estimate_tree,
    has_posterior,
)
from mlob_pp.comparisons.labels import (
    DISPLAY_ORDER,
    ESTIMATORS,
    PARAMETERS,
    VECTOR_PARAMETERS,
    labels_to_dataset,
    split_label,
)
from mlob_pp.comparisons.normal import normal_approximation
from mlob_pp.provenance import make_attrs
from mlob_pp.tables import wald_table
from mlob_pp.validate import check_bool, check_int, check_probability

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
    "split_label",
]

_MLOB_ESTIMATORS = ("mlob", "ml_moments")
_SUMMARY_ALIASES = {"mlob": "mlob", "ml_moments": "ml"}

# ---------------------------------------------------------------------------- converters

#: results whose to_datatree() is being called by a converter (guards against a to_datatree
#: that itself calls back into from_mlob / from_ml)
_IN_TO_DATATREE: set[int] = set()


@contextlib.contextmanager
def _guard(res: Any) -> Iterator[bool]:
    key = id(res)
    entered = key not in _IN_TO_DATATREE
    if entered:
        _IN_TO_DATATREE.add(key)
    try:
        yield entered
    finally:
        if entered:
            _IN_TO_DATATREE.discard(key)


def _own_tree(res: Any, **kwargs: Any) -> xr.DataTree | None:
    """Return ``res.to_datatree(**kwargs)`` if it gives a tree with an ``estimate`` group.

    Keyword arguments the method does not accept are dropped (``None`` is returned when one of
    them matters, so that the caller builds the tree from the table instead).
    """
    method = getattr(res, "to_datatree", None)
    if not callable(method):
        return None
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return None
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    call = {k: v for k, v in kwargs.items() if k in params or var_kw}
    if any(kwargs[k] != _DEFAULTS.get(k) for k in set(kwargs) - set(call)):
        return None  # the method cannot give what was asked for
    with _guard(res) as entered:
        if not entered:
            return None
        tree = method(**call)
    if not isinstance(tree, xr.DataTree) or ESTIMATE_GROUP not in tree.children:
        return None  # an older to_datatree (normal-approximation posterior): rebuild
    return as_point_estimate(tree)


_DEFAULTS: dict[str, Any] = {"estimator": "mlob"}


def _getattr_any(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return default


def _table_of(res: Any, which: str | None = None) -> pd.DataFrame | None:
    """Return the estimate table (summary_frame / to_frame), or None."""
    for name in ("summary_frame", "to_frame"):
        method = getattr(res, name, None)
        if not callable(method):
            continue
        if which is not None and name == "summary_frame":
            table = method(which)
        elif which not in (None, "mlob") and name == "to_frame":
            continue  # to_frame() is the main (regularised) table only
        else:
            table = method()
        if isinstance(table, pd.DataFrame):
            return table
    return None


def _check_draws(chains: Any, draws: Any) -> tuple[int, int | None]:
    chains = check_int(chains, "chains", minimum=1)
    if draws is not None:
        draws = check_int(draws, "draws", minimum=1)
    return chains, draws


def _add_group(tree: xr.DataTree, name: str, group: xr.Dataset) -> xr.DataTree:
    group = group.copy()
    group.attrs = {**tree.attrs, **group.attrs}
    tree[name] = xr.DataTree(group)
    return tree


def from_mlob(
    res: Any,
    *,
    estimator: str = "mlob",
    draws: int | None = None,
    chains: int = 1,
    random_seed: Any = None,
) -> xr.DataTree:
    """Convert a closed-form MLOB result to the common format.

    Parameters
    ----------
    res : MLOBResult
        Result of :func:`mlob_pp.mlob`. Its own ``to_datatree()`` is used when it provides the
        ``estimate`` group; otherwise the tree is built from ``summary_frame(which)`` (any
        object with that method, ``conf_level``, ``se_method``, ``interval_method``,
        ``settings``, ``balancing``, ``formula``, ``group``, ``n_obs``, ``n_groups`` works).
    estimator : {"mlob", "ml_moments"}, default "mlob"
        Which of R MLOB's two tables to convert: the regularised estimator, or its "ML" column,
        a moment ratio (``"ml_moments"``, to keep it apart from true ML).
    draws : int, optional
        If given, also store `draws` x `chains` draws from the normal approximation
        N(estimate, SE²) in a group ``normal_approximation`` (never ``posterior``).
    chains : int, default 1
        Chains of the normal-approximation draws.
    random_seed : int, Generator or None, optional
        Seed of the normal-approximation draws.

    Returns
    -------
    xarray.DataTree
        A :class:`~mlob_pp.common_format.PointEstimateTree` with the group ``estimate`` (the
        exact table: ``estimate``, ``std_error``, ``ci``, ``z``, ``p_value`` over ``term``;
        attrs ``conf_level``, ``interval_method``, ``se_method``) and the provenance attrs
        (``estimator``, ``formula``, ``group``, ``n_obs``, ``n_groups``, ``balancing`` ...).

    Raises
    ------
    ValueError
        If `estimator` is not ``"mlob"`` or ``"ml_moments"``, or `draws`/`chains` < 1.
    TypeError
        If `res` has no estimate table.

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
    ...                    balancing_limit=0.5, random_seed=1)  # doctest: +SKIP
    >>> from_mlob(res)["estimate"]["estimate"].sel(term="beta_b")  # doctest: +SKIP
    """
    if estimator not in _MLOB_ESTIMATORS:
        raise ValueError(
            f"`estimator` must be one of {_MLOB_ESTIMATORS} (R MLOB's regularized table or its "
            f"'ML' moment-ratio column); got {estimator!r}"
        )
    chains, draws = _check_draws(chains, draws)
    if not callable(getattr(res, "summary_frame", None)) and not callable(
        getattr(res, "to_frame", None)
    ):
        raise TypeError(
            "`res` must be an MLOBResult (an object with a summary_frame() or to_frame() "
            f"method); got {type(res).__name__}"
        )
    tree = _own_tree(res, estimator=estimator)
    if tree is None:
        tree = _mlob_tree(res, estimator)
    if draws is not None:
        frame = estimate_frame(tree)
        terms = list(_getattr_any(res, "covariate_names", default=[]) or [])
        group = normal_approximation(
            frame, None, chains=chains, draws=draws, random_seed=random_seed, terms=terms
        )
        tree = _add_group(tree, "normal_approximation", group)
    return tree


#: spellings of interval methods used by the front ends -> the common-format vocabulary
_INTERVAL_NAMES = {"inversion": "bootstrap_inversion", "percentile": "bootstrap_percentile"}


def _mlob_tree(res: Any, estimator: str) -> xr.DataTree:
    table = _table_of(res, _SUMMARY_ALIASES[estimator])
    if table is None:
        raise TypeError(
            f"`res` has no {estimator!r} table (summary_frame({_SUMMARY_ALIASES[estimator]!r}))"
        )
    table = table.rename_axis("term")
    settings = dict(getattr(res, "settings", {}) or {})
    conf_level = float(_getattr_any(res, "conf_level", default=0.95))
    if estimator == "mlob":
        se_method = str(getattr(res, "se_method", None) or "analytic")
        interval = str(getattr(res, "interval_method", None) or "wald")
        interval = _INTERVAL_NAMES.get(interval, interval)
    else:
        se_method, interval = "analytic", "wald"
    seed = settings.get("random_seed", settings.get("random_state"))
    balancing = {  # counts only: the kept row positions stay on the result
        k: v
        for k, v in dict(getattr(res, "balancing", None) or {}).items()
        if k != "kept_rows" and not isinstance(v, pd.DataFrame | np.ndarray)
    }
    attrs = make_attrs(
        estimator,
        settings=settings,
        random_seed=seed,
        inference_library="mlob_pp",
        extra={
            "conf_level": conf_level,
            "formula": getattr(res, "formula", None),
            "group": getattr(res, "group", None),
            "n_obs": getattr(res, "n_obs", None),
            "n_groups": getattr(res, "n_groups", None),
            "group_size": getattr(res, "group_size", None),
            "mode": getattr(res, "mode", None),
            "balancing": balancing or None,
        },
    )
    return estimate_tree(
        table,
        estimator=estimator,
        conf_level=conf_level,
        interval_method=interval,
        se_method=se_method,
        attrs=attrs,
    )


_ML_SETTINGS = ("covariates", "method", "optimizer", "tol", "maxiter", "reml")


def from_ml(
    res: Any,
    *,
    conf_level: float | None = None,
    draws: int | None = None,
    chains: int = 1,
    random_seed: Any = None,
) -> xr.DataTree:
    """Convert a true-ML result of the latent covariate model to the common format.

    Parameters
    ----------
    res : MLResult
        Result of :func:`mlob_pp.fit_ml`. Its own ``to_datatree()`` is used when it provides
        the ``estimate`` group; otherwise the tree is built from its table (``to_frame()`` or
        ``summary_frame()``, else Wald intervals from ``coef``/``se``).
    conf_level : float, optional
        Level of the intervals. Default: the fit's own ``conf_level`` (its intervals are kept).
        Another level gives Wald intervals, estimate ± z·SE, at that level.
    draws : int, optional
        If given, also store draws from N(coef, vcov) (correlations kept; ``beta_c`` derived as
        ``beta_b - beta_w`` when ``vcov`` lacks it) in a group ``normal_approximation``.
    chains : int, default 1
        Chains of those draws.
    random_seed : int, Generator or None, optional
        Seed of those draws.

    Returns
    -------
    xarray.DataTree
        A :class:`~mlob_pp.common_format.PointEstimateTree` with the group ``estimate``
        (``interval_method = "wald"``) and provenance attrs (``estimator = "ml"``,
        ``converged``, ``loglik``: the total log-likelihood at the maximum). No
        ``log_likelihood`` group: that holds pointwise values per posterior draw.

    Raises
    ------
    TypeError
        If `res` has neither an estimate table nor ``coef``/``se`` Series.
    ValueError
        If `draws`/`chains` < 1 or `conf_level` is not in (0, 1).

    References
    ----------
    Lüdtke, O., et al. (2008). The multilevel latent covariate model. *Psychological Methods*,
    13(3), 203-229. https://doi.org/10.1037/a0012869
    """
    chains, draws = _check_draws(chains, draws)
    if conf_level is not None:
        conf_level = check_probability(conf_level, "conf_level")
    own_level = float(_getattr_any(res, "conf_level", default=0.95))
    same_level = conf_level is None or np.isclose(conf_level, own_level)
    tree = _own_tree(res) if same_level else None
    if tree is None:
        tree = _ml_tree(res, own_level if conf_level is None else conf_level, same_level)
    if draws is not None:
        vcov = getattr(res, "vcov", None)
        terms = list(_getattr_any(res, "covariate_names", default=[]) or []) or None
        group = normal_approximation(
            estimate_frame(tree),
            vcov if isinstance(vcov, pd.DataFrame) else None,
            chains=chains,
            draws=draws,
            random_seed=random_seed,
            terms=terms,
        )
        tree = _add_group(tree, "normal_approximation", group)
    return tree


def _ml_tree(res: Any, level: float, same_level: bool) -> xr.DataTree:
    table = _table_of(res)
    coef, se = getattr(res, "coef", None), getattr(res, "se", None)
    if table is None or not {"estimate", "std_error"} <= set(table.columns):
        if not isinstance(coef, pd.Series) or not isinstance(se, pd.Series):
            raise TypeError(
                "`res` must be an MLResult (an object with to_frame()/summary_frame() or "
                f"`coef` and `se` pandas Series); got {type(res).__name__}"
            )
        table = wald_table(coef, se.reindex(coef.index), conf_level=level)
    elif not same_level or not {"ci_lower", "ci_upper"} <= set(table.columns):
        table = wald_table(table["estimate"], table["std_error"], conf_level=level)
    table = table.rename_axis("term")
    settings = dict(getattr(res, "settings", {}) or {})
    for key in _ML_SETTINGS:
        value = getattr(res, key, None)
        if key not in settings and isinstance(value, str | int | float | bool):
            settings[key] = value
    loglik = getattr(res, "loglik", None)
    attrs = make_attrs(
        "ml",
        settings=settings,
        random_seed=None,
        inference_library="mlob_pp",
        extra={
            "conf_level": level,
            "converged": getattr(res, "converged", None),
            "loglik": None if loglik is None else float(loglik),
            "formula": getattr(res, "formula", None),
            "group": getattr(res, "group", None),
            "n_obs": getattr(res, "n_obs", None),
            "n_groups": getattr(res, "n_groups", None),
        },
    )
    se_method = str(getattr(res, "se_method", None) or "observed_information")
    return estimate_tree(
        table,
        estimator="ml",
        conf_level=level,
        interval_method="wald",
        se_method=se_method,
        attrs=attrs,
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


def _mcmc_settings(result: Any, post: xr.DataTree, settings: Mapping[str, Any] | None) -> dict:
    settings = dict(settings or getattr(result, "settings", None) or {})
    if not settings and result is not None:
        for key in _MCMC_SETTINGS:
            value = getattr(result, key, None)
            if isinstance(value, int | float | str | bool | np.integer | np.floating):
                settings[key] = value
    if not settings:
        for key in ("tuning_steps", "sampling_time"):
            if key in post.attrs:
                settings[key] = post.attrs[key]
        settings.setdefault("chains", int(post.sizes["chain"]))
        settings.setdefault("draws", int(post.sizes["draw"]))
    return settings


def from_pymc(
    idata: Any,
    *,
    log_likelihood: bool = False,
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
    log_likelihood : bool, default False
        Keep the pointwise ``log_likelihood`` group (one value per observation and draw: by far
        the largest part of a result; needed only for ``az.loo`` / ``az.compare``). Dropped by
        default.
    settings : mapping, optional
        Sampler settings to record (default: the result's ``settings`` or the sampler attributes
        of the posterior).
    random_seed : int, Generator or None, optional
        Seed to record (default: the result's ``random_seed`` / ``settings["random_seed"]``).

    Returns
    -------
    xarray.DataTree
        A copy with ``posterior``, ``sample_stats``, ``observed_data`` (and ``log_likelihood``
        when asked for) kept, ``term`` coordinates as strings and provenance attributes
        (``estimator = "mcmc"``, ``inference_library = "pymc"``). No ``estimate`` group:
        :func:`~mlob_pp.comparisons.compare` summarises the draws.

    Raises
    ------
    TypeError
        If `idata` is neither a DataTree nor an object with an ``idata`` DataTree.
    ValueError
        If it has no ``posterior`` group with ``chain`` and ``draw`` dims, or
        `log_likelihood` is True and it has no ``log_likelihood`` group.
    """
    log_likelihood = check_bool(log_likelihood, "log_likelihood")
    result = None
    if not isinstance(idata, xr.DataTree):
        result = idata
        idata = getattr(idata, "idata", None)
        if not isinstance(idata, xr.DataTree):
            raise TypeError(
                "`idata` must be an xarray.DataTree (ArviZ 1.x InferenceData) or an MCMCResult "
                f"with an `idata` attribute; got {type(result).__name__}"
            )
    if not has_posterior(idata):
        raise ValueError(
            f"`idata` must have a 'posterior' group; got groups {sorted(idata.children)}"
        )
    post = idata["posterior"]
    if not {"chain", "draw"} <= set(post.dims):
        raise ValueError(
            f"`idata.posterior` must have dims ('chain', 'draw'); got {tuple(post.dims)}"
        )
    if log_likelihood and "log_likelihood" not in idata.children:
        raise ValueError(
            "`log_likelihood=True` but the MCMC result has no 'log_likelihood' group; refit "
            "with the pointwise log-likelihood stored (fit_mcmc(..., log_likelihood=True))"
        )
    keep = {
        name: node
        for name, node in idata.children.items()
        if log_likelihood or name != "log_likelihood"
    }
    tree = xr.DataTree.from_dict(
        {name: node.to_dataset(inherit=False) for name, node in keep.items()}
    )
    tree.attrs = dict(idata.attrs)
    for node in tree.subtree:
        for dim in ("term", "term_w", "term_b"):
            ds = node.to_dataset(inherit=False)
            if dim in ds.coords and dim in ds.indexes:
                node.dataset = ds.assign_coords({dim: ds[dim].astype(str).values})
    settings = _mcmc_settings(result, post, settings)
    if random_seed is None:
        random_seed = _getattr_any(result, "random_seed", default=settings.get("random_seed"))
    attrs = make_attrs(
        "mcmc",
        settings=settings,
        random_seed=random_seed,
        inference_library="pymc",
        extra={
            "formula": getattr(result, "formula", None),
            "group": getattr(result, "group", None),
            "n_obs": getattr(result, "n_obs", None),
            "n_groups": getattr(result, "n_groups", None),
        },
    )
    for node in tree.subtree:
        node.attrs = {**node.attrs, **attrs}
    return tree
