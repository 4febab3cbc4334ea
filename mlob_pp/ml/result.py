"""The result of :func:`mlob_pp.fit_ml` on the shared result protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlob_pp.common_format import estimate_tree
from mlob_pp.provenance import make_attrs
from mlob_pp.results import EstimatorResult
from mlob_pp.tables import Summary, wald_table

__all__ = ["MLResult"]


@dataclass(frozen=True, repr=False, eq=False)
class MLResult(EstimatorResult):
    """Result of :func:`mlob_pp.fit_ml`.

    Attributes
    ----------
    params, bse : pandas.Series
        Estimates and standard errors (``coef`` and ``se`` are aliases), indexed by ``beta_b,
        beta_w, beta_c, gamma_<term>`` (or ``gamma_w_<term>, gamma_b_<term>``), ``alpha, mu_x,
        tau2_x, sigma2_x, icc_x, tau2, sigma2``.
    estimates, std_errors : pandas.Series
        The same, as stored.
    vcov : pandas.DataFrame
        Covariance matrix of the estimates (same labels).
    loglik : float
        Maximised log-likelihood (of ``(Y, X)`` given C for ``covariates="shared"``, of
        ``(Y, X, C)`` for ``"level_specific"``), in the data's units.
    converged : bool
        Whether the gradient vanished and the information is positive definite.
    n_iter : int
        Optimiser iterations (quasi-Newton plus Newton).
    boundary : tuple of str
        Variance parameters estimated at or below zero (a Heywood case; ``inadmissible`` is an
        alias). Their estimates are the unbounded maximum (as lavaan reports them); with a
        between variance at or below zero the between slope is not identified in the usual
        sense and its interval should not be trusted.
    no_maximum : bool
        True when the likelihood has no maximum: it grows without bound as the covariance of
        the group means of one group-size class becomes singular, and the optimiser found no
        interior local maximum (happens with few groups and between variances far below
        zero). Estimates, standard errors and ``loglik`` are then NaN: any finite value would
        be where the optimiser happened to stop, not a property of the data.
    nuisance, nuisance_se : pandas.Series
        Other free parameters of the level-specific form (means and covariances of the
        covariates' within and between parts) and their standard errors.
    formula, group, covariates, between_covariates, fixed_x, conf_level, n_obs, n_groups
        Provenance of the fit; ``settings`` holds the rest (tolerances, timing, versions).
    """

    estimates: pd.Series
    std_errors: pd.Series
    vcov: pd.DataFrame
    loglik: float
    converged: bool
    n_iter: int
    formula: str
    group: str
    covariates: str
    between_covariates: bool
    fixed_x: bool | str
    conf_level: float
    n_obs: int
    n_groups: int
    group_sizes: tuple[int, ...]
    nuisance: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    nuisance_se: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    boundary: tuple[str, ...] = ()
    no_maximum: bool = False
    settings: dict = field(default_factory=dict)

    estimator = "ml"
    method = "ml"
    se_method = "observed_information"

    @property
    def inadmissible(self) -> tuple[str, ...]:
        """Alias of :attr:`boundary` (variance estimates at or below zero)."""
        return self.boundary

    def to_frame(self) -> pd.DataFrame:
        """Table with columns ``estimate, std_error, ci_lower, ci_upper, z, p_value``.

        The interval is the Wald interval ``estimate +/- q * std_error`` at `conf_level` and
        the p value is two-sided (:func:`mlob_pp.tables.wald_table`).
        """
        return wald_table(self.estimates, self.std_errors, conf_level=self.conf_level)

    def summary_frame(self) -> pd.DataFrame:
        """Alias of :meth:`to_frame` (the 0.1 name)."""
        return self.to_frame()

    def _header(self) -> str:
        form = f"{self.covariates} covariate slopes"
        if not self.between_covariates:
            form += ", covariates at level 1 only"
        if self.fixed_x is not False:
            form += f", fixed_x={self.fixed_x!r}"
        return (
            f"True ML fit of the two-level latent covariate model ({form})\n"
            f"formula: {self.formula}   group: {self.group}\n"
            f"N = {self.n_obs} in J = {self.n_groups} groups (sizes {min(self.group_sizes)}-"
            f"{max(self.group_sizes)})   logLik = {self.loglik:.4f}   converged: "
            f"{self.converged} ({self.n_iter} iterations)"
        )

    def summary(self) -> Summary:
        """Return the estimate table with the fit's header as a :class:`~mlob_pp.tables.Summary`."""
        table = self.to_frame()
        pct = f"{100 * self.conf_level:g}%"
        shown = table.copy()
        shown.columns = ["estimate", "std_error", f"{pct} lower", f"{pct} upper", "z", "p"]
        body = shown.to_string(float_format=lambda v: f"{v:.6g}")
        notes = []
        if self.boundary:
            notes.append(
                "boundary (variance estimated at or below zero, Heywood case): "
                + ", ".join(self.boundary)
            )
        if self.no_maximum:
            notes.append("no maximum: the likelihood grows without bound towards a singular "
                         "covariance of the group means; no ML estimate exists")
        text = "\n".join([self._header(), body, *notes])
        return Summary(self._header().splitlines()[0], {"estimates": table}, text=text,
                       notes=notes)

    def __str__(self) -> str:
        return self.summary().as_text()

    def to_datatree(self, **kwargs: Any) -> Any:
        """Return the fit in the common format (group ``estimate``, Wald intervals).

        A boolean variable ``boundary`` over ``term`` marks the variances at or below zero.
        """
        if kwargs:
            raise TypeError(f"to_datatree() got unexpected keyword argument(s) {list(kwargs)}")
        frame = self.to_frame()
        frame["boundary"] = [t in self.boundary for t in frame.index]
        settings = {k: v for k, v in self.settings.items()
                    if isinstance(v, str | int | float | bool)}
        attrs = make_attrs("ml", settings=settings, extra={
            "conf_level": self.conf_level, "converged": bool(self.converged),
            "loglik": float(self.loglik), "formula": self.formula, "group": self.group,
            "n_obs": int(self.n_obs), "n_groups": int(self.n_groups),
            "boundary": ",".join(self.boundary), "no_maximum": bool(self.no_maximum),
        })
        return estimate_tree(frame, estimator="ml", conf_level=self.conf_level,
                             interval_method="wald", se_method=self.se_method, attrs=attrs)
