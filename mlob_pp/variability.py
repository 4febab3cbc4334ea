r"""Variability analysis of school data: random-effects ANOVA and contextual models.

One-way random-effects ANOVA (the "null model", Raudenbush & Bryk 2002, ch. 4):

.. math::

    Y_{ij} = \gamma_{00} + u_{0j} + r_{ij}, \qquad u_{0j} \sim N(0, \tau_{00}), \qquad
    r_{ij} \sim N(0, \sigma^2),

with :math:`\mathrm{ICC} = \tau_{00}/(\tau_{00} + \sigma^2)`, the reliability of school mean
:math:`j`, :math:`\lambda_j = \tau_{00}/(\tau_{00} + \sigma^2/n_j)`, the design effect
:math:`1 + \mathrm{ICC}(\bar n - 1)` and the empirical-Bayes (shrunken) school means
:math:`\hat\gamma_{00} + \lambda_j(\bar Y_j - \hat\gamma_{00})`.

Contextual model with the observed (manifest) group mean :math:`\bar X_j`:

.. math::

    Y_{ij} = \alpha + \beta_w (X_{ij} - \bar X_j) + \beta_b \bar X_j + C_{ij}'\gamma
             + u_{0j} + u_{1j}(X_{ij} - \bar X_j) + r_{ij},

where the random slope :math:`u_{1j}` is optional, school-level predictors :math:`W_j` can
model the intercept (means-as-outcomes) and the slope (intercepts-and-slopes-as-outcomes,
cross-level terms :math:`W_j (X_{ij} - \bar X_j)`), and the contextual effect is
:math:`\beta_c = \beta_b - \beta_w` with
:math:`\mathrm{SE}(\beta_c)^2 = V_{bb} + V_{ww} - 2V_{bw}` from the fixed-effect covariance.
With the observed group mean :math:`\beta_b` is biased towards :math:`\beta_w` when school means
of :math:`X` are unreliable (Lüdtke et al. 2008); see :mod:`mlob_pp.mlob` for the latent
alternative.

All models are fitted by statsmodels' MixedLM (REML by default, ML on request) through
:func:`mlob_pp.variability_fit.fit_mixed`, which chooses and checks the optimizer.

References
----------
Raudenbush, S. W., & Bryk, A. S. (2002). *Hierarchical Linear Models: Applications and Data
Analysis Methods* (2nd ed.). Sage.
Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B. (2008).
The multilevel latent covariate model. *Psychological Methods*, 13(3), 203-229.
https://doi.org/10.1037/a0012869
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.validate import check_bool, check_choice, check_probability
from mlob_pp.variability_fit import MixedFit, SingularFitWarning, fit_mixed
from mlob_pp.variability_report import (
    Estimate,
    MixedSummary,
    coef_table,
    plot_caterpillar,
    to_datatree,
)

__all__ = [
    "null_model",
    "contextual_model",
    "means_as_outcomes",
    "NullModelResult",
    "ContextualResult",
    "MeansAsOutcomesResult",
    "Estimate",
    "MixedSummary",
    "SingularFitWarning",
]

_METHODS = ("reml", "ml")


# --------------------------------------------------------------------------- validation
def _check_frame(data: Any) -> pd.DataFrame:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"`data` must be a pandas DataFrame; got {type(data).__name__}")
    if data.shape[0] == 0:
        raise ValueError("`data` is empty (0 rows)")
    return data


def _check_column(data: pd.DataFrame, name: Any, arg: str, *, numeric: bool) -> np.ndarray:
    if not isinstance(name, str):
        raise TypeError(f"`{arg}` must be the name of a column (a string); got {name!r}")
    if name not in data.columns:
        cols = ", ".join(repr(str(c)) for c in data.columns[:12])
        raise ValueError(f"`{arg}` column {name!r} is not in data; available columns: {cols}")
    col = data[name]
    n_missing = int(col.isna().sum())
    if n_missing:
        raise ValueError(
            f"`{arg}` column {name!r} has {n_missing} missing values; drop those rows first "
            "(e.g. data.dropna(subset=[...]))"
        )
    if numeric:
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            raise TypeError(f"`{arg}` column {name!r} must be numeric; got dtype {col.dtype}")
        values = col.to_numpy(dtype=float)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"`{arg}` column {name!r} has non-finite values (inf)")
        return values
    return col.to_numpy()


def _group_index(labels: np.ndarray, group: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        codes, uniques = pd.factorize(labels, sort=True)
    except TypeError:
        codes, uniques = pd.factorize(labels, sort=False)
    if uniques.shape[0] < 2:
        raise ValueError(
            f"`group` column {group!r} must have at least 2 distinct groups; got "
            f"{uniques.shape[0]}"
        )
    sizes = np.bincount(codes)
    if sizes.max() < 2:
        raise ValueError(
            f"`group` column {group!r} has one row per group; the within-group variance "
            "needs at least one group with 2 or more rows"
        )
    return codes.astype(np.intp), np.asarray(uniques)


def _method(method: Any) -> bool:
    return check_choice(method, "method", _METHODS) == "reml"


def _check_variation(y: np.ndarray, codes: np.ndarray, name: str) -> None:
    means = np.bincount(codes, weights=y) / np.bincount(codes)
    if np.sum((y - means[codes]) ** 2) <= 1e-12 * max(1.0, float(np.sum(y**2))):
        raise ValueError(
            f"outcome {name!r} does not vary within groups, so the within-group variance "
            "sigma2 is 0 and the model is not identified"
        )


def _size_line(sizes: np.ndarray, group: str) -> str:
    return (
        f"Number of obs: {int(sizes.sum())}, groups: {group}, {sizes.shape[0]} "
        f"(size {sizes.min()}-{sizes.max()}, mean {sizes.mean():.2f})"
    )


# --------------------------------------------------------------------------- null model
@dataclass(frozen=True)
class NullModelResult:
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
    """

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
    def n_obs(self) -> int:
        """Number of students (rows)."""
        return int(self.group_sizes.sum())

    @property
    def n_groups(self) -> int:
        """Number of schools (groups)."""
        return int(self.group_sizes.shape[0])

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

    @property
    def llf(self) -> float:
        """Log-likelihood (REML or ML)."""
        return self.fit.llf

    @property
    def deviance(self) -> float:
        """-2 log-likelihood (HLM's deviance; under REML the REML criterion)."""
        return self.fit.deviance

    @property
    def aic(self) -> float:
        """AIC (lme4 convention)."""
        return self.fit.aic

    @property
    def bic(self) -> float:
        """BIC (lme4 convention)."""
        return self.fit.bic

    def table(self) -> pd.DataFrame:
        """Return estimates in the common format.

        Returns
        -------
        pandas.DataFrame
            Index ``grand_mean, tau2, sigma2, icc``; columns ``estimate, std_error, ci_lower,
            ci_upper, z, p_value``. SEs of the variances are from the observed information
            (the ICC's by the delta method); their Wald intervals and p values are crude
            (variances have skewed sampling distributions and p = 0 is on the boundary).
        """
        est = [self.grand_mean, self.tau00, self.sigma2, self.icc]
        se = [self.grand_mean_se, *_variance_se(self.fit)]
        return coef_table(["grand_mean", "tau2", "sigma2", "icc"], est, se, self.conf_level)

    def to_datatree(
        self, *, chains: int = 4, draws: int = 1000, random_seed: Any = None
    ) -> Any:
        """Return the fit in the common ``DataTree`` format (see :mod:`mlob_pp.comparisons`).

        ``point_estimate`` holds :meth:`table`'s estimates (``grand_mean, tau2, sigma2,
        icc``), ``posterior`` normal-approximation draws, ``log_likelihood/loglik`` the
        maximised (REML or ML) log-likelihood; ``attrs["estimator"]`` is ``"reml"`` or ``"ml"``.

        Parameters
        ----------
        chains, draws : int
            Shape of the normal-approximation draws.
        random_seed : int or numpy.random.Generator, optional
            Seed of the draws.

        Returns
        -------
        xarray.DataTree
        """
        return to_datatree(
            self.table(), vcov=None, estimator=self.method, loglik=self.llf,
            conf_level=self.conf_level, chains=chains, draws=draws, random_seed=random_seed,
            attrs={"model": "null", "method": self.method, "outcome": self.outcome,
                   "formula": f"{self.outcome} ~ 1", "group": self.group,
                   "n_obs": self.n_obs, "n_groups": self.n_groups},
        )

    def summary(self) -> MixedSummary:
        """Return a printable summary in the layout of a multilevel course (lme4/HLM)."""
        fixed = coef_table(["(Intercept)"], [self.grand_mean], [self.grand_mean_se],
                           self.conf_level)
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
            sizes=_size_line(self.group_sizes.to_numpy(), self.group),
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
    data: pd.DataFrame,
    outcome: str,
    group: str,
    *,
    method: str = "reml",
    conf_level: float = 0.95,
) -> NullModelResult:
    """Fit the one-way random-effects ANOVA ``outcome ~ 1 + (1 | group)``.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per student.
    outcome : str
        Numeric outcome column.
    group : str
        Grouping (school) column; any labels.
    method : {"reml", "ml"}
        Restricted (default) or full maximum likelihood.
    conf_level : float
        Level of the intervals of the school means (default 0.95).

    Returns
    -------
    NullModelResult

    Raises
    ------
    TypeError
        If `data` is not a DataFrame, a column name is not a string, or the outcome is not
        numeric.
    ValueError
        Unknown columns, missing values, fewer than 2 groups, no within-group variation,
        `method` not "reml"/"ml", `conf_level` not in (0, 1).

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
    >>> m0 = mlob_pp.null_model(mlob_pp.datasets.load("hsb"), "mAch", "school")
    >>> round(m0.grand_mean, 3), round(m0.tau00, 2), round(m0.reliability_mean, 3)
    (12.637, 8.61, 0.901)
    """
    data = _check_frame(data)
    reml = _method(method)
    conf_level = check_probability(conf_level, "conf_level")
    y = _check_column(data, outcome, "outcome", numeric=True)
    labels = _check_column(data, group, "group", numeric=False)
    codes, uniques = _group_index(labels, group)
    _check_variation(y, codes, outcome)
    J = uniques.shape[0]
    fit = fit_mixed(y, np.ones((y.shape[0], 1)), codes, reml=reml, n_groups=J)
    if fit.singular:
        _warn_singular(group)
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
    from scipy.stats import norm

    q = norm.ppf(0.5 + conf_level / 2)
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


