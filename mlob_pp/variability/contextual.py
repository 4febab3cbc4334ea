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

from mlob_pp.design import (
    check_frame,
    check_full_rank,
    column_values,
    constant_within_groups,
    has_variation,
)
from mlob_pp.formula.groups import resolve_group, split_group_term
from mlob_pp.formula.null import old_positional_call
from mlob_pp.formula.parse import parse_formula
from mlob_pp.results import EstimatorResult
from mlob_pp.tables import wald_table
from mlob_pp.validate import check_bool, check_probability
from mlob_pp.variability.common import (
    check_between_df,
    check_outcome_variation,
    reml_flag,
    size_line,
    variance_table,
    warn_singular,
)
from mlob_pp.variability.mixed import FitCriteria, MixedFit, fit_mixed
from mlob_pp.variability.report import Estimate, MixedSummary, variability_tree

__all__ = [
    "contextual_model",
    "ContextualResult",
    "MixedResult",
    "result_fields",
    "check_group_level",
]


@dataclass(frozen=True, repr=False)
class MixedResult(FitCriteria, EstimatorResult):
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
    def boundary(self) -> tuple[str, ...]:
        """Parameters on the boundary of a singular G, or ().

        Zero variances (``"tau2"``, ``"tau2_<x>_within"``) or, if none, the covariance
        ``"tau01"`` (a correlation of +-1).
        """
        if not self.fit.singular:
            return ()
        names = list(self.cov_re.index)
        g = np.diag(self.cov_re.to_numpy())
        zero = [("tau2" if k == 0 else f"tau2_{names[k]}") for k in range(g.size)
                if g[k] <= 1e-6 * self.sigma2]
        return tuple(zero) if zero else ("tau01",)  # a correlation of +-1

    def _variances(self) -> pd.DataFrame:
        return variance_table(self.fit, list(self.cov_re.index), self.conf_level)

    def table(self) -> pd.DataFrame:
        """Alias of :meth:`to_frame` (the name before 0.2)."""
        return self.to_frame()

    def _tree(self, model: str, extra: dict[str, Any]) -> Any:
        frame = self.to_frame()
        frame["boundary"] = [t in self.boundary for t in frame.index]
        return variability_tree(
            frame, estimator=self.estimator, conf_level=self.conf_level,
            attrs={"model": model, "method": self.method, "formula": self.formula,
                   "group": self.group, "n_obs": self.n_obs, "n_groups": self.n_groups,
                   "loglik": self.llf, "boundary": ",".join(self.boundary), **extra},
        )

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
            sizes=size_line(self.group_sizes.to_numpy(), self.group),
            fixed=fixed,
            random=self._random_frame(),
            notes=tuple(notes),
            fit=self.fit,
        )


@dataclass(frozen=True, repr=False)
class ContextualResult(MixedResult):
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

    @property
    def estimator(self) -> str:  # type: ignore[override]
        """``"manifest_reml"`` or ``"manifest_ml"`` (observed group means, not latent)."""
        return f"manifest_{self.method}"

    def to_frame(self) -> pd.DataFrame:
        """Return fixed effects, ``beta_c``, variance parameters, ``sigma2``, ``icc``.

        Index (name ``term``): ``alpha, beta_w, beta_b, gamma_<term>..., beta_c, tau2``, with a
        random slope ``tau01`` (intercept-slope covariance) and ``tau2_<X>_within``, then
        ``sigma2, icc``. Fixed-effect SEs are GLS, variance SEs from the observed information
        (NaN on the boundary); Wald intervals.
        """
        bc = self.beta_c
        extra = wald_table([float(bc)], [bc.std_error], conf_level=self.conf_level,
                           index=["beta_c"])
        return pd.concat([self.fixed, extra, self._variances()])

    def to_datatree(self) -> Any:
        """Return the fit in the common format (an ``estimate`` group; no posterior draws).

        ``attrs["estimator"]`` is ``"manifest_reml"`` or ``"manifest_ml"``: the observed group
        mean model, not the latent covariate model of the ``"ml"`` estimator.

        Returns
        -------
        xarray.DataTree

        Examples
        --------
        >>> import mlob_pp
        >>> hsb = mlob_pp.datasets.load("hsb")
        >>> tree = mlob_pp.contextual_model("mAch ~ ses", hsb, "school").to_datatree()
        >>> tree.attrs["estimator"], round(float(tree["estimate"]["estimate"].sel(
        ...     term="beta_b")), 3)
        ('manifest_reml', 5.866)
        """
        return self._tree("contextual_manifest", {"random_slope": int(self.random_slope),
                                                  "target": self.target})

    def summary(self) -> MixedSummary:
        """Return a printable summary (lme4/HLM layout) with the contextual effect."""
        bc = self.beta_c
        fixed = pd.concat([self.fixed, wald_table([float(bc)], [bc.std_error],
                                                  conf_level=self.conf_level, index=["beta_c"])])
        notes = [
            f"beta_w: within-{self.group} slope of {self.target} (group-mean centred); "
            f"beta_b: slope of the observed {self.group} mean of {self.target}; "
            "beta_c = beta_b - beta_w (contextual effect)",
            f"residual ICC = {self.icc:.4f}",
        ]
        return self._summary("Contextual model (observed group means)", fixed, notes)


