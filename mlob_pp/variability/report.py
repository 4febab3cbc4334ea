"""Reporting helpers of the variability analysis: estimates with SEs, summaries, caterpillar plot.

The printed summary follows the layout students know from lme4's ``summary(lmer(...))`` and
HLM: fixed effects with SE, z value and p value; random effects as variances and standard
deviations; then ICC, reliability, log-likelihood, deviance, AIC and BIC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.common_format import estimate_tree
from mlob_pp.provenance import make_attrs
from mlob_pp.tables import Summary, normal_quantile, wald
from mlob_pp.variability.mixed import MixedFit

__all__ = ["Estimate", "MixedSummary", "plot_caterpillar", "variability_tree"]


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
        return float(wald(float(self), self.std_error, 0.95)[1])

    def ci(self, conf_level: float = 0.95) -> tuple[float, float]:
        """Return the Wald interval at `conf_level`."""
        q = normal_quantile(conf_level)
        return (float(self) - q * self.std_error, float(self) + q * self.std_error)

    def __repr__(self) -> str:
        return f"Estimate({float(self)!r}, std_error={self.std_error!r})"


def _fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "<2e-16" if p < 2e-16 else f"{p:.3g}"


class MixedSummary(Summary):
    """Printable summary of a mixed-model fit (``print(result.summary())``, HTML in Jupyter).

    A :class:`mlob_pp.tables.Summary` whose text is the lme4/HLM layout.

    Parameters
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

    def __init__(self, title: str, model: str, sizes: str, fixed: pd.DataFrame,
                 random: pd.DataFrame, notes: Sequence[str], fit: MixedFit) -> None:
        self.model, self.sizes, self.fixed, self.random, self.fit = model, sizes, fixed, random, fit
        super().__init__(title, {"random effects": random, "fixed effects": fixed},
                         notes=tuple(notes))
        self._text = self._layout()

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

    def _layout(self) -> str:
        f = self.fit
        crit = "REML criterion" if f.reml else "deviance"
        engine = f.optimizer.get("engine", "statsmodels")
        method = str(f.optimizer.get("method", "?"))
        if engine == "sufficient":
            how = "sufficient statistics; profiled likelihood maximised over tau2/sigma2"
        elif method.startswith("lbfgsb_sufficient"):
            how = ("sufficient statistics; lme4-style search over the Cholesky factor of "
                   "G/sigma2" + (", optimum on the boundary" if "boundary" in method else
                                 ", higher than statsmodels MixedLM's"))
        else:
            runs = ", ".join(
                f"{m} {r['llf']:.6f}" for m, r in f.optimizer.get("runs", {}).items()
            )
            how = (f"statsmodels MixedLM; optimizer {method}, "
                   f"log-likelihoods: {runs}")
        lines = [
            f"{self.title} ({how})",
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
            lines += ["", "boundary (singular) fit: a between-group variance is 0 (or a "
                      "correlation is +-1); variance-component standard errors are not reported"]
        return "\n".join(lines)

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


def variability_tree(
    frame: pd.DataFrame,
    *,
    estimator: str,
    conf_level: float,
    attrs: Mapping[str, Any],
) -> Any:
    """Return a variability fit in the common format (group ``estimate``; Wald intervals).

    Standard errors of fixed effects are GLS ones, those of variance components come from the
    observed information (``se_method = "gls_and_observed_information"``).
    """
    stamp = make_attrs(estimator, settings={k: v for k, v in attrs.items()
                                            if k in ("model", "method", "random_slope")},
                       random_seed=None, inference_library="mlob_pp",
                       extra={k: v for k, v in attrs.items()
                              if k not in ("model", "method", "random_slope")})
    return estimate_tree(frame, estimator=estimator, conf_level=conf_level,
                         interval_method="wald", se_method="gls_and_observed_information",
                         attrs={**stamp, **attrs})
