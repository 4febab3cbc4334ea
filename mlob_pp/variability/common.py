"""Pieces shared by the null, contextual and means-as-outcomes models (checks and tables).

Identification rule (documented in :func:`check_between_df`): a between-group variance needs
at least ``MIN_BETWEEN_DF = 2`` between-group residual degrees of freedom, that is
``J - rank(group means of the fixed-effects design) >= 2``. The null model therefore needs 3
groups, the contextual model (intercept and the group mean of X) 4 groups, plus one more per
further between-group term. With 0 such degrees of freedom tau2 is not identified at all (REML's
likelihood is flat in it; with J = 2 the contextual model returned anything from 3.5 to 13); with
1 it is a one-degree-of-freedom estimate whose Wald interval means nothing.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.design import between_rank, check_within_variation
from mlob_pp.tables import wald_table
from mlob_pp.validate import check_choice
from mlob_pp.variability.mixed import MixedFit
from mlob_pp.warnings import SingularFitWarning

__all__ = [
    "MIN_BETWEEN_DF",
    "METHODS",
    "reml_flag",
    "size_line",
    "check_outcome_variation",
    "check_between_df",
    "warn_singular",
    "variance_table",
]

#: minimum between-group residual degrees of freedom for a between-group variance
MIN_BETWEEN_DF = 2
METHODS = ("reml", "ml")


def reml_flag(method: Any) -> bool:
    """Return True for ``"reml"``, False for ``"ml"`` (ValueError otherwise)."""
    return check_choice(method, "method", METHODS) == "reml"


def size_line(sizes: np.ndarray, group: str) -> str:
    """Return the "Number of obs ..." line of a summary."""
    return (
        f"Number of obs: {int(sizes.sum())}, groups: {group}, {sizes.shape[0]} "
        f"(size {sizes.min()}-{sizes.max()}, mean {sizes.mean():.2f})"
    )


def check_outcome_variation(y: np.ndarray, codes: np.ndarray, n_groups: int, name: str) -> None:
    """Raise ValueError if the outcome does not vary within groups (relative to its scale)."""
    try:
        check_within_variation(y, codes, n_groups, name, role="outcome")
    except ValueError:
        raise ValueError(
            f"outcome {name!r} does not vary within groups, so the within-group variance "
            "sigma2 is 0 and the model is not identified"
        ) from None


def check_between_df(X: np.ndarray, codes: np.ndarray, n_groups: int, names: list[str],
                     group: str) -> int:
    """Raise ValueError unless ``J - rank(group means of X) >= MIN_BETWEEN_DF``.

    Returns the between-group residual degrees of freedom.
    """
    rank = between_rank(X, codes, n_groups)
    df = n_groups - rank
    if df < MIN_BETWEEN_DF:
        raise ValueError(
            f"`group` {group!r}: {n_groups} groups are too few to estimate the between-group "
            f"variance tau2 next to {rank} between-group fixed effect(s) (of "
            f"{', '.join(names)}); it needs J - {rank} >= {MIN_BETWEEN_DF}, i.e. at least "
            f"{rank + MIN_BETWEEN_DF} groups; got {n_groups}"
        )
    return df


def warn_singular(group: str, fit: MixedFit) -> None:
    """Warn (SingularFitWarning, a BoundaryWarning) that G is on the boundary."""
    what = ("the between-group variance is estimated at the boundary 0"
            if fit.cov_re.shape[0] == 1 else
            "the between-group covariance matrix is singular (a variance at 0 or a correlation "
            "of +-1)")
    warnings.warn(
        f"singular fit: {what} (as lme4's isSingular); the boundary is reported in the "
        f"summary, variance standard errors are NaN and the {group} effects are shrunk to it",
        SingularFitWarning,
        stacklevel=3,
    )


def variance_table(fit: MixedFit, re_names: list[str], conf_level: float) -> pd.DataFrame:
    """Return the Wald rows of the variance parameters, sigma2 and the (residual) ICC.

    Labels: ``tau2`` (intercept variance), then with random slopes ``tau01`` (covariance) and
    ``tau2_<slope>``, then ``sigma2`` and ``icc``. SEs from the observed information; the ICC's
    by the delta method from the (tau2, sigma2) block. NaN on the boundary.
    """
    G = fit.cov_re
    q = G.shape[0]
    rows, cols = np.tril_indices(q)
    labels = []
    for a, b in zip(rows, cols, strict=True):
        if a == b == 0:
            labels.append("tau2")
        elif a == b:
            labels.append(f"tau2_{re_names[a]}")
        else:
            labels.append(f"tau{b}{a}")
    est = [*G[rows, cols], fit.sigma2]
    V = fit.cov_var
    se = list(np.sqrt(np.diag(V))) if V.shape[0] == len(est) else [np.nan] * len(est)
    t, s = float(G[0, 0]), fit.sigma2
    icc = t / (t + s)
    grad = np.array([s, -t]) / (t + s) ** 2
    sub = V[np.ix_([0, len(est) - 1], [0, len(est) - 1])] if V.shape[0] == len(est) else None
    icc_se = float(np.sqrt(grad @ sub @ grad)) if sub is not None else np.nan
    return wald_table([*est, icc], [*se, icc_se], conf_level=conf_level,
                      index=[*labels, "sigma2", "icc"])
