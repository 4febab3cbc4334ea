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

import numpy as np

__all__ = [
    "RTOL",
    "RANK_RTOL",
    "has_variation",
    "check_variation",
    "within_group_share",
    "check_within_variation",
    "constant_within_groups",
    "check_full_rank",
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
    scale = float(np.max(np.abs(v))) if v.size else 0.0
    if scale == 0.0 or not np.isfinite(scale):
        return 0.0
    v = v / scale
    dev = v - _group_means(v, codes, n_groups)[codes]
    return float(np.linalg.norm(dev) / max(np.linalg.norm(v - v.mean()),
                                           np.linalg.norm(v) * 1e-300, np.finfo(float).tiny))


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