def _variance_se(fit: MixedFit) -> list[float]:
    """SEs of tau2, sigma2 and the ICC (delta method) of a random-intercept fit, else NaN."""
    V = fit.cov_var
    t, s = float(fit.cov_re[0, 0]), fit.sigma2
    grad = np.array([s, -t]) / (t + s) ** 2
    return [float(np.sqrt(V[0, 0])), float(np.sqrt(V[1, 1])), float(np.sqrt(grad @ V @ grad))]


def _warn_singular(group: str) -> None:
    import warnings

    warnings.warn(
        f"singular fit: the between-{group} variance is estimated at the boundary 0 "
        "(as lme4's isSingular); the group effects are all shrunk to 0",
        SingularFitWarning,
        stacklevel=3,
    )


# --------------------------------------------------------------------------- models with predictors
@dataclass(frozen=True)
class _MixedResult:
    """Common part of the results of models with predictors (see the subclasses)."""

    formula: str
    group: str
    method: str
    fixed: pd.DataFrame
    cov_fe: pd.DataFrame
    cov_re: pd.DataFrame
    sigma2: float
    group_sizes: pd.Series
    random_effects: pd.DataFrame
    conf_level: float
    fit: MixedFit = field(repr=False)

    @property
    def tau2(self) -> float:
        r"""Between-group (residual) intercept variance :math:`\tau_{00}`."""
        return float(self.cov_re.iloc[0, 0])

    @property
    def tau00(self) -> float:
        """Alias of :attr:`tau2` (HLM's name)."""
        return self.tau2

    @property
    def icc(self) -> float:
        r"""Residual (conditional) ICC :math:`\tau_{00}/(\tau_{00} + \sigma^2)`."""
        return self.tau2 / (self.tau2 + self.sigma2)

    @property
    def llf(self) -> float:
        """Log-likelihood (REML or ML)."""
        return self.fit.llf

    @property
    def deviance(self) -> float:
        """-2 log-likelihood (REML criterion under REML)."""
        return self.fit.deviance

    @property
    def aic(self) -> float:
        """AIC (lme4 convention)."""
        return self.fit.aic

    @property
    def bic(self) -> float:
        """BIC (lme4 convention)."""
        return self.fit.bic

    def _estimate(self, name: str) -> Estimate:
        row = self.fixed.loc[name]
        return Estimate(row["estimate"], row["std_error"])

    def _random_frame(self) -> pd.DataFrame:
        g = self.cov_re.to_numpy()
        names = list(self.cov_re.index)
        sd = np.sqrt(np.diag(g))
        rows = []
        for k, name in enumerate(names):
            corr = g[k, 0] / (sd[k] * sd[0]) if k > 0 and sd[k] * sd[0] > 0 else np.nan
            rows.append([self.group if k == 0 else "", name, g[k, k], sd[k], corr])
        rows.append(["Residual", "", self.sigma2, np.sqrt(self.sigma2), np.nan])
        frame = pd.DataFrame(rows, columns=["Groups", "Name", "Variance", "Std.Dev.", "Corr"])
        return frame if len(names) > 1 else frame.drop(columns="Corr")

    def _summary(self, title: str, fixed: pd.DataFrame, notes: list[str]) -> MixedSummary:
        terms = " + ".join(self.cov_re.index).replace("(Intercept)", "1")
        return MixedSummary(
            title=f"{title} fit by {self.method.upper()}",
            model=f"{self.formula} + ({terms} | {self.group})",
            sizes=_size_line(self.group_sizes.to_numpy(), self.group),
            fixed=fixed,
            random=self._random_frame(),
            notes=tuple(notes),
            fit=self.fit,
        )


