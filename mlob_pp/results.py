"""One result protocol for every estimator (statsmodels names, ArviZ output).

Every result class of mlob_pp (MLOB, ML, MCMC, SS-MELSM, null and contextual models, bootstrap)
derives from :class:`EstimatorResult` and so offers the same face:

========================  ==================================================================
``.params``               estimates (pandas Series indexed by parameter name)
``.bse``                  standard errors (posterior SDs for MCMC)
``.conf_int(level)``      DataFrame with columns ``lower`` and ``upper``
``.pvalues``              two-sided p values where defined (``AttributeError`` otherwise)
``.summary()``            :class:`mlob_pp.tables.Summary` (prints as text, HTML in Jupyter)
``.to_frame()``           the table: estimate, std_error, ci_lower, ci_upper[, z, p_value]
``.to_datatree()``        the common format (ArviZ 1.x ``xarray.DataTree``)
``repr(result)``          one short line: estimator, formula, groups, rows, key estimates
========================  ==================================================================

``coef`` and ``se`` remain as aliases of ``params`` and ``bse``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mlob_pp.tables import Summary, wald
from mlob_pp.validate import check_probability

__all__ = ["EstimatorResult"]

#: parameters shown in ``repr`` when present, in this order
_KEY_PARAMS = ("beta_b", "beta_w", "beta_c", "tau2", "sigma2", "icc")


class EstimatorResult:
    """Mixin giving every result the shared protocol.

    Subclasses implement :meth:`to_frame` (and usually :meth:`summary` and :meth:`to_datatree`)
    and provide the attributes ``formula``, ``n_groups``, ``n_obs`` and ``conf_level``. Results
    whose intervals are not normal (bootstrap, posterior) override :meth:`conf_int`.
    """

    #: estimator name in the common format (``"mlob"``, ``"ml"``, ``"mcmc"``, ...)
    estimator: ClassVar[str] = "estimator"
    #: whether ``conf_int(level)`` at another level may be recomputed as a Wald interval
    _normal_intervals: ClassVar[bool] = True

    # -- to implement --------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """Return the estimate table (index ``term``)."""
        raise NotImplementedError  # pragma: no cover

    def to_datatree(self, **kwargs: Any) -> Any:
        """Return the result in the common format (``xarray.DataTree``)."""
        raise NotImplementedError  # pragma: no cover

    # -- shared --------------------------------------------------------------------------
    @property
    def params(self) -> pd.Series:
        """Estimates, indexed by parameter name."""
        return self.to_frame()["estimate"].rename("params")

    @property
    def bse(self) -> pd.Series:
        """Standard errors (posterior standard deviations for MCMC), indexed like ``params``."""
        return self.to_frame()["std_error"].rename("bse")

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided p values where the estimator defines them."""
        frame = self.to_frame()
        if "p_value" not in frame:
            raise AttributeError(
                f"p values are not defined for {self.estimator!r} results; use conf_int()"
            )
        return frame["p_value"].rename("pvalues")

    def conf_int(self, level: float | None = None) -> pd.DataFrame:
        """Return intervals at `level` (default: the fit's ``conf_level``).

        Parameters
        ----------
        level : float, optional
            Confidence (or credibility) level in (0, 1).

        Returns
        -------
        pandas.DataFrame
            Columns ``lower`` and ``upper``, indexed like ``params``.
        """
        frame = self.to_frame()
        stored = float(getattr(self, "conf_level", 0.95))
        level = stored if level is None else check_probability(level, "level")
        if np.isclose(level, stored):
            lo, hi = frame["ci_lower"], frame["ci_upper"]
        elif self._normal_intervals:
            _, _, lo, hi = wald(frame["estimate"], frame["std_error"], level)
        else:
            raise ValueError(
                f"`level` must equal the fit's conf_level ({stored}) for {self.estimator!r} "
                f"results, whose intervals are not normal; got {level}. Refit with "
                f"conf_level={level}."
            )
        return pd.DataFrame(
            {"lower": np.asarray(lo, float), "upper": np.asarray(hi, float)}, index=frame.index
        )

    @property
    def coef(self) -> pd.Series:
        """Alias of :attr:`params`."""
        return self.params

    @property
    def se(self) -> pd.Series:
        """Alias of :attr:`bse`."""
        return self.bse

    def summary(self) -> Summary:
        """Return a :class:`~mlob_pp.tables.Summary` of the estimate table."""
        return Summary(self._title(), {"estimates": self.to_frame()})

    def _title(self) -> str:
        formula = getattr(self, "formula", None)
        return f"{self.estimator}: {formula}" if formula else str(self.estimator)

    def __repr__(self) -> str:
        parts = [self._title()]
        n_groups, n_obs = getattr(self, "n_groups", None), getattr(self, "n_obs", None)
        if n_groups is not None:
            parts.append(f"{int(n_groups)} groups")
        if n_obs is not None:
            parts.append(f"{int(n_obs)} rows")
        try:
            params = self.params
        except Exception:  # noqa: BLE001 - repr must never fail
            params = pd.Series(dtype=float)
        keys = [k for k in _KEY_PARAMS if k in params.index][:3]
        if keys:
            parts.append(", ".join(f"{k}={params[k]:.4g}" for k in keys))
        return f"<{type(self).__name__} " + "; ".join(parts) + ">"