def contextual_model(
    formula: Any,
    data: Any = None,
    group: Any = None,
    *,
    random_slope: bool = False,
    slope_predictors: Sequence[str] = (),
    method: str = "reml",
    conf_level: float = 0.95,
    engine: str = "auto",
) -> ContextualResult:
    """Fit the contextual model: X split into its observed group mean and the deviation from it.

    ``"lang ~ IQ + C"`` fits ``lang`` on ``IQ - mean_j(IQ)`` (slope ``beta_w``), ``mean_j(IQ)``
    (slope ``beta_b``) and the covariate ``C`` with a random intercept per group (and a random
    within slope if `random_slope`). School-level `slope_predictors` W add the cross-level
    terms ``W * (IQ - mean_j(IQ))`` (intercepts-and-slopes-as-outcomes) and W itself if it is
    not already a covariate.

    Parameters
    ----------
    formula : str
        ``"y ~ x + covariates"``; the first right-hand term is the target X (numeric). The
        group may be written in it: ``"y ~ x + (1 | school)"`` (random intercept) or
        ``"y ~ x + (x | school)"`` (random within slope, same as ``random_slope=True``).
    data : pandas.DataFrame
        One row per student.
    group : str, optional
        Grouping column (or give it in the formula).
    random_slope : bool
        Let the within slope vary over groups (default False).
    slope_predictors : sequence of str
        Numeric school-level columns (constant within groups) that model the within slope.
    method : {"reml", "ml"}
        Restricted (default) or full maximum likelihood.
    conf_level : float
        Level of the Wald intervals.
    engine : {"auto", "sufficient", "statsmodels"}
        ``"auto"``: sufficient statistics for the random-intercept model (10^6 rows in
        seconds), statsmodels' MixedLM with random slopes.

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
        `conf_level`, too few groups: ``J - rank(between-group terms) >= 2`` is required
        (4 groups for ``y ~ x``; see :mod:`mlob_pp.variability.common`).

    Warns
    -----
    SingularFitWarning
        If the between-group covariance is on the boundary (reported in ``boundary``).

    Notes
    -----
    The pre-0.2 call ``contextual_model(data, formula, group)`` still works, with a
    DeprecationWarning.

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
    >>> ctx = mlob_pp.contextual_model("mAch ~ ses + (1 | school)", mlob_pp.datasets.load("hsb"))
    >>> round(ctx.beta_w, 3), round(ctx.beta_b, 3), round(ctx.beta_c, 3)
    (2.191, 5.866, 3.675)
    """
    if old_positional_call("contextual_model", formula, data,
                           "contextual_model('y ~ x', data, group='g')"):
        formula, data = data, formula
    data = check_frame(data)
    reml = reml_flag(method)
    random_slope = check_bool(random_slope, "random_slope")
    conf_level = check_probability(conf_level, "conf_level")
    if isinstance(slope_predictors, str) or not isinstance(slope_predictors, Sequence):
        raise TypeError(
            "`slope_predictors` must be a list of column names; got "
            f"{slope_predictors!r}"
        )
    formula, group, term_slope = _resolve(formula, group)
    random_slope = random_slope or term_slope
    mf = _parse(formula, data, group)
    codes, J = mf.group_codes, mf.n_groups
    names, X, xw = _contextual_design(mf, data, slope_predictors)
    check_between_df(X, codes, J, names, group)
    Z = np.column_stack([np.ones_like(xw), xw]) if random_slope else None
    fit = fit_mixed(mf.y, X, codes, Z, reml=reml, n_groups=J, engine=engine)
    if fit.singular:
        warn_singular(group, fit)
    re_names = ["(Intercept)", f"{mf.target}_within"][: fit.cov_re.shape[0]]
    return ContextualResult(
        formula=mf.formula,
        group=group,
        method="reml" if reml else "ml",
        **result_fields(fit, names, re_names, mf.group_labels, mf.group_sizes, group, conf_level),
        target=mf.target,
        random_slope=random_slope,
    )


