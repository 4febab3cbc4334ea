"""Design checks shared by every estimator: variation and rank, relative to the data's scale.

"No variation" and "collinear" are decided the same way for MLOB, ML, MCMC, SS-MELSM and the
variability models, always relative to the size of the values, so that shifting a column by 1e9
or scaling it by 1e-12 never turns valid data into an error (or the reverse). A column varies
when its centred norm exceeds ``RTOL = 1e-11`` times its norm (so a shift of 1e9 on unit-variance
data is fine, while a column equal up to rounding is not); columns are collinear when, centred
and scaled to unit norm, their smallest singular value is below ``RANK_RTOL = 1e-9`` times the
largest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "RTOL",
    "RANK_RTOL",
    "has_variation",
    "check_variation",
    "within_group_share",
    "check_within_variation",
    "constant_within_groups",
    "check_full_rank",
    "check_frame",
    "column_values",
    "group_index",
    "between_rank",
]

#: relative tolerance for "no variation" decisions
RTOL = 1e-11
#: relative tolerance (singular value ratio) for rank decisions
RANK_RTOL = 1e-9


def _centred_ratio(values: np.ndarray) -> float:
    v = np.asarray(values, dtype=float)
    scale = float(np.max(np.abs(v))) if v.size else 0.0
    if scale == 0.0 or not np.isfinite(scale):
        return 0.0
    v = v / scale
    c = v - v.mean()
    return float(np.linalg.norm(c) / max(np.linalg.norm(v), np.finfo(float).tiny))


def has_variation(values: np.ndarray, *, rtol: float = RTOL) -> bool:
    """Return whether `values` vary beyond rounding of their mean (relative to their size).

    Examples
    --------
    >>> has_variation(np.array([1e9, 1e9 + 1.0])), has_variation(np.full(5, 3.0))
    (True, False)
    """
    return _centred_ratio(values) > rtol


def check_variation(values: np.ndarray, name: str, *, role: str = "column",
                    rtol: float = RTOL) -> None:
    """Raise ``ValueError`` if `values` do not vary (relative to their scale)."""
    if not has_variation(values, rtol=rtol):
        v = np.asarray(values, dtype=float)
        shown = f"{v.flat[0]!r}" if v.size else "no values"
        raise ValueError(
            f"{role} {name!r} has no variation (all values equal {shown} up to rounding); "
            "it cannot be estimated from these data"
        )


def _group_means(values: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    sums = np.bincount(codes, weights=values, minlength=n_groups)
    counts = np.bincount(codes, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def within_group_share(values: np.ndarray, codes: np.ndarray, n_groups: int) -> float:
    """Return the norm of the within-group deviations relative to the norm of the values."""
    v = np.asarray(values, dtype=float)
    if v.size == 0 or not np.isfinite(v).all():
        return 0.0
    # deviations from each group's first value are exact zeros for a level-2 column, however
    # large its shift; the group means are then taken of these small numbers
    first = np.full(n_groups, -1)
    first[codes[::-1]] = np.arange(v.size)[::-1]
    w = v - v[first[codes]]
    centred = v - v.mean()
    scale = float(np.max(np.abs(centred)))
    if scale == 0.0:
        return 0.0
    dev = (w - _group_means(w, codes, n_groups)[codes]) / scale
    return float(np.linalg.norm(dev) / np.linalg.norm(centred / scale))


def constant_within_groups(values: np.ndarray, codes: np.ndarray, n_groups: int, *,
                           rtol: float = RTOL) -> bool:
    """Return whether `values` are constant within every group (a level-2 variable)."""
    return within_group_share(values, codes, n_groups) <= rtol


def check_within_variation(values: np.ndarray, codes: np.ndarray, n_groups: int, name: str, *,
                           role: str = "column", rtol: float = RTOL) -> None:
    """Raise ``ValueError`` if `values` do not vary within groups (relative to their scale)."""
    if constant_within_groups(values, codes, n_groups, rtol=rtol):
        raise ValueError(
            f"{role} {name!r} has no within-group variation (it is constant within every "
            "group); its within-group effect cannot be estimated"
        )


def check_full_rank(matrix: np.ndarray, names: Sequence[str], *, argument: str = "formula",
                    rtol: float = RANK_RTOL) -> None:
    """Raise ``ValueError`` if the centred, column-scaled columns of `matrix` are collinear.

    Constant columns (an intercept) are ignored; each other column is centred and scaled to unit
    norm, so the decision does not depend on units. A singular value below `rtol` times the
    largest marks a linear dependence; the message names the columns that take part in it.

    Examples
    --------
    >>> x = np.arange(6.0)
    >>> check_full_rank(np.c_[x, x ** 2], ["x", "x2"])  # fine
    >>> check_full_rank(np.c_[x, 2 * x + 1], ["x", "c"])
    Traceback (most recent call last):
    ...
    ValueError: `formula`: the terms 'x', 'c' are collinear ...
    """
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[1] == 0:
        return
    keep = [j for j in range(m.shape[1]) if has_variation(m[:, j])]
    if len(keep) < 2:
        return
    sub = m[:, keep] / np.max(np.abs(m[:, keep]), axis=0)
    sub = sub - sub.mean(axis=0)
    sub = sub / np.linalg.norm(sub, axis=0)
    _, s, vt = np.linalg.svd(sub, full_matrices=False)
    if s[-1] > max(rtol, np.finfo(float).eps * max(sub.shape) * 10) * s[0]:
        return
    null = np.abs(vt[-1])
    involved = [names[keep[j]] for j in np.flatnonzero(null > 1e-6 * null.max())]
    shown = ", ".join(repr(n) for n in involved)
    raise ValueError(
        f"`{argument}`: the terms {shown} are collinear (linearly dependent after centring); "
        "drop or combine them"
    )


def check_frame(data: Any, argument: str = "data") -> pd.DataFrame:
    """Return `data` if it is a non-empty pandas DataFrame with unique string-like columns.

    Raises ``TypeError`` for another type and ``ValueError`` for an empty frame, a MultiIndex
    or duplicated column names.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"`{argument}` must be a pandas DataFrame; got {type(data).__name__}")
    if data.shape[0] == 0:
        raise ValueError(f"`{argument}` is empty (0 rows)")
    if isinstance(data.columns, pd.MultiIndex):
        raise ValueError(f"`{argument}` must have flat column names; got a MultiIndex")
    if data.columns.has_duplicates:
        dup = sorted({str(c) for c in data.columns[data.columns.duplicated()]})
        raise ValueError(f"`{argument}` has duplicated column names: {', '.join(dup)}")
    return data


