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

from mlob_pp.validate import check_choice, check_probability
from mlob_pp.variability.mixed import FitCriteria, MixedFit, SingularFitWarning, fit_mixed
from mlob_pp.variability.report import MixedSummary, coef_table, plot_caterpillar, to_datatree

__all__ = ["null_model", "NullModelResult"]

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
class NullModelResult(FitCriteria):
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