@dataclass(frozen=True)
class ContextualResult(_MixedResult):
    r"""Contextual model of :func:`contextual_model` (observed group mean of the target X).

    Attributes
    ----------
    formula, group, target : str
        Formula as given, grouping column and target regressor X.
    method : {"reml", "ml"}
        Estimation method.
    random_slope : bool
        Whether the within slope varies over groups.
    fixed : pandas.DataFrame
        Fixed effects in the common format, index ``alpha, beta_w, beta_b, gamma_<term>...``
        (cross-level terms ``gamma_<X>_within:<W>``).
    cov_fe : pandas.DataFrame
        GLS covariance of the fixed effects.
    cov_re : pandas.DataFrame
        Between-group covariance G (``(Intercept)`` and ``<X>_within``).
    sigma2 : float
        Within-group residual variance.
    group_sizes : pandas.Series
        Rows per group.
    random_effects : pandas.DataFrame
        Empirical-Bayes predictions of the random effects and their comparative SEs.
    """

    target: str = ""
    random_slope: bool = False

    @property
    def beta_w(self) -> Estimate:
        """Within-group slope of X (a float with ``.std_error``)."""
        return self._estimate("beta_w")

    @property
    def beta_b(self) -> Estimate:
        """Between-group slope of the observed group mean of X."""
        return self._estimate("beta_b")

    @property
    def beta_c(self) -> Estimate:
        r"""Contextual effect :math:`\beta_b - \beta_w`, SE from the fixed-effect covariance."""
        v = self.cov_fe
        var = v.loc["beta_b", "beta_b"] + v.loc["beta_w", "beta_w"] - 2 * v.loc["beta_b", "beta_w"]
        return Estimate(self.beta_b - self.beta_w, float(np.sqrt(var)))

    @property
    def beta_w_se(self) -> float:
        """Standard error of :attr:`beta_w`."""
        return self.beta_w.std_error

    @property
    def beta_b_se(self) -> float:
        """Standard error of :attr:`beta_b`."""
        return self.beta_b.std_error

    @property
    def beta_c_se(self) -> float:
        """Standard error of :attr:`beta_c`."""
        return self.beta_c.std_error

    @property
    def alpha(self) -> Estimate:
        """Intercept."""
        return self._estimate("alpha")

    @property
    def gamma(self) -> pd.Series:
        """Covariate coefficients (index = R-style term names, without ``gamma_``)."""
        g = self.fixed.loc[[i for i in self.fixed.index if i.startswith("gamma_")], "estimate"]
        g.index = [i.removeprefix("gamma_") for i in g.index]
        g.index.name = "term"
        return g

    def table(self) -> pd.DataFrame:
        """Return fixed effects, ``beta_c``, ``tau2``, ``sigma2``, ``icc`` in the common format."""
        bc = self.beta_c
        extra = coef_table(
            ["beta_c", "tau2", "sigma2", "icc"],
            [float(bc), self.tau2, self.sigma2, self.icc],
            [bc.std_error, *_variance_se(self.fit)],
            self.conf_level,
        )
        return pd.concat([self.fixed, extra])

    def to_datatree(
        self, *, chains: int = 4, draws: int = 1000, random_seed: Any = None
    ) -> Any:
        """Return the fit in the common ``DataTree`` format (see :mod:`mlob_pp.comparisons`).

        Variables ``beta_b, beta_w, beta_c, gamma`` (dim ``term``), ``alpha``, ``tau2``,
        ``sigma2`` and ``icc`` (cross-level terms are ``gamma`` terms ``<X>_within:<W>``);
        ``posterior`` holds draws from N(estimate, GLS covariance) for the fixed effects (so
        ``beta_c`` keeps its correlation) and independent normal draws for the variances.
        ``attrs["estimator"]`` is ``"manifest_reml"`` or ``"manifest_ml"``: the observed group
        mean model, not the latent covariate model of the ``"ml"`` estimator.

        Parameters
        ----------
        chains, draws : int
            Shape of the normal-approximation draws.
        random_seed : int or numpy.random.Generator, optional
            Seed of the draws.

        Returns
        -------
        xarray.DataTree

        Examples
        --------
        >>> import mlob_pp
        >>> ctx = mlob_pp.contextual_model(mlob_pp.datasets.load("hsb"), "mAch ~ ses", "school")
        >>> tree = ctx.to_datatree(random_seed=1)
        >>> tree.attrs["estimator"], float(tree["point_estimate"]["beta_b"]).__round__(3)
        ('manifest_reml', 5.866)
        """
        terms = [i.removeprefix("gamma_") for i in self.fixed.index if i.startswith("gamma_")]
        return to_datatree(
            self.table(), vcov=self.cov_fe, estimator=f"manifest_{self.method}",
            loglik=self.llf, conf_level=self.conf_level, covariate_names=terms,
            chains=chains, draws=draws, random_seed=random_seed,
            attrs={"model": "contextual_manifest", "method": self.method,
                   "random_slope": int(self.random_slope), "formula": self.formula,
                   "group": self.group, "n_obs": int(self.group_sizes.sum()),
                   "n_groups": int(self.group_sizes.shape[0])},
        )

    def summary(self) -> MixedSummary:
        """Return a printable summary (lme4/HLM layout) with the contextual effect."""
        bc = self.beta_c
        fixed = pd.concat([self.fixed, coef_table(["beta_c"], [float(bc)], [bc.std_error],
                                                  self.conf_level)])
        notes = [
            f"beta_w: within-{self.group} slope of {self.target} (group-mean centred); "
            f"beta_b: slope of the observed {self.group} mean of {self.target}; "
            "beta_c = beta_b - beta_w (contextual effect)",
            f"residual ICC = {self.icc:.4f}",
        ]
        return self._summary("Contextual model (observed group means)", fixed, notes)


