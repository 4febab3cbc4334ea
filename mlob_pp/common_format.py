"""The common format for point estimates: an ``estimate`` group that is never a posterior.

Every result of mlob_pp ends as an ``xarray.DataTree`` (the ArviZ 1.x container). The groups
say what the numbers are:

* ``posterior``, ``sample_stats`` and ``log_likelihood`` (dims ``chain``, ``draw``) hold real
  MCMC draws only.
* Point estimators (MLOB, ``ml_moments``, ML, the variability models) store their table in the
  group ``estimate``: coordinates ``term`` (the parameter labels of ``to_frame()``) and
  ``ci_bound = ["lower", "upper"]``; variables ``estimate(term)``, ``std_error(term)``,
  ``ci(term, ci_bound)`` and, where defined, ``z(term)`` and ``p_value(term)``; attributes
  ``estimator``, ``conf_level``, ``interval_method`` (``wald``, ``bootstrap_inversion``,
  ``profile``, ...) and ``se_method``.
* Draws that are not a posterior go in a group named for what they are: bootstrap refits in
  ``bootstrap`` (dim ``replicate``), normal-approximation draws (only on request) in
  ``normal_approximation``.

:func:`estimate_tree` builds such a tree from an estimate table and :func:`estimate_frame`
reads the table back. The tree is a :class:`PointEstimateTree`: ArviZ functions that need a
posterior (``az.summary``, ``az.loo``, ``az.plot_forest``, ...) called on it raise
:class:`NotAPosteriorError` with a message saying what the result is and what to use instead,
not an error from inside ArviZ. :func:`as_point_estimate` restores that behaviour on a tree read
back from a file.

This module belongs to the base layer: it imports only numpy, pandas, xarray and other base
modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from mlob_pp.validate import check_probability

__all__ = [
    "ESTIMATE_GROUP",
    "CI_BOUNDS",
    "POSTERIOR_GROUPS",
    "NotAPosteriorError",
    "PointEstimateTree",
    "estimate_dataset",
    "estimate_tree",
    "estimate_frame",
    "as_point_estimate",
    "has_posterior",
    "is_point_estimate",
]

#: name of the group that holds a point estimator's table
ESTIMATE_GROUP = "estimate"
#: coordinate values of the ``ci_bound`` dimension
CI_BOUNDS = ("lower", "upper")
#: groups that hold (or are derived from) draws of a posterior or a prior; a point estimate has
#: none of them, and asking a :class:`PointEstimateTree` for one raises NotAPosteriorError
POSTERIOR_GROUPS = frozenset(
    {
        "posterior",
        "posterior_predictive",
        "predictions",
        "sample_stats",
        "log_likelihood",
        "log_prior",
        "prior",
        "prior_predictive",
        "sample_stats_prior",
        "warmup_posterior",
        "warmup_sample_stats",
    }
)
#: groups that only make sense next to draws (looked up by ``az.loo_pit``, ppc plots, ...)
_DRAWS_CONTEXT = frozenset({"observed_data"})
_REQUIRED = ("estimate", "std_error", "ci_lower", "ci_upper")
_OPTIONAL = ("z", "p_value")


class NotAPosteriorError(ValueError, KeyError):
    """A posterior (or other draws) was asked of a point estimate.

    Subclasses :class:`ValueError` (the input is the wrong kind of result) and
    :class:`KeyError` (the group is missing), so code that probes for an optional group with
    ``except KeyError`` still works.
    """

    def __str__(self) -> str:
        # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


class PointEstimateTree(xr.DataTree):
    """A ``DataTree`` holding a point estimate: posterior groups raise NotAPosteriorError.

    Behaves exactly like :class:`xarray.DataTree`, except that looking up a group of
    :data:`POSTERIOR_GROUPS` that the tree does not have (as an attribute, which is how
    ``arviz_base.convert_to_dataset`` and ``arviz_stats`` look, or as an item, which is how
    ``arviz_plots`` looks) raises :class:`NotAPosteriorError` naming the estimator.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in POSTERIOR_GROUPS or name in _DRAWS_CONTEXT:
                raise _not_a_posterior(self, name) from None
            raise

    @property
    def azstats(self) -> Any:
        """ArviZ's ``azstats`` accessor, refusing posterior groups this tree does not have."""
        return _point_estimate_accessor()(self)

    def __getitem__(self, key: Any) -> Any:
        try:
            return super().__getitem__(key)
        except KeyError:
            if isinstance(key, str) and key.strip("/") in POSTERIOR_GROUPS:
                raise _not_a_posterior(self, key.strip("/")) from None
            raise


