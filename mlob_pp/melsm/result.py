"""The result of an SS-MELSM fit: PIPs, Bayes factors, posterior summaries, plots, diagnostics."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mlob_pp.melsm import plots as melsm_plots
from mlob_pp.results import EstimatorResult
from mlob_pp.tables import Summary
from mlob_pp.validate import check_probability, reject_unknown, renamed_argument
from mlob_pp.warnings import ConvergenceWarning

__all__ = ["MELSMResult", "summary_draws", "summary_table", "warn_diagnostics", "RHAT_LIMIT"]

#: R-hat above which a ConvergenceWarning is issued
RHAT_LIMIT = 1.01
_PIP_CHOICES = ("all", "model", "pip")


def summary_draws(idata: Any, which: str = "all") -> dict[str, np.ndarray]:
    """Return (chain, draw) arrays of every summary row, in the table's order.

    Rows: ``beta_<term>``, ``zeta_<term>``, ``sd_<effect>``, ``tau2`` (the location random
    intercept's variance, when there is one), ``corr[<effect>, <effect>]`` (``which`` in
    "all"/"model") and ``pip[scl_<effect>, <group>]`` (per-draw inclusion probabilities;
    ``which`` in "all"/"pip").
    """
    post = idata["posterior"]
    out: dict[str, np.ndarray] = {}
    if which in ("all", "model"):
        for var, dim, prefix in (("beta", "location_term", "beta_"),
                                 ("zeta", "scale_term", "zeta_")):
            for term in post[var][dim].values:
                out[f"{prefix}{term}"] = post[var].sel({dim: term}).values
        effects = [str(e) for e in post["re_sd"]["effect"].values]
        for eff in effects:
            out[f"sd_{eff}"] = post["re_sd"].sel(effect=eff).values
        if effects and effects[0] == "Intercept":
            out["tau2"] = post["re_sd"].sel(effect="Intercept").values ** 2
        if "re_corr" in post:
            for r, row in enumerate(effects):
                for col in effects[:r]:
                    out[f"corr[{row}, {col}]"] = (
                        post["re_corr"].sel(effect=row, effect_bis=col).values
                    )
    if which in ("all", "pip"):
        prob = post["inclusion_prob"]
        for eff in prob["scale_effect"].values:
            for grp in prob["group"].values:
                out[f"pip[scl_{eff}, {grp}]"] = prob.sel(scale_effect=eff, group=grp).values
    return out


def summary_table(idata: Any, which: str = "all", conf_level: float = 0.95) -> pd.DataFrame:
    """Posterior summary table (see :meth:`MELSMResult.table`)."""
    from arviz_stats.base import array_stats

    draws = summary_draws(idata, which)
    labels = list(draws)
    arr = np.stack([draws[k] for k in labels], axis=-1)  # (chain, draw, R)
    flat = arr.reshape(-1, arr.shape[-1])
    q = np.quantile(flat, [(1 - conf_level) / 2, (1 + conf_level) / 2], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ess_b = array_stats.ess(arr, chain_axis=0, draw_axis=1, method="bulk")
        ess_t = array_stats.ess(arr, chain_axis=0, draw_axis=1, method="tail", prob=0.05)
        rhat = array_stats.rhat(arr, chain_axis=0, draw_axis=1)
        mcse = array_stats.mcse(arr, chain_axis=0, draw_axis=1)
    return pd.DataFrame(
        {
            "estimate": flat.mean(axis=0),
            "std_error": flat.std(axis=0, ddof=1),
            "ci_lower": q[0],
            "ci_upper": q[1],
            "mcse": mcse,
            "ess_bulk": ess_b,
            "ess_tail": ess_t,
            "r_hat": rhat,
        },
        index=pd.Index(labels, name="parameter"),
    )


@dataclass(frozen=True, repr=False)
class MELSMResult(EstimatorResult):
    """A fitted SS-MELSM.

    Follows the shared result protocol (:class:`mlob_pp.results.EstimatorResult`): ``params``
    and ``bse`` are posterior means and SDs of the fixed effects (``beta_<term>`` location,
    ``zeta_<term>`` log-SD scale), the random-effect SDs (``sd_<effect>``,
    ``sd_scl_<effect>``), ``tau2`` (variance of the location random intercept) and the
    correlations; ``conf_int()`` gives equal-tailed credible intervals at ``conf_level`` (other
    levels need :meth:`table`); ``pvalues`` is not defined (``AttributeError``).

    Attributes
    ----------
    idata : xarray.DataTree
        Groups ``posterior`` (``beta``, ``zeta``, ``re_sd``, ``re_corr``, ``u`` and the per-draw
        ``inclusion_prob``; ``delta`` if requested), ``sample_stats``, ``log_likelihood``
        (``y``, conditional pointwise), ``observed_data`` (``y``), ``constant_data``
        (``group_of_obs``) and ``inclusion`` (``pip``, ``bf10``, dims (group, scale_effect);
        plus the plot quantities ``cluster_mean``, ``within_sd``).
    pip : pandas.Series or pandas.DataFrame
        PIP per group label (a DataFrame with one column per scale effect if several).
    bf10 : pandas.Series or pandas.DataFrame
        Bayes factor ``[PIP/(1-PIP)] / [pi/(1-pi)]``, same layout.
    prior_inclusion : float
        The prior inclusion probability pi.
    location, scale : str
        The formulas (lme4 spelling, random terms included).
    group : str
        The grouping column.
    timing : dict
        ``compile`` and ``sampling`` wall times in seconds.
    conf_level : float
        Level of the credible intervals of ``to_frame()`` and ``conf_int()``.
    """

    estimator: ClassVar[str] = "melsm"
    _normal_intervals: ClassVar[bool] = False

    idata: Any
    pip: pd.Series | pd.DataFrame
    bf10: pd.Series | pd.DataFrame
    prior_inclusion: float
    location: str
    scale: str
    group: str
    timing: dict[str, float] = field(default_factory=dict)
    conf_level: float = 0.95

    # ---- protocol ------------------------------------------------------------------------
    @property
    def formula(self) -> str:
        """The location formula."""
        return self.location

    @property
    def n_groups(self) -> int:
        """Number of groups."""
        return int(self.idata["posterior"].sizes["group"])

    @property
    def n_obs(self) -> int:
        """Number of observations."""
        return int(self.idata["observed_data"].sizes["obs"])

    def to_frame(self) -> pd.DataFrame:
        """Return the model-parameter table (posterior means, SDs, credible intervals, MCMC).

        Columns ``estimate``, ``std_error``, ``ci_lower``, ``ci_upper`` (equal-tailed, at
        ``conf_level``), ``mcse``, ``ess_bulk``, ``ess_tail``, ``r_hat``; PIPs are in
        :attr:`pip` and :meth:`table` (``which="pip"``).
        """
        return summary_table(self.idata, "model", self.conf_level)

    def to_datatree(self) -> Any:
        """Return the posterior and the inclusion results as an ArviZ ``xarray.DataTree``."""
        return self.idata

    def table(self, which: str = "all", *, conf_level: float | None = None) -> pd.DataFrame:
        """Summary table in the spirit of ivd's ``summary()``.

        Parameters
        ----------
        which : {"all", "model", "pip"}, default "all"
            Rows: model parameters and PIPs, model parameters only, or PIPs only.
        conf_level : float, optional
            Probability of the equal-tailed credible interval (default: ``conf_level``).

        Returns
        -------
        pandas.DataFrame
            Index ``beta_<term>``, ``zeta_<term>``, ``sd_<effect>``/``sd_scl_<effect>``,
            ``tau2``, ``corr[<effect>, <effect>]`` and ``pip[scl_<effect>, <group>]``; columns
            ``estimate`` (posterior mean; the PIP for pip rows), ``std_error`` (posterior SD),
            ``ci_lower``, ``ci_upper``, ``mcse``, ``ess_bulk``, ``ess_tail``, ``r_hat``
            (rank-normalized, ArviZ). For pip rows the draws are the per-draw inclusion
            probabilities, so ESS and R-hat describe the PIP's own Monte Carlo error.
        """
        if which not in _PIP_CHOICES:
            raise ValueError(f"`which` must be one of 'all', 'model', 'pip'; got {which!r}")
        level = self.conf_level if conf_level is None else check_probability(
            conf_level, "conf_level")
        return summary_table(self.idata, which, level)

    def summary(self, which: str = "model", *, conf_level: float | None = None,
                **deprecated: Any) -> Summary:
        """Return a :class:`~mlob_pp.tables.Summary`: parameters and the flagged groups.

        Parameters
        ----------
        which : {"model", "all", "pip"}, default "model"
            Rows of the ``parameters`` table (see :meth:`table`).
        conf_level : float, optional
            Credible-interval level (default: the fit's ``conf_level``).

        Returns
        -------
        mlob_pp.tables.Summary
            Tables ``parameters`` and ``flagged`` (groups with PIP >= 0.75); prints as text,
            renders as HTML in Jupyter. Before 0.2 this returned the DataFrame now given by
            :meth:`table`.
        """
        which = renamed_argument("MELSMResult.summary", deprecated, "pip", "which", which,
                                 "model")
        conf_level = renamed_argument("MELSMResult.summary", deprecated, "ci_prob",
                                      "conf_level", conf_level)
        reject_unknown("MELSMResult.summary", deprecated)
        table = self.table(which, conf_level=conf_level)
        flagged = self.flagged()
        flagged_frame = flagged.to_frame("pip") if isinstance(flagged, pd.Series) else flagged
        post = self.idata["posterior"]
        title = "SS-MELSM (spike-and-slab mixed-effects location-scale model)"
        notes = [
            f"location: {self.location}",
            f"scale:    {self.scale}",
            f"groups:   {self.n_groups} ({self.group}), {self.n_obs} rows; prior inclusion "
            f"pi = {self.prior_inclusion:g}; {post.sizes['chain']} chains x "
            f"{post.sizes['draw']} draws",
        ]
        text = "\n".join([
            title, *("  " + n for n in notes), "", table.round(3).to_string(), "",
            f"Groups with PIP >= 0.75: {len(flagged)}",
            flagged.round(3).to_string() if len(flagged) else "  (none)",
        ])
        return Summary(title, {"parameters": table, "flagged": flagged_frame}, text=text,
                       notes=notes)

    def flagged(self, pip_level: float = 0.75) -> pd.Series | pd.DataFrame:
        """PIPs of the groups with PIP >= `pip_level` (any scale effect), sorted decreasing."""
        pip_level = check_probability(pip_level, "pip_level")
        if isinstance(self.pip, pd.Series):
            return self.pip[self.pip >= pip_level].sort_values(ascending=False)
        keep = (self.pip >= pip_level).any(axis=1)
        return self.pip[keep]

    def recovery(self, truth: Any, pip_level: float = 0.75) -> pd.Series:
        """Sensitivity and false-discovery rate of the rule PIP > `pip_level` against known truth.

        Parameters
        ----------
        truth : iterable
            Labels of the groups that really are unusual (for simulated data, e.g.
            ``simulate_saeb(...).attrs["unusual_schools"]``).
        pip_level : float, default 0.75
            Flag a group when its PIP (any scale effect) exceeds this.

        Returns
        -------
        pandas.Series
            ``planted``, ``flagged``, ``true_positives``, ``sensitivity`` (true positives /
            planted; NaN without planted groups) and ``fdr`` (false positives / flagged; 0 when
            nothing is flagged).
        """
        pip_level = check_probability(pip_level, "pip_level")
        pip = self.pip if isinstance(self.pip, pd.Series) else self.pip.max(axis=1)
        truth = set(truth)
        unknown = truth - set(pip.index)
        if unknown:
            raise ValueError(f"`truth` names groups that are not in the fit: {sorted(unknown)[:5]}")
        flagged = set(pip.index[pip > pip_level])
        hits = len(flagged & truth)
        return pd.Series({
            "planted": len(truth),
            "flagged": len(flagged),
            "true_positives": hits,
            "sensitivity": hits / len(truth) if truth else float("nan"),
            "fdr": (len(flagged) - hits) / len(flagged) if flagged else 0.0,
        }, name="recovery")

    # ---- plots -------------------------------------------------------------------------
    def plot(self, kind: str = "pip", **kwargs: Any) -> Any:
        """Plot the PIPs: ``"pip"``, ``"funnel"`` or ``"outcome"`` (see :mod:`mlob_pp.melsm.plots`).

        Returns
        -------
        matplotlib.figure.Figure
        """
        funcs = {
            "pip": melsm_plots.plot_pip,
            "funnel": melsm_plots.plot_funnel,
            "outcome": melsm_plots.plot_outcome,
        }
        if kind not in funcs:
            raise ValueError(f"`kind` must be one of 'pip', 'funnel', 'outcome'; got {kind!r}")
        return funcs[kind](self, **kwargs)

    def __str__(self) -> str:
        return self.summary().as_text()

    def __repr__(self) -> str:
        n_flag = len(self.flagged())
        return (f"<MELSMResult melsm: {self.location}; scale {self.scale}; {self.n_groups} "
                f"groups; {self.n_obs} rows; {n_flag} flagged (PIP >= 0.75)>")


def warn_diagnostics(result: MELSMResult, *, stacklevel: int = 3) -> None:
    """Warn (ConvergenceWarning) on divergences and on R-hat > 1.01 of any parameter or PIP."""
    idata = result.idata
    n_div = int(idata["sample_stats"]["diverging"].values.sum())
    if n_div:
        warnings.warn(
            f"{n_div} divergent transitions after tuning; increase `tune` or pass "
            "sampler_kwargs={'target_accept': 0.95}, and check the results",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )
    table = result.table("all")
    bad = table["r_hat"] > RHAT_LIMIT
    if bad.any():
        worst = table.loc[bad, "r_hat"].sort_values(ascending=False)
        shown = ", ".join(f"{k} ({v:.3f})" for k, v in worst.head(5).items())
        warnings.warn(
            f"{int(bad.sum())} parameter(s) have R-hat > {RHAT_LIMIT}: {shown}; draw more "
            "(`draws`, `tune`) before trusting the results",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )
