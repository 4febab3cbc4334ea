r"""Means-as-outcomes model: school means regressed on school-level predictors.

.. math::

    Y_{ij} = \gamma_{00} + W_j'\gamma + u_{0j} + r_{ij},

compared with the null model to report the share of between-school variance the predictors
explain (Raudenbush & Bryk 2002, section 4.4). Public entry point:
:func:`mlob_pp.variability.means_as_outcomes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.design import check_frame, check_full_rank, has_variation
from mlob_pp.formula.groups import resolve_group
from mlob_pp.formula.null import old_positional_call
from mlob_pp.formula.parse import parse_formula
from mlob_pp.validate import check_probability
from mlob_pp.variability.common import (
    check_between_df,
    check_outcome_variation,
    reml_flag,
    warn_singular,
)
from mlob_pp.variability.contextual import MixedResult, check_group_level, result_fields
from mlob_pp.variability.mixed import fit_mixed
from mlob_pp.variability.null import NullModelResult, null_model
from mlob_pp.variability.report import MixedSummary

__all__ = ["means_as_outcomes", "MeansAsOutcomesResult"]


@dataclass(frozen=True, repr=False)
class MeansAsOutcomesResult(MixedResult):
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

    estimator = "means_as_outcomes"

    def to_frame(self) -> pd.DataFrame:
        """Return fixed effects, ``tau2``, ``sigma2`` and ``icc`` in the common format."""
        return pd.concat([self.fixed, self._variances()])

    def to_datatree(self) -> Any:
        """Return the fit in the common format (an ``estimate`` group)."""
        return self._tree("means_as_outcomes", {})

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
    formula: Any,
    data: Any = None,
    group: Any = None,
    *,
    method: str = "reml",
    conf_level: float = 0.95,
    null: NullModelResult | None = None,
    engine: str = "auto",
) -> MeansAsOutcomesResult:
    """Fit a means-as-outcomes model: school means regressed on school-level predictors.

    ``"mAch ~ meanses + sector"`` fits ``mAch ~ 1 + meanses + sector + (1 | school)``; every
    right-hand term must be constant within groups. The null model is fitted too so that the
    proportion of between-school variance explained can be reported.

    Parameters
    ----------
    formula : str
        ``"y ~ w1 + w2 ..."`` with school-level predictors (or ``"y ~ w + (1 | school)"``).
    data : pandas.DataFrame
        One row per student.
    group : str, optional
        Grouping column (or give it in the formula).
    method : {"reml", "ml"}
        Restricted (default) or full maximum likelihood.
    conf_level : float
        Level of the Wald intervals.
    null : NullModelResult, optional
        The null model of the same outcome, data and method, to save fitting it again.
    engine : {"auto", "sufficient", "statsmodels"}
        As in :func:`null_model`.

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
    >>> mo = means_as_outcomes("mAch ~ meanses", mlob_pp.datasets.load("hsb"), "school")
    >>> round(mo.explained, 2)
    0.69
    """
    if old_positional_call("means_as_outcomes", formula, data,
                           "means_as_outcomes('y ~ w', data, group='g')"):
        formula, data = data, formula
    data = check_frame(data)
    reml = reml_flag(method)
    conf_level = check_probability(conf_level, "conf_level")
    formula, group = resolve_group(formula, group)
    mf = parse_formula(formula, data, group)
    codes, J = mf.group_codes, mf.n_groups
    preds = [mf.target, *mf.covariate_names]
    cols = [mf.x, *mf.covariates.T]
    for name, values in zip(preds, cols, strict=True):
        check_group_level(values, codes, J, name, "formula")
        if not has_variation(values):
            raise ValueError(f"`formula` term {name!r} has no variation (it is constant)")
    check_outcome_variation(mf.y, codes, J, mf.response)
    names = ["alpha", *(f"gamma_{p}" for p in preds)]
    X = np.column_stack([np.ones_like(mf.y), *cols])
    check_full_rank(X, names, argument="formula")
    check_between_df(X, codes, J, names, group)
    fit = fit_mixed(mf.y, X, codes, reml=reml, n_groups=J, engine=engine)
    if fit.singular:
        warn_singular(group, fit)
    if null is None:
        sub = data.iloc[mf.rows]
        null = null_model(f"{mf.response} ~ 1", sub, group, method=method,
                          conf_level=conf_level, engine=engine)
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
        **result_fields(fit, names, ["(Intercept)"], mf.group_labels, n, group, conf_level),
        null=null,
    )
