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
of :math:`X` are unreliable (Lüdtke et al. 2008); see :func:`mlob_pp.fit_ml`,
:func:`mlob_pp.fit_mcmc` and :func:`mlob_pp.mlob` for the latent alternatives.

The code lives in :mod:`mlob_pp.variability.null` (null model),
:mod:`mlob_pp.variability.contextual` (contextual model), :mod:`mlob_pp.variability.outcomes`
(means-as-outcomes), :mod:`mlob_pp.variability.common` (shared checks, the identification rule),
:mod:`mlob_pp.variability.mixed` (the fit and its checks),
:mod:`mlob_pp.variability.sufficient` (the sufficient-statistics engine),
:mod:`mlob_pp.variability.report` (summaries, plots, common format) and
:mod:`mlob_pp.models.variability` (the PyMC counterparts).

Every entry point takes ``(formula, data, group=None, *, ..., conf_level=0.95)``; the group may
be written lme4-style in the formula (``"y ~ 1 + (1 | school)"``). Random-intercept models are
fitted (REML by default, ML on request) from closed-form sufficient statistics (10^6 rows in
seconds); random-slope models by statsmodels' MixedLM, started from the optimum of the same
sufficient-statistics criterion over the Cholesky factor of G (lme4's parametrisation), which is
kept when it lies on the boundary (see :func:`mlob_pp.variability.mixed.fit_mixed`).

References
----------
Raudenbush, S. W., & Bryk, A. S. (2002). *Hierarchical Linear Models: Applications and Data
Analysis Methods* (2nd ed.). Sage.
Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B. (2008).
The multilevel latent covariate model. *Psychological Methods*, 13(3), 203-229.
https://doi.org/10.1037/a0012869
"""

from __future__ import annotations

from mlob_pp.variability.contextual import ContextualResult, contextual_model
from mlob_pp.variability.null import NullModelResult, null_model
from mlob_pp.variability.outcomes import MeansAsOutcomesResult, means_as_outcomes
from mlob_pp.variability.report import Estimate, MixedSummary
from mlob_pp.warnings import SingularFitWarning

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
