"""Side-by-side comparison of estimators in the common format: table, forest plot, files.

Every estimator's result is first converted to the common ``xarray.DataTree`` layout by
:func:`~mlob_pp.comparisons.from_mlob`, :func:`~mlob_pp.comparisons.from_ml` or
:func:`~mlob_pp.comparisons.from_pymc` (variables ``beta_b``, ``beta_w``, ``beta_c``, ``gamma``
with dim ``term``, ``tau2``, ...). This module lines them up:

* :func:`compare` — one table, rows ``(parameter, estimator)``: estimate and standard error
  (closed form and ML: the exact values from ``point_estimate``; MCMC: posterior mean and SD),
  the ``conf_level`` interval (Wald / R MLOB's interval, or the equal-tailed posterior
  interval), and R-hat and bulk/tail ESS for MCMC (Vehtari et al. 2021).
* :func:`plot_compare` — a forest plot of all estimators (``arviz_plots.plot_forest``) with a
  legend. ArviZ pads results whose (chain, draw) shapes differ with NaN and then draws nothing,
  so :func:`match_sample_shape` first resamples every posterior to one shape.
* :func:`save` / :func:`load` — netCDF (h5netcdf) or zarr round trips of one result or of a
  dict of results.

References
----------
Vehtari, A., Gelman, A., Simpson, D., Carpenter, B., & Bürkner, P.-C. (2021). Rank-normalization,
folding, and localization: An improved R-hat for assessing convergence of MCMC. *Bayesian
Analysis*, 16(2), 667-718. https://doi.org/10.1214/20-BA1221
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from mlob_pp.comparisons.convert import DISPLAY_ORDER

__all__ = ["compare", "plot_compare", "match_sample_shape", "save", "load", "COLUMNS"]

#: Columns of the table returned by :func:`compare`.
COLUMNS: tuple[str, ...] = (
    "estimate",
    "std_error",
    "ci_lower",
    "ci_upper",
    "r_hat",
    "ess_bulk",
    "ess_tail",
)
#: Variables drawn by :func:`plot_compare` by default (the regression coefficients).
COEFFICIENTS: tuple[str, ...] = ("beta_b", "beta_w", "beta_c", "gamma", "gamma_w", "gamma_b")

_COLLECTION_ATTR = "mlob_pp_collection"


# ------------------------------------------------------------------------------- inputs


def _as_named(results: Any, name: str = "results") -> dict[str, xr.DataTree]:
    """Return ``{estimator name: DataTree}`` from a dict, a list or a single DataTree."""
    if isinstance(results, xr.DataTree):
        results = [results]
    if isinstance(results, Mapping):
        items = [(str(k), v) for k, v in results.items()]
    elif isinstance(results, Sequence) and not isinstance(results, str):
        items = []
        seen: dict[str, int] = {}
        for i, dt in enumerate(results):
            base = str(getattr(dt, "attrs", {}).get("estimator", f"result{i}"))
            seen[base] = seen.get(base, 0) + 1
            items.append((base if seen[base] == 1 else f"{base}_{seen[base]}", dt))
    else:
        raise TypeError(
            f"`{name}` must be a dict {{name: DataTree}}, a list of DataTrees or a DataTree; "
            f"got {type(results).__name__}"
        )
    if not items:
        raise ValueError(f"`{name}` must hold at least one result; got an empty collection")
    for key, dt in items:
        if not isinstance(dt, xr.DataTree):
            raise TypeError(
                f"`{name}[{key!r}]` must be an xarray.DataTree in the common format (use "
                f"from_mlob, from_ml or from_pymc); got {type(dt).__name__}"
            )
        if "posterior" not in dt.children and "point_estimate" not in dt.children:
            raise ValueError(
                f"`{name}[{key!r}]` has neither a 'posterior' nor a 'point_estimate' group; "
                f"got groups {sorted(dt.children)}"
            )
    return dict(items)


def _default_var_names(results: Mapping[str, xr.DataTree], allowed: Sequence[str]) -> list[str]:
    present: set[str] = set()
    for dt in results.values():
        for group in ("point_estimate", "posterior"):
            if group in dt.children:
                present |= set(dt[group].data_vars)
    return [v for v in allowed if v in present]


_PARAMETER_DIMS = {"chain", "draw", "term", "term_w", "term_b"}


def _extra_var_names(results: Mapping[str, xr.DataTree]) -> list[str]:
    """Variables outside the model's standard names that are parameters (no group/obs dims)."""
    extra: dict[str, None] = {}
    for dt in results.values():
        for group in ("point_estimate", "posterior"):
            if group in dt.children:
                for name, da in dt[group].data_vars.items():
                    if name not in DISPLAY_ORDER and set(da.dims) <= _PARAMETER_DIMS:
                        extra[str(name)] = None
    return list(extra)


