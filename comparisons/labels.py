"""Parameter names of the latent covariate model and their labels in tables.

A table label (``beta_b``, ``gamma_ses``, ``gamma_w_ses``, ``tau2``) names a variable and, for
covariate slopes, a ``term``; :func:`labels_to_dataset` turns labelled values into a Dataset of
named variables (used for draws), :func:`split_label` does one label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "PARAMETERS",
    "VECTOR_PARAMETERS",
    "DISPLAY_ORDER",
    "ESTIMATORS",
    "split_label",
    "labels_to_dataset",
    "element_labels",
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
#: Covariate coefficient vectors (dim ``term``); the table label is ``<name>_<term>``.
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


# ------------------------------------------------------------------------ labels <-> dataset


def split_label(label: str, terms: Sequence[str] | None) -> tuple[str, str | None]:
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
        name, term = split_label(str(label), terms)
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


def element_labels(da: xr.DataArray) -> list[tuple[str, dict[str, Any]]]:
    """Return (table label, selection) for every element of a parameter DataArray.

    A scalar ``beta_b`` gives ``[("beta_b", {})]``; ``gamma`` over ``term`` gives
    ``("gamma_<term>", {"term": <term>})`` per term; other shapes ``name[i,j]``.
    """
    name = str(da.name)
    if da.ndim == 0:
        return [(name, {})]
    if da.ndim == 1 and str(da.dims[0]).startswith("term"):
        dim = da.dims[0]
        return [(f"{name}_{t}", {dim: t}) for t in da[dim].values.tolist()]
    out = []
    for idx in np.ndindex(*da.shape):
        sel = {d: da[d].values[i] for d, i in zip(da.dims, idx, strict=True)}
        out.append((name + "[" + ",".join(str(v) for v in sel.values()) + "]", sel))
    return out
