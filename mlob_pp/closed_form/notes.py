"""The notes printed under MLOB's tables: what the SEs mean, and what balancing did.

R MLOB ends its ``summary()`` with a note that calls the regularised estimates "always at least
as accurate" as the unregularised ones and asks users to report them with their analytic SEs.
mlob_pp keeps R's tables but replaces that note with what the project's simulations show: the
regularised estimate trades bias (shrinkage toward 0) for variance, and its analytic SE ignores
the bias, so its intervals undercover; ``se="bootstrap"`` gives calibrated intervals.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["note_lines", "balancing_lines", "ANALYTIC_CAVEAT"]

#: the caveat on the analytic SE of the regularised estimate (mode "r" and "stable")
ANALYTIC_CAVEAT = (
    "  The regularized estimate trades bias for variance: it shrinks beta_b toward 0 (most",
    "  where between-group information is weak: few or small groups, low ICC of x), which",
    "  lowers its variance but biases it toward 0. Its analytic standard error ignores that",
    "  bias and the data-driven choice of the regularization, so it is too small: in mlob_pp's",
    "  simulation study (540 design cells) these 95% intervals covered the true beta_b in only",
    "  10-64% of data sets. For calibrated intervals use se=\"bootstrap\" (parametric",
    "  bootstrap with test-inversion intervals; see docs/bootstrap.md).",
)

_BOOTSTRAP_NOTE = (
    "  Standard errors and intervals of the first table come from a parametric bootstrap of",
    "  the regularized estimator; the test-inversion interval corrects for its shrinkage toward",
    "  0 (the point estimate itself is still shrunk, i.e. biased toward 0).",
)

_JACKKNIFE_NOTE = (
    "  Standard errors of the first table are R's randomised jackknife; the regularized",
    "  estimate is shrunk toward 0 (biased) and these Wald intervals are not calibrated",
    "  either. For calibrated intervals use se=\"bootstrap\" (see docs/bootstrap.md).",
)


def _format_r_number(value: float, nsmall: int) -> str:
    """R's ``format(value, nsmall = nsmall)`` with the default 7 significant digits."""
    if abs(value) >= 1e15:
        return f"{value:.6e}"
    return f"{value:.{nsmall}f}"


def _comparison(se_ml: float, se_bay: float) -> list[str]:
    """R's first sentence comparing the two standard errors (kept as R words it)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = se_ml / se_bay if se_bay != 0 else math.inf
    if not np.isfinite(r) or r == 0:
        return ["  The standard errors cannot be compared because one or both are missing, "
                "zero, NA, NaN, or infinite."]
    if 0.9 <= r <= 1.1:
        return ["  The standard error from unoptimized ML estimation is approximately the same "
                "as the standard error obtained through our optimization procedure."]
    if r > 1.1:
        pct = (r - 1) * 100
        digits = 0 if pct >= 200 else (1 if pct >= 100 else 2)
        text = _format_r_number(round(pct, digits), digits)
        return [f"  The standard error from unoptimized ML estimation is about {text}% larger "
                "than the standard error obtained through our optimization procedure."]
    return []


def note_lines(se_ml: float, se_bay: float, se_method: str) -> list[str]:
    """Return the lines under R's "Note:" heading.

    R's sentence comparing the two SEs is kept; R's advice to prefer the regularised estimate
    and its SE is replaced by an accurate account of what the SE of the first table means.
    """
    lines = _comparison(se_ml, se_bay) if se_method == "analytic" else []
    if se_method == "bootstrap":
        return lines + list(_BOOTSTRAP_NOTE)
    if se_method == "jackknife":
        return lines + list(_JACKKNIFE_NOTE)
    return lines + list(ANALYTIC_CAVEAT)


def balancing_lines(balancing: dict[str, Any], random_seed: Any) -> list[str]:
    """Say that (and how) random deletion decided the estimate, with the spread when known."""
    rows = int(balancing.get("rows_deleted", 0) or 0)
    if not rows:
        return []
    share = float(balancing.get("share_rows_deleted", 0.0) or 0.0)
    groups = int(balancing.get("groups_deleted", 0) or 0)
    total = f" of {round(rows / share)}" if share > 0 else ""
    seed = ("unseeded: refitting deletes other rows" if random_seed is None
            else f"random_seed = {random_seed}")
    lines = [
        f"  Balancing deleted {rows}{total} rows ({100 * share:.1f}%) and {groups} "
        f"group{'' if groups == 1 else 's'} AT RANDOM ({seed}) so that every group "
        f"has {balancing.get('target_group_size')} rows; other deletions give other estimates."
    ]
    per = balancing.get("beta_b_per_balancing")
    m = int(balancing.get("n_balance", 1) or 1)
    if per is not None and m > 1:
        per = np.asarray(per, float)
        lines.append(
            f"  Averaged over {m} random balancings (Rubin's rules); beta_b across balancings: "
            f"SD {np.std(per, ddof=1):.4g}, range [{np.min(per):.4g}, {np.max(per):.4g}]."
        )
    else:
        lines.append("  To see how much beta_b depends on the deleted rows, refit with "
                     "n_balance=20 (averages 20 balancings and shows their spread).")
    return lines
