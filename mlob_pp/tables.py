"""Wald tables and summary objects shared by every estimator.

:func:`wald` and :func:`wald_table` are the one place where estimates and standard errors become
z values, two-sided p values and normal intervals; :class:`Summary` is what every result's
``summary()`` returns: it prints as a text table and renders as HTML in Jupyter.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

__all__ = ["wald", "wald_table", "normal_quantile", "Summary", "TABLE_COLUMNS"]

#: columns of every estimator's ``to_frame()`` (``z`` and ``p_value`` where defined)
TABLE_COLUMNS = ("estimate", "std_error", "ci_lower", "ci_upper", "z", "p_value")


def normal_quantile(conf_level: float) -> float:
    """Return the two-sided standard-normal quantile of `conf_level` (1.959964 for 0.95)."""
    return float(ndtri(1.0 - (1.0 - conf_level) / 2.0))


def wald(estimate: Any, se: Any, conf_level: float):
    """Return z, two-sided p (R's ``2 * (1 - pnorm(|z|))``) and the interval bounds.

    Parameters
    ----------
    estimate, se : array_like
        Estimates and standard errors (broadcast together). An infinite SE gives z = 0, p = 1
        and an unbounded interval; a NaN SE gives NaN throughout.
    conf_level : float
        Confidence level in (0, 1).

    Returns
    -------
    z, p, lower, upper : numpy.ndarray

    Examples
    --------
    >>> z, p, lo, hi = wald(1.0, 0.5, 0.95)
    >>> float(z), round(float(lo), 6), round(float(hi), 6)
    (2.0, 0.020018, 1.979982)
    """
    estimate = np.asarray(estimate, dtype=float)
    se = np.asarray(se, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(np.isinf(se), 0.0 * np.sign(estimate), estimate / se)
    p = 2.0 * (1.0 - ndtr(np.abs(z)))
    zq = normal_quantile(conf_level)
    return z, p, estimate - zq * se, estimate + zq * se


def wald_table(
    estimate: Any, std_error: Any, *, conf_level: float = 0.95, index: Sequence[str] | None = None
) -> pd.DataFrame:
    """Return the Wald table (estimate, std_error, ci_lower, ci_upper, z, p_value).

    Examples
    --------
    >>> wald_table([1.0], [0.5], index=["beta_b"]).round(4).loc["beta_b", "ci_upper"]
    np.float64(1.98)
    """
    if isinstance(estimate, pd.Series) and index is None:
        index = list(estimate.index)
    est = np.atleast_1d(np.asarray(estimate, dtype=float))
    se = np.atleast_1d(np.asarray(std_error, dtype=float))
    z, p, lo, hi = wald(est, se, conf_level)
    return pd.DataFrame(
        {"estimate": est, "std_error": se, "ci_lower": lo, "ci_upper": hi, "z": z, "p_value": p},
        index=pd.Index(index if index is not None else range(est.size), name="term"),
    )


class Summary:
    """What ``result.summary()`` returns: text tables that print, and HTML for Jupyter.

    Parameters
    ----------
    title : str
        First line (estimator and model).
    tables : mapping of str to pandas.DataFrame
        Named tables, shown in order.
    text : str, optional
        The full plain-text layout (for example R's printout); by default built from the title,
        the tables and the notes.
    notes : sequence of str, optional
        Lines shown under the tables.

    Examples
    --------
    >>> s = Summary("demo", {"coefficients": pd.DataFrame({"estimate": [1.0]}, index=["a"])})
    >>> print(s)  # doctest: +NORMALIZE_WHITESPACE
    demo
    coefficients
       estimate
    a       1.0
    """

    def __init__(
        self,
        title: str,
        tables: Mapping[str, pd.DataFrame],
        *,
        text: str | None = None,
        notes: Sequence[str] = (),
    ) -> None:
        self.title = str(title)
        self.tables = dict(tables)
        self.notes = [str(n) for n in notes]
        self._text = text

    def as_text(self) -> str:
        """Return the plain-text layout."""
        if self._text is not None:
            return self._text
        parts = [self.title]
        for name, table in self.tables.items():
            parts += [name, table.to_string()]
        parts += self.notes
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.as_text()

    def __repr__(self) -> str:
        return self.as_text()

    def _repr_html_(self) -> str:
        out = [f"<h4>{html.escape(self.title)}</h4>"]
        for name, table in self.tables.items():
            out.append(f"<p><b>{html.escape(name)}</b></p>")
            out.append(table.to_html(float_format=lambda v: f"{v:.4g}"))
        out += [f"<p>{html.escape(n)}</p>" for n in self.notes]
        return "\n".join(out)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]
