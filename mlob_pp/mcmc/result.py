"""Result of :func:`mlob_pp.fit_mcmc`: the posterior, its summary table and the shared protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mlob_pp.results import EstimatorResult
from mlob_pp.tables import Summary
from mlob_pp.validate import check_probability

__all__ = ["MCMCResult", "summary_table", "SUMMARY_COLUMNS"]

_SCALARS = ("alpha", "mu_x", "tau2_x", "sigma2_x", "icc_x", "tau2", "sigma2")
SUMMARY_COLUMNS = (
    "estimate", "std_error", "ci_lower", "ci_upper", "r_hat", "ess_bulk", "ess_tail"
)


@dataclass(frozen=True, repr=False)
class MCMCResult(EstimatorResult):
    """Posterior of the latent covariate model from :func:`mlob_pp.fit_mcmc`.

    Follows the shared result protocol (:class:`mlob_pp.results.EstimatorResult`):
    ``params`` are posterior means, ``bse`` posterior SDs, ``conf_int(level)`` equal-tailed
    credible intervals (recomputed from the draws at any level), ``pvalues`` are not defined
    (``AttributeError``), ``summary()`` returns a :class:`mlob_pp.tables.Summary` and
    ``to_datatree()`` the ArviZ tree of the draws.

    Attributes
    ----------
    idata : xarray.DataTree
        ArviZ data: ``posterior`` (parameters on the data's scale, dims ``chain, draw`` and
        ``term``/``group``), ``sample_stats`` (nutpie's, with ``diverging``),
        ``observed_data`` (``y``, ``x``, ``covariates`` with dims ``obs``/``term``, and the
        ``group`` of every ``obs``) and ``log_likelihood`` (``y``, dim ``obs``, conditional on
        the drawn group effects; see :func:`mlob_pp.fit_mcmc`).
    model : pymc.Model
        The PyMC model (standardised scale, group effects integrated out) built for this fit.
    formula, group, covariates : str
        The formula, the grouping column and the covariate form.
    draws, tune, chains : int
        Sampler settings.
    random_seed : int
        The seed actually used (drawn when ``random_seed=None``), so the fit can be repeated.
    conf_level : float
        Level of the equal-tailed credible intervals.
    compile_time, sampling_time : float
        Seconds spent compiling (0 when a cached compiled model was reused) and sampling.
    n_obs, n_groups : int
        Rows and groups used.
    term_names : tuple of str
        Covariate names.
    """

    estimator: ClassVar[str] = "mcmc"
    _normal_intervals: ClassVar[bool] = False

    idata: Any
    model: Any
    formula: str
    group: str
    covariates: str
    draws: int
    tune: int
    chains: int
    random_seed: int
    conf_level: float
    compile_time: float
    sampling_time: float
    n_obs: int
    n_groups: int
    term_names: tuple[str, ...]
    _table: pd.DataFrame = field(repr=False)

    def to_frame(self) -> pd.DataFrame:
        """Table of the structural parameters.

        Returns
        -------
        pandas.DataFrame
            Index: parameter labels (``beta_b, beta_w, beta_c, gamma_<term>, alpha, mu_x,
            tau2_x, sigma2_x, icc_x, tau2, sigma2``); columns ``estimate`` (posterior mean),
            ``std_error`` (posterior SD), ``ci_lower``, ``ci_upper`` (equal-tailed, at
            ``conf_level``), ``r_hat``, ``ess_bulk``, ``ess_tail``.
        """
        return self._table.copy()

    def to_datatree(self, **kwargs: Any) -> Any:
        """Return the ArviZ ``DataTree`` of the draws (posterior, sample_stats, ...)."""
        if kwargs:
            raise TypeError(f"to_datatree() takes no arguments; got {sorted(kwargs)}")
        return self.idata

    def conf_int(self, level: float | None = None) -> pd.DataFrame:
        """Equal-tailed credible intervals at `level` (default ``conf_level``), from the draws."""
        if level is None:
            frame = self._table
        else:
            level = check_probability(level, "level")
            frame = summary_table(self.idata["posterior"].to_dataset(), level)
        return pd.DataFrame({"lower": frame["ci_lower"].to_numpy(float),
                             "upper": frame["ci_upper"].to_numpy(float)}, index=frame.index)

    @property
    def settings(self) -> dict[str, Any]:
        """Sampler settings and seed, for provenance (also in ``idata.attrs``)."""
        return {
            "sampler": self.idata.attrs.get("sampler", "nutpie"),
            "covariates": self.covariates,
            "draws": self.draws,
            "tune": self.tune,
            "chains": self.chains,
            "random_seed": self.random_seed,
            "conf_level": self.conf_level,
            "compile_time_s": self.compile_time,
            "sampling_time_s": self.sampling_time,
        }

    @property
    def n_divergent(self) -> int:
        """Number of divergent transitions after warm-up."""
        return int(np.asarray(self.idata["sample_stats"]["diverging"]).sum())

    def summary(self, conf_level: float | None = None) -> Summary:
        """Summary of the structural parameters (prints as text, HTML in Jupyter).

        Parameters
        ----------
        conf_level : float, optional
            Level of the equal-tailed credible interval; default the fit's `conf_level`.

        Returns
        -------
        mlob_pp.tables.Summary
            With one table ``estimates`` (the columns of :meth:`to_frame`).
        """
        if conf_level is None or conf_level == self.conf_level:
            table, level = self._table.copy(), self.conf_level
        else:
            level = check_probability(conf_level, "conf_level")
            table = summary_table(self.idata["posterior"].to_dataset(), level)
        return Summary(self._title(), {"estimates": table}, text=self._text(table, level))

    def _title(self) -> str:
        return f"mcmc: {self.formula}, group {self.group}"

    def _text(self, table: pd.DataFrame, level: float) -> str:
        shown = table.to_string(float_format=lambda v: f"{v:.4g}")
        form = "shared slopes" if self.covariates == "shared" else "level-specific slopes"
        return (
            f"MCMC of the latent covariate model ({form}), nutpie NUTS\n"
            f"formula: {self.formula}   group: {self.group}\n"
            f"N = {self.n_obs}, J = {self.n_groups}; {self.chains} chains x {self.draws} draws "
            f"(tune {self.tune}), seed {self.random_seed}, "
            f"{self.n_divergent} divergences\n"
            f"compile {self.compile_time:.1f} s, sampling {self.sampling_time:.1f} s\n"
            f"estimate = posterior mean, std_error = posterior SD, "
            f"{100 * level:g}% equal-tailed interval\n{shown}"
        )

    def __str__(self) -> str:
        return self._text(self._table, self.conf_level)


def _labels_and_values(post: Any) -> list[tuple[str, np.ndarray]]:
    """(label, (chain, draw) array) of every structural parameter, in the contract's order."""
    out: list[tuple[str, np.ndarray]] = []
    for name in ("beta_b", "beta_w", "beta_c"):
        out.append((name, np.asarray(post[name])))
    for vec in ("gamma", "gamma_w", "gamma_b"):
        if vec in post:
            arr = np.asarray(post[vec])
            for i, term in enumerate(post[vec]["term"].values):
                out.append((f"{vec}_{term}", arr[..., i]))
    if "gamma_l2" in post:
        arr = np.asarray(post["gamma_l2"])
        for i, term in enumerate(post["gamma_l2"]["l2_term"].values):
            out.append((f"gamma_l2_{term}", arr[..., i]))
    for name in _SCALARS:
        out.append((name, np.asarray(post[name])))
    return out


def summary_table(post: Any, conf_level: float) -> pd.DataFrame:
    """Posterior mean, SD, equal-tailed interval, R-hat and ESS of every structural parameter."""
    from arviz_stats.base import array_stats

    rows = {}
    lo, hi = (1 - conf_level) / 2, 1 - (1 - conf_level) / 2
    for label, arr in _labels_and_values(post):
        flat = arr.reshape(-1)
        rows[label] = (
            float(flat.mean()),
            float(flat.std(ddof=1)),
            float(np.quantile(flat, lo)),
            float(np.quantile(flat, hi)),
            float(array_stats.rhat(arr, chain_axis=0, draw_axis=1)),
            float(array_stats.ess(arr, chain_axis=0, draw_axis=1, method="bulk")),
            float(array_stats.ess(arr, chain_axis=0, draw_axis=1, method="tail", prob=0.05)),
        )
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(SUMMARY_COLUMNS))
