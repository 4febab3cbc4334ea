r"""Contextual model with observed group means, and the means-as-outcomes model.

.. math::

    Y_{ij} = \alpha + \beta_w (X_{ij} - \bar X_j) + \beta_b \bar X_j + C_{ij}'\gamma
             + u_{0j} + u_{1j}(X_{ij} - \bar X_j) + r_{ij},

where the random slope :math:`u_{1j}` is optional, school-level predictors :math:`W_j` can
model the intercept (means-as-outcomes) and the slope (intercepts-and-slopes-as-outcomes,
cross-level terms :math:`W_j (X_{ij} - \bar X_j)`), and the contextual effect is
:math:`\beta_c = \beta_b - \beta_w` with
:math:`\mathrm{SE}(\beta_c)^2 = V_{bb} + V_{ww} - 2V_{bw}` from the fixed-effect covariance.
With the observed group mean :math:`\beta_b` is biased towards :math:`\beta_w` when school means
of :math:`X` are unreliable (Lüdtke et al. 2008). Public entry points:
:func:`mlob_pp.contextual_model` and :func:`mlob_pp.variability.means_as_outcomes`.

References
----------
Raudenbush, S. W., & Bryk, A. S. (2002). *Hierarchical Linear Models* (2nd ed.), ch. 4-5. Sage.
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

from mlob_pp.validate import check_bool, check_probability
from mlob_pp.variability.mixed import FitCriteria, MixedFit, fit_mixed
from mlob_pp.variability.null import (
    NullModelResult,
    _check_column,
    _check_frame,
    _check_variation,
    _method,
    _size_line,
    _variance_se,
    _warn_singular,
    null_model,
)
from mlob_pp.variability.report import Estimate, MixedSummary, coef_table, to_datatree

__all__ = [
    "contextual_model",
    "means_as_outcomes",
    "ContextualResult",
    "MeansAsOutcomesResult",
]


@dataclass(frozen=True)
class _MixedResult(FitCriteria):
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
    from mlob_pp.formula.parse import parse_formula

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
    >>> from mlob_pp.variability import means_as_outcomes
    >>> mo = means_as_outcomes(mlob_pp.datasets.load("hsb"), "mAch ~ meanses", "school")
    >>> round(mo.explained, 2)
    0.69
    """
    from mlob_pp.formula.parse import parse_formula

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