def _check_var_names(var_names: Any) -> list[str] | None:
    if var_names is None:
        return None
    if isinstance(var_names, str):
        return [var_names]
    if isinstance(var_names, Sequence) and all(isinstance(v, str) for v in var_names):
        return list(var_names)
    raise TypeError(f"`var_names` must be a string or a list of strings; got {var_names!r}")


# ------------------------------------------------------------------------------- summaries


def _labels(da: xr.DataArray) -> list[tuple[str, dict[str, Any]]]:
    """Return (Series label, selection) for every element of a parameter DataArray."""
    name = str(da.name)
    if da.ndim == 0:
        return [(name, {})]
    if da.ndim == 1 and da.dims[0].startswith("term"):
        dim = da.dims[0]
        return [(f"{name}_{t}", {dim: t}) for t in da[dim].values.tolist()]
    out = []
    for idx in np.ndindex(*da.shape):
        sel = {d: da[d].values[i] for d, i in zip(da.dims, idx, strict=True)}
        label = name + "[" + ",".join(str(v) for v in sel.values()) + "]"
        out.append((label, sel))
    return out


def _rows(
    values: Mapping[str, xr.DataArray], var: str, ci: xr.DataArray
) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    for label, sel in _labels(values["estimate"]):
        row: dict[str, Any] = {key: float(da.sel(sel)) for key, da in values.items()}
        row["_variable"] = var
        bounds = ci.sel(sel)
        row["ci_lower"] = float(bounds.sel(ci_bound="lower"))
        row["ci_upper"] = float(bounds.sel(ci_bound="upper"))
        rows.append((label, row))
    return rows


def _summarize(dt: xr.DataTree, var_names: Sequence[str], conf_level: float) -> pd.DataFrame:
    """Summarize one common-format result as a table indexed by Series label."""
    from scipy import stats

    rows: list[tuple[str, dict[str, Any]]] = []
    mcmc = dt.attrs.get("posterior_kind") == "mcmc" or "point_estimate" not in dt.children
    if not mcmc:
        point = dt["point_estimate"].to_dataset()
        se = dt["point_estimate/std_error"].to_dataset()
        ci = dt["point_estimate/conf_interval"].to_dataset()
        own = float(dt["point_estimate"].attrs.get("conf_level", dt.attrs.get("conf_level", 0.95)))
        wald = not np.isclose(own, conf_level)
        q = stats.norm.ppf(0.5 + conf_level / 2)
        for var in var_names:
            if var not in point.data_vars:
                continue
            est = point[var]
            nan = xr.full_like(est, np.nan)
            sd = se[var] if var in se.data_vars else nan  # an estimate without SE: NaN
            if wald or var not in ci.data_vars:
                bounds = xr.concat([est - q * sd, est + q * sd], dim="ci_bound")
                bounds = bounds.assign_coords(ci_bound=["lower", "upper"])
            else:
                bounds = ci[var]
            values = {
                "estimate": est,
                "std_error": sd,
                "r_hat": nan,
                "ess_bulk": nan,
                "ess_tail": nan,
            }
            rows.extend(_rows(values, var, bounds))
    else:
        import arviz_stats as azs

        post = dt["posterior"].to_dataset()
        names = [v for v in var_names if v in post.data_vars]
        if names:
            post = post[names]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # too few chains/draws: NaN diagnostics
                mean = post.mean(("chain", "draw"))
                std = post.std(("chain", "draw"), ddof=1)
                eti = post.azstats.eti(prob=conf_level)
                rhat = azs.rhat(post)
                ess_bulk = azs.ess(post, method="bulk")
                ess_tail = azs.ess(post, method="tail")
            for var in names:
                values = {
                    "estimate": mean[var],
                    "std_error": std[var],
                    "r_hat": rhat[var],
                    "ess_bulk": ess_bulk[var],
                    "ess_tail": ess_tail[var],
                }
                rows.extend(_rows(values, var, eti[var]))
    table = pd.DataFrame([r for _, r in rows], index=[lab for lab, _ in rows])
    return table.reindex(columns=[*COLUMNS, "_variable"])