def contextual_model(
    data: pd.DataFrame,
    formula: str,
    group: str,
    *,
    random_slope: bool = False,
    slope_predictors: Sequence[str] = (),
    method: str = "reml",
    conf_level: float = 0.95,
) -> ContextualResult:
    """Fit the contextual model: X split into its observed group mean and the deviation from it.

    ``"lang ~ IQ + C"`` fits ``lang`` on ``IQ - mean_j(IQ)`` (slope ``beta_w``), ``mean_j(IQ)``
    (slope ``beta_b``) and the covariate ``C`` with a random intercept per group (and a random
    within slope if `random_slope`). School-level `slope_predictors` W add the cross-level
    terms ``W * (IQ - mean_j(IQ))`` (intercepts-and-slopes-as-outcomes) and W itself if it is
    not already a covariate.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per student.
    formula : str
        ``"y ~ x + covariates"``; the first right-hand term is the target X (numeric).
    group : str
        Grouping column.
    random_slope : bool
        Let the within slope vary over groups (default False).
    slope_predictors : sequence of str
        Numeric school-level columns (constant within groups) that model the within slope.
    method : {"reml", "ml"}
        Restricted (default) or full maximum likelihood.
    conf_level : float
        Level of the Wald intervals.

    Returns
    -------
    ContextualResult

    Raises
    ------
    TypeError
        Bad types (data, formula, column names, non-numeric X or outcome, `random_slope`).
    ValueError
        Unknown columns, missing values, X without within- or between-group variation,
        a slope predictor that varies within groups, collinear terms, bad `method` or
        `conf_level`.

    See Also
    --------
    null_model : the model without predictors.
    mlob_pp.mlob : latent (bias-corrected) between slope.

    References
    ----------
    Raudenbush, S. W., & Bryk, A. S. (2002). *Hierarchical Linear Models* (2nd ed.), ch. 5.
    Sage.
    Lüdtke, O., et al. (2008). The multilevel latent covariate model. *Psychological Methods*,
    13(3), 203-229. https://doi.org/10.1037/a0012869

    Examples
    --------
    >>> import mlob_pp
    >>> ctx = mlob_pp.contextual_model(mlob_pp.datasets.load("hsb"), "mAch ~ ses", "school")
    >>> round(ctx.beta_w, 3), round(ctx.beta_b, 3), round(ctx.beta_c, 3)
    (2.191, 5.866, 3.675)
    """
    from mlob_pp.formula import parse_formula

    data = _check_frame(data)
    reml = _method(method)
    random_slope = check_bool(random_slope, "random_slope")
    conf_level = check_probability(conf_level, "conf_level")
    if isinstance(slope_predictors, str) or not isinstance(slope_predictors, Sequence):
        raise TypeError(
            "`slope_predictors` must be a list of column names; got "
            f"{slope_predictors!r}"
        )
    mf = parse_formula(formula, data, group)
    codes, J = mf.group_codes, mf.n_groups
    n = np.bincount(codes, minlength=J)
    xbar_j = np.bincount(codes, weights=mf.x, minlength=J) / n
    xbar = xbar_j[codes]
    xw = mf.x - xbar
    if np.sum(xw**2) <= 1e-12 * max(1.0, float(np.sum(mf.x**2))):
        raise ValueError(
            f"the target {mf.target!r} does not vary within groups, so beta_w is not "
            "identified; use a student-level variable as the first right-hand term"
        )
    if np.ptp(xbar_j) <= 1e-12 * max(1.0, float(np.max(np.abs(xbar_j)))):
        raise ValueError(
            f"the group means of the target {mf.target!r} are all equal, so beta_b is not "
            "identified"
        )
    _check_variation(mf.y, codes, mf.response)
    names = ["alpha", "beta_w", "beta_b", *(f"gamma_{c}" for c in mf.covariate_names)]
    cols = [np.ones_like(mf.y), xw, xbar, *mf.covariates.T]
    for w in slope_predictors:
        values = _check_column(data, w, "slope_predictors", numeric=True)[mf.rows]
        _check_group_level(values, codes, J, w, "slope_predictors")
        # W's own intercept effect, unless it is already a covariate or is the group mean of X
        # (then beta_b is that effect, as with meanses in Raudenbush & Bryk's HSB models)
        if w not in mf.covariate_names and not np.allclose(values, xbar, rtol=0, atol=1e-10):
            names.append(f"gamma_{w}")
            cols.append(values)
        names.append(f"gamma_{mf.target}_within:{w}")
        cols.append(values * xw)
    X = np.column_stack(cols)
    _check_rank(X, names)
    Z = np.column_stack([np.ones_like(xw), xw]) if random_slope else None
    fit = fit_mixed(mf.y, X, codes, Z, reml=reml, n_groups=J)
    if fit.singular:
        _warn_singular(group)
    re_names = ["(Intercept)", f"{mf.target}_within"][: fit.cov_re.shape[0]]
    return ContextualResult(
        formula=mf.formula,
        group=group,
        method="reml" if reml else "ml",
        **_common(fit, names, re_names, mf.group_labels, n, group, conf_level),
        target=mf.target,
        random_slope=random_slope,
    )