_ACCESSOR: list[type] = []


def _point_estimate_accessor() -> type:
    """Return (once) a subclass of arviz_stats' DataTree accessor for point estimates.

    ``arviz_stats`` functions given a DataTree (``az.ess``, ``az.rhat``, ``az.hdi``, ``az.mcse``,
    ...) select the group through ``tree.azstats``; when the group is missing they silently fall
    back to the whole tree and fail deep inside with "missing core dims". This accessor raises
    NotAPosteriorError instead. ArviZ is imported only here (lazily).
    """
    if not _ACCESSOR:
        from arviz_stats.accessors import AzStatsDtAccessor

        class PointEstimateAccessor(AzStatsDtAccessor):
            def _process_input(self, group, method, allow_non_matching=True):
                tree = self._obj
                if (
                    isinstance(group, str)
                    and group in POSTERIOR_GROUPS
                    and group not in tree.children
                    and tree.name != group
                    and (tree.parent is None or tree.name == ESTIMATE_GROUP)
                ):
                    raise _not_a_posterior(tree, group)
                return super()._process_input(group, method, allow_non_matching)

        _ACCESSOR.append(PointEstimateAccessor)
    return _ACCESSOR[0]


def _not_a_posterior(tree: xr.DataTree, group: str) -> NotAPosteriorError:
    root = tree.root
    attrs = dict(root.attrs)
    if ESTIMATE_GROUP in root.children:
        attrs = {**attrs, **root[ESTIMATE_GROUP].attrs}
    estimator = attrs.get("estimator", "a point estimator")
    how = ""
    if "interval_method" in attrs and "conf_level" in attrs:
        how = (
            f" (intervals: {attrs['interval_method']} at conf_level={float(attrs['conf_level']):g})"
        )
    return NotAPosteriorError(
        f"this result has no {group!r} group: it is a point estimate from {estimator}{how}, "
        "not posterior draws, so ArviZ functions that need a posterior (az.summary, az.loo, "
        "az.plot_forest, ...) do not apply. Use mlob_pp.comparisons.compare(...) or "
        "plot_compare(...) to compare estimators, result.conf_int() or "
        "mlob_pp.common_format.estimate_frame(tree) for the table."
    )


def _check_frame(frame: Any) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"`frame` must be a pandas DataFrame (the estimator's to_frame()); "
            f"got {type(frame).__name__}"
        )
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(
            f"`frame` must have the columns {list(_REQUIRED)} (optionally 'z', 'p_value'); "
            f"missing {missing}; got columns {list(frame.columns)}"
        )
    if frame.index.has_duplicates:
        dups = sorted({str(t) for t in frame.index[frame.index.duplicated()]})
        raise ValueError(f"`frame` must have one row per term; duplicated terms {dups}")
    if frame.index.nlevels != 1:
        raise ValueError("`frame` must have a flat index of term labels; got a MultiIndex")
    return frame


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    values = frame[name]
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=float, na_value=np.nan)
    if name in _REQUIRED or name in _OPTIONAL:
        raise TypeError(f"column {name!r} of `frame` must be numeric; got dtype {values.dtype}")
    return values.astype(str).to_numpy(dtype=str)


def _check_label(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"`{name}` must be a non-empty string; got {value!r}")
    return value


