"""Formula handling shared by all estimators: a Wilkinson formula and a data frame to arrays.

``y ~ x + c1 + c2 + c1:c2`` names the outcome ``y``, the **target** regressor ``x`` (the first
right-hand column: the variable whose between-group effect ``beta_b`` is estimated, as in R
MLOB) and the level-1 covariates (every further model-matrix column). Formulas are parsed by
`formulaic <https://matthewwardrop.github.io/formulaic/>`_, so interactions (``a:b``, ``a*b``),
transformations (``log(z)``) and categorical covariates (treatment coding, reference = first
sorted level) work as in R; R-style names with dots (``Sepal.Length``) work as written and names
with spaces when quoted with backticks (```Economic Need Index```).

Covariate columns get R's ``model.matrix`` names: ``sx[T.Male]`` becomes ``sxMale``, so the
coefficients are called ``gamma_sxMale`` like in R.

Parsed formulas are cached, and formulas whose terms are plain numeric columns (and their
interactions) bypass formulaic's model-matrix machinery, so a repeated fit costs microseconds.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.formula.groups import resolve_group
from mlob_pp.validate import MissingDataWarning

__all__ = ["ModelFrame", "parse_formula", "compile_formula", "r_name"]

_TREATMENT = re.compile(r"\[T\.(.*?)\]")


def r_name(column: str) -> str:
    """Return R's ``model.matrix`` name of a formulaic column name (``sx[T.M]`` -> ``sxM``)."""
    return _TREATMENT.sub(r"\1", column)


@dataclass(frozen=True)
class _Compiled:
    """A parsed formula: outcome, right-hand terms and whether the fast path applies."""

    text: str
    formula: Any
    lhs: tuple[str, ...]
    lhs_lookup: bool
    terms: tuple[tuple[str, ...], ...]  # factors of each non-intercept rhs term
    rhs_lookup: bool  # every factor is a plain column lookup
    variables: tuple[str, ...]  # data columns the formula looks up directly
    expr_variables: tuple[str, ...] = ()  # names in python expressions (may be functions)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _plain(exc: BaseException) -> str:
    """Return an exception's message without terminal colour codes or formulaic's markers."""
    text = _ANSI.sub("", str(exc)).replace("\u29db", "").replace("\u29da", "")
    return " ".join(text.split())


@lru_cache(maxsize=256)
def compile_formula(formula: str) -> _Compiled:
    """Parse `formula` once (cached) and describe its terms.

    Parameters
    ----------
    formula : str
        A two-sided Wilkinson formula such as ``"y ~ x + c"``.

    Returns
    -------
    _Compiled
        Internal description used by :func:`parse_formula`.

    Raises
    ------
    ValueError
        If the formula cannot be parsed, has no left-hand side or no right-hand term.
    """
    from formulaic import Formula

    if "~" not in formula:
        raise ValueError(
            f"`formula` must be two-sided, like 'y ~ x + covariate'; got {formula!r}"
        )
    if not formula.split("~", 1)[0].strip():
        raise ValueError(
            f"`formula` must name the outcome on the left of '~', like 'y ~ x + covariate'; "
            f"got {formula!r}"
        )
    try:
        parsed = Formula(formula)
    except Exception as exc:  # formulaic raises several exception types
        raise ValueError(
            f"`formula` could not be parsed ({_plain(exc)}); got {formula!r}"
        ) from exc
    if not hasattr(parsed, "lhs"):
        raise ValueError(
            f"`formula` must name the outcome on the left of '~', like 'y ~ x + covariate'; "
            f"got {formula!r}"
        )
    lhs_terms = list(parsed.lhs)
    if len(lhs_terms) != 1:
        raise ValueError(f"`formula` must have exactly one outcome on the left; got {formula!r}")
    lhs_factors = lhs_terms[0].factors
    lhs_lookup = len(lhs_factors) == 1 and lhs_factors[0].eval_method.value == "lookup"
    terms: list[tuple[str, ...]] = []
    rhs_lookup = True
    for term in parsed.rhs:
        names = tuple(str(f.expr) for f in term.factors)
        if names == ("1",):
            continue
        if any(f.eval_method.value != "lookup" for f in term.factors):
            rhs_lookup = False
        terms.append(names)
    if not terms:
        raise ValueError(
            "`formula` needs at least one right-hand variable (the target regressor X); "
            f"got {formula!r}"
        )
    # plain column lookups (R-style dotted names such as Sepal.Length stay whole) plus the
    # variables of python expressions such as log(z) or C(sx)
    lookups: list[str] = []
    expressions: set[str] = set()
    for term in [*parsed.lhs, *parsed.rhs]:
        for factor in term.factors:
            method = factor.eval_method.value
            if method == "lookup":
                lookups.append(str(factor.expr))
            elif method == "python":
                expressions.add(str(factor.expr))
    variables = tuple(dict.fromkeys(lookups))
    extra: list[str] = []
    if expressions:
        from formulaic.utils.variables import get_expression_variables

        for expr in sorted(expressions):
            try:
                extra.extend(str(v) for v in get_expression_variables(expr, {}))
            except Exception:  # pragma: no cover - formulaic internals
                continue
    return _Compiled(
        text=formula,
        formula=parsed,
        lhs=tuple(str(f.expr) for f in lhs_factors),
        lhs_lookup=lhs_lookup,
        terms=tuple(terms),
        rhs_lookup=rhs_lookup,
        variables=variables,
        expr_variables=tuple(dict.fromkeys(extra)),
    )


