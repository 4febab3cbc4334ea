"""The result of :func:`mlob_pp.mlob`: coefficients, SEs, tables and R's printed layout."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mlob_pp.closed_form.bootstrap_intervals import unbounded_reason
from mlob_pp.closed_form.notes import balancing_lines, note_lines
from mlob_pp.common_format import estimate_tree
from mlob_pp.provenance import make_attrs
from mlob_pp.results import EstimatorResult
from mlob_pp.tables import Summary, wald

__all__ = ["MLOBResult", "format_r_table"]

_TABLE_NAMES = {"mlob": "mlob", "regularized": "mlob", "ml": "ml", "ml_moments": "ml"}
_INTERVAL_NAMES = {"inversion": "bootstrap_inversion", "bc": "bootstrap_bc",
                   "percentile": "bootstrap_percentile", "basic": "bootstrap_basic"}


@dataclass(frozen=True, repr=False)
class MLOBResult(EstimatorResult):
    """A fitted closed-form MLOB model.

    Follows :class:`mlob_pp.results.EstimatorResult`: ``params``/``bse``/``conf_int()``/
    ``pvalues`` of the regularised table, ``to_frame(which)``, ``to_datatree(estimator)``,
    ``summary()`` (a :class:`~mlob_pp.tables.Summary` whose text is R's ``summary()`` layout
    plus mlob_pp's notes), ``print(result)`` in R's ``print()`` layout and a one-line ``repr``.
    ``coef``, ``se``, ``summary_frame`` and ``confint`` remain as aliases.

    Attributes
    ----------
    terms : tuple of str
        ``("beta_b", "gamma_<term>", ...)``.
    estimates, std_errors, estimates_ml, std_errors_ml : ndarray
        The numbers behind ``params``, ``bse``, :attr:`coef_ml`, :attr:`se_ml`.
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
        ``share_rows_deleted``, ``n_balance`` (random balancings averaged), ``kept_rows``
        (0-based positions in the input data of the first balancing) and, when rows were
        deleted, ``beta_b_per_balancing`` (the regularised estimate of each balancing) and
        ``estimates`` / ``estimates_ml`` (DataFrames: one row per balancing, one column per
        term, of the regularised and the "ML" table).
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
    bootstrap : tuple of BootstrapResult
        The bootstrap of each balanced data set (``se="bootstrap"``), else empty.
    internals : dict
        Intermediate quantities of the estimator (grid point, variance components, ...).
    """

    estimator: ClassVar[str] = "mlob"

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
    bootstrap: tuple[Any, ...] = field(default=(), repr=False)
    internals: dict[str, Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ tables
    @property
    def _normal_intervals(self) -> bool:  # type: ignore[override]
        return self.se_method != "bootstrap"

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

    def to_frame(self, which: str = "mlob") -> pd.DataFrame:
        """Return a coefficient table (``"mlob"``, or ``"ml_moments"`` / ``"ml"``).

        Index ``beta_b``, ``gamma_<term>``; columns ``estimate, std_error, ci_lower, ci_upper,
        z, p_value``.
        """
        if which not in _TABLE_NAMES:
            raise ValueError(
                f"`which` must be one of 'mlob', 'ml', 'ml_moments'; got {which!r}"
            )
        return self.tables[_TABLE_NAMES[which]].copy()

    def summary_frame(self, which: str = "mlob") -> pd.DataFrame:
        """Alias of :meth:`to_frame` (``which``: ``"mlob"``, ``"ml"`` or ``"ml_moments"``)."""
        return self.to_frame(which)

    def confint(self, which: str = "mlob") -> pd.DataFrame:
        """Return the intervals as a DataFrame with columns ``lower``, ``upper``."""
        t = self.to_frame(which)
        return t[["ci_lower", "ci_upper"]].rename(columns={"ci_lower": "lower",
                                                           "ci_upper": "upper"})

    @property
    def level_label(self) -> str:
        """Interval label such as ``95%``."""
        return f"{100 * self.conf_level:.15g}%"

    @property
    def unbounded_reason(self) -> str | None:
        """Why the bootstrap interval of beta_b is unbounded (``None`` when bounded)."""
        t = self.tables["mlob"]
        lo, hi = float(t["ci_lower"].iloc[0]), float(t["ci_upper"].iloc[0])
        if self.se_method != "bootstrap" or (np.isfinite(lo) and np.isfinite(hi)):
            return None
        roots = [b.roots for b in self.bootstrap if b.roots is not None]
        return unbounded_reason(lo, hi, np.concatenate(roots) if roots else None,
                                self.conf_level)

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
        extra = self._caveats()
        if extra:
            lines += ["", *extra]
        return "\n".join(lines)

    def summary_text(self) -> str:
        """Return the text of :meth:`summary` (R's ``summary()`` layout with mlob_pp's notes)."""
        lab = self.level_label
        lines = ["Call:", f" {self.call} ", "", "Summary of Coefficients:"]
        lines.append(format_r_table(_summary_table(self.tables["mlob"], lab)))
        lines += ["", "", "For comparison, summary of coefficients from unoptimized analysis (ML):"]
        lines.append(format_r_table(_summary_table(self.tables["ml"], lab)))
        lines += ["", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1", "",
                  "Note:"]
        lines += note_lines(float(self.std_errors_ml[0]), float(self.std_errors[0]),
                            self.se_method)
        lines += ["", "Details (mlob_pp):"]
        lines.append(
            f"  J = {self.n_groups} groups of n = {self.group_size} ({self.n_obs} of "
            f"{self.n_obs_input} rows used); mode = {self.mode!r}; SE method = "
            f"{self.se_method!r}; interval = {self._interval_text()} (conf_level = "
            f"{self.conf_level:g})."
        )
        lines += self._caveats()
        lines.append(
            "  The ML row is R MLOB's moment ratio tau_yx / tau_x ('ml_moments'), not a "
            "likelihood maximiser; see mlob_pp.fit_ml for true ML."
        )
        return "\n".join(lines)

    def _caveats(self) -> list[str]:
        """Balancing and unbounded-interval notes shared by print and summary."""
        lines = balancing_lines(self.balancing, self.settings.get("random_seed"))
        reason = self.unbounded_reason
        if reason:
            lines.append(f"  The bootstrap interval of beta_b is {reason}.")
        return lines

    def _interval_text(self) -> str:
        if self.se_method == "bootstrap":
            return (f"{self.level_label} parametric bootstrap ({self.settings.get('n_boot')} "
                    f"refits), interval by {self.interval_method} (not estimate +- z SE)")
        return f"Wald {self.level_label}"

    def summary(self) -> Summary:
        """Return the summary: prints as R MLOB's ``summary()`` layout with mlob_pp's notes.

        The object holds the tables ``"mlob"`` and ``"ml_moments"`` and renders as HTML in
        Jupyter; ``print(result.summary())`` prints the text.
        """
        return Summary(
            f"mlob: {self.formula} (group {self.group})",
            {"mlob": self.to_frame("mlob"), "ml_moments": self.to_frame("ml_moments")},
            text=self.summary_text(),
            notes=note_lines(float(self.std_errors_ml[0]), float(self.std_errors[0]),
                             self.se_method) + self._caveats(),
        )

    # ----------------------------------------------------------- conversions
    def to_datatree(self, estimator: str = "mlob"):
        """Return the result in the common format (group ``estimate``).

        Parameters
        ----------
        estimator : {"mlob", "ml_moments"}, default "mlob"
            The regularised table or R's "ML" column (moment ratio). With ``se="bootstrap"``
            the ``"mlob"`` tree also holds the refits (group ``bootstrap``, dim ``replicate``);
            with several balancings the per-balancing estimates (group ``balancing``).
        """
        if estimator not in ("mlob", "ml_moments"):
            raise ValueError(f"`estimator` must be 'mlob' or 'ml_moments'; got {estimator!r}")
        regularised = estimator == "mlob"
        se_method = self.se_method if regularised else "analytic"
        interval = self.interval_method if regularised else "wald"
        interval = _INTERVAL_NAMES.get(interval, interval)
        bal = {k: v for k, v in self.balancing.items() if np.isscalar(v)}  # counts only
        attrs = make_attrs(
            estimator, settings=self.settings, random_seed=self.settings.get("random_seed"),
            extra={"conf_level": self.conf_level, "formula": self.formula, "group": self.group,
                   "n_obs": self.n_obs, "n_groups": self.n_groups,
                   "group_size": self.group_size, "mode": self.mode, "balancing": bal},
        )
        groups: dict[str, Any] = {}
        per = self.balancing.get("beta_b_per_balancing")
        if regularised and per is not None and len(per) > 1:
            groups["balancing"] = {"beta_b": (("balancing",), np.asarray(per, float))}
        if regularised and self.bootstrap:
            refits = [b.refits() for b in self.bootstrap]
            groups["bootstrap"] = {name: (dims, np.concatenate([r[name][1] for r in refits]))
                                   for name, (dims, _) in refits[0].items()}
        frame = self.to_frame("mlob" if regularised else "ml_moments")
        return estimate_tree(frame, estimator=estimator, conf_level=self.conf_level,
                             interval_method=interval, se_method=se_method, attrs=attrs,
                             groups=groups or None)


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
