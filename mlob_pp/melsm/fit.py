r"""Spike-and-slab mixed-effects location-scale model (SS-MELSM): unusually (in)consistent groups.

For student :math:`i` in school :math:`j`,

.. math::

    y_i \sim N(\mu_i, \sigma_i), \quad \mu_i = x_i'\beta + z_i'a_j, \quad
    \log\sigma_i = w_i'\zeta + v_i'(\delta_j \odot b_j), \quad
    \delta_{pj} \sim \mathrm{Bernoulli}(\pi),

with correlated location and scale random effects :math:`(a_j, b_j)` (LKJ(1) correlation,
half-t(3, 0, 1) SDs), the model, priors and formula semantics of the R package ivd. The
posterior inclusion probability (PIP) of school j says whether its within-school SD departs
from what its covariates predict; ``BF10 = [PIP/(1-PIP)] / [pi/(1-pi)]``.

The indicators :math:`\delta` are summed out per group (see :mod:`mlob_pp.models.melsm`), so
nutpie's NUTS samples only continuous parameters. After sampling, the per-draw inclusion
probability of every group and scale effect (the conditional probability of
:math:`\delta_{pj} = 1` given the continuous parameters) is computed with numpy from the
posterior draws; its posterior mean is the (Rao-Blackwellized) PIP, which has the expectation
of ivd's mean of the indicator draws and a smaller Monte Carlo error. Indicator draws are
sampled from these probabilities (seeded), give the conditional pointwise log-likelihood
``log N(y_i | mu_i, sigma_i)`` of the ``log_likelihood`` group (as ivd's ``logLik_array``, so
``az.loo`` and ``az.compare`` work) and are stored as ``delta`` on request.

References
----------
Rodriguez, J. E., Williams, D. R., & Rast, P. (2024). Who is and is not "average"? Random
effects selection with spike-and-slab priors. Psychological Methods.
https://doi.org/10.1037/met0000535

Carmo, M., Williams, D. R., & Rast, P. ivd: Individual variance detection (R package).
https://github.com/consistentlyBetter/ivd
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.formula.melsm import design_matrices, required_columns, split_mixed_formula
from mlob_pp.validate import (
    ConvergenceWarning,
    check_bool,
    check_int,
    check_probability,
)

__all__ = ["fit_melsm", "MELSMResult", "prepare_saeb", "ConvergenceWarning"]

_RHAT_LIMIT = 1.01




# --------------------------------------------------------------------------------------------
# data preparation
# --------------------------------------------------------------------------------------------
def prepare_saeb(data: pd.DataFrame | None = None) -> pd.DataFrame:
    """Prepare the Saeb data as documented by ivd: within- and between-school SES.

    ``school_ses`` is the school mean of ``student_ses`` centred at the student-weighted grand
    mean; ``student_ses`` becomes the deviation from the school mean (group-mean centring). The
    raw value is kept as ``student_ses_raw``. The model of ivd's README is then
    ``math_proficiency ~ student_ses * school_ses + (1 | school_id)`` for the location and
    ``~ student_ses * school_ses + (1 | school_id)`` for the scale.

    Parameters
    ----------
    data : pandas.DataFrame, optional
        The Saeb data (columns ``school_id`` and ``student_ses``); by default the bundled copy,
        ``mlob_pp.datasets.load("saeb")``.

    Returns
    -------
    pandas.DataFrame
        A new frame (the input is not modified) with ``student_ses`` (within-school SES),
        ``school_ses`` (centred school-mean SES) and ``student_ses_raw``.

    Raises
    ------
    ValueError
        If ``school_id`` or ``student_ses`` is missing.

    Examples
    --------
    >>> from mlob_pp.melsm.fit import prepare_saeb
    >>> df = prepare_saeb()
    >>> abs(float(df["school_ses"].mean())) < 1e-12
    True
    """
    if data is None:
        from mlob_pp import datasets

        data = datasets.load("saeb")
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"`data` must be a pandas DataFrame; got {type(data).__name__}")
    missing = [c for c in ("school_id", "student_ses") if c not in data.columns]
    if missing:
        raise ValueError(
            f"`data` must have the Saeb columns 'school_id' and 'student_ses'; missing {missing}"
        )
    out = data.copy()
    school_mean = out.groupby("school_id")["student_ses"].transform("mean")
    out["student_ses_raw"] = out["student_ses"]
    out["student_ses"] = out["student_ses"] - school_mean
    out["school_ses"] = school_mean - school_mean.mean()
    return out


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MELSMResult:
    """A fitted SS-MELSM.

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
        The formulas.
    group : str
        The grouping column.
    timing : dict
        ``compile`` and ``sampling`` wall times in seconds.
    """

    idata: Any
    pip: pd.Series | pd.DataFrame
    bf10: pd.Series | pd.DataFrame
    prior_inclusion: float
    location: str
    scale: str
    group: str
    timing: dict[str, float] = field(default_factory=dict)

    # ---- tables ------------------------------------------------------------------------
    def summary(self, pip: str = "all", *, ci_prob: float = 0.95) -> pd.DataFrame:
        """Summary table in the spirit of ivd's ``summary()``.

        Parameters
        ----------
        pip : {"all", "model", "pip"}, default "all"
            Rows: model parameters and PIPs, model parameters only, or PIPs only.
        ci_prob : float, default 0.95
            Probability of the equal-tailed credible interval.

        Returns
        -------
        pandas.DataFrame
            Index ``beta_<term>``, ``zeta_<term>``, ``sd_<effect>``/``sd_scl_<effect>``,
            ``corr[<effect>, <effect>]`` and ``pip[<scale effect>, <group>]``; columns
            ``estimate`` (posterior mean; the PIP for pip rows), ``std_error`` (posterior SD),
            ``ci_lower``, ``ci_upper``, ``mcse`` (Monte Carlo SE of the mean), ``ess_bulk``,
            ``ess_tail``, ``r_hat`` (rank-normalized, ArviZ). For pip rows the draws are the
            per-draw inclusion probabilities, so ESS and R-hat describe the PIP's own MC error
            (ivd reports classic split-R-hat and its own ESS; small differences are expected).
        """
        from arviz_stats.base import array_stats

        if pip not in ("all", "model", "pip"):
            raise ValueError(f"`pip` must be one of 'all', 'model', 'pip'; got {pip!r}")
        ci_prob = check_probability(ci_prob, "ci_prob")
        draws = _summary_draws(self.idata, pip)
        labels = list(draws)
        arr = np.stack([draws[k] for k in labels], axis=-1)  # (chain, draw, R)
        flat = arr.reshape(-1, arr.shape[-1])
        q = np.quantile(flat, [(1 - ci_prob) / 2, (1 + ci_prob) / 2], axis=0)
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

    def flagged(self, pip_level: float = 0.75) -> pd.Series | pd.DataFrame:
        """PIPs of the groups with PIP >= `pip_level` (any scale effect), sorted decreasing."""
        pip_level = check_probability(pip_level, "pip_level")
        if isinstance(self.pip, pd.Series):
            return self.pip[self.pip >= pip_level].sort_values(ascending=False)
        keep = (self.pip >= pip_level).any(axis=1)
        return self.pip[keep]

    # ---- plots -------------------------------------------------------------------------
    def plot(self, kind: str = "pip", **kwargs: Any) -> Any:
        """Plot the PIPs: ``"pip"``, ``"funnel"`` or ``"outcome"`` (see :mod:`mlob_pp.melsm.plots`).

        Returns
        -------
        matplotlib.figure.Figure
        """
        from mlob_pp.melsm import plots as melsm_plots

        funcs = {
            "pip": melsm_plots.plot_pip,
            "funnel": melsm_plots.plot_funnel,
            "outcome": melsm_plots.plot_outcome,
        }
        if kind not in funcs:
            raise ValueError(f"`kind` must be one of 'pip', 'funnel', 'outcome'; got {kind!r}")
        return funcs[kind](self, **kwargs)

    def __str__(self) -> str:
        post = self.idata["posterior"]
        n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
        table = self.summary("model").round(3)
        flagged = self.flagged()
        lines = [
            "SS-MELSM (spike-and-slab mixed-effects location-scale model)",
            f"  location: {self.location}",
            f"  scale:    {self.scale}",
            f"  groups:   {post.sizes['group']} ({self.group}); prior inclusion pi = "
            f"{self.prior_inclusion:g}; {n_chain} chains x {n_draw} draws",
            "",
            table.to_string(),
            "",
            f"Groups with PIP >= 0.75: {len(flagged)}",
            flagged.round(3).to_string() if len(flagged) else "  (none)",
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"MELSMResult(location={self.location!r}, scale={self.scale!r})"


def _summary_draws(idata: Any, which: str) -> dict[str, np.ndarray]:
    """(chain, draw) arrays of every summary row, in the table's order."""
    post = idata["posterior"]
    out: dict[str, np.ndarray] = {}
    if which in ("all", "model"):
        for var, dim, prefix in (
            ("beta", "location_term", "beta_"),
            ("zeta", "scale_term", "zeta_"),
        ):
            for term in post[var][dim].values:
                out[f"{prefix}{term}"] = post[var].sel({dim: term}).values
        effects = list(post["re_sd"]["effect"].values)
        for eff in effects:
            out[f"sd_{eff}"] = post["re_sd"].sel(effect=eff).values
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


