"""The result of :func:`mlob_pp.mlob`: coefficients, SEs, tables and R's printed layout."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MLOBResult", "format_r_table"]

_COLUMNS = ["estimate", "std_error", "ci_lower", "ci_upper", "z", "p_value"]
_TABLE_NAMES = {"mlob": "mlob", "regularized": "mlob", "ml": "ml", "ml_moments": "ml"}


@dataclass(frozen=True)
class MLOBResult:
    """A fitted closed-form MLOB model.

    Attributes
    ----------
    terms : tuple of str
        ``("beta_b", "gamma_<term>", ...)``.
    estimates, std_errors, estimates_ml, std_errors_ml : ndarray
        The numbers behind :attr:`coef`, :attr:`se`, :attr:`coef_ml`, :attr:`se_ml`.
    coef, se : pandas.Series
        Regularised estimates and their standard errors, indexed ``beta_b``, ``gamma_<term>``.
    coef_ml, se_ml : pandas.Series
        R MLOB's "ML" column (``ml_moments``: the moment ratio tau_yx / tau_x and its SE) and
        the covariate rows, which are identical in both tables.
    tables : dict of str to pandas.DataFrame
        ``"mlob"`` and ``"ml"`` tables (see :meth:`summary_frame`).
    conf_level : float
        Confidence level of the intervals (0.95 = 95 %).
    formula, group, response, target : str
        The model.
    covariate_names : tuple of str
        R-style covariate names.
    n_obs, n_groups, group_size : int
        Rows, groups and common group size used by the estimator (after balancing).
    n_obs_input : int
        Rows of the input after formula evaluation (before balancing).
    balancing : dict
        What balancing did: ``target_group_size``, ``rows_deleted``, ``groups_deleted``,
        ``n_balance`` (number of random balancings averaged), ``kept_rows`` (0-based positions
        in the input data of the first balancing).
    se_method : str
        ``"analytic"``, ``"jackknife"`` or ``"bootstrap"``.
    interval_method : str
        ``"wald"`` (estimate +- z SE) or the bootstrap interval (``"inversion"``, ...).
    mode : str
        ``"r"`` or ``"stable"``.
    settings : dict
        The call's settings (for provenance).
    warnings : tuple of str
        Messages of the warnings emitted during the fit.
    internals : dict
        Intermediate quantities of the estimator (grid point, variance components, ...).
    """

    terms: tuple[str, ...]
    estimates: np.ndarray
    std_errors: np.ndarray
    estimates_ml: np.ndarray
    std_errors_ml: np.ndarray
    conf_level: float
    formula: str
    group: str
    response: str
    target: str
    covariate_names: tuple[str, ...]
    n_obs: int
    n_groups: int
    group_size: int
    n_obs_input: int
    balancing: dict[str, Any]
    se_method: str
    mode: str
    settings: dict[str, Any]
    call: str
    warnings: tuple[str, ...] = ()
    interval_method: str = "wald"
    ci_override: np.ndarray | None = field(default=None, repr=False)
    p_override: np.ndarray | None = field(default=None, repr=False)
    internals: dict[str, Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ tables
    @cached_property
    def coef(self) -> pd.Series:
        """Regularised estimates (``beta_b``, ``gamma_<term>``)."""
        return pd.Series(self.estimates, index=list(self.terms), name="estimate")

    @cached_property
    def se(self) -> pd.Series:
        """Standard errors of :attr:`coef` (the method in :attr:`se_method`)."""
        return pd.Series(self.std_errors, index=list(self.terms), name="std_error")

    @cached_property
    def coef_ml(self) -> pd.Series:
        """R MLOB's "ML" column (``ml_moments``) with the covariate rows."""
        return pd.Series(self.estimates_ml, index=list(self.terms), name="estimate")

    @cached_property
    def se_ml(self) -> pd.Series:
        """Standard errors of :attr:`coef_ml`."""
        return pd.Series(self.std_errors_ml, index=list(self.terms), name="std_error")

    @cached_property
    def tables(self) -> dict[str, pd.DataFrame]:
        """The ``"mlob"`` and ``"ml"`` tables (see :meth:`summary_frame`)."""
        from mlob_pp.closed_form.core import wald

        out = {}
        for key, est, se in (("mlob", self.estimates, self.std_errors),
                             ("ml", self.estimates_ml, self.std_errors_ml)):
            z, p, lo, hi = wald(est, se, self.conf_level)
            if key == "mlob" and self.ci_override is not None:
                lo, hi = self.ci_override[:, 0], self.ci_override[:, 1]
            if key == "mlob" and self.p_override is not None:
                p = self.p_override
            out[key] = pd.DataFrame(
                {"estimate": est, "std_error": se, "ci_lower": lo, "ci_upper": hi, "z": z,
                 "p_value": p},
                index=pd.Index(list(self.terms), name="term"),
            )
        return out

    def summary_frame(self, which: str = "mlob") -> pd.DataFrame:
        """Return a coefficient table.

        Parameters
        ----------
        which : {"mlob", "ml", "ml_moments"}
            ``"mlob"``: the regularised estimator. ``"ml"`` (alias ``"ml_moments"``): R MLOB's
            unregularised "ML" table, whose beta_b row is the moment ratio tau_yx / tau_x.

        Returns
        -------
        pandas.DataFrame
            Index = terms (``beta_b``, ``gamma_<term>``); columns ``estimate, std_error,
            ci_lower, ci_upper, z, p_value``.
        """
        if which not in _TABLE_NAMES:
            raise ValueError(
                f"`which` must be one of 'mlob', 'ml', 'ml_moments'; got {which!r}"
            )
        return self.tables[_TABLE_NAMES[which]].copy()

    def confint(self, which: str = "mlob") -> pd.DataFrame:
        """Return the intervals as a DataFrame with columns ``lower``, ``upper``."""
        t = self.summary_frame(which)
        return t[["ci_lower", "ci_upper"]].rename(columns={"ci_lower": "lower",
                                                           "ci_upper": "upper"})

    @property
    def level_label(self) -> str:
        """Interval label such as ``95%``."""
        return f"{100 * self.conf_level:.15g}%"

    # ---------------------------------------------------------------- printing
    def __str__(self) -> str:
        t = self.tables["mlob"]
        lab = self.level_label
        lines = ["Call:", f" {self.call} ", ""]
        if self.se_method != "analytic":
            lines += [f"Standard errors: {self.se_method}; intervals: {self._interval_text()}",
                      ""]
        lines += ["Coefficients", format_r_table(t[["estimate"]].T, row_names=False), ""]
        lines += ["Standard_Error", format_r_table(t[["std_error"]].T, row_names=False), ""]
        ci = t[["ci_lower", "ci_upper"]].rename(columns={"ci_lower": "Lower", "ci_upper": "Upper"})
        lines += [f"Confidence_Interval ({lab})", format_r_table(ci), ""]
        lines += ["Z value", format_r_table(t[["z"]].T, row_names=False), ""]
        lines += ["p value", format_r_table(t[["p_value"]].T, row_names=False)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"MLOBResult(formula={self.formula!r}, group={self.group!r}, "
            f"beta_b={self.estimates[0]:.6g}, se={self.std_errors[0]:.6g}, "
            f"J={self.n_groups}, n={self.group_size}, mode={self.mode!r}, "
            f"se_method={self.se_method!r})"
        )

    def summary_text(self) -> str:
        """Return the text that :meth:`summary` prints (R's ``summary()`` layout)."""
        lab = self.level_label
        lines = ["Call:", f" {self.call} ", "", "Summary of Coefficients:"]
        lines.append(format_r_table(_summary_table(self.tables["mlob"], lab)))
        lines += ["", "", "For comparison, summary of coefficients from unoptimized analysis (ML):"]
        lines.append(format_r_table(_summary_table(self.tables["ml"], lab)))
        lines += ["", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1", "",
                  "Note:"]
        lines += _note(float(self.std_errors_ml[0]), float(self.std_errors[0]))
        lines += ["", "Details (mlob_pp):"]
        lines.append(
            f"  J = {self.n_groups} groups of n = {self.group_size} ({self.n_obs} of "
            f"{self.n_obs_input} rows used); mode = {self.mode!r}; SE method = "
            f"{self.se_method!r}; interval = {self._interval_text()} (conf_level = "
            f"{self.conf_level:g})."
        )
        bal = self.balancing
        if bal.get("rows_deleted", 0):
            extra = (
                f", averaged over {bal['n_balance']} random balancings (Rubin's rules)"
                if bal.get("n_balance", 1) > 1 else ""
            )
            lines.append(
                f"  Balancing deleted {bal['rows_deleted']} rows and {bal['groups_deleted']} "
                f"groups (target group size {bal['target_group_size']}){extra}."
            )
        lines.append(
            "  The ML row is R MLOB's moment ratio tau_yx / tau_x ('ml_moments'), not a "
            "likelihood maximiser; see mlob_pp.fit_ml for true ML."
        )
        return "\n".join(lines)

    def _interval_text(self) -> str:
        if self.se_method == "bootstrap":
            return (f"{self.level_label} parametric bootstrap ({self.settings.get('n_boot')} "
                    f"refits), interval by {self.interval_method} (not estimate +- z SE)")
        return f"Wald {self.level_label}"

    def summary(self) -> None:
        """Print the summary in R MLOB's layout (both tables, significance codes, note)."""
        print(self.summary_text())

    # ----------------------------------------------------------- conversions
    def to_datatree(self, **kwargs: Any):
        """Return the result in the common ArviZ format (see ``comparisons.from_mlob``)."""
        from mlob_pp.comparisons.convert import from_mlob

        return from_mlob(self, **kwargs)


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return " "
    if p < 0.001:
        return "***"
    if p < 0.01:
        return "**"
    if p < 0.05:
        return "*"
    if p < 0.1:
        return "."
    return " "


