"""lme4-style formulas for the SS-MELSM: ``y ~ x1 * x2 + (1 + x1 | school)``.

A formula has a fixed part (a Wilkinson formula, expanded by formulaic exactly like R's
``model.matrix``: ``a*b`` gives ``a``, ``b`` and ``a:b``, an intercept unless ``0`` or ``-1``
removes it) and at most one random term ``(re | group)``, whose ``re`` part is itself expanded
like a one-sided formula (``(1 | g)`` gives an intercept column, ``(x | g)`` and ``(1 + x | g)``
give ``[Intercept, x]``, ``(0 + x | g)`` gives ``[x]``, as in lme4). The scale formula of the
SS-MELSM is one-sided (``~ x + (1 | g)``); a left-hand side (``sigma ~ ...``) is ignored.

Unlike the textual parser of the R package ivd (Rast & Carmo), the random term may stand
anywhere among the terms and long formulas are fine; a second random term, ``||`` or a random
term without a grouping variable are errors.

References
----------
Bates, D., Mächler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models
using lme4. Journal of Statistical Software, 67(1), 1-48. https://doi.org/10.18637/jss.v067.i01
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlob_pp.formula.parse import r_name

__all__ = ["MixedFormula", "split_mixed_formula", "required_columns", "design_matrices"]

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$|^`[^`]+`$")


@dataclass(frozen=True)
class MixedFormula:
    """A formula split into its fixed and random parts.

    Attributes
    ----------
    text : str
        The formula as given.
    response : str or None
        Left-hand side (``None`` for a one-sided formula).
    fixed : str
        Right-hand side of the fixed part, e.g. ``"x1 * x2"`` (``"1"`` if only an intercept).
    random : str or None
        Left of ``|`` inside the random term, e.g. ``"1 + x1"`` (``None`` without random term).
    group : str or None
        The grouping variable of the random term.
    """

    text: str
    response: str | None
    fixed: str
    random: str | None
    group: str | None


def _split_top(text: str, sep: str) -> list[str]:
    """Split `text` on `sep` (one character) outside parentheses and backticks."""
    parts, depth, start, quoted = [], 0, 0, False
    for k, ch in enumerate(text):
        if ch == "`":
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:k])
            start = k + 1
    parts.append(text[start:])
    return parts


def _is_wrapped(term: str) -> bool:
    """Return True if `term` is one parenthesised expression ``( ... )``."""
    if not (term.startswith("(") and term.endswith(")")):
        return False
    depth = 0
    for k, ch in enumerate(term):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and k < len(term) - 1:
            return False
    return True


def split_mixed_formula(formula: str, name: str, *, one_sided: bool = False) -> MixedFormula:
    """Split an lme4-style formula into fixed part, random part and grouping variable.

    Parameters
    ----------
    formula : str
        ``"y ~ x + (1 + x | g)"`` (location) or ``"~ x + (1 | g)"`` (scale).
    name : str
        Argument name used in error messages (``"location"`` or ``"scale"``).
    one_sided : bool, default False
        If True a left-hand side is allowed but ignored (scale formulas).

    Returns
    -------
    MixedFormula

    Raises
    ------
    TypeError
        If `formula` is not a string.
    ValueError
        If the formula has no ``~``, lacks a required response, has more than one random term,
        uses ``||`` or has a random term without a single grouping variable.

    Examples
    --------
    >>> f = split_mixed_formula("y ~ a * b + (1 + a | school)", "location")
    >>> (f.response, f.fixed, f.random, f.group)
    ('y', 'a * b', '1 + a', 'school')
    """
    if not isinstance(formula, str):
        raise TypeError(f"`{name}` must be a formula string; got {type(formula).__name__}")
    text = " ".join(formula.split())
    if text.count("~") != 1:
        example = "'~ x + (1 | school)'" if one_sided else "'y ~ x + (1 | school)'"
        raise ValueError(
            f"`{name}` must be a formula with one '~', like {example}; got {formula!r}"
        )
    lhs, rhs = (s.strip() for s in text.split("~"))
    if not one_sided and not lhs:
        raise ValueError(
            f"`{name}` must name the outcome on the left of '~', like 'y ~ x + (1 | school)'; "
            f"got {formula!r}"
        )
    if lhs and not _NAME.match(lhs):
        if not one_sided:
            raise ValueError(
                f"`{name}`: the outcome must be a column name (transform it in the data "
                f"first); got {lhs!r}"
            )
    fixed_terms, random_terms = [], []
    for term in (t.strip() for t in _split_top(rhs, "+")):
        if not term:
            raise ValueError(f"`{name}` has an empty term (check the '+' signs); got {formula!r}")
        if _is_wrapped(term) and "|" in term:
            random_terms.append(term[1:-1].strip())
        else:
            fixed_terms.append(term)
    if len(random_terms) > 1:
        raise ValueError(
            f"`{name}` may contain only one random term '(... | group)'; got "
            f"{len(random_terms)} in {formula!r} (write them in one term, e.g. '(1 + x | g)')"
        )
    random = group = None
    if random_terms:
        inner = random_terms[0]
        if "||" in inner:
            raise ValueError(
                f"`{name}`: uncorrelated random effects '||' are not supported; got {formula!r}"
            )
        pieces = _split_top(inner, "|")
        random, group = pieces[0].strip(), pieces[-1].strip()
        if len(pieces) != 2 or not random or not _NAME.match(group):
            raise ValueError(
                f"`{name}`: the random term must look like '(1 + x | group)' with one grouping "
                f"column; got '({inner})'"
            )
        group = group.strip("`")
    fixed = " + ".join(fixed_terms) if fixed_terms else "1"
    return MixedFormula(
        text=formula,
        response=lhs.strip("`") if lhs and not one_sided else None,
        fixed=fixed,
        random=random,
        group=group,
    )


def _required(rhs: str, name: str) -> set[str]:
    from formulaic import Formula

    try:
        return set(Formula(rhs).required_variables)
    except Exception as err:  # formulaic raises several parser errors
        raise ValueError(f"`{name}`: cannot parse {rhs!r}: {err}") from err


def required_columns(formula: MixedFormula, name: str) -> list[str]:
    """Return the data columns a split formula needs (response, terms, group)."""
    cols = _required(formula.fixed, name)
    if formula.random is not None:
        cols |= _required(formula.random, name)
    cols = {c for c in cols if c not in {"C", "I", "Q", "log", "exp", "np", "center", "scale"}}
    if formula.response:
        cols.add(formula.response)
    if formula.group:
        cols.add(formula.group)
    return sorted(cols)


def _matrix(rhs: str, data: pd.DataFrame, name: str) -> tuple[np.ndarray, list[str]]:
    from formulaic import model_matrix

    try:
        mm = model_matrix(rhs, data, na_action="raise")
    except Exception as err:
        raise ValueError(f"`{name}`: cannot build the model matrix of {rhs!r}: {err}") from err
    names = ["Intercept" if c == "Intercept" else r_name(c) for c in mm.columns]
    return np.asarray(mm, dtype=float), names


def design_matrices(
    formula: MixedFormula, data: pd.DataFrame, name: str
) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """Build the fixed and random design matrices of `formula` on `data`.

    Returns
    -------
    X, x_names, Z, z_names
        ``Z`` has zero columns when the formula has no random term.
    """
    x, xn = _matrix(formula.fixed, data, name)
    if formula.random is None:
        return x, xn, np.zeros((len(data), 0)), []
    z, zn = _matrix(formula.random, data, name)
    if z.shape[1] == 0:
        raise ValueError(f"`{name}`: the random term '({formula.random} | ...)' has no columns")
    return x, xn, z, zn
