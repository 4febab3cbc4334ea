"""The result of :func:`mlob_pp.closed_form.bootstrap.parametric_bootstrap`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
import xarray as xr

from mlob_pp.closed_form.bootstrap_intervals import unbounded_reason
from mlob_pp.closed_form.bootstrap_model import GeneratingModel
from mlob_pp.common_format import estimate_tree
from mlob_pp.provenance import make_attrs
from mlob_pp.results import EstimatorResult
from mlob_pp.tables import Summary, wald

__all__ = ["BootstrapResult"]


@dataclass(frozen=True, repr=False)
class BootstrapResult(EstimatorResult):
    """Parametric bootstrap of the regularised between-group slope of one data set.

    Attributes
    ----------
    estimate : float
        The regularised estimate ``beta_b`` of the original data.
    se_beta_b : float
        Bootstrap SE: standard deviation of the finite refits.
    ci_lower, ci_upper : float
        Interval for ``beta_b`` at ``conf_level`` by method ``interval``.
    interval : str
        ``"inversion"``, ``"bc"``, ``"percentile"`` or ``"basic"``.
    conf_level, n_boot, n_failed : float, int, int
        Level, number of refits and how many of them gave a non-finite estimate (dropped).
    center, mode : str
        Generating slope (``"mlob"`` or ``"ml"``) and the estimator's mode.
    z0 : float
        Bias-correction constant ``Phi^-1(P(beta_b* < estimate))`` (used by ``"bc"``).
    generating : GeneratingModel
        The fitted generating model.
    draws_beta_b, draws_beta_b_ml : ndarray (n_boot,)
        Refitted regularised estimates and moment ratios.
    gamma, se_gamma, ci_lower_gamma, ci_upper_gamma : ndarray (k,)
        Covariate estimates, bootstrap SEs and intervals (same method).
    draws_gamma : ndarray (n_boot, k)
        Refitted covariate coefficients.
    roots : ndarray (n_boot,) or None
        For ``interval="inversion"``: per simulated data set, the slope at which its refit
        equals the observed estimate (the interval is their central quantile range).
    covariate_names : tuple of str
        Names of the covariate columns (``gamma_<name>`` rows); default ``0, 1, ...``.
    flags : tuple of str
        Why the result needs care: ``"no_variation"`` (all refits equal: no SE, interval
        unbounded), ``"unbounded"`` (an infinite interval bound).

    The result follows :class:`mlob_pp.results.EstimatorResult` (``params``, ``bse``,
    ``conf_int()``, ``to_frame()``, ``to_datatree()``, ``summary()``); its intervals are not
    normal, so ``conf_int(level)`` accepts only the fitted ``conf_level``.
    """

    estimator: ClassVar[str] = "mlob"
    _normal_intervals: ClassVar[bool] = False

    estimate: float
    se_beta_b: float
    ci_lower: float
    ci_upper: float
    interval: str
    conf_level: float
    n_boot: int
    n_failed: int
    center: str
    mode: str
    z0: float
    generating: GeneratingModel = field(repr=False)
    draws_beta_b: np.ndarray = field(repr=False)
    draws_beta_b_ml: np.ndarray = field(repr=False)
    gamma: np.ndarray = field(repr=False)
    se_gamma: np.ndarray = field(repr=False)
    ci_lower_gamma: np.ndarray = field(repr=False)
    ci_upper_gamma: np.ndarray = field(repr=False)
    draws_gamma: np.ndarray = field(repr=False)
    roots: np.ndarray | None = field(default=None, repr=False)
    covariate_names: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()

    # -- protocol ------------------------------------------------------------------------
    formula = None

    @property
    def n_groups(self) -> int:
        """Number of groups J of the bootstrapped data set."""
        return self.generating.shape[0]

    @property
    def n_obs(self) -> int:
        """Rows J n of the bootstrapped data set."""
        J, n, _ = self.generating.shape
        return J * n

    @property
    def terms(self) -> list[str]:
        """Row labels: ``beta_b`` and ``gamma_<name>``."""
        k = np.atleast_1d(self.gamma).shape[0]
        names = self.covariate_names or tuple(str(i) for i in range(k))
        return ["beta_b", *(f"gamma_{c}" for c in names)]

    @property
    def unbounded_reason(self) -> str | None:
        """One-line reason when the beta_b interval is unbounded, else ``None``."""
        return unbounded_reason(self.ci_lower, self.ci_upper, self.roots, self.conf_level)

    def to_frame(self) -> pd.DataFrame:
        """Return the table: estimate, bootstrap SE, interval and bootstrap p value per term."""
        gamma = np.atleast_1d(self.gamma)
        _, p_gamma, _, _ = wald(gamma, self.se_gamma, self.conf_level)
        return pd.DataFrame(
            {
                "estimate": np.r_[self.estimate, gamma],
                "std_error": np.r_[self.se_beta_b, self.se_gamma],
                "ci_lower": np.r_[self.ci_lower, self.ci_lower_gamma],
                "ci_upper": np.r_[self.ci_upper, self.ci_upper_gamma],
                "p_value": np.r_[self.p_value, p_gamma],
            },
            index=pd.Index(self.terms, name="term"),
        )

    def refits(self) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
        """Return the refits as variables over ``replicate`` (the ``bootstrap`` group)."""
        out = {"beta_b": (("replicate",), self.draws_beta_b),
               "beta_b_ml": (("replicate",), self.draws_beta_b_ml)}
        if self.roots is not None:
            out["inversion_root"] = (("replicate",), self.roots)
        for j, term in enumerate(self.terms[1:]):
            out[term] = (("replicate",), self.draws_gamma[:, j])
        return out

    def to_datatree(self):
        """Return the common format: group ``estimate`` and the refits in group ``bootstrap``."""
        attrs = make_attrs("mlob", settings={"n_boot": self.n_boot, "center": self.center,
                                             "mode": self.mode, "interval": self.interval},
                           extra={"n_failed": self.n_failed})
        return estimate_tree(
            self.to_frame(), estimator="mlob", conf_level=self.conf_level,
            interval_method=f"bootstrap_{self.interval}", se_method="bootstrap", attrs=attrs,
            groups={"bootstrap": xr.Dataset(self.refits())},
        )

    def summary(self) -> Summary:
        """Return the summary (prints as :meth:`__str__`)."""
        return Summary(f"mlob: {self.method}", {"estimates": self.to_frame()}, text=str(self))

    @property
    def p_value(self) -> float:
        """Two-sided bootstrap p-value of ``beta_b = 0``, consistent with the interval.

        ``2 min(P(r <= 0), P(r >= 0))`` over the inversion roots r (``"inversion"``) or the
        refits (other methods): the ``conf_level`` interval excludes 0 when the p-value is
        below ``1 - conf_level`` (up to the quantile interpolation).
        """
        r = self.roots if self.roots is not None else self.draws_beta_b
        r = r[~np.isnan(r)]
        if r.size == 0:
            return float("nan")
        return float(min(1.0, 2.0 * min(np.mean(r <= 0.0), np.mean(r >= 0.0))))

    @property
    def method(self) -> str:
        """Short description for summaries and ``attrs``, e.g. ``"parametric bootstrap (bc)"``."""
        return f"parametric bootstrap ({self.interval}, n_boot={self.n_boot})"

    def __str__(self) -> str:
        pct = f"{100 * self.conf_level:g} %"
        lines = [
            f"Parametric bootstrap of beta_b ({self.n_boot} refits, {self.n_failed} failed; "
            f"generated around the {self.center} estimate; mode={self.mode!r})",
            f"  estimate {self.estimate: .4f}   bootstrap SE {self.se_beta_b:.4f}",
            f"  {pct} {self.interval} interval [{self.ci_lower:.4f}, {self.ci_upper:.4f}]",
        ]
        if self.unbounded_reason:
            lines.append(f"  note: interval {self.unbounded_reason}")
        if "no_variation" in self.flags:
            lines.append("  note: all refits gave the same estimate (R's zero-variance fallback "
                         "or no information); no bootstrap SE")
        for i, (term, g) in enumerate(zip(self.terms[1:], np.atleast_1d(self.gamma),
                                          strict=True)):
            lines.append(
                f"  {term} {g: .4f}   SE {self.se_gamma[i]:.4f}   "
                f"[{self.ci_lower_gamma[i]:.4f}, {self.ci_upper_gamma[i]:.4f}]"
            )
        return "\n".join(lines)