def compare(
    results: Mapping[str, xr.DataTree] | Sequence[xr.DataTree],
    var_names: str | Sequence[str] | None = None,
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Put the estimates of several estimators side by side in one table.

    Parameters
    ----------
    results : dict of {str: DataTree} or list of DataTree
        Common-format results (from :func:`~mlob_pp.comparisons.from_mlob`,
        :func:`~mlob_pp.comparisons.from_ml`, :func:`~mlob_pp.comparisons.from_pymc`). Dict keys
        name the estimators; for a list, each result's ``attrs["estimator"]`` is used.
    var_names : str or list of str, optional
        Variables to show (``"beta_b"``, ``"gamma"``, ``"tau2"``, ...). Default: every
        parameter of the latent covariate model that at least one result has, in model order,
        then any other variable without group or observation dims (group effects are left out
        unless named).
    conf_level : float, default 0.95
        Level of the intervals. Closed-form and ML results keep their own intervals when they
        were computed at this level and get Wald intervals (estimate ± z·SE) otherwise; MCMC
        results get equal-tailed posterior intervals.

    Returns
    -------
    pandas.DataFrame
        MultiIndex ``(parameter, estimator)`` with parameter labels as in the summary tables
        (``beta_b``, ``gamma_ses``, ...) in the order of the model, estimators in the given
        order; columns ``estimate, std_error, ci_lower, ci_upper, r_hat, ess_bulk, ess_tail``
        (``std_error`` is the posterior SD for MCMC; the diagnostics are NaN for the other
        estimators). ``df.attrs["conf_level"]`` records the level. A parameter an estimator
        does not have gets no row for it.

    Raises
    ------
    TypeError
        If `results` or `var_names` have the wrong type.
    ValueError
        If `results` is empty, a `var_names` entry is in no result, or `conf_level` is not in
        (0, 1).

    See Also
    --------
    plot_compare, mlob_pp.comparisons.from_mlob

    Examples
    --------
    >>> from mlob_pp.comparisons import compare
    >>> table = compare({"mlob": dt_mlob, "ml": dt_ml, "mcmc": dt_mcmc})  # doctest: +SKIP
    >>> table.xs("beta_b", level="parameter")  # doctest: +SKIP
    """
    from mlob_pp.validate import check_probability

    named = _as_named(results)
    conf_level = check_probability(conf_level, "conf_level")
    names = _check_var_names(var_names)
    if names is None:
        names = _default_var_names(named, DISPLAY_ORDER) + _extra_var_names(named)
    else:
        known = set(_default_var_names(named, names))
        for dt in named.values():
            if "posterior" in dt.children:
                known |= set(dt["posterior"].data_vars) & set(names)
        missing = [v for v in names if v not in known]
        if missing:
            available = sorted(
                {v for dt in named.values() for v in dt.get("posterior", xr.DataTree()).data_vars}
            )
            raise ValueError(
                f"`var_names` entries {missing} are in none of the results; available: {available}"
            )
    frames = []
    for key, dt in named.items():
        table = _summarize(dt, names, conf_level)
        table.index = pd.MultiIndex.from_arrays(
            [table.index, [key] * len(table)], names=["parameter", "estimator"]
        )
        frames.append(table)
    out = pd.concat(frames)
    # order: parameters by variable in `names` order, then estimators as given
    variables = out.pop("_variable")
    first = {}
    for (label, _), var in variables.items():
        first.setdefault(label, (names.index(var), len(first)))
    order = sorted(first, key=first.__getitem__)
    out = out.reindex(
        pd.MultiIndex.from_tuples(
            [(p, e) for p in order for e in named if (p, e) in out.index],
            names=["parameter", "estimator"],
        )
    )
    out.attrs["conf_level"] = conf_level
    return out


# ------------------------------------------------------------------------------- plotting


def match_sample_shape(
    results: Mapping[str, xr.DataTree] | Sequence[xr.DataTree],
    *,
    chains: int | None = None,
    draws: int | None = None,
    random_seed: int | np.random.Generator | None = 0,
) -> dict[str, xr.DataTree]:
    """Give every result's posterior the same (chain, draw) shape.

    ArviZ pads results whose sample shapes differ with NaN, and its plots then draw nothing for
    them. Results already of the target shape are returned unchanged; the others get a
    posterior resampled (without replacement when there are enough draws, with replacement
    otherwise) to ``(chains, draws)``, which keeps each draw's joint values and so the
    correlations between parameters.

    Parameters
    ----------
    results : dict of {str: DataTree} or list of DataTree
        Common-format results.
    chains, draws : int, optional
        Target shape. Default: the shape of the first MCMC result, else of the first result.
    random_seed : int, Generator or None, default 0
        Seed of the resampling.

    Returns
    -------
    dict of {str: DataTree}
        Shallow copies with only the ``posterior`` group replaced where needed
        (``posterior.attrs["resampled_from"]`` records the original shape).
    """
    from mlob_pp.comparisons.convert import _as_rng

    named = _as_named(results)
    with_post = {k: dt for k, dt in named.items() if "posterior" in dt.children}
    if not with_post:
        raise ValueError("`results` must have at least one result with a 'posterior' group")
    if chains is None or draws is None:
        ref = next(
            (dt for dt in with_post.values() if dt.attrs.get("posterior_kind") == "mcmc"),
            next(iter(with_post.values())),
        )
        chains = int(ref["posterior"].sizes["chain"]) if chains is None else chains
        draws = int(ref["posterior"].sizes["draw"]) if draws is None else draws
    rng = _as_rng(random_seed)
    out: dict[str, xr.DataTree] = {}
    for key, dt in named.items():
        if key not in with_post:
            out[key] = dt
            continue
        post = dt["posterior"].to_dataset()
        c, d = int(post.sizes["chain"]), int(post.sizes["draw"])
        if (c, d) == (chains, draws):
            out[key] = dt
            continue
        n, m = c * d, chains * draws
        idx = rng.choice(n, size=m, replace=m > n)
        post = post.transpose("chain", "draw", ...)
        new = xr.Dataset(
            {
                name: (
                    da.dims,
                    da.values.reshape(n, *da.shape[2:])[idx].reshape(chains, draws, *da.shape[2:]),
                    da.attrs,
                )
                for name, da in post.data_vars.items()
            },
            coords={
                **{k: v for k, v in post.coords.items() if not {"chain", "draw"} & set(v.dims)},
                "chain": np.arange(chains),
                "draw": np.arange(draws),
            },
            attrs={**post.attrs, "resampled_from": f"chain={c}, draw={d}"},
        )
        copy = dt.copy(deep=False)
        copy["posterior"] = xr.DataTree(new)
        out[key] = copy
    return out


def plot_compare(
    results: Mapping[str, xr.DataTree] | Sequence[xr.DataTree],
    var_names: str | Sequence[str] | None = None,
    *,
    conf_level: float = 0.95,
    path: str | PathLike[str] | None = None,
    title: str | None = None,
    random_seed: int | np.random.Generator | None = 0,
) -> Any:
    """Draw a forest plot of several estimators, one colour per estimator, with a legend.

    Uses :func:`arviz_plots.plot_forest` (matplotlib backend; headless with ``MPLBACKEND=Agg``)
    on the ``posterior`` groups after :func:`match_sample_shape`, so closed-form and ML results
    show the intervals of their normal sampling distribution and MCMC results equal-tailed
    posterior intervals: the thick line is the central 50 % interval, the thin line the
    `conf_level` interval, the dot the mean.

    Parameters
    ----------
    results : dict of {str: DataTree} or list of DataTree
        Common-format results; keys (or ``attrs["estimator"]``) label the legend.
    var_names : str or list of str, optional
        Variables to plot. Default: the regression coefficients present (``beta_b``,
        ``beta_w``, ``beta_c``, ``gamma``...); variance parameters are on another scale.
    conf_level : float, default 0.95
        Probability of the outer interval.
    path : path-like, optional
        Write the figure there (PNG, PDF, SVG... by suffix).
    title : str, optional
        Figure title.
    random_seed : int, Generator or None, default 0
        Seed of the resampling in :func:`match_sample_shape`.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (its ``PlotCollection`` is attached as ``fig.plot_collection``).

    Raises
    ------
    ValueError
        If no result has a posterior group or `var_names` are in none of them.
    """
    import arviz_plots as azp

    from mlob_pp.validate import check_probability

    conf_level = check_probability(conf_level, "conf_level")
    aligned = match_sample_shape(results, random_seed=random_seed)
    aligned = {k: dt for k, dt in aligned.items() if "posterior" in dt.children}
    names = _check_var_names(var_names)
    if names is None:
        names = _default_var_names(aligned, COEFFICIENTS)
    present = {v for dt in aligned.values() for v in dt["posterior"].data_vars}
    missing = [v for v in names if v not in present]
    if missing or not names:
        raise ValueError(
            f"`var_names` entries {missing or names} are in no posterior; available: "
            f"{sorted(present)}"
        )
    # each model keeps its own variables; term-like coords are put on their union (NaN where
    # a model lacks a term) so that arviz_plots concatenates the models on equal indexes
    posts = {
        k: dt["posterior"].to_dataset()[[v for v in names if v in dt["posterior"].data_vars]]
        for k, dt in aligned.items()
        if any(v in dt["posterior"].data_vars for v in names)
    }
    union: dict[str, list[Any]] = {}
    for ds in posts.values():
        for dim in ds.dims:
            if dim not in ("chain", "draw") and dim in ds.coords:
                values = union.setdefault(str(dim), [])
                values.extend(v for v in ds[dim].values.tolist() if v not in values)
    trees = {}
    for k, ds in posts.items():
        ds = ds.reindex({d: union[d] for d in ds.dims if d in union})
        for v in names:  # a variable this model lacks: all NaN, so every model lists it in order
            if v not in ds.data_vars:
                template = next(p[v] for p in posts.values() if v in p.data_vars)
                shape = {d: union.get(d, template.sizes[d]) for d in template.dims}
                shape.update(chain=ds.sizes["chain"], draw=ds.sizes["draw"])
                ds[v] = xr.DataArray(
                    np.full([len(x) if isinstance(x, list) else x for x in shape.values()], np.nan),
                    dims=list(shape),
                )
        trees[k] = xr.DataTree.from_dict({"posterior": ds[names]})
    pc = azp.plot_forest(
        trees,
        var_names=names,
        combined=True,
        point_estimate="mean",
        ci_kind="eti",
        ci_probs=(0.5, conf_level),
        backend="matplotlib",
    )
    pc.add_legend("model", title="estimator")
    fig = pc.viz["figure"].item()
    if title:
        fig.suptitle(title)
    fig.plot_collection = pc
    if path is not None:
        fig.savefig(Path(path), dpi=120, bbox_inches="tight")
    return fig


# ------------------------------------------------------------------------------- files


def _engine(path: Path, engine: str | None) -> str:
    if engine is None:
        engine = "zarr" if path.suffix == ".zarr" else "h5netcdf"
    if engine not in ("h5netcdf", "zarr"):
        raise ValueError(f"`engine` must be 'h5netcdf' or 'zarr'; got {engine!r}")
    return engine


def save(
    results: xr.DataTree | Mapping[str, xr.DataTree],
    path: str | PathLike[str],
    *,
    engine: str | None = None,
) -> Path:
    """Write one common-format result, or a dict of them, to a netCDF or zarr store.

    Parameters
    ----------
    results : DataTree or dict of {str: DataTree}
        One result, or several (stored as sibling nodes ``/<name>/posterior``, ...).
    path : path-like
        Target file (``.nc``: netCDF-4 via h5netcdf) or directory (``.zarr``: zarr store).
    engine : {"h5netcdf", "zarr"}, optional
        Overrides the choice by suffix.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError
        If `results` is not a DataTree or a dict of DataTrees.
    ValueError
        If `engine` is unknown or a dict key is empty or contains ``/``.

    Examples
    --------
    >>> from mlob_pp.comparisons import save, load
    >>> save({"mlob": dt_mlob, "ml": dt_ml}, "results.nc")  # doctest: +SKIP
    >>> load("results.nc")["ml"].point_estimate["beta_b"]  # doctest: +SKIP
    """
    path = Path(path)
    engine = _engine(path, engine)
    if isinstance(results, xr.DataTree):
        tree = results
    elif isinstance(results, Mapping):
        named = _as_named(results)
        for key in named:
            if not key or "/" in key:
                raise ValueError(
                    f"`results` keys name groups and must be non-empty without '/'; got {key!r}"
                )
        tree = xr.DataTree(
            children={k: dt.copy(deep=False) for k, dt in named.items()},
        )
        tree.attrs = {_COLLECTION_ATTR: json.dumps(list(named))}
    else:
        raise TypeError(
            f"`results` must be a DataTree or a dict of DataTrees; got {type(results).__name__}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if engine == "zarr":
        tree.to_zarr(path, mode="w", consolidated=False)
    else:
        tree.to_netcdf(path, engine="h5netcdf", mode="w")
    return path


def load(
    path: str | PathLike[str], *, engine: str | None = None
) -> xr.DataTree | dict[str, xr.DataTree]:
    """Read what :func:`save` wrote (into memory; the file is closed afterwards).

    Parameters
    ----------
    path : path-like
        A ``.nc`` file or a ``.zarr`` store.
    engine : {"h5netcdf", "zarr"}, optional
        Overrides the choice by suffix.

    Returns
    -------
    DataTree or dict of {str: DataTree}
        One result, or the dict of results if a dict was saved.

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    """
    path = Path(path)
    engine = _engine(path, engine)
    if not path.exists():
        raise FileNotFoundError(f"`path` does not exist: {str(path)!r}")
    kwargs = {"consolidated": False} if engine == "zarr" else {}
    with xr.open_datatree(path, engine=engine, **kwargs) as opened:
        tree = opened.load().copy()
    names = tree.attrs.get(_COLLECTION_ATTR)
    if names is None:
        return tree
    return {name: _detach(tree[name]) for name in json.loads(names)}


def _detach(node: xr.DataTree) -> xr.DataTree:
    """Return `node` as a root DataTree of its own."""
    return xr.DataTree.from_dict(
        {
            ("/" if n is node else n.relative_to(node)): n.to_dataset(inherit=False)
            for n in node.subtree
        },
    )