# --------------------------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------------------------
def _seeds(random_seed: Any) -> tuple[int, np.random.Generator]:
    if random_seed is None or (
        isinstance(random_seed, int | np.integer) and not isinstance(random_seed, bool)
    ):
        if random_seed is not None and random_seed < 0:
            raise ValueError(f"`random_seed` must be a non-negative integer; got {random_seed}")
        ss = np.random.SeedSequence(random_seed)
    elif isinstance(random_seed, np.random.Generator):
        ss = np.random.SeedSequence(int(random_seed.integers(2**63)))
    else:
        raise TypeError(
            f"`random_seed` must be None, an int or a numpy Generator; got "
            f"{type(random_seed).__name__}"
        )
    sampler_ss, post_ss = ss.spawn(2)
    return int(
        sampler_ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)
    ), np.random.default_rng(post_ss)


def _validate(data: Any, location: Any, scale: Any) -> tuple[Any, Any, list[str]]:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"`data` must be a pandas DataFrame; got {type(data).__name__}")
    loc = split_mixed_formula(location, "location")
    scl = split_mixed_formula(scale, "scale", one_sided=True)
    if scl.random is None:
        raise ValueError(
            "`scale` must contain a random term such as '(1 | school)': the spike-and-slab "
            f"prior sits on the scale random effects; got {scale!r}"
        )
    if loc.group is not None and loc.group != scl.group:
        raise ValueError(
            "`location` and `scale` must be grouped by the same variable; got "
            f"{loc.group!r} (location) and {scl.group!r} (scale)"
        )
    cols = sorted(set(required_columns(loc, "location")) | set(required_columns(scl, "scale")))
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise ValueError(
            f"`data` lacks the column(s) {missing} used in the formulas; available columns: "
            f"{list(data.columns)}"
        )
    nan_cols = [c for c in cols if data[c].isna().any()]
    if nan_cols:
        counts = {c: int(data[c].isna().sum()) for c in nan_cols}
        raise ValueError(
            f"`data` has missing values (NaN) in {counts}; drop or impute those rows first, "
            "e.g. data.dropna(subset=[...])"
        )
    if not pd.api.types.is_numeric_dtype(data[loc.response]):
        raise TypeError(
            f"`location`: the outcome {loc.response!r} must be numeric; got dtype "
            f"{data[loc.response].dtype}"
        )
    return loc, scl, cols