def _resolve(formula: Any, group: Any) -> tuple[Any, str, bool]:
    """Return the fixed formula, the group and whether the group term asks a random slope."""
    if not isinstance(formula, str):
        return formula, group, False
    _, _, random = split_group_term(formula)
    allowed = ("1",)
    if random is not None and "".join(random.split()) not in ("1", "0+1"):
        target = formula.split("~", 1)[1].split("+")[0].strip()
        allowed = ("1", target, f"1 + {target}")
    fixed, group = resolve_group(formula, group, random_allowed=allowed)
    return fixed, group, random is not None and "".join(random.split()) not in ("1", "0+1")


def _parse(formula: Any, data: pd.DataFrame, group: Any):
    return parse_formula(formula, data, group)


def _contextual_design(mf, data: pd.DataFrame, slope_predictors: Sequence[str]):
    """Return names, the fixed design [1, x_w, xbar, covariates, W, W x_w] and x_w (checked)."""
    codes, J = mf.group_codes, mf.n_groups
    xbar_j = np.bincount(codes, weights=mf.x, minlength=J) / mf.group_sizes
    xbar = xbar_j[codes]
    xw = mf.x - xbar
    if constant_within_groups(mf.x, codes, J):
        raise ValueError(
            f"the target {mf.target!r} does not vary within groups, so beta_w is not "
            "identified; use a student-level variable as the first right-hand term"
        )
    if not has_variation(xbar_j):
        raise ValueError(
            f"the group means of the target {mf.target!r} are all equal, so beta_b is not "
            "identified"
        )
    check_outcome_variation(mf.y, codes, J, mf.response)
    names = ["alpha", "beta_w", "beta_b", *(f"gamma_{c}" for c in mf.covariate_names)]
    cols = [np.ones_like(mf.y), xw, xbar, *mf.covariates.T]
    for name, values in zip(mf.covariate_names, mf.covariates.T, strict=True):
        if not has_variation(values):
            raise ValueError(
                f"`formula` term {name!r} has no variation (it is constant), so gamma_{name} is "
                "not identified next to the intercept alpha; drop it"
            )
    for w in slope_predictors:
        values = column_values(data, w, "slope_predictors", numeric=True)[mf.rows]
        check_group_level(values, codes, J, w, "slope_predictors")
        # W's own intercept effect, unless it is already a covariate or is the group mean of X
        # (then beta_b is that effect, as with meanses in Raudenbush & Bryk's HSB models)
        same = np.max(np.abs(values - xbar)) <= 1e-9 * np.max(np.abs(xbar))
        if w not in mf.covariate_names and not same:
            names.append(f"gamma_{w}")
            cols.append(values)
        names.append(f"gamma_{mf.target}_within:{w}")
        cols.append(values * xw)
    X = np.column_stack(cols)
    check_full_rank(X, names, argument="formula")
    return names, X, xw


def result_fields(fit, names, re_names, labels, n, group, conf_level) -> dict[str, Any]:
    """Return the fields of a :class:`MixedResult` from a fit (tables indexed by term/group)."""
    se = np.sqrt(np.diag(fit.cov_fe))
    index = pd.Index(labels, name=group)
    re = {f"u_{k}": fit.re[:, i] for i, k in enumerate(re_names)}
    re |= {f"se_{k}": np.sqrt(np.maximum(fit.re_cov[:, i, i], 0)) for i, k in enumerate(re_names)}
    return {
        "fixed": wald_table(fit.fe, se, conf_level=conf_level, index=names),
        "cov_fe": pd.DataFrame(fit.cov_fe, index=names, columns=names),
        "cov_re": pd.DataFrame(fit.cov_re, index=re_names, columns=re_names),
        "sigma2": fit.sigma2,
        "group_sizes": pd.Series(n, index=index, name="n"),
        "random_effects": pd.DataFrame(re, index=index),
        "conf_level": conf_level,
        "fit": fit,
    }


def check_group_level(values, codes, J, name, arg) -> None:
    """Raise ValueError if `values` vary within groups (must be a school-level variable)."""
    if constant_within_groups(values, codes, J):
        return
    lo = np.full(J, np.inf)
    hi = np.full(J, -np.inf)
    np.minimum.at(lo, codes, values)
    np.maximum.at(hi, codes, values)
    bad = int(np.sum(hi - lo > 1e-9 * max(float(np.max(np.abs(values))), 1e-300)))
    raise ValueError(
        f"`{arg}` term {name!r} varies within {max(bad, 1)} groups; it must be a school-level "
        "variable (constant within each group)"
    )