def _common(fit, names, re_names, labels, n, group, conf_level) -> dict[str, Any]:
    se = np.sqrt(np.diag(fit.cov_fe))
    index = pd.Index(labels, name=group)
    re = {f"u_{k}": fit.re[:, i] for i, k in enumerate(re_names)}
    re |= {f"se_{k}": np.sqrt(np.maximum(fit.re_cov[:, i, i], 0)) for i, k in enumerate(re_names)}
    return {
        "fixed": coef_table(names, fit.fe, se, conf_level),
        "cov_fe": pd.DataFrame(fit.cov_fe, index=names, columns=names),
        "cov_re": pd.DataFrame(fit.cov_re, index=re_names, columns=re_names),
        "sigma2": fit.sigma2,
        "group_sizes": pd.Series(n, index=index, name="n"),
        "random_effects": pd.DataFrame(re, index=index),
        "conf_level": conf_level,
        "fit": fit,
    }


def _check_group_level(values, codes, J, name, arg) -> None:
    lo = np.full(J, np.inf)
    hi = np.full(J, -np.inf)
    np.minimum.at(lo, codes, values)
    np.maximum.at(hi, codes, values)
    bad = int(np.sum(hi - lo > 1e-10 * max(1.0, float(np.max(np.abs(values))))))
    if bad:
        raise ValueError(
            f"`{arg}` term {name!r} varies within {bad} groups; it must be a school-level "
            "variable (constant within each group)"
        )


