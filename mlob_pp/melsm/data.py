"""SS-MELSM inputs: the Saeb preparation, the formulas and the design checks (before any compile).

Every check here runs in milliseconds on the user's frame, so bad input is reported before
PyMC and nutpie are imported or a model is compiled (issue 12's failure policy): empty frames,
missing columns, NaN or infinite values, a non-numeric or constant outcome, an outcome without
within-group variation, collinear fixed effects (location or scale), a single group, all groups
of size 1 and random slopes that do not vary within groups are ``ValueError`` naming the
argument; a non-frame ``data`` or a non-numeric outcome is a ``TypeError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp import datasets
from mlob_pp.design import (
    check_full_rank,
    check_variation,
    check_within_variation,
    constant_within_groups,
)
from mlob_pp.formula.melsm import (
    MixedFormula,
    design_matrices,
    required_columns,
    split_mixed_formula,
)
from mlob_pp.models.melsm import MELSMData

__all__ = ["MELSMSpec", "prepare_saeb", "parse_formulas", "check_data", "build_data"]


def prepare_saeb(data: pd.DataFrame | None = None) -> pd.DataFrame:
    """Prepare the Saeb data as documented by ivd: within- and between-school SES.

    ``school_ses`` is the school mean of ``student_ses`` centred at the student-weighted grand
    mean; ``student_ses`` becomes the deviation from the school mean (group-mean centring). The
    raw value is kept as ``student_ses_raw``. The model of ivd's README is then
    ``math_proficiency ~ student_ses * school_ses + (1 | school_id)`` for the location and
    ``~ student_ses * school_ses + (1 | school_id)`` for the scale.

    Parameters
    ----------
    data : pandas.DataFrame, optional
        The Saeb data (columns ``school_id`` and ``student_ses``); by default the bundled copy,
        ``mlob_pp.datasets.load("saeb")``. Frames from :func:`mlob_pp.datasets.simulate_saeb`
        are prepared the same way.

    Returns
    -------
    pandas.DataFrame
        A new frame (the input is not modified) with ``student_ses`` (within-school SES),
        ``school_ses`` (centred school-mean SES) and ``student_ses_raw``.

    Raises
    ------
    TypeError
        If `data` is not a DataFrame.
    ValueError
        If ``school_id`` or ``student_ses`` is missing.

    Examples
    --------
    >>> from mlob_pp.melsm.data import prepare_saeb
    >>> df = prepare_saeb()
    >>> abs(float(df["school_ses"].mean())) < 1e-12
    True
    """
    if data is None:

        data = datasets.load("saeb")
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"`data` must be a pandas DataFrame; got {type(data).__name__}")
    missing = [c for c in ("school_id", "student_ses") if c not in data.columns]
    if missing:
        raise ValueError(
            f"`data` must have the Saeb columns 'school_id' and 'student_ses'; missing {missing}"
        )
    out = data.copy()
    school_mean = out.groupby("school_id")["student_ses"].transform("mean")
    out["student_ses_raw"] = out["student_ses"]
    out["student_ses"] = out["student_ses"] - school_mean
    out["school_ses"] = school_mean - school_mean.mean()
    return out


@dataclass(frozen=True)
class MELSMSpec:
    """The parsed model: location and scale formulas (each with its random term) and the group.

    Attributes
    ----------
    location, scale : MixedFormula
        Split formulas; both have a random term grouped by `group`.
    group : str
        Grouping column.
    location_text, scale_text : str
        The formulas in lme4 spelling (random term included), as stored in the result.
    """

    location: MixedFormula
    scale: MixedFormula
    group: str
    location_text: str
    scale_text: str


def _with_term(formula: str, random: str, group: str) -> str:
    lhs, rhs = formula.split("~", 1)
    rhs = rhs.strip()
    return f"{lhs.strip()} ~ {rhs} + ({random} | {group})".strip()


def parse_formulas(formula: Any, scale: Any, group: Any) -> MELSMSpec:
    """Parse the location formula, the scale formula and the group into a :class:`MELSMSpec`.

    The group comes from the location's lme4 term ``(1 | school)`` / ``(1 + x | school)`` or
    from `group` (then the location gets a random intercept). A scale formula without random
    term gets a random intercept ``(1 | group)``: the spike-and-slab prior sits on the scale
    random effects, so there is always at least one.

    Raises
    ------
    TypeError
        If a formula is not a string or `group` is not a string.
    ValueError
        For malformed formulas, a missing group, or groups that disagree.
    """
    loc = split_mixed_formula(formula, "formula")
    scl = split_mixed_formula(scale, "scale", one_sided=True)
    if group is not None and not isinstance(group, str):
        raise TypeError(f"`group` must be a column name (str) or None; got {type(group).__name__}")
    if loc.group is None:
        if group is None:
            group = scl.group
        if group is None:
            raise ValueError(
                "`group` is required: pass group='school' or write the group term in the formula, "
                f"like 'y ~ x + (1 | school)'; got formula {formula!r} and group=None"
            )
        loc_text = _with_term(loc.text, "1", group)
        loc = split_mixed_formula(loc_text, "formula")
    else:
        loc_text = loc.text
        if group is not None and group != loc.group:
            raise ValueError(
                f"`group` ({group!r}) and the formula's group term ({loc.group!r}) disagree; "
                "give the group one way"
            )
        group = loc.group
    if scl.group is None:
        scl_text = _with_term(scl.text if "~" in scl.text else f"~ {scl.text}", "1", group)
        scl = split_mixed_formula(scl_text, "scale", one_sided=True)
    else:
        scl_text = scl.text
        if scl.group != group:
            raise ValueError(
                "the location formula and `scale` must be grouped by the same variable; got "
                f"{group!r} (location) and {scl.group!r} (scale)"
            )
    return MELSMSpec(loc, scl, str(group), " ".join(loc_text.split()), " ".join(scl_text.split()))


def check_data(data: Any, spec: MELSMSpec) -> list[str]:
    """Check the frame against the formulas (types, columns, missing and non-finite values).

    Returns
    -------
    list of str
        The columns the model uses.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"`data` must be a pandas DataFrame; got {type(data).__name__}")
    if data.columns.nlevels > 1 or data.columns.has_duplicates:
        raise ValueError(
            "`data` must have unique, single-level column names; got "
            f"{'a MultiIndex' if data.columns.nlevels > 1 else 'duplicated names'}"
        )
    if len(data) == 0:
        raise ValueError("`data` has no rows; the SS-MELSM needs at least two groups of data")
    cols = sorted(
        set(required_columns(spec.location, "formula")) | set(required_columns(spec.scale, "scale"))
    )
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise ValueError(
            f"`data` lacks the column(s) {missing} used in the formulas; available columns: "
            f"{list(data.columns)}"
        )
    nan_cols = {c: int(data[c].isna().sum()) for c in cols if data[c].isna().any()}
    if nan_cols:
        raise ValueError(
            f"`data` has missing values (NaN) in {nan_cols}; drop or impute those rows first, "
            "e.g. data.dropna(subset=[...])"
        )
    response = spec.location.response
    if not pd.api.types.is_numeric_dtype(data[response]) or pd.api.types.is_bool_dtype(
        data[response]
    ):
        raise TypeError(
            f"`formula`: the outcome {response!r} must be numeric; got dtype "
            f"{data[response].dtype}"
        )
    inf_cols = {}
    for c in cols:
        if pd.api.types.is_numeric_dtype(data[c]) and not pd.api.types.is_bool_dtype(data[c]):
            n_inf = int(np.isinf(data[c].to_numpy(dtype=float)).sum())
            if n_inf:
                inf_cols[c] = n_inf
    if inf_cols:
        raise ValueError(
            f"`data` has infinite values in {inf_cols}; the SS-MELSM needs finite values"
        )
    return cols