def fit_melsm(
    data: pd.DataFrame,
    location: str = "y ~ x + (1 | school)",
    scale: str = "~ x + (1 | school)",
    *,
    prior_inclusion: float = 0.5,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    random_seed: int | np.random.Generator | None = None,
    cores: int | None = None,
    location_parametrization: str = "auto",
    indicator_draws: bool = False,
    log_likelihood: bool = True,
    progressbar: bool = False,
    sampler_kwargs: dict[str, Any] | None = None,
) -> MELSMResult:
    """Fit a spike-and-slab mixed-effects location-scale model (SS-MELSM) with nutpie.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per observation (student).
    location : str
        lme4-style location formula, ``"y ~ x1 * x2 + (1 + x1 | school)"``: fixed effects
        (formulaic/R semantics) and at most one random term.
    scale : str
        One-sided scale formula for the log residual SD, ``"~ x1 + (1 | school)"``; it must
        have a random term, grouped like the location's. Every scale random effect gets the
        spike-and-slab prior.
    prior_inclusion : float, default 0.5
        Prior inclusion probability pi, strictly between 0 and 1.
    draws, tune, chains : int
        Retained draws and warm-up iterations per chain, number of chains.
    random_seed : int, numpy Generator or None
        Seeds the sampler and the indicator draws.
    cores : int, optional
        Chains run in parallel (default ``min(chains, os.cpu_count())``).
    location_parametrization : {"auto", "centered", "noncentered"}, default "auto"
        ``"auto"`` centres the location random intercept (hierarchically, on its group-level
        fixed effects: best with tens of observations per group) and leaves random slopes
        non-centred; scale effects are always non-centred. See
        :func:`mlob_pp.models.melsm.build_melsm`.
    indicator_draws : bool, default False
        Store draws of the indicators as ``posterior.delta``.
    log_likelihood : bool, default True
        Store the conditional pointwise log-likelihood (chains x draws x N doubles).
    progressbar : bool, default False
        Show nutpie's progress bar.
    sampler_kwargs : dict, optional
        Further arguments to ``nutpie.sample`` (e.g. ``{"target_accept": 0.9}``).

    Returns
    -------
    MELSMResult
        With ``pip``, ``bf10``, ``idata``, ``summary()`` and ``plot()``.

    Raises
    ------
    TypeError
        If `data` is not a DataFrame or the outcome is not numeric.
    ValueError
        For missing columns, NaN in used columns, a scale formula without random term,
        different grouping variables, or `prior_inclusion` outside (0, 1).

    Warns
    -----
    ConvergenceWarning
        On divergent transitions or rank-normalized R-hat > 1.01.

    See Also
    --------
    prepare_saeb : the documented Saeb preparation.
    mlob_pp.models.melsm.build_melsm : the PyMC model.

    References
    ----------
    Rodriguez, J. E., Williams, D. R., & Rast, P. (2024). Who is and is not "average"? Random
    effects selection with spike-and-slab priors. Psychological Methods.
    https://doi.org/10.1037/met0000535

    Examples
    --------
    >>> import mlob_pp
    >>> df = mlob_pp.prepare_saeb()
    >>> fit = mlob_pp.fit_melsm(
    ...     df, "math_proficiency ~ student_ses * school_ses + (1 | school_id)",
    ...     "~ student_ses * school_ses + (1 | school_id)", random_seed=1)  # doctest: +SKIP
    >>> fit.pip.sort_values().tail(6)  # doctest: +SKIP
    """
    import xarray as xr

    _import_quietly()
    import nutpie

    from mlob_pp.models.melsm import MELSMData, build_melsm, posterior_inclusion

    loc, scl, cols = _validate(data, location, scale)
    prior_inclusion = check_probability(prior_inclusion, "prior_inclusion")
    draws = check_int(draws, "draws", minimum=1)
    tune = check_int(tune, "tune", minimum=0)
    chains = check_int(chains, "chains", minimum=1)
    indicator_draws = check_bool(indicator_draws, "indicator_draws")
    log_likelihood = check_bool(log_likelihood, "log_likelihood")
    if location_parametrization not in ("auto", "centered", "noncentered"):
        raise ValueError(
            "`location_parametrization` must be 'auto', 'centered' or 'noncentered'; "
            f"got {location_parametrization!r}"
        )
    cores = (
        min(chains, os.cpu_count() or 1) if cores is None else check_int(cores, "cores", minimum=1)
    )
    sampler_seed, rng = _seeds(random_seed)

    codes, labels = pd.factorize(data[scl.group], sort=True)
    order = np.argsort(codes, kind="stable")
    frame = data.iloc[order]
    X, xn, Z, zn = design_matrices(loc, frame, "location")
    W, wn, V, vn = design_matrices(scl, frame, "scale")
    mdata = MELSMData(
        y=frame[loc.response].to_numpy(dtype=float),
        X=X,
        Z=Z,
        W=W,
        V=V,
        group_idx=codes[order],
        group_labels=[_label(v) for v in labels],
        x_names=xn,
        z_names=zn,
        w_names=wn,
        v_names=vn,
        obs_labels=np.asarray(data.index)[order],
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*could not link to a BLAS.*")
        model = build_melsm(
            mdata,
            prior_inclusion=prior_inclusion,
            location_parametrization=location_parametrization,
        )
        t0 = time.perf_counter()
        compiled = nutpie.compile_pymc_model(model, backend="numba")
        t1 = time.perf_counter()
        idata = nutpie.sample(
            compiled,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            seed=sampler_seed,
            progress_bar=progressbar,
            save_warmup=False,
            **(sampler_kwargs or {}),
        )
        t2 = time.perf_counter()

    post = idata["posterior"].to_dataset()
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    flat = lambda v: post[v].values.reshape(n_chain * n_draw, *post[v].shape[2:])  # noqa: E731
    prob, delta, ll = posterior_inclusion(
        mdata,
        flat("beta"),
        flat("zeta"),
        flat("u"),
        prior_inclusion,
        rng=rng if (indicator_draws or log_likelihood) else None,
    )
    J, Sr = mdata.n_groups, V.shape[1]
    dims4 = ("chain", "draw", "group", "scale_effect")
    new_post = {"inclusion_prob": (dims4, prob.reshape(n_chain, n_draw, J, Sr))}
    if indicator_draws:
        new_post["delta"] = (dims4, delta.reshape(n_chain, n_draw, J, Sr))
    idata["posterior"] = xr.DataTree(post.assign(new_post))

    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    obs = np.asarray(data.index)
    if log_likelihood:
        idata["log_likelihood"] = xr.DataTree(
            xr.Dataset(
                {"y": (("chain", "draw", "obs"), ll[:, inv].reshape(n_chain, n_draw, -1))},
                coords={"chain": post["chain"], "draw": post["draw"], "obs": obs},
            )
        )
    idata["observed_data"] = xr.DataTree(
        xr.Dataset(
            {"y": ("obs", mdata.y[inv])}, coords={"obs": obs}, attrs={"response": loc.response}
        )
    )
    idata["constant_data"] = xr.DataTree(
        xr.Dataset(
            {"group_of_obs": ("obs", np.asarray(mdata.group_labels, dtype=object)[codes])},
            coords={"obs": obs},
        )
    )

    pip = prob.mean(axis=0)  # (J, Sr)
    bf10 = _bf10(pip, prior_inclusion)
    extras = _plot_quantities(mdata, post, prob)
    group_coord = list(mdata.group_labels)
    idata["inclusion"] = xr.DataTree(
        xr.Dataset(
            {
                "pip": (("group", "scale_effect"), pip),
                "bf10": (("group", "scale_effect"), bf10),
                **extras,
            },
            coords={"group": group_coord, "scale_effect": vn},
            attrs={
                "prior_inclusion": prior_inclusion,
                "method": "Rao-Blackwellized: posterior mean of the per-draw conditional "
                "inclusion probability (indicators summed out)",
                "bf10": "[PIP/(1-PIP)] / [pi/(1-pi)]",
            },
        )
    )
    idata.attrs.update(
        {
            "model": "SS-MELSM",
            "location": location,
            "scale": scale,
            "group": scl.group,
            "prior_inclusion": prior_inclusion,
            "location_parametrization": location_parametrization,
            "compile_time": t1 - t0,
            "sampling_time": t2 - t1,
            "random_seed": str(random_seed),
        }
    )

    index = pd.Index(group_coord, name=scl.group)
    if Sr == 1:
        pip_out = pd.Series(pip[:, 0], index=index, name="pip")
        bf_out = pd.Series(bf10[:, 0], index=index, name="bf10")
    else:
        pip_out = pd.DataFrame(pip, index=index, columns=pd.Index(vn, name="scale_effect"))
        bf_out = pd.DataFrame(bf10, index=index, columns=pd.Index(vn, name="scale_effect"))
    result = MELSMResult(
        idata=idata,
        pip=pip_out,
        bf10=bf_out,
        prior_inclusion=prior_inclusion,
        location=location,
        scale=scale,
        group=scl.group,
        timing={"compile": t1 - t0, "sampling": t2 - t1},
    )
    _warn_diagnostics(result)
    return result


def _import_quietly() -> None:
    """Import PyMC and nutpie without their import-time deprecation and BLAS notices."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*could not link to a BLAS.*")
        import nutpie  # noqa: F401
        import pymc  # noqa: F401


def _label(value: Any) -> Any:
    """Plain Python scalar for a group label (numpy ints become int)."""
    return value.item() if isinstance(value, np.generic) else value


def _bf10(pip: np.ndarray, prior_inclusion: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return (pip / (1.0 - pip)) / (prior_inclusion / (1.0 - prior_inclusion))


def _plot_quantities(mdata: Any, post: Any, prob: np.ndarray) -> dict[str, Any]:
    """Cluster means and plug-in within-group SDs used by the funnel and outcome plots.

    ``cluster_mean`` = group average of the posterior mean of mu_i; ``scale_re`` = posterior
    mean of delta_pj * b_pj (the deleted scale effect, E[delta b | theta] = prob * b);
    ``within_sd`` = exp(posterior mean of the first zeta + scale_re), ivd's plug-in at
    covariates 0.
    """
    Kr = mdata.Z.shape[1]
    beta = post["beta"].values.mean(axis=(0, 1))
    u = post["u"].values
    a = u[..., :Kr].mean(axis=(0, 1))
    b = u[..., Kr:].reshape(-1, mdata.n_groups, mdata.V.shape[1])
    scale_re = (b * prob).mean(axis=0)  # (J, Sr)
    g = mdata.group_idx
    mu = mdata.X @ beta + np.einsum("nk,nk->n", mdata.Z, a[g])
    sums = np.bincount(g, weights=mu, minlength=mdata.n_groups)
    counts = np.bincount(g, minlength=mdata.n_groups)
    zeta0 = float(post["zeta"].values[..., 0].mean())
    return {
        "cluster_mean": ("group", sums / counts),
        "n_obs": ("group", counts),
        "scale_re": (("group", "scale_effect"), scale_re),
        "within_sd": (("group", "scale_effect"), np.exp(zeta0 + scale_re)),
    }


def _warn_diagnostics(result: MELSMResult) -> None:
    idata = result.idata
    n_div = int(idata["sample_stats"]["diverging"].values.sum())
    if n_div:
        warnings.warn(
            f"{n_div} divergent transitions after tuning; increase `tune` or pass "
            "sampler_kwargs={'target_accept': 0.95}, and check the results",
            ConvergenceWarning,
            stacklevel=3,
        )
    table = result.summary("all")
    bad = table["r_hat"] > _RHAT_LIMIT
    if bad.any():
        worst = table.loc[bad, "r_hat"].sort_values(ascending=False)
        shown = ", ".join(f"{k} ({v:.3f})" for k, v in worst.head(5).items())
        warnings.warn(
            f"{int(bad.sum())} parameter(s) have R-hat > {_RHAT_LIMIT}: {shown}; draw more "
            "(`draws`, `tune`) before trusting the results",
            ConvergenceWarning,
            stacklevel=3,
        )