def _check_rank(X: np.ndarray, names: list[str]) -> None:
    rank = np.linalg.matrix_rank(X)
    if rank < X.shape[1]:
        raise ValueError(
            f"the fixed-effects design is rank deficient (rank {rank} < {X.shape[1]} columns "
            f"{', '.join(names)}): some terms are collinear, e.g. a covariate equal to the "
            "group mean of the target; drop one of them"
        )


# --------------------------------------------------------------------------- means as outcomes
@dataclass(frozen=True)
class MeansAsOutcomesResult(_MixedResult):
    r"""Means-as-outcomes model of :func:`means_as_outcomes` (school-level predictors only).

    Besides the common attributes (see :class:`ContextualResult`) it has the null model that
    it is compared with, ``null``, and the share of between-school variance the predictors
    explain, :math:`(\tau_{00}^{null} - \tau_{00})/\tau_{00}^{null}` (``explained``).
    """

    null: NullModelResult | None = None

    @property
    def explained(self) -> float:
        """Proportion of the null model's between-group variance explained."""
        if self.null is None or self.null.tau00 <= 0:
            return float("nan")
        return (self.null.tau00 - self.tau2) / self.null.tau00

    @property
    def reliability(self) -> pd.Series:
        """Reliability of the conditional school means, tau00 / (tau00 + sigma2 / n_j)."""
        lam = self.tau2 / (self.tau2 + self.sigma2 / self.group_sizes)
        return lam.rename("reliability")

    def table(self) -> pd.DataFrame:
        """Return fixed effects, ``tau2``, ``sigma2`` and ``icc`` in the common format."""
        extra = coef_table(["tau2", "sigma2", "icc"], [self.tau2, self.sigma2, self.icc],
                           _variance_se(self.fit), self.conf_level)
        return pd.concat([self.fixed, extra])

    def summary(self) -> MixedSummary:
        """Return a printable summary with the explained between-group variance."""
        notes = [
            f"conditional ICC = {self.icc:.4f}; reliability of conditional means: mean "
            f"{self.reliability.mean():.3f}",
        ]
        if self.null is not None:
            notes.append(
                f"between-{self.group} variance: null model {self.null.tau00:.4f}, here "
                f"{self.tau2:.4f}; proportion explained = {self.explained:.3f}"
            )
        return self._summary("Means-as-outcomes model", self.fixed, notes)