def _check_design(y: np.ndarray, codes: np.ndarray, J: int, names: dict[str, Any],
                  mats: dict[str, tuple[np.ndarray, list[str]]]) -> None:
    """Scale-free checks of the outcome, the groups and the design matrices."""
    response, group = names["response"], names["group"]
    if J < 2:
        raise ValueError(
            f"`group`: the SS-MELSM needs at least 2 groups; column {group!r} has {J}"
        )
    counts = np.bincount(codes, minlength=J)
    if counts.max() < 2:
        raise ValueError(
            f"`group`: every group of {group!r} has a single row; within-group variability "
            "(the scale model) cannot be estimated"
        )
    check_variation(y, response, role="`formula`: the outcome")
    if constant_within_groups(y, codes, J):
        raise ValueError(
            f"`formula`: the outcome {response!r} is constant within every group; the "
            "within-group SD is zero and the scale model is not defined"
        )
    for argument, (X, xn) in mats.items():
        check_full_rank(X, xn, argument=argument)
    for argument, key in (("formula", "Z"), ("scale", "V")):
        Z, zn = names[key]
        for k, name in enumerate(zn):
            if name != "Intercept":
                check_within_variation(Z[:, k], codes, J, name,
                                       role=f"`{argument}`: the random slope")


def build_data(data: pd.DataFrame, spec: MELSMSpec) -> tuple[Any, np.ndarray, np.ndarray]:
    """Sort the rows by group, build the design matrices and run the design checks.

    Returns
    -------
    mdata : mlob_pp.models.melsm.MELSMData
    order : ndarray of int
        Row order used (``data.iloc[order]`` is sorted by group).
    codes : ndarray of int
        Group code of every row of `data`, in the user's order.
    """
    codes, labels = pd.factorize(data[spec.group], sort=True)
    order = np.argsort(codes, kind="stable")
    frame = data.iloc[order]
    X, xn, Z, zn = design_matrices(spec.location, frame, "formula")
    W, wn, V, vn = design_matrices(spec.scale, frame, "scale")
    y = frame[spec.location.response].to_numpy(dtype=float)
    g = codes[order]
    J = len(labels)
    _check_design(
        y, g, J,
        {"response": spec.location.response, "group": spec.group, "Z": (Z, zn), "V": (V, vn)},
        {"formula": (X, xn), "scale": (W, wn)},
    )
    mdata = MELSMData(
        y=y, X=X, Z=Z, W=W, V=V, group_idx=g,
        group_labels=[v.item() if isinstance(v, np.generic) else v for v in labels],
        x_names=xn, z_names=zn, w_names=wn, v_names=vn,
        obs_labels=np.asarray(data.index)[order],
    )
    return mdata, order, codes