def estimate_dataset(
    frame: pd.DataFrame,
    *,
    estimator: str,
    conf_level: float,
    interval_method: str,
    se_method: str,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Return the ``estimate`` group of the common format as an ``xarray.Dataset``.

    Parameters are those of :func:`estimate_tree`. Use this to add an ``estimate`` group to a
    tree that also holds real draws (for example posterior summaries of an MCMC fit).
    """
    frame = _check_frame(frame)
    estimator = _check_label(estimator, "estimator")
    interval_method = _check_label(interval_method, "interval_method")
    se_method = _check_label(se_method, "se_method")
    conf_level = check_probability(conf_level, "conf_level")
    terms = np.asarray([str(t) for t in frame.index], dtype=str)
    data_vars: dict[str, Any] = {
        "estimate": ("term", _column(frame, "estimate")),
        "std_error": ("term", _column(frame, "std_error")),
        "ci": (
            ("term", "ci_bound"),
            np.column_stack([_column(frame, "ci_lower"), _column(frame, "ci_upper")]),
        ),
    }
    for name in frame.columns:
        if name in ("estimate", "std_error", "ci_lower", "ci_upper"):
            continue
        if name in ("ci", "term", "ci_bound"):
            raise ValueError(f"`frame` must not have a column named {name!r}")
        data_vars[str(name)] = ("term", _column(frame, name))
    group_attrs = dict(attrs or {})
    group_attrs.update(
        {
            "estimator": estimator,
            "conf_level": conf_level,
            "interval_method": interval_method,
            "se_method": se_method,
        }
    )
    return xr.Dataset(
        data_vars, coords={"term": terms, "ci_bound": list(CI_BOUNDS)}, attrs=group_attrs
    )


def estimate_tree(
    frame: pd.DataFrame,
    *,
    estimator: str,
    conf_level: float,
    interval_method: str,
    se_method: str,
    attrs: Mapping[str, Any] | None = None,
    groups: Mapping[str, Any] | None = None,
) -> PointEstimateTree:
    """Return a point estimate in the common format.

    Parameters
    ----------
    frame : pandas.DataFrame
        The estimator's table: index = parameter labels (``beta_b``, ``gamma_<term>``, ``tau2``,
        ...), columns ``estimate``, ``std_error``, ``ci_lower``, ``ci_upper`` and optionally
        ``z``, ``p_value``; further numeric, boolean or text columns (for example a boundary
        flag) are stored as variables over ``term`` as well.
    estimator : str
        ``"mlob"``, ``"ml_moments"``, ``"ml"``, ``"null_model"``, ... (stored in the attrs).
    conf_level : float
        Level of the stored intervals, in (0, 1).
    interval_method : str
        How the intervals were made: ``"wald"``, ``"bootstrap_inversion"``,
        ``"bootstrap_percentile"``, ``"profile"``, ...
    se_method : str
        How the standard errors were made: ``"analytic"``, ``"observed_information"``,
        ``"bootstrap"``, ``"jackknife"``, ...
    attrs : mapping, optional
        Provenance attributes (see :func:`mlob_pp.provenance.make_attrs`), stamped on the root
        and on every group.
    groups : mapping of str to Dataset, DataTree or dict, optional
        Further groups, for example ``{"bootstrap": refits}`` (dim ``replicate``),
        ``"observed_data"`` or ``"constant_data"``. Groups of real draws (``posterior``,
        ``sample_stats``, ``log_likelihood``, ``prior``, ...) are not allowed here.

    Returns
    -------
    PointEstimateTree
        An ``xarray.DataTree`` with the group ``estimate`` (and `groups`).

    Raises
    ------
    TypeError
        If `frame` is not a DataFrame, a required column is not numeric or a label is not a
        string.
    ValueError
        If a required column is missing, a term is duplicated, `conf_level` is not in (0, 1)
        or `groups` names a posterior group.

    Examples
    --------
    >>> from mlob_pp.tables import wald_table
    >>> frame = wald_table([0.5, 0.3], [0.1, 0.05], index=["beta_b", "beta_w"])
    >>> tree = estimate_tree(frame, estimator="mlob", conf_level=0.95,
    ...                      interval_method="wald", se_method="analytic")
    >>> tree["estimate"]["ci"].sel(term="beta_b").round(4).values.tolist()
    [0.304, 0.696]
    >>> bool((estimate_frame(tree) == frame).all(axis=None))
    True
    """
    dataset = estimate_dataset(
        frame,
        estimator=estimator,
        conf_level=conf_level,
        interval_method=interval_method,
        se_method=se_method,
        attrs=attrs,
    )
    nodes: dict[str, Any] = {ESTIMATE_GROUP: dataset}
    for name, group in (groups or {}).items():
        name = _check_label(name, "groups key")
        if name in POSTERIOR_GROUPS:
            raise ValueError(
                f"`groups` must not contain {name!r}: posterior groups hold real MCMC draws only; "
                "store bootstrap refits as 'bootstrap' and normal-approximation draws as "
                "'normal_approximation'"
            )
        if name == ESTIMATE_GROUP:
            raise ValueError(f"`groups` must not contain {name!r}; it is built from `frame`")
        if isinstance(group, xr.DataTree):
            group = group.to_dataset()
        elif isinstance(group, Mapping):
            group = xr.Dataset(dict(group))
        elif not isinstance(group, xr.Dataset):
            raise TypeError(
                f"`groups[{name!r}]` must be an xarray Dataset, DataTree or dict; "
                f"got {type(group).__name__}"
            )
        group = group.copy()
        group.attrs = {**dict(attrs or {}), **group.attrs}
        nodes[name] = group
    tree = PointEstimateTree.from_dict(nodes)
    tree.attrs = {**dict(attrs or {}), "estimator": estimator}
    return tree


def _estimate_dataset_of(tree: Any) -> xr.Dataset:
    if isinstance(tree, xr.Dataset):
        dataset = tree
    elif isinstance(tree, xr.DataTree):
        if ESTIMATE_GROUP in tree.children:
            dataset = tree[ESTIMATE_GROUP].to_dataset()
        elif tree.name == ESTIMATE_GROUP or "estimate" in tree.data_vars:
            dataset = tree.to_dataset()
        else:
            raise ValueError(
                f"`tree` has no {ESTIMATE_GROUP!r} group (groups: {sorted(tree.children)}); "
                "posterior draws are summarised by mlob_pp.comparisons.compare"
            )
    else:
        raise TypeError(f"`tree` must be an xarray DataTree or Dataset; got {type(tree).__name__}")
    if not {"estimate", "std_error", "ci"} <= set(dataset.data_vars):
        raise ValueError(
            "the estimate group must hold the variables 'estimate', 'std_error' and 'ci'; "
            f"got {sorted(dataset.data_vars)}"
        )
    return dataset


def estimate_frame(tree: Any) -> pd.DataFrame:
    """Return the estimate table stored in a common-format tree.

    Parameters
    ----------
    tree : xarray.DataTree or xarray.Dataset
        A tree with an ``estimate`` group (or that group itself).

    Returns
    -------
    pandas.DataFrame
        Index ``term``; columns ``estimate``, ``std_error``, ``ci_lower``, ``ci_upper``, then
        ``z``, ``p_value`` and further stored columns where present. The attrs of the group
        (``conf_level``, ``interval_method``, ...) are in ``frame.attrs``.
    """
    dataset = _estimate_dataset_of(tree)
    ci = dataset["ci"].transpose("term", "ci_bound")
    columns: dict[str, Any] = {
        "estimate": dataset["estimate"].values,
        "std_error": dataset["std_error"].values,
        "ci_lower": ci.sel(ci_bound="lower").values,
        "ci_upper": ci.sel(ci_bound="upper").values,
    }
    for name, var in dataset.data_vars.items():
        if name not in columns and name != "ci" and var.dims == ("term",):
            columns[str(name)] = var.values
    frame = pd.DataFrame(
        columns, index=pd.Index([str(t) for t in dataset["term"].values], name="term")
    )
    frame.attrs = dict(dataset.attrs)
    return frame


def has_posterior(tree: Any) -> bool:
    """Return whether `tree` holds posterior draws (a ``posterior`` group)."""
    return isinstance(tree, xr.DataTree) and "posterior" in tree.children


def is_point_estimate(tree: Any) -> bool:
    """Return whether `tree` is a point estimate (an ``estimate`` group and no posterior)."""
    return (
        isinstance(tree, xr.DataTree)
        and ESTIMATE_GROUP in tree.children
        and "posterior" not in tree.children
    )


def as_point_estimate(tree: xr.DataTree) -> xr.DataTree:
    """Return `tree` as a :class:`PointEstimateTree` if it is a point estimate.

    A tree read back from a file (``xarray.open_datatree``) is a plain ``DataTree``; this
    restores the clear :class:`NotAPosteriorError` of ArviZ functions that need a posterior.
    Trees with a posterior are returned unchanged.
    """
    if not isinstance(tree, xr.DataTree):
        raise TypeError(f"`tree` must be an xarray DataTree; got {type(tree).__name__}")
    if isinstance(tree, PointEstimateTree) or not is_point_estimate(tree):
        return tree
    out = PointEstimateTree.from_dict(
        {node.path: node.to_dataset(inherit=False) for node in tree.subtree}
    )
    out.attrs = dict(tree.attrs)
    return out
