"""Reporting helpers of the variability analysis: estimates with SEs, summaries, caterpillar plot.

The printed summary follows the layout students know from lme4's ``summary(lmer(...))`` and
HLM: fixed effects with SE, z value and p value; random effects as variances and standard
deviations; then ICC, reliability, log-likelihood, deviance, AIC and BIC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.variability.mixed import MixedFit

__all__ = ["Estimate", "MixedSummary", "coef_table", "plot_caterpillar"]

COLUMNS = ["estimate", "std_error", "ci_lower", "ci_upper", "z", "p_value"]


class Estimate(float):
    """A point estimate that behaves as a float and carries its standard error.

    Examples
    --------
    >>> b = Estimate(1.5, 0.25)
    >>> b + 1, b.std_error, b.se, b.z
    (2.5, 0.25, 0.25, 6.0)
    """

    std_error: float

    def __new__(cls, value: float, std_error: float) -> Estimate:
        """Create the estimate `value` with standard error `std_error`."""
        obj = super().__new__(cls, value)
        obj.std_error = float(std_error)
        return obj

    def __getnewargs__(self) -> tuple[float, float]:
        return (float(self), self.std_error)

    @property
    def se(self) -> float:
        """Alias of :attr:`std_error`."""
        return self.std_error

    @property
    def z(self) -> float:
        """Wald statistic estimate / SE."""
        return float(self) / self.std_error

    @property
    def p_value(self) -> float:
        """Two-sided normal p value of the Wald statistic."""
        from scipy.stats import norm

        return float(2.0 * norm.sf(abs(self.z)))

    def ci(self, conf_level: float = 0.95) -> tuple[float, float]:
        """Return the Wald interval at `conf_level`."""
        from scipy.stats import norm

        q = norm.ppf(0.5 + conf_level / 2)
        return (float(self) - q * self.std_error, float(self) + q * self.std_error)

    def __repr__(self) -> str:
        return f"Estimate({float(self)!r}, std_error={self.std_error!r})"


def coef_table(
    names: Sequence[str],
    estimates: Sequence[float],
    std_errors: Sequence[float],
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Return the common-format table (``estimate, std_error, ci_lower, ci_upper, z, p_value``).

    Parameters
    ----------
    names : sequence of str
        Parameter labels (the index).
    estimates, std_errors : sequence of float
        Point estimates and standard errors (NaN where not available).
    conf_level : float
        Level of the Wald intervals.

    Returns
    -------
    pandas.DataFrame
    """
    from scipy.stats import norm

    est = np.asarray(estimates, dtype=float)
    se = np.asarray(std_errors, dtype=float)
    q = norm.ppf(0.5 + conf_level / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est / se
    return pd.DataFrame(
        {
            "estimate": est,
            "std_error": se,
            "ci_lower": est - q * se,
            "ci_upper": est + q * se,
            "z": z,
            "p_value": 2.0 * norm.sf(np.abs(z)),
        },
        index=pd.Index(list(names), name="parameter"),
    )


def _fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "<2e-16" if p < 2e-16 else f"{p:.3g}"


@dataclass(frozen=True)
class MixedSummary:
    """Printable summary of a mixed-model fit (``print(result.summary())``).

    Attributes
    ----------
    title, model, sizes : str
        Header lines.
    fixed : pandas.DataFrame
        Fixed effects in the common format.
    random : pandas.DataFrame
        Random effects: ``Groups, Name, Variance, Std.Dev.`` (and ``Corr``).
    notes : tuple of str
        Lines about ICC, reliability, contextual effect, ...
    fit : MixedFit
        The fit (log-likelihood, optimizer).
    """

    title: str
    model: str
    sizes: str
    fixed: pd.DataFrame
    random: pd.DataFrame
    notes: tuple[str, ...]
    fit: MixedFit

    def _fixed_text(self) -> str:
        t = self.fixed
        out = pd.DataFrame(
            {
                "Estimate": t["estimate"].map(lambda v: f"{v:.5g}"),
                "Std. Error": t["std_error"].map(lambda v: f"{v:.5g}"),
                "z value": t["z"].map(lambda v: f"{v:.3f}"),
                "Pr(>|z|)": t["p_value"].map(_fmt_p),
            },
            index=list(t.index),
        )
        return out.to_string()

    def _random_text(self) -> str:
        r = self.random.copy()
        r["Variance"] = r["Variance"].map(lambda v: f"{v:.5g}")
        r["Std.Dev."] = r["Std.Dev."].map(lambda v: f"{v:.5g}")
        if "Corr" in r:
            r["Corr"] = r["Corr"].map(lambda v: "" if not np.isfinite(v) else f"{v:.3f}")
        for col in ("Groups", "Name"):  # left-aligned text columns, as lme4 prints them
            width = max(len(col), *(len(str(v)) for v in r[col]))
            r[col] = [str(v).ljust(width) for v in r[col]]
            r = r.rename(columns={col: col.ljust(width)})
        return " " + r.to_string(index=False, justify="left").replace("\n", "\n ")

    def __str__(self) -> str:
        f = self.fit
        crit = "REML criterion" if f.reml else "deviance"
        opt = f.optimizer.get("method", "?")
        runs = ", ".join(
            f"{m} {r['llf']:.6f}" for m, r in f.optimizer.get("runs", {}).items()
        )
        lines = [
            f"{self.title} (statsmodels MixedLM; optimizer {opt}, log-likelihoods: {runs})",
            f"Model: {self.model}",
            self.sizes,
            "",
            f"{crit} = {f.deviance:.2f}   logLik = {f.llf:.3f}   AIC = {f.aic:.2f}   "
            f"BIC = {f.bic:.2f}",
            "",
            "Random effects:",
            self._random_text(),
            "",
            "Fixed effects:",
            self._fixed_text(),
        ]
        if self.notes:
            lines += ["", *self.notes]
        if f.singular:
            lines += ["", "boundary (singular) fit: a between-group variance is 0"]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython
        p.text(str(self))


def plot_caterpillar(
    means: pd.DataFrame,
    center: float,
    *,
    ax: Any = None,
    sort: bool = True,
    label: str = "",
    **kwargs: Any,
) -> Any:
    """Draw EB means with intervals, one point per group (a caterpillar plot).

    Parameters
    ----------
    means : pandas.DataFrame
        With columns ``eb_mean, ci_lower, ci_upper`` (and ``observed_mean``), one row per group.
    center : float
        Reference line (the grand mean).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on.
    sort : bool
        Order groups by EB mean.
    label : str
        Title.
    **kwargs
        Passed to ``ax.errorbar``.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    m = means.sort_values("eb_mean") if sort else means
    pos = np.arange(m.shape[0])
    style = {"fmt": "o", "ms": 2.5, "lw": 0.8, "color": "C0", "ecolor": "0.6"}
    style.update(kwargs)
    ax.errorbar(
        pos,
        m["eb_mean"],
        yerr=[m["eb_mean"] - m["ci_lower"], m["ci_upper"] - m["eb_mean"]],
        label="EB mean",
        **style,
    )
    if "observed_mean" in m:
        ax.plot(pos, m["observed_mean"], "x", ms=3, color="C3", alpha=0.6,
                label="observed mean")
    ax.axhline(center, color="k", lw=0.8, ls="--", label="grand mean")
    ax.set_xlabel(f"{m.index.name or 'group'} (ordered by EB mean)" if sort else "group")
    ax.set_ylabel("school mean")
    if label:
        ax.set_title(label)
    ax.legend(loc="upper left", fontsize="small")
    return ax


def to_datatree(
    table: pd.DataFrame,
    *,
    vcov: pd.DataFrame | None,
    estimator: str,
    attrs: dict[str, Any],
    loglik: float,
    conf_level: float,
    covariate_names: Sequence[str] = (),
    chains: int = 4,
    draws: int = 1000,
    random_seed: Any = None,
) -> Any:
    """Convert a common-format table of a REML/ML fit to the common ``DataTree`` format.

    Uses :func:`mlob_pp.comparisons.from_ml` (normal-approximation draws from N(estimate, vcov),
    ``point_estimate`` with its ``std_error`` and ``conf_interval`` children), then stamps
    ``attrs["estimator"]`` with `estimator` and adds `attrs`.

    Returns
    -------
    xarray.DataTree
    """
    from types import SimpleNamespace

    from mlob_pp.comparisons import from_ml

    shim = SimpleNamespace(
        coef=table["estimate"].rename("estimate"),
        se=table["std_error"].rename("std_error"),
        vcov=vcov,
        loglik=loglik,
        conf_level=conf_level,
        converged=True,
        covariate_names=list(covariate_names),
        settings={k: v for k, v in attrs.items() if k in ("model", "method", "random_slope")},
        summary_frame=lambda: table,
        formula=attrs.get("formula"),
        group=attrs.get("group"),
        n_obs=attrs.get("n_obs"),
        n_groups=attrs.get("n_groups"),
    )
    tree = from_ml(shim, chains=chains, draws=draws, random_seed=random_seed)
    for node in tree.subtree:
        node.attrs = {**node.attrs, **attrs, "estimator": estimator}
    return tree