def _summary_table(t: pd.DataFrame, lab: str) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "Estimate": t["estimate"],
            "Std. Error": t["std_error"],
            f"Lower CI ({lab})": t["ci_lower"],
            f"Upper CI ({lab})": t["ci_upper"],
            "Z value": t["z"],
            "Pr(>|z|)": t["p_value"],
            "Significance": [_stars(p) for p in t["p_value"]],
        },
        index=t.index,
    )
    return out


def _note(se_ml: float, se_bay: float) -> list[str]:
    with np.errstate(divide="ignore", invalid="ignore"):
        r = se_ml / se_bay if se_bay != 0 else math.inf
    if not np.isfinite(r) or r == 0:
        return ["  The standard errors cannot be compared because one or both are missing, "
                "zero, NA, NaN, or infinite."]
    if 0.9 <= r <= 1.1:
        return [
            "  The standard error from unoptimized ML estimation is approximately the same as "
            "the standard error obtained through our optimization procedure,",
            "  meaning that both approaches yield similarly accurate estimates.",
        ]
    if r > 1.1:
        pct = (r - 1) * 100
        digits = 0 if pct >= 200 else (1 if pct >= 100 else 2)
        text = _format_r_number(round(pct, digits), digits)
        return [
            f"  The standard error from unoptimized ML estimation is about {text}% larger than "
            "the standard error obtained through our optimization procedure,",
            "  meaning that the optimized estimates are more accurate.",
            "  Concerning the estimates themselves, the unoptimized ML estimates may",
            "  differ greatly from the optimized estimates and should not be reported.",
            "  As the optimized estimates are always at least as accurate as the",
            "  unoptimized ML estimates,",
            "  please use them and their corresponding standard errors (first table of",
            "  output) for interpretation and reporting.",
            "  For more information, see Dashuk et al. (2025).",
        ]
    return []  # R prints nothing after "Note:" when the ML SE is smaller (kept as in R)