def means_as_outcomes(
    data: pd.DataFrame,
    formula: str,
    group: str,
    *,
    method: str = "reml",
    conf_level: float = 0.95,
    null: NullModelResult | None = None,
) -> MeansAsOutcomesResult:
    """Fit a means-as-outcomes model: school means regressed on school-level predictors.

    ``"mAch ~ meanses + sector"`` fits ``mAch ~ 1 + meanses + sector + (1 | school)``; every
    right-hand term must be constant within groups. The null model is fitted too so that the
    proportion of between-school variance explained can be reported.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per student.
    formula : str
        ``"y ~ w1 + w2 ..."`` with school-level predictors.
    group : str
        Grouping column.
    method : {"reml", "ml"}
        Restricted (default) or full maximum likelihood.
    conf_level : float
        Level of the Wald intervals.
    null : NullModelResult, optional
        The null model of the same outcome, data and method, to save fitting it again.

    Returns
    -------
    MeansAsOutcomesResult

    Raises
    ------
    ValueError
        If a predictor varies within groups, plus the errors of :func:`null_model`.

    References
    ----------
    Raudenbush, S. W., & Bryk, A. S. (2002). *Hierarchical Linear Models* (2nd ed.),
    section 4.4. Sage.

    Examples
    --------
    >>> import mlob_pp
    >>> mo = mlob_pp.variability.means_as_outcomes(
    ...     mlob_pp.datasets.load("hsb"), "mAch ~ meanses", "school")
    >>> round(mo.explained, 2)
    0.69
    """
    from mlob_pp.formula import parse_formula

    data = _check_frame(data)
    reml = _method(method)
    conf_level = check_probability(conf_level, "conf_level")
    mf = parse_formula(formula, data, group)
    codes, J = mf.group_codes, mf.n_groups
    preds = [mf.target, *mf.covariate_names]
    cols = [mf.x, *mf.covariates.T]
    for name, values in zip(preds, cols, strict=True):
        _check_group_level(values, codes, J, name, "formula")
    _check_variation(mf.y, codes, mf.response)
    names = ["alpha", *(f"gamma_{p}" for p in preds)]
    X = np.column_stack([np.ones_like(mf.y), *cols])
    _check_rank(X, names)
    fit = fit_mixed(mf.y, X, codes, reml=reml, n_groups=J)
    if fit.singular:
        _warn_singular(group)
    if null is None:
        sub = data.iloc[mf.rows]
        null = null_model(sub, mf.response, group, method=method, conf_level=conf_level)
    elif not isinstance(null, NullModelResult) or null.method != method or (
        null.n_obs != mf.n_obs or null.outcome != mf.response
    ):
        raise ValueError(
            "`null` must be the null_model() result of the same outcome, rows and method; "
            f"got {type(null).__name__}"
            + (f" ({null.outcome!r}, {null.n_obs} rows, {null.method!r})"
               if isinstance(null, NullModelResult) else "")
        )
    n = np.bincount(codes, minlength=J)
    return MeansAsOutcomesResult(
        formula=mf.formula,
        group=group,
        method="reml" if reml else "ml",
        **_common(fit, names, ["(Intercept)"], mf.group_labels, n, group, conf_level),
        null=null,
    )
