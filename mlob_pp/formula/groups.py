"""The grouping variable, given as ``group=`` or lme4-style in the formula.

Every estimator accepts ``fit_x("y ~ x + c", data, group="school")`` and, as bambi and lme4
users write it, ``fit_x("y ~ x + c + (1 | school)", data)``; both spellings give identical
results. :func:`resolve_group` turns either into the fixed-effects formula and the group name.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["resolve_group", "split_group_term"]

# a top-level "(... | name)" term, possibly with a leading "+"
_TERM = re.compile(r"\+?\s*\(\s*([^()|]*?)\s*\|\s*`?([A-Za-z_.][\w.]*)`?\s*\)")


def split_group_term(formula: str) -> tuple[str, str | None, str | None]:
    """Split ``"y ~ x + (1 | g)"`` into ``("y ~ x", "g", "1")``.

    Returns the formula without its random term, the grouping column and the random part
    (``"1"`` for a random intercept); the last two are ``None`` when there is no random term.

    Raises
    ------
    ValueError
        If the formula has more than one random term.

    Examples
    --------
    >>> split_group_term("y ~ x + c + (1 | school)")
    ('y ~ x + c', 'school', '1')
    >>> split_group_term("y ~ x")
    ('y ~ x', None, None)
    """
    terms = list(_TERM.finditer(formula))
    if not terms:
        return formula, None, None
    if len(terms) > 1:
        raise ValueError(
            f"`formula` may contain at most one group term '(1 | group)'; got {formula!r}"
        )
    m = terms[0]
    rest = (formula[: m.start()] + formula[m.end():]).strip()
    rest = re.sub(r"~\s*\+", "~", rest)
    rest = re.sub(r"\+\s*$", "", rest).strip()
    if rest.endswith("~"):
        rest += " 1"
    return " ".join(rest.split()), m.group(2), m.group(1) or "1"


def resolve_group(
    formula: Any, group: Any, *, random_allowed: tuple[str, ...] = ("1",)
) -> tuple[Any, str]:
    """Return ``(formula_without_group_term, group)`` from either spelling.

    Parameters
    ----------
    formula : str
        Model formula, possibly with one lme4 group term ``(1 | group)``.
    group : str or None
        Grouping column given as an argument.
    random_allowed : tuple of str, default ("1",)
        Random parts accepted in the group term (``"1"``: random intercept only).

    Returns
    -------
    formula : str
        The formula without the group term (non-strings are returned unchanged, for the caller's
        own type check).
    group : str
        The grouping column.

    Raises
    ------
    ValueError
        If the group is given neither way, given both ways with different names, or the group term
        has a random part the estimator does not support.

    Examples
    --------
    >>> resolve_group("y ~ x + (1 | school)", None)
    ('y ~ x', 'school')
    >>> resolve_group("y ~ x", "school")
    ('y ~ x', 'school')
    """
    if not isinstance(formula, str):
        return formula, group
    fixed, term_group, random = split_group_term(formula)
    if term_group is None:
        if group is None:
            raise ValueError(
                "`group` is required: pass group='school' or write the group term in the formula, "
                f"like 'y ~ x + (1 | school)'; got formula {formula!r} and group=None"
            )
        return formula, group
    compact = "".join(str(random).split())
    if compact not in {"".join(r.split()) for r in random_allowed}:
        allowed = ", ".join(f"({r} | {term_group})" for r in random_allowed)
        raise ValueError(
            f"`formula`: this estimator supports the group term {allowed}; got "
            f"'({random} | {term_group})' in {formula!r}"
        )
    if group is not None and group != term_group:
        raise ValueError(
            f"`group` ({group!r}) and the formula's group term ({term_group!r}) disagree; "
            "give the group one way"
        )
    return fixed, term_group