@dataclass(frozen=True)
class ModelFrame:
    """Arrays of one formula evaluated on one data set.

    Attributes
    ----------
    formula : str
        The formula as given.
    response, target : str
        Name of the outcome and of the target regressor X.
    covariate_names : tuple of str
        R-style names of the covariate columns (``gamma_`` is prefixed in results).
    y, x : ndarray, shape (N,)
        Outcome and target regressor.
    covariates : ndarray, shape (N, k)
        Level-1 covariates (k may be 0).
    group : ndarray, shape (N,)
        Group label of every row (as in the data).
    group_codes : ndarray of int, shape (N,)
        Index of each row's group in `group_labels`.
    group_labels : ndarray, shape (J,)
        Distinct group labels in sorted order (R's ``table`` order).
    rows : ndarray of int, shape (N,)
        Positions (0-based) of the used rows in the original data.
    n_dropped : int
        Rows dropped because of missing values (``missing="drop"`` only).
    """

    formula: str
    response: str
    target: str
    covariate_names: tuple[str, ...]
    y: np.ndarray
    x: np.ndarray
    covariates: np.ndarray
    group: np.ndarray
    group_codes: np.ndarray
    group_labels: np.ndarray
    group_name: str
    rows: np.ndarray
    n_dropped: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def n_obs(self) -> int:
        """Number of rows used."""
        return int(self.y.shape[0])

    @property
    def n_groups(self) -> int:
        """Number of distinct groups."""
        return int(self.group_labels.shape[0])

    @property
    def group_sizes(self) -> np.ndarray:
        """Rows per group, in the order of `group_labels`."""
        return np.bincount(self.group_codes, minlength=self.n_groups)


def _as_frame(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping):
        try:
            return pd.DataFrame(dict(data))
        except ValueError as exc:
            raise ValueError(f"`data` could not be turned into a DataFrame: {exc}") from exc
    raise TypeError(
        "`data` must be a pandas DataFrame (or a mapping of column name to values); "
        f"got {type(data).__name__}"
    )


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _numeric_column(data: Mapping[str, pd.Series], name: str, role: str) -> np.ndarray:
    col = data[name]
    if not _is_numeric(col):
        raise TypeError(
            f"The {role} '{name}' must be numeric (not a factor, string or boolean); "
            f"got dtype {col.dtype}"
        )
    return col.to_numpy(dtype=float)


def _group_codes(labels: pd.Series, group: str) -> tuple[np.ndarray, np.ndarray]:
    values = labels.to_numpy()
    if values.dtype.kind in "iuf":
        uniques, codes = np.unique(values, return_inverse=True)
        return codes.astype(np.intp), uniques
    try:
        codes, uniques = pd.factorize(labels, sort=True)
    except TypeError:  # mixed, unorderable labels: keep order of first appearance
        codes, uniques = pd.factorize(labels, sort=False)
    return codes.astype(np.intp), np.asarray(uniques)