def _format_r_number(value: float, nsmall: int) -> str:
    """R's ``format(value, nsmall = nsmall)`` with the default 7 significant digits."""
    if abs(value) >= 1e15:
        return f"{value:.6e}".replace("e+", "e+")
    text = f"{value:.{nsmall}f}"
    return text


def _format_column(values: np.ndarray) -> list[str]:
    """Format a numeric column like R's print.data.frame (7 significant digits)."""
    vals = np.asarray(values, dtype=float)
    finite = vals[np.isfinite(vals)]
    nonzero = np.abs(finite[finite != 0])
    if nonzero.size and (nonzero.max() >= 1e15 or nonzero.min() < 1e-4 or
                         nonzero.max() / nonzero.min() >= 1e6):
        out = [f"{v:.6e}" for v in vals]
    else:
        decimals = 0
        for v in nonzero:
            mag = math.floor(math.log10(v))
            need = 6 - mag
            # drop trailing zeros of the 7-significant-digit representation
            text = f"{v:.{max(need, 0)}f}".rstrip("0")
            d = len(text.split(".")[1]) if "." in text else 0
            decimals = max(decimals, min(max(d, 0), 15))
        out = [f"{v:.{decimals}f}" for v in vals]
    return [s.replace("inf", "Inf").replace("nan", "NaN") for s in out]


def format_r_table(df: pd.DataFrame, *, row_names: bool = True) -> str:
    """Format a DataFrame in the style of R's ``print.data.frame``."""
    cols: list[list[str]] = []
    headers = [str(c) for c in df.columns]
    for c in df.columns:
        col = df[c]
        if pd.api.types.is_numeric_dtype(col):
            cols.append(_format_column(col.to_numpy()))
        else:
            cols.append([str(v) for v in col])
    names = [str(i) for i in df.index] if row_names else [""] * len(df)
    name_w = max((len(s) for s in names), default=0)
    widths = [max(len(h), *(len(v) for v in col)) for h, col in zip(headers, cols, strict=True)]
    lines = [" " * name_w + "".join(" " + h.rjust(w) for h, w in zip(headers, widths,
                                                                          strict=True))]
    for r, name in enumerate(names):
        cells = "".join(" " + col[r].rjust(w) for col, w in zip(cols, widths, strict=True))
        lines.append(name.ljust(name_w) + cells)
    return "\n".join(lines)
