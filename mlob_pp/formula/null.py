"""The ``y ~ 1`` formula of null models and the pre-0.2 data-first call order.

Shared by the REML/ML variability models (:mod:`mlob_pp.variability`) and their PyMC
counterparts (:mod:`mlob_pp.models.variability`), so both read a formula, and recognise the old
``f(data, "y", "g")`` call, in the same way.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import pandas as pd

from mlob_pp.formula.groups import resolve_group

__all__ = ["NULL_FORMULA", "old_positional_call", "parse_null_formula"]

#: ``outcome ~ 1`` (the outcome may be back-quoted); group 1 is the outcome
NULL_FORMULA = re.compile(r"^\s*`?([^`~]+?)`?\s*~\s*1\s*$")


def old_positional_call(func: str, first: Any, second: Any, new: str) -> bool:
    """Return True (with a DeprecationWarning naming the new call) for the pre-0.2 order.

    The old calls passed the DataFrame first (``null_model(data, "y", "g")``,
    ``contextual_model(data, "y ~ x", "g")``). The warning points at the caller of `func`.

    Examples
    --------
    >>> old_positional_call("null_model", "y ~ 1", None, "null_model('y ~ 1', data)")
    False
    """
    if isinstance(first, pd.DataFrame) and isinstance(second, str):
        warnings.warn(
            f"{func}(data, ...) is deprecated since 0.2 and will be removed; use {new}",
            DeprecationWarning,
            stacklevel=3,
        )
        return True
    return False


def parse_null_formula(formula: Any, group: Any, func: str, hint: str = "") -> tuple[str, str]:
    """Return ``(outcome, group)`` of ``"y ~ 1"`` (with `group`) or ``"y ~ 1 + (1 | g)"``.

    Parameters
    ----------
    formula : str
        The null-model formula.
    group : str or None
        Grouping column, unless the formula names it.
    func : str
        Name of the calling function, for the error message.
    hint : str, optional
        Appended to the ValueError (e.g. which function takes predictors).

    Raises
    ------
    TypeError
        If `formula` is not a string.
    ValueError
        If the fixed part is not ``outcome ~ 1`` (or the group is given twice or not at all).

    Examples
    --------
    >>> parse_null_formula("mAch ~ 1 + (1 | school)", None, "null_model")
    ('mAch', 'school')
    """
    if not isinstance(formula, str):
        raise TypeError(
            f"`formula` must be a string like 'y ~ 1' or 'y ~ 1 + (1 | school)'; got "
            f"{type(formula).__name__}"
        )
    fixed, group = resolve_group(formula, group)
    m = NULL_FORMULA.match(fixed)
    if m is None:
        raise ValueError(
            f"`formula`: {func} takes 'y ~ 1' or 'y ~ 1 + (1 | group)'; got {formula!r}"
            + (f" ({hint})" if hint else "")
        )
    return m.group(1).strip(), group