def parse_formula(
    formula: str,
    data: Any,
    group: str | None = None,
    *,
    missing: str = "raise",
    min_groups: int = 2,
) -> ModelFrame:
    """Evaluate `formula` on `data` and return outcome, target, covariates and groups.

    Parameters
    ----------
    formula : str
        Two-sided formula; the first right-hand model-matrix column is the target X and must
        be numeric, every further column is a covariate.
    data : pandas.DataFrame or mapping
        The data, one row per level-1 unit.
    group : str, optional
        Name of the grouping column (any labels: numbers, strings, categories). May instead
        be given in the formula as an lme4 group term, ``"y ~ x + (1 | school)"``.
    missing : {"raise", "drop"}
        What to do with rows that have a missing value in a used column: ``"raise"`` (default)
        raises a ``ValueError`` naming the column and the number of rows; ``"drop"`` drops
        them with a :class:`~mlob_pp.validate.MissingDataWarning` that says how many.
    min_groups : int
        Minimum number of distinct groups.

    Returns
    -------
    ModelFrame

    Raises
    ------
    TypeError
        If `formula`, `data` or `group` has the wrong type, or the outcome or target is not
        numeric.
    ValueError
        For unknown columns, empty data, missing or infinite values, too few groups.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [1., 2, 3, 4], "x": [0., 1, 1, 3], "g": ["a", "a", "b", "b"]})
    >>> mf = parse_formula("y ~ x", df, "g")
    >>> mf.target, mf.group_labels.tolist()
    ('x', ['a', 'b'])
    """
    if hasattr(formula, "lhs") and hasattr(formula, "rhs"):
        formula = str(formula)
    if not isinstance(formula, str):
        raise TypeError(
            f"`formula` must be a string like 'y ~ x + covariate'; got {type(formula).__name__}"
        )
    if missing not in ("raise", "drop"):
        raise ValueError(f"`missing` must be 'raise' or 'drop'; got {missing!r}")
    formula, group = resolve_group(formula, group)
    compiled = compile_formula(formula)
    frame = _resolve_columns(compiled, data, group)
    frame, series, rows, n_dropped = _drop_missing(compiled, frame, group, missing)
    y, x, target, covariates, cov_names = _evaluate(compiled, frame, series)
    labels = series[group]
    codes, uniques = _group_codes(labels, group)
    if uniques.shape[0] < min_groups:
        raise ValueError(
            f"`group` column {group!r} must have at least {min_groups} distinct groups; "
            f"got {uniques.shape[0]}"
        )
    return ModelFrame(
        formula=formula,
        response=compiled.lhs[0],
        target=target,
        covariate_names=tuple(cov_names),
        y=y,
        x=x,
        covariates=covariates,
        group=labels.to_numpy(),
        group_codes=codes,
        group_labels=uniques,
        group_name=group,
        rows=rows,
        n_dropped=n_dropped,
    )


def _resolve_columns(compiled: _Compiled, data: Any, group: Any) -> pd.DataFrame:
    """Return `data` as a DataFrame after checking the group and formula columns exist."""
    frame = _as_frame(data)
    _check_columns(frame)
    if not isinstance(group, str):
        raise TypeError(f"`group` must be the name of a column (a string); got {group!r}")
    if frame.shape[0] == 0:
        raise ValueError("`data` is empty (0 rows)")
    if group not in frame.columns:
        raise ValueError(
            f"`group` column {group!r} is not in data; available columns: "
            f"{_list_columns(frame)}"
        )
    unknown = [v for v in compiled.variables if v not in frame.columns]
    if unknown:
        raise ValueError(
            f"`formula` uses column(s) not in data: {', '.join(map(repr, unknown))}; "
            f"available columns: {_list_columns(frame)}"
        )
    return frame


def _drop_missing(compiled: _Compiled, frame: pd.DataFrame, group: str, missing: str):
    """Check the used columns for missing values; raise, or drop them (with a warning).

    Returns the (possibly reduced) frame, its used columns by name, the positions of the kept
    rows in the original data and the number of dropped rows.
    """
    used = [
        *compiled.variables,
        *(v for v in compiled.expr_variables if v in frame.columns),
        group,
    ]
    keep = np.ones(frame.shape[0], dtype=bool)
    series = {name: frame[name] for name in dict.fromkeys(used)}
    for name, col in series.items():
        values = col.to_numpy()
        kind = values.dtype.kind
        if kind in "iub":
            continue
        isna = np.isnan(values) if kind == "f" else col.isna().to_numpy()
        if isna.any():
            if missing == "raise":
                what = "group labels" if name == group else "missing values"
                raise ValueError(
                    f"column {name!r} has {int(isna.sum())} {what} (NaN/None) in "
                    f"{frame.shape[0]} rows; remove them or pass missing='drop' to drop "
                    "incomplete rows"
                )
            keep &= ~isna
    n_dropped = int((~keep).sum())
    if n_dropped:
        warnings.warn(
            f"dropped {n_dropped} of {frame.shape[0]} rows with missing values in "
            f"{', '.join(repr(c) for c in dict.fromkeys(used))} (missing='drop')",
            MissingDataWarning,
            stacklevel=4,  # the caller of parse_formula's caller, as before the split
        )
        frame = frame.loc[keep]
        if frame.shape[0] == 0:
            raise ValueError("`data` has no complete rows after dropping missing values")
        series = {name: frame[name] for name in series}
    return frame, series, np.flatnonzero(keep), n_dropped


