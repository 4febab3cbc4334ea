"""Input checks of :func:`mlob_pp.fit_mcmc`, all run before the model is built or compiled."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.design import check_full_rank, check_variation, check_within_variation
from mlob_pp.warnings import MissingDataWarning

__all__ = ["check_group_covariates", "group_level_values", "check_design"]


def check_design(mf: Any) -> None:
    """Reject designs the model cannot be estimated from, in milliseconds (before compile).

    Checks, all relative to the data's scale (:mod:`mlob_pp.design`): at least two groups;
    at least one group with two or more rows; an outcome that varies; a predictor X that
    varies within groups; covariates that vary; no collinear terms.

    Raises
    ------
    ValueError
        Naming the column or the problem.
    """
    if mf.n_groups < 2:
        raise ValueError(
            f"`group`: the data have a single group ({mf.group_name!r} takes one value); the "
            "latent covariate model needs at least 2 groups")
    sizes = np.bincount(mf.group_codes, minlength=mf.n_groups)
    if sizes.max() < 2:
        raise ValueError(
            f"`group`: every group of {mf.group_name!r} has a single row; the within-group "
            "part of the model is not identified (need groups with at least 2 rows)")
    check_variation(mf.y, mf.response, role="outcome")
    check_within_variation(mf.x, mf.group_codes, mf.n_groups, mf.target, role="predictor")
    for i, name in enumerate(mf.covariate_names):
        check_variation(mf.covariates[:, i], name, role="covariate")
    names = [mf.target, *mf.covariate_names]
    check_full_rank(np.column_stack([mf.x, mf.covariates]), names, argument="formula")


def check_group_covariates(
    group_covariates: Sequence[str] | None, data: Any, missing: str
) -> tuple[tuple[str, ...], Any]:
    """Validate the level-2 column names; with ``missing="drop"`` drop rows where they are NaN."""
    if group_covariates is None:
        return (), data
    if isinstance(group_covariates, str) or not all(
        isinstance(c, str) for c in group_covariates
    ):
        raise TypeError(
            "`group_covariates` must be a sequence of column names (strings); "
            f"got {group_covariates!r}"
        )
    names = tuple(dict.fromkeys(group_covariates))
    if not names:
        return (), data
    if not isinstance(data, pd.DataFrame):
        raise TypeError("`group_covariates` needs `data` to be a pandas DataFrame")
    unknown = [c for c in names if c not in data.columns]
    if unknown:
        raise ValueError(
            f"`group_covariates` column(s) not in data: {', '.join(map(repr, unknown))}"
        )
    for c in names:
        col = data[c]
        if not (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)):
            raise TypeError(
                f"`group_covariates` column {c!r} must be numeric; got dtype {col.dtype}"
            )
    isna = data[list(names)].isna().to_numpy()
    if isna.any():
        if missing == "raise":
            c = names[int(np.flatnonzero(isna.any(axis=0))[0])]
            raise ValueError(
                f"column {c!r} has {int(isna[:, names.index(c)].sum())} missing values "
                f"(NaN/None) in {data.shape[0]} rows; remove them or pass missing='drop' to "
                "drop incomplete rows"
            )
        if missing == "drop":

            keep = ~isna.any(axis=1)
            warnings.warn(
                f"dropped {int((~keep).sum())} of {data.shape[0]} rows with missing values in "
                f"the group covariates {', '.join(map(repr, names))} (missing='drop')",
                MissingDataWarning,
                stacklevel=3,
            )
            data = data.loc[keep]
    return names, data


def group_level_values(data: Any, names: tuple[str, ...], mf: Any) -> np.ndarray:
    """(J, k) values of the level-2 columns; ValueError if not constant within a group."""
    values = data[list(names)].to_numpy(dtype=float)[mf.rows]
    codes = mf.group_codes
    lo = np.full((mf.n_groups, len(names)), np.inf)
    hi = np.full((mf.n_groups, len(names)), -np.inf)
    np.minimum.at(lo, codes, values)
    np.maximum.at(hi, codes, values)
    bad = ~np.isclose(lo, hi, rtol=1e-12, atol=0.0)
    if bad.any():
        j, k = (int(v[0]) for v in np.nonzero(bad))
        raise ValueError(
            f"`group_covariates` column {names[k]!r} is not constant within groups "
            f"(e.g. group {mf.group_labels[j]!r} has values from {lo[j, k]:g} to {hi[j, k]:g})"
        )
    return lo
