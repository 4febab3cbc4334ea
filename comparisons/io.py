"""Files of common-format results: :func:`save` and :func:`load` (netCDF or zarr).

Results are written compressed (zlib level 4 for netCDF; zarr's default compressor). A dict of
results is stored as sibling groups ``/<name>/estimate``, ``/<name>/posterior``, ... and read
back as a dict; point estimates come back as :class:`~mlob_pp.common_format.PointEstimateTree`
(so ArviZ posterior functions keep refusing them clearly).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from mlob_pp.common_format import (
    ESTIMATE_GROUP,
    as_point_estimate,
    estimate_tree,
    has_posterior,
)
from mlob_pp.comparisons.labels import element_labels
from mlob_pp.comparisons.table import as_named

__all__ = ["save", "load"]

_COLLECTION_ATTR = "mlob_pp_collection"
_COMPRESSION = {"zlib": True, "complevel": 4}


def _engine(path: Path, engine: str | None) -> str:
    if engine is None:
        engine = "zarr" if path.suffix == ".zarr" else "h5netcdf"
    if engine not in ("h5netcdf", "zarr"):
        raise ValueError(f"`engine` must be 'h5netcdf' or 'zarr'; got {engine!r}")
    return engine


def _encoding(tree: xr.DataTree) -> dict[str, dict[str, dict[str, Any]]]:
    """Compression settings for every numeric data variable of every group."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for node in tree.subtree:
        ds = node.to_dataset(inherit=False)
        enc = {
            str(name): dict(_COMPRESSION)
            for name, var in ds.data_vars.items()
            if var.ndim > 0 and np.issubdtype(var.dtype, np.number)
        }
        if enc:
            out[node.path] = enc
    return out


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
        One result, or several (stored as sibling groups ``/<name>/estimate``, ...).
    path : path-like
        Target file (``.nc``: netCDF-4 via h5netcdf, zlib-compressed) or directory
        (``.zarr``: zarr store).
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
    >>> load("results.nc")["ml"]["estimate"]  # doctest: +SKIP
    """
    path = Path(path)
    engine = _engine(path, engine)
    if isinstance(results, xr.DataTree):
        tree = results
    elif isinstance(results, Mapping):
        named = as_named(results)
        for key in named:
            if not key or "/" in key:
                raise ValueError(
                    f"`results` keys name groups and must be non-empty without '/'; got {key!r}"
                )
        tree = xr.DataTree(children={k: dt.copy(deep=False) for k, dt in named.items()})
        tree.attrs = {_COLLECTION_ATTR: json.dumps(list(named))}
    else:
        raise TypeError(
            f"`results` must be a DataTree or a dict of DataTrees; got {type(results).__name__}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if engine == "zarr":
        tree.to_zarr(path, mode="w", consolidated=False)
    else:
        tree.to_netcdf(path, engine="h5netcdf", mode="w", encoding=_encoding(tree))
    return path


def _open(path: Path, engine: str) -> xr.DataTree:
    kwargs = {"consolidated": False} if engine == "zarr" else {}
    try:
        with xr.open_datatree(path, engine=engine, **kwargs) as opened:
            return opened.load().copy()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        kind = "zarr store" if engine == "zarr" else "netCDF file"
        raise ValueError(
            f"`path` {str(path)!r} is not a mlob_pp results file (a {kind} written by "
            f"mlob_pp.comparisons.save): {type(exc).__name__}: {exc}"
        ) from None


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
        One result, or the dict of results if a dict was saved. Files of mlob_pp 0.1 (normal
        draws in ``posterior`` next to a ``point_estimate`` group) are read as point estimates.

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    ValueError
        If `path` is not a netCDF/zarr store, or holds no common-format result.
    """
    path = Path(path)
    engine = _engine(path, engine)
    if not path.exists():
        raise FileNotFoundError(f"`path` does not exist: {str(path)!r}")
    tree = _open(path, engine)
    names = tree.attrs.get(_COLLECTION_ATTR)
    if names is None:
        return _result(tree, path)
    try:
        keys = json.loads(names)
    except json.JSONDecodeError:
        raise ValueError(
            f"`path` {str(path)!r}: unreadable {_COLLECTION_ATTR!r} attribute"
        ) from None
    return {name: _result(_detach(tree[name]), path, name) for name in keys}


def _result(tree: xr.DataTree, path: Path, name: str | None = None) -> xr.DataTree:
    if "point_estimate" in tree.children:
        tree = _from_legacy(tree)
    if not has_posterior(tree) and ESTIMATE_GROUP not in tree.children:
        where = f" (result {name!r})" if name else ""
        raise ValueError(
            f"`path` {str(path)!r}{where} holds no mlob_pp result: it has neither an "
            f"'estimate' nor a 'posterior' group (groups: {sorted(tree.children)})"
        )
    return as_point_estimate(tree)


def _from_legacy(tree: xr.DataTree) -> xr.DataTree:
    """Turn a 0.1 point estimate (``point_estimate`` + normal draws as posterior) into 0.2."""
    import pandas as pd

    point = tree["point_estimate"].to_dataset(inherit=False)
    se = tree["point_estimate/std_error"].to_dataset(inherit=False)
    ci = tree["point_estimate/conf_interval"].to_dataset(inherit=False)
    rows = {}
    for var in point.data_vars:
        for label, sel in element_labels(point[var]):
            bounds = ci[var].sel(sel) if var in ci.data_vars else None
            rows[label] = {
                "estimate": float(point[var].sel(sel)),
                "std_error": float(se[var].sel(sel)) if var in se.data_vars else np.nan,
                "ci_lower": float(bounds.sel(ci_bound="lower")) if bounds is not None else np.nan,
                "ci_upper": float(bounds.sel(ci_bound="upper")) if bounds is not None else np.nan,
            }
    attrs = dict(tree.attrs)
    frame = pd.DataFrame.from_dict(rows, orient="index").rename_axis("term")
    groups = {
        name: node.to_dataset(inherit=False)
        for name, node in tree.children.items()
        if name not in ("point_estimate", "posterior", "log_likelihood")
    }
    if "posterior" in tree.children:
        groups["normal_approximation"] = tree["posterior"].to_dataset(inherit=False)
    return estimate_tree(
        frame,
        estimator=str(attrs.get("estimator", "unknown")),
        conf_level=float(attrs.get("conf_level", 0.95)),
        interval_method=str(attrs.get("interval_method", "wald")),
        se_method=str(attrs.get("se_method", "analytic")),
        attrs=attrs,
        groups=groups,
    )


def _detach(node: xr.DataTree) -> xr.DataTree:
    """Return `node` as a root DataTree of its own."""
    return xr.DataTree.from_dict(
        {
            ("/" if n is node else n.relative_to(node)): n.to_dataset(inherit=False)
            for n in node.subtree
        },
    )