def _evaluate(compiled: _Compiled, frame: pd.DataFrame, series: Mapping[str, pd.Series]):
    """Return ``y, x, target, covariates, covariate_names``, all values checked finite.

    Plain numeric columns (and their products) are read directly; anything else goes
    through formulaic's model matrix.
    """
    response = compiled.lhs[0]
    y = _numeric_column(series, response, "outcome") if compiled.lhs_lookup else None
    if y is not None and compiled.rhs_lookup and all(
        _is_numeric(series[v]) for v in compiled.variables if v != response
    ):
        x, target, cov_cols, cov_names = _lookup_terms(compiled, series)
    else:
        x, target, cov_cols, cov_names, y_mm = _model_matrix(compiled, frame, y is None)
        if y is None:
            y = y_mm
    if y is None:  # pragma: no cover - defensive
        raise ValueError(f"`formula` outcome could not be evaluated: {compiled.text!r}")
    covariates = (
        np.column_stack(cov_cols) if cov_cols else np.empty((y.shape[0], 0), dtype=float)
    )
    _check_finite(response, y)
    _check_finite(target, x)
    for j, name in enumerate(cov_names):
        _check_finite(name, covariates[:, j])
    if len(set(cov_names)) != len(cov_names) or target in cov_names:
        raise ValueError(f"`formula` has duplicated terms: {compiled.text!r}")
    return y, x, target, covariates, cov_names


def _lookup_terms(compiled: _Compiled, series: Mapping[str, pd.Series]):
    """Fast path: every right-hand term is a numeric column or a product of such columns."""
    columns = []
    names = []
    cache: dict[str, np.ndarray] = {}
    for term in compiled.terms:
        col = None
        for factor in term:
            if factor not in cache:
                cache[factor] = series[factor].to_numpy(dtype=float)
            col = cache[factor] if col is None else col * cache[factor]
        columns.append(col)
        names.append(":".join(term))
    return columns[0], names[0], columns[1:], names[1:]


def _check_columns(frame: pd.DataFrame) -> None:
    """Reject column layouts that make column lookups ambiguous."""
    if isinstance(frame.columns, pd.MultiIndex):
        raise TypeError(
            "`data` must have one level of column names; got a MultiIndex with "
            f"{frame.columns.nlevels} levels (flatten it, e.g. "
            "data.columns = ['_'.join(map(str, c)) for c in data.columns])"
        )
    names = list(frame.columns)  # plain Python: cheaper than pandas' index engine
    if len(set(names)) == len(names):
        return
    seen: set = set()
    duplicated = list(dict.fromkeys(c for c in names if c in seen or seen.add(c)))
    if duplicated:
        raise ValueError(
            "`data` has duplicated column names: "
            f"{', '.join(repr(str(c)) for c in duplicated)}; rename them"
        )


def _list_columns(frame: pd.DataFrame, limit: int = 12) -> str:
    cols = [repr(str(c)) for c in frame.columns[:limit]]
    more = f", ... ({frame.shape[1]} in all)" if frame.shape[1] > limit else ""
    return ", ".join(cols) + more


def _check_finite(name: str, values: np.ndarray) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"column {name!r} has {int(bad.sum())} non-finite values (inf or NaN after "
            "evaluating the formula); all values must be finite"
        )


def _model_matrix(compiled: _Compiled, frame: pd.DataFrame, need_y: bool):
    from formulaic import model_matrix

    try:
        mm = model_matrix(compiled.formula, frame, na_action="ignore")
    except Exception as exc:
        raise ValueError(f"`formula` could not be evaluated on data: {_plain(exc)}") from exc
    rhs = mm.rhs
    cols = [c for c in rhs.columns if c != "Intercept"]
    if not cols:
        raise ValueError(f"`formula` has no right-hand variable: {compiled.text!r}")
    first_term = compiled.terms[0]
    first = cols[0]
    if "[" in first or any(
        f in frame.columns and not _is_numeric(frame[f]) for f in first_term
    ):
        raise TypeError(
            f"The main predictor variable '{':'.join(first_term)}' must be numeric (not a "
            "factor, string or boolean): the first right-hand term is the target regressor X"
        )
    x = np.asarray(rhs[first], dtype=float)
    cov = [np.asarray(rhs[c], dtype=float) for c in cols[1:]]
    names = [r_name(c) for c in cols[1:]]
    y = None
    if need_y:
        lhs = mm.lhs
        if lhs.shape[1] != 1:
            raise TypeError(f"The outcome of {compiled.text!r} must be a single numeric column")
        y = np.asarray(lhs.iloc[:, 0], dtype=float)
    return x, r_name(first), cov, names, y