def column_values(data: pd.DataFrame, name: Any, argument: str, *,
                  numeric: bool) -> np.ndarray:
    """Return the values of column `name` (float if `numeric`), checked for presence and NaN.

    Raises ``TypeError`` if `name` is not a string or a numeric column is not numeric (booleans
    are not), ``ValueError`` if the column is missing or has missing or infinite values.
    """
    if not isinstance(name, str):
        raise TypeError(f"`{argument}` must be the name of a column (a string); got {name!r}")
    if name not in data.columns:
        cols = ", ".join(repr(str(c)) for c in data.columns[:12])
        raise ValueError(f"`{argument}` column {name!r} is not in data; available columns: {cols}")
    col = data[name]
    n_missing = int(col.isna().sum())
    if n_missing:
        raise ValueError(
            f"`{argument}` column {name!r} has {n_missing} missing values; drop those rows first "
            "(e.g. data.dropna(subset=[...]))"
        )
    if not numeric:
        return col.to_numpy()
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        raise TypeError(f"`{argument}` column {name!r} must be numeric; got dtype {col.dtype}")
    values = col.to_numpy(dtype=float)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"`{argument}` column {name!r} has non-finite values (inf)")
    return values


def group_index(labels: np.ndarray, name: str, *, min_groups: int = 2,
                argument: str = "group") -> tuple[np.ndarray, np.ndarray]:
    """Return ``(codes, labels)``: each row's group index (sorted labels where orderable).

    Raises ``ValueError`` if there are fewer than `min_groups` groups or every group has one row
    (no within-group information).
    """
    try:
        codes, uniques = pd.factorize(labels, sort=True)
    except TypeError:  # mixed, unorderable labels: order of first appearance
        codes, uniques = pd.factorize(labels, sort=False)
    if uniques.shape[0] < min_groups:
        raise ValueError(
            f"`{argument}` column {name!r} must have at least {min_groups} distinct groups; got "
            f"{uniques.shape[0]}"
        )
    if np.bincount(codes).max() < 2:
        raise ValueError(
            f"`{argument}` column {name!r} has one row per group; the within-group variance "
            "needs at least one group with 2 or more rows"
        )
    return codes.astype(np.intp), np.asarray(uniques)


def between_rank(matrix: np.ndarray, codes: np.ndarray, n_groups: int, *,
                 rtol: float = RANK_RTOL) -> int:
    """Return the rank of the group means of the columns of `matrix` (between-group terms).

    The number of groups minus this rank is the between-group residual degrees of freedom left
    to estimate a between-group variance. Columns whose group means are all 0 up to rounding
    (group-mean centred columns) carry no between-group information and are skipped; the others
    are scaled to unit maximum, so the rank does not depend on units.
    """
    m = np.asarray(matrix, dtype=float)
    counts = np.bincount(codes, minlength=n_groups).astype(float)
    means = np.column_stack([np.bincount(codes, weights=m[:, k], minlength=n_groups) / counts
                             for k in range(m.shape[1])])
    col_scale = np.max(np.abs(m), axis=0)
    keep = np.max(np.abs(means), axis=0) > RTOL * col_scale  # within-group-only columns drop
    means = means[:, keep] / np.max(np.abs(means[:, keep]), axis=0)
    if means.shape[1] == 0:
        return 0
    s = np.linalg.svd(means, compute_uv=False)
    return int(np.sum(s > max(rtol, np.finfo(float).eps * max(means.shape) * 10) * s[0]))
