r"""One-way random-effects ANOVA (the "null model") and the input checks of the variability API.

.. math::

    Y_{ij} = \gamma_{00} + u_{0j} + r_{ij}, \qquad u_{0j} \sim N(0, \tau_{00}), \qquad
    r_{ij} \sim N(0, \sigma^2),

with :math:`\mathrm{ICC} = \tau_{00}/(\tau_{00} + \sigma^2)`, the reliability of school mean
:math:`j`, :math:`\lambda_j = \tau_{00}/(\tau_{00} + \sigma^2/n_j)`, the design effect
:math:`1 + \mathrm{ICC}(\bar n - 1)` and the empirical-Bayes (shrunken) school means
:math:`\hat\gamma_{00} + \lambda_j(\bar Y_j - \hat\gamma_{00})`. Public entry point:
:func:`mlob_pp.null_model` (see :mod:`mlob_pp.variability`).

References
----------
Raudenbush, S. W., & Bryk, A. S. (2002). *Hierarchical Linear Models: Applications and Data
Analysis Methods* (2nd ed.), ch. 4. Sage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.design import check_frame, column_values, group_index
from mlob_pp.formula.null import old_positional_call, parse_null_formula
from mlob_pp.results import EstimatorResult
from mlob_pp.tables import normal_quantile, wald_table
from mlob_pp.validate import check_probability
from mlob_pp.variability.common import (
    check_between_df,
    check_outcome_variation,
    reml_flag,
    size_line,
    variance_table,
    warn_singular,
)
from mlob_pp.variability.mixed import FitCriteria, MixedFit, fit_mixed
from mlob_pp.variability.report import MixedSummary, plot_caterpillar, variability_tree

__all__ = ["null_model", "NullModelResult"]

# --------------------------------------------------------------------------- null model
@dataclass(frozen=True, repr=False)
class NullModelResult(FitCriteria, EstimatorResult):
    r"""One-way random-effects ANOVA of :func:`null_model`.

    Attributes
    ----------
    outcome, group : str
        Column names.
    method : {"reml", "ml"}
        Estimation method.
    grand_mean, grand_mean_se : float
        :math:`\hat\gamma_{00}` and its GLS standard error.
    tau00, sigma2 : float
        Between- and within-school variance.
    reliability : pandas.Series
        :math:`\lambda_j = \tau_{00}/(\tau_{00} + \sigma^2/n_j)`, indexed by group.
    school_means : pandas.DataFrame
        Per group: ``n``, ``observed_mean``, ``reliability``, ``eb_mean`` (shrunken mean),
        ``std_error`` (comparative SE, includes the uncertainty of the grand mean), ``ci_lower``,
        ``ci_upper`` and ``rank`` (1 = lowest EB mean).
    var_school_means : float
        Naive variance of the observed school means (sample variance over schools).
    conf_level : float
        Level of the intervals.
    fit : MixedFit
        The underlying fit (log-likelihood, optimizer record, ...).

    The shared result protocol (:class:`mlob_pp.results.EstimatorResult`) gives ``params``,
    ``bse``, ``conf_int()``, ``pvalues``, ``to_frame()`` (``grand_mean, tau2, sigma2, icc``),
    ``summary()`` and ``to_datatree()``.
    """

    estimator = "null_model"

    outcome: str
    group: str
    method: str
    grand_mean: float
    grand_mean_se: float
    tau00: float
    sigma2: float
    reliability: pd.Series
    school_means: pd.DataFrame
    var_school_means: float
    conf_level: float
    fit: MixedFit = field(repr=False)

    @property
    def tau2(self) -> float:
        """Between-school variance (the contract's name for :attr:`tau00`)."""
        return self.tau00

    @property
    def formula(self) -> str:
        """The model in lme4 notation."""
        return f"{self.outcome} ~ 1 + (1 | {self.group})"

    @property
    def boundary(self) -> tuple[str, ...]:
        """Parameters estimated on the boundary of the parameter space (``("tau2",)`` or ())."""
        return ("tau2",) if self.fit.singular else ()

    @property
    def icc(self) -> float:
        r"""Intraclass correlation :math:`\tau_{00}/(\tau_{00} + \sigma^2)`."""
        return self.tau00 / (self.tau00 + self.sigma2)

    @property
    def reliability_mean(self) -> float:
        """Average reliability of the school means (HLM's "reliability estimate")."""
        return float(self.reliability.mean())

    @property
    def group_sizes(self) -> pd.Series:
        """Rows per group."""
        return self.school_means["n"]

    @property
    def mean_group_size(self) -> float:
        r"""Average group size :math:`\bar n = N/J`."""
        return self.n_obs / self.n_groups

    @property
    def design_effect(self) -> float:
        r"""Design effect :math:`1 + \mathrm{ICC}(\bar n - 1)` (Kish 1965)."""
        return 1.0 + self.icc * (self.mean_group_size - 1.0)

    @property
    def expected_var_school_means(self) -> float:
        r"""What the naive variance estimates: :math:`\tau_{00} + \sigma^2 \overline{1/n_j}`."""
        return self.tau00 + self.sigma2 * float(np.mean(1.0 / self.group_sizes.to_numpy()))


    def to_frame(self) -> pd.DataFrame:
        """Return the estimates in the common format.

        Returns
        -------
        pandas.DataFrame
            Index ``grand_mean, tau2, sigma2, icc`` (name ``term``); columns ``estimate,
            std_error, ci_lower, ci_upper, z, p_value``. SEs of the variances are from the
            observed information (the ICC's by the delta method); their Wald intervals and p
            values are crude (variances have skewed sampling distributions and p = 0 is on the
            boundary). On the boundary (tau2 = 0) the variance SEs are NaN.
        """
        fixed = wald_table([self.grand_mean], [self.grand_mean_se], conf_level=self.conf_level,
                           index=["grand_mean"])
        return pd.concat([fixed, variance_table(self.fit, ["(Intercept)"], self.conf_level)])

    def table(self) -> pd.DataFrame:
        """Alias of :meth:`to_frame` (the name before 0.2)."""
        return self.to_frame()

    def to_datatree(self) -> Any:
        """Return the fit in the common format (an ``estimate`` group; no posterior draws).

        Returns
        -------
        xarray.DataTree
            Group ``estimate`` with :meth:`to_frame`'s table over ``term`` and a boolean
            ``boundary`` (True for tau2 when it is estimated at 0); attrs
            ``estimator = "null_model"``, ``method``, ``formula``, ``group``, ``n_obs``,
            ``n_groups``, ``loglik``, ``boundary``.
        """
        frame = self.to_frame()
        frame["boundary"] = [t in self.boundary for t in frame.index]
        return variability_tree(
            frame, estimator=self.estimator, conf_level=self.conf_level,
            attrs={"model": "null", "method": self.method, "outcome": self.outcome,
                   "formula": self.formula, "group": self.group, "n_obs": self.n_obs,
                   "n_groups": self.n_groups, "loglik": self.llf,
                   "boundary": ",".join(self.boundary)},
        )

    def summary(self) -> MixedSummary:
        """Return a printable summary in the layout of a multilevel course (lme4/HLM)."""
        fixed = wald_table([self.grand_mean], [self.grand_mean_se], conf_level=self.conf_level,
                           index=["(Intercept)"])
        random = pd.DataFrame(
            {
                "Groups": [self.group, "Residual"],
                "Name": ["(Intercept)", ""],
                "Variance": [self.tau00, self.sigma2],
                "Std.Dev.": [np.sqrt(self.tau00), np.sqrt(self.sigma2)],
            }
        )
        rel = self.reliability
        notes = [
            f"ICC = {self.icc:.4f}    design effect = {self.design_effect:.3f} "
            f"(mean group size {self.mean_group_size:.2f})",
            f"Reliability of group means: mean {rel.mean():.3f} "
            f"(range {rel.min():.3f}-{rel.max():.3f})",
            f"Variance of observed group means = {self.var_school_means:.4f} (naive); "
            f"model tau00 = {self.tau00:.4f}; tau00 + sigma2 * mean(1/n_j) = "
            f"{self.expected_var_school_means:.4f}",
        ]
        return MixedSummary(
            title=f"One-way random-effects ANOVA fit by {self.method.upper()}",
            model=f"{self.outcome} ~ 1 + (1 | {self.group})",
            sizes=size_line(self.group_sizes.to_numpy(), self.group),
            fixed=fixed,
            random=random,
            notes=tuple(notes),
            fit=self.fit,
        )

    def plot_caterpillar(self, *, ax: Any = None, sort: bool = True, **kwargs: Any) -> Any:
        """Caterpillar plot of the empirical-Bayes school means with their intervals.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on (default: a new figure).
        sort : bool
            Order schools by their EB mean (default True).
        **kwargs
            Passed to ``ax.errorbar``.

        Returns
        -------
        matplotlib.axes.Axes
        """
        return plot_caterpillar(
            self.school_means, self.grand_mean, ax=ax, sort=sort,
            label=f"{self.outcome}: EB means of {self.group} ({self.conf_level:.0%} intervals)",
            **kwargs,
        )


def null_model(
    formula: Any,
    data: Any = None,
    group: Any = None,
    *,
    method: str = "reml",
    conf_level: float = 0.95,
    engine: str = "auto",
) -> NullModelResult:
    """Fit the one-way random-effects ANOVA ``y ~ 1 + (1 | group)``.

    Parameters
    ----------
    formula : str
        ``"y ~ 1"`` (with `group`) or ``"y ~ 1 + (1 | school)"``; y is a numeric column.
    data : pandas.DataFrame
        One row per student.
    group : str, optional
        Grouping (school) column, any labels; or give it in the formula.
    method : {"reml", "ml"}
        Restricted (default) or full maximum likelihood.
    conf_level : float
        Level of the intervals (default 0.95).
    engine : {"auto", "sufficient", "statsmodels"}
        ``"auto"`` (= ``"sufficient"``): closed-form sufficient statistics, 10^6 rows in
        seconds; ``"statsmodels"``: statsmodels' MixedLM (same answers to 1e-6, slower).

    Returns
    -------
    NullModelResult

    Raises
    ------
    TypeError
        If `data` is not a DataFrame, a column name is not a string, or the outcome is not
        numeric.
    ValueError
        Unknown columns, missing values, fewer than 3 groups (the between-group variance needs
        2 degrees of freedom, see :mod:`mlob_pp.variability.common`), no within-group variation,
        `method` not "reml"/"ml", `conf_level` not in (0, 1), a formula other than ``y ~ 1``.

    Warns
    -----
    SingularFitWarning
        If tau2 is estimated at the boundary 0 (reported in ``boundary`` and the summary).

    Notes
    -----
    The pre-0.2 call ``null_model(data, "y", "g")`` still works, with a DeprecationWarning.

    See Also
    --------
    contextual_model : adds a student-level predictor split into within and between parts.

    References
    ----------
    Raudenbush, S. W., & Bryk, A. S. (2002). *Hierarchical Linear Models* (2nd ed.), ch. 4.
    Sage.

    Examples
    --------
    >>> import mlob_pp
    >>> m0 = mlob_pp.null_model("mAch ~ 1", mlob_pp.datasets.load("hsb"), group="school")
    >>> round(m0.grand_mean, 3), round(m0.tau00, 2), round(m0.reliability_mean, 3)
    (12.637, 8.61, 0.901)
    """
    if old_positional_call("null_model", formula, data,
                           "null_model('y ~ 1', data, group='g') or 'y ~ 1 + (1 | g)'"):
        formula, data = f"{data} ~ 1", formula
    data = check_frame(data)
    reml = reml_flag(method)
    conf_level = check_probability(conf_level, "conf_level")
    outcome, group = parse_null_formula(
        formula, group, "null_model", "for predictors use contextual_model or means_as_outcomes")
    y = column_values(data, outcome, "outcome", numeric=True)
    labels = column_values(data, group, "group", numeric=False)
    codes, uniques = group_index(labels, group)
    J = uniques.shape[0]
    check_outcome_variation(y, codes, J, outcome)
    X = np.ones((y.shape[0], 1))
    check_between_df(X, codes, J, ["grand_mean"], group)
    fit = fit_mixed(y, X, codes, reml=reml, n_groups=J, engine=engine)
    if fit.singular:
        warn_singular(group, fit)
    return _result(fit, y, codes, uniques, outcome, group, reml, conf_level)


def _result(fit, y, codes, uniques, outcome, group, reml, conf_level) -> NullModelResult:
    J = uniques.shape[0]
    n = np.bincount(codes, minlength=J)
    ybar = np.bincount(codes, weights=y, minlength=J) / n
    tau00, sigma2 = float(fit.cov_re[0, 0]), fit.sigma2
    lam = tau00 / (tau00 + sigma2 / n)
    gm = float(fit.fe[0])
    eb = gm + fit.re[:, 0]
    # error variance of the EB mean (grand mean + u_j): tau00 (1 - lambda_j) + (1 - lambda_j)^2
    # Var(grand mean) (Raudenbush & Bryk 2002, eq. 3.62)
    var = fit.cov_fe[0, 0] + fit.re_cov[:, 0, 0] + 2.0 * fit.re_fe_cov[:, 0, 0]
    se = np.sqrt(np.maximum(var, 0.0))
    q = normal_quantile(conf_level)
    index = pd.Index(uniques, name=group)
    school_means = pd.DataFrame(
        {
            "n": n,
            "observed_mean": ybar,
            "reliability": lam,
            "eb_mean": eb,
            "std_error": se,
            "ci_lower": eb - q * se,
            "ci_upper": eb + q * se,
            "rank": pd.Series(eb).rank(method="first").to_numpy().astype(int),
        },
        index=index,
    )
    return NullModelResult(
        outcome=outcome,
        group=group,
        method="reml" if reml else "ml",
        grand_mean=gm,
        grand_mean_se=float(np.sqrt(fit.cov_fe[0, 0])),
        tau00=tau00,
        sigma2=sigma2,
        reliability=pd.Series(lam, index=index, name="reliability"),
        school_means=school_means,
        var_school_means=float(np.var(ybar, ddof=1)),
        conf_level=conf_level,
        fit=fit,
    )
