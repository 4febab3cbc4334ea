r"""Full MCMC of the two-level latent covariate model (PyMC model sampled with nutpie).

The model (MLOB talk, eqs. 5-6; Lüdtke et al. 2008):

.. math::

    X_{ij} = \mu_x + u_j + e_{ij},\qquad
    Y_{ij} = \alpha + \beta_b \mu_{Xj} + \beta_w (X_{ij} - \mu_{Xj}) + C_{ij}'\gamma
             + \delta_j + \varepsilon_{ij},\qquad \mu_{Xj} = \mu_x + u_j,

with :math:`u_j \sim N(0, \tau^2_x)`, :math:`e_{ij} \sim N(0, \sigma^2_x)`,
:math:`\delta_j \sim N(0, \tau^2)`, :math:`\varepsilon_{ij} \sim N(0, \sigma^2)` and the
contextual effect :math:`\beta_c = \beta_b - \beta_w`.  The covariates enter either with one
slope at both levels (``covariates="shared"``, the MLOB talk's model) or split into a latent
between and a within part with a slope at each level (``covariates="level_specific"``, the
two-level SEM of lavaan and Mplus).  The PyMC model, its priors and the exact integration of the
group effects are described in :mod:`mlob_pp.models.latent_covariate`.

PyMC and nutpie are imported inside :func:`fit_mcmc`, so ``import mlob_pp`` stays fast.

References
----------
Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B. (2008).
The multilevel latent covariate model: A new, more reliable approach to group-level effects in
contextual studies. *Psychological Methods*, 13(3), 203-229. https://doi.org/10.1037/a0012869
"""

from __future__ import annotations

import numbers
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.validate import (
    ConvergenceWarning,
    check_bool,
    check_choice,
    check_int,
    check_probability,
)

__all__ = ["fit_mcmc", "MCMCResult", "ConvergenceWarning", "clear_compiled_models"]

_SCALARS = ("alpha", "mu_x", "tau2_x", "sigma2_x", "icc_x", "tau2", "sigma2")
_SUMMARY_COLUMNS = (
    "estimate", "std_error", "ci_lower", "ci_upper", "r_hat", "ess_bulk", "ess_tail"
)
# compiled nutpie models, one per model structure (covariate form, number of split predictors,
# number of plain covariates, number of level-2 covariates); refits of new data only swap the
# pm.Data values
_COMPILED: dict[tuple, Any] = {}




def clear_compiled_models() -> None:
    """Forget the compiled models cached by :func:`fit_mcmc` (the next fit recompiles)."""
    _COMPILED.clear()


@dataclass(frozen=True)
class MCMCResult:
    """Posterior of the latent covariate model from :func:`fit_mcmc`.

    Attributes
    ----------
    idata : xarray.DataTree
        ArviZ data: ``posterior`` (parameters on the data's scale, dims ``chain, draw`` and
        ``term``/``group``), ``sample_stats`` (nutpie's, with ``diverging``),
        ``observed_data`` (``y``, ``x``, ``covariates`` with dims ``obs``/``term``, and the
        ``group`` of every ``obs``) and ``log_likelihood`` (``y``, dim ``obs``, conditional on
        the drawn group effects; see :func:`fit_mcmc`).
    model : pymc.Model
        The PyMC model (standardised scale, group effects integrated out) built for this fit.
    formula, group, covariates : str
        The formula, the grouping column and the covariate form.
    draws, tune, chains : int
        Sampler settings.
    random_seed : int
        The seed actually used (drawn when ``random_seed=None``), so the fit can be repeated.
    conf_level : float
        Level of the equal-tailed credible intervals of :meth:`summary`.
    compile_time, sampling_time : float
        Seconds spent compiling (0 when a cached compiled model was reused) and sampling.
    """

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

    @property
    def coef(self) -> pd.Series:
        """Posterior means, labelled ``beta_b, beta_w, beta_c, gamma_<term>, alpha, ...``."""
        return self._table["estimate"].copy()

    @property
    def se(self) -> pd.Series:
        """Posterior standard deviations, with the labels of :attr:`coef`."""
        return self._table["std_error"].copy()

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

    def summary(self, conf_level: float | None = None) -> pd.DataFrame:
        """Table of the structural parameters.

        Parameters
        ----------
        conf_level : float, optional
            Level of the equal-tailed credible interval; default the fit's `conf_level`.

        Returns
        -------
        pandas.DataFrame
            Index: parameter labels; columns ``estimate`` (posterior mean), ``std_error``
            (posterior SD), ``ci_lower``, ``ci_upper``, ``r_hat``, ``ess_bulk``, ``ess_tail``.
        """
        if conf_level is None or conf_level == self.conf_level:
            return self._table.copy()
        conf_level = check_probability(conf_level, "conf_level")
        return _summary_table(self.idata["posterior"].to_dataset(), conf_level)

    def __str__(self) -> str:
        table = self._table.to_string(float_format=lambda v: f"{v:.4g}")
        form = "shared slopes" if self.covariates == "shared" else "level-specific slopes"
        return (
            f"MCMC of the latent covariate model ({form}), nutpie NUTS\n"
            f"formula: {self.formula}   group: {self.group}\n"
            f"N = {self.n_obs}, J = {self.n_groups}; {self.chains} chains x {self.draws} draws "
            f"(tune {self.tune}), seed {self.random_seed}, "
            f"{self.n_divergent} divergences\n"
            f"compile {self.compile_time:.1f} s, sampling {self.sampling_time:.1f} s\n"
            f"estimate = posterior mean, std_error = posterior SD, "
            f"{100 * self.conf_level:g}% equal-tailed interval\n{table}"
        )


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


def _summary_table(post: Any, conf_level: float) -> pd.DataFrame:
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
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(_SUMMARY_COLUMNS))


def _resolve_seed(random_seed: Any) -> int:
    if random_seed is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint32)[0])
    if isinstance(random_seed, np.random.Generator):
        return int(random_seed.integers(0, 2**32))
    if isinstance(random_seed, bool) or not isinstance(random_seed, numbers.Integral):
        raise TypeError(
            "`random_seed` must be None, a non-negative int or a numpy Generator; "
            f"got {type(random_seed).__name__}"
        )
    if random_seed < 0:
        raise ValueError(f"`random_seed` must be a non-negative integer; got {random_seed}")
    return int(random_seed)


def _compiled_model(stats: Any, model: Any) -> tuple[Any, float]:
    """Return the nutpie model compiled once per structure of `stats`, holding its data."""
    import nutpie

    from mlob_pp.models.latent_covariate import data_updates

    key = stats.structure
    t0 = time.perf_counter()
    if key not in _COMPILED:
        _COMPILED[key] = nutpie.compile_pymc_model(model)
    compile_time = time.perf_counter() - t0
    return _COMPILED[key].with_data(**data_updates(stats)), compile_time


def fit_mcmc(
    formula: str,
    data: Any,
    group: str,
    *,
    covariates: str = "shared",
    group_covariates: Sequence[str] | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    conf_level: float = 0.95,
    random_seed: Any = None,
    missing: str = "raise",
    log_likelihood: bool = True,
    progress_bar: bool = False,
) -> MCMCResult:
    r"""Fit the two-level latent covariate model by MCMC (PyMC model, nutpie's NUTS).

    Parameters
    ----------
    formula : str
        ``"y ~ x + c1 + c2"``: the first right-hand term is the predictor X whose group mean is
        latent; further terms are level-1 covariates (factors become treatment dummies with R
        names, e.g. ``sxMale``).
    data : pandas.DataFrame
        One row per level-1 unit; groups may be unbalanced (nothing is deleted).
    group : str
        Name of the grouping column.
    covariates : {"shared", "level_specific"}
        ``"shared"`` (default, MLOB talk eqs. 5-6): one slope ``gamma`` per covariate at both
        levels, covariates not split.  ``"level_specific"``: every covariate splits into a
        latent group mean and a within part with slopes ``gamma_b`` and ``gamma_w`` (the
        two-level SEM that lavaan and Mplus fit; X and the covariates have unrestricted
        between and within covariance matrices).
    group_covariates : sequence of str, optional
        Numeric columns of `data` that are constant within each group (group-level, level-2
        covariates :math:`W_j`): the random intercept becomes
        :math:`\alpha + \beta_b\mu_{Xj} + W_j'\gamma_{l2} + \delta_j`.  Posterior
        ``gamma_l2`` (dim ``l2_term``), labels ``gamma_l2_<name>``; prior ``Normal(0, 5)`` on
        the standardised scale (W standardised over the J groups).  Missing values follow
        `missing`.  ``None`` (default): no level-2 covariates.
    draws, tune : int
        Posterior draws and warm-up iterations per chain (``draws >= 1``, ``tune >= 1``).
    chains : int
        Number of chains (>= 1).
    cores : int, optional
        Chains run in parallel threads; default all cores.
    conf_level : float
        Level of the equal-tailed credible intervals in :meth:`MCMCResult.summary`.
    random_seed : int or numpy.random.Generator, optional
        Seed of the sampler and of the group-effect draws; with ``None`` a seed is drawn and
        stored in ``random_seed`` of the result.
    missing : {"raise", "drop"}
        Rows with missing values: raise (default) or drop with a warning.
    log_likelihood : bool
        Store the pointwise log-likelihood (``chain x draw x obs`` doubles: 230 MB for HSB's
        7185 students and 4000 draws); ``False`` leaves out the ``log_likelihood`` group.
    progress_bar : bool
        Show nutpie's progress bar.

    Returns
    -------
    MCMCResult

    Raises
    ------
    ValueError
        For an unknown `covariates` form, non-positive `draws`/`tune`/`chains`, a
        `conf_level` outside (0, 1), and the formula/data errors of
        :func:`mlob_pp.formula.parse.parse_formula`; a `group_covariates` column that is not in
        `data`, has missing values (``missing="raise"``) or is not constant within groups.
    TypeError
        For arguments of the wrong type, and a non-numeric `group_covariates` column.

    Warns
    -----
    ConvergenceWarning
        If there are divergent transitions, an R-hat above 1.01, or a bulk or tail effective
        sample size below ``100 * chains`` for a structural parameter.

    Notes
    -----
    *Sampling.* The group effects are integrated out analytically (see
    :mod:`mlob_pp.models.latent_covariate`), so NUTS runs on about ten parameters and the cost
    per gradient does not grow with the number of students.  The group effects in the
    posterior (``mu_xj``, ``delta`` and, level-specific, ``mu_cj``) are drawn afterwards from
    their exact Gaussian conditional posterior for each draw of the parameters, so the
    posterior holds draws from the joint posterior.

    *Compile once per model structure.* The model is compiled by nutpie's numba backend the
    first time a structure (covariate form, number of covariates) is fitted in a process
    (20-50 s on the 2-core development machine depending on its load, then about a second to
    sample 4 x 1000 draws for J = 40, n = 30; PyMC's own NUTS with the C backend took as long
    to compile and 7 s to sample, so nutpie is the default and only sampler); the data live
    in ``pm.Data`` containers holding sufficient statistics and standardisation constants (the
    priors live on the standardised scale, so no prior depends on the data), and later fits of
    any data set with the same structure (any N and J) swap the data in with nutpie's
    ``CompiledPyMCModel.with_data`` and do not recompile (``compile_time`` is then 0).
    :func:`clear_compiled_models` empties the cache.

    *Pointwise log-likelihood.* ``log_likelihood["y"]`` (dims ``chain, draw, obs``) is
    :math:`\log N(y_{ij} \mid \alpha + \beta_b\mu_{Xj} + \beta_w(x_{ij} - \mu_{Xj}) +
    C_{ij}'\gamma + \delta_j, \sigma^2)`, i.e. conditional on X, the covariates and the drawn
    group effects :math:`(\mu_{Xj}, \delta_j)`: the usual target of PSIS-LOO for leaving out
    single students.  It is not the marginal likelihood that the sampler targets.

    References
    ----------
    Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B.
    (2008). The multilevel latent covariate model. *Psychological Methods*, 13(3), 203-229.
    https://doi.org/10.1037/a0012869

    Examples
    --------
    >>> import mlob_pp
    >>> df = mlob_pp.datasets.load("hsb")
    >>> mc = mlob_pp.fit_mcmc("mAch ~ ses + minrty + sx", df, "school",
    ...                       random_seed=1)  # doctest: +SKIP
    >>> mc.summary().loc["beta_b", ["estimate", "std_error"]]  # doctest: +SKIP
    """
    from mlob_pp.formula.parse import parse_formula
    from mlob_pp.models import latent_covariate as lc

    covariates = check_choice(covariates, "covariates", lc.COVARIATE_FORMS)
    draws = check_int(draws, "draws", minimum=1)
    tune = check_int(tune, "tune", minimum=1)
    chains = check_int(chains, "chains", minimum=1)
    if cores is not None:
        cores = check_int(cores, "cores", minimum=1)
    conf_level = check_probability(conf_level, "conf_level")
    log_likelihood = check_bool(log_likelihood, "log_likelihood")
    progress_bar = check_bool(progress_bar, "progress_bar")
    seed = _resolve_seed(random_seed)

    l2_names, data = _check_group_covariates(group_covariates, data, missing)
    mf = parse_formula(formula, data, group, missing=missing)
    w_j = _group_level_values(data, l2_names, mf) if l2_names else None
    stats = lc.sufficient_statistics(
        mf.y, mf.x, mf.covariates, mf.group_codes, mf.n_groups,
        form=covariates, term_names=mf.covariate_names,
        group_covariates=w_j, l2_names=l2_names,
    )
    model = lc.build_model(stats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import nutpie

    with warnings.catch_warnings():
        # PyTensor's C backend (used for the initial point only) warns about a missing BLAS
        warnings.filterwarnings(
            "ignore", message=".*could not link to a BLAS", category=UserWarning
        )
        compiled, compile_time = _compiled_model(stats, model)
        t0 = time.perf_counter()
        kwargs: dict[str, Any] = {"cores": cores} if cores is not None else {}
        raw = nutpie.sample(
            compiled, draws=draws, tune=tune, chains=chains, seed=seed,
            progress_bar=progress_bar, **kwargs,
        )
        sampling_time = time.perf_counter() - t0

    idata = _to_datatree(raw, stats, mf, seed, covariates, log_likelihood, w_j)
    idata.attrs.update(
        {
            "model": "latent_covariate",
            "covariates": covariates,
            "formula": mf.formula,
            "group": mf.group_name,
            "draws": draws,
            "tune": tune,
            "chains": chains,
            "random_seed": seed,
            "compile_time_s": compile_time,
            "sampling_time_s": sampling_time,
            "sampler": f"nutpie {nutpie.__version__} (numba backend)",
        }
    )
    table = _summary_table(idata["posterior"].to_dataset(), conf_level)
    n_div = int(np.asarray(idata["sample_stats"]["diverging"]).sum())
    _warn_diagnostics(table, n_div, chains, draws)
    return MCMCResult(
        idata=idata,
        model=model,
        formula=mf.formula,
        group=mf.group_name,
        covariates=covariates,
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=seed,
        conf_level=conf_level,
        compile_time=compile_time,
        sampling_time=sampling_time,
        n_obs=mf.n_obs,
        n_groups=mf.n_groups,
        term_names=tuple(mf.covariate_names),
        _table=table,
    )


def _check_group_covariates(
    group_covariates: Sequence[str] | None, data: Any, missing: str
) -> tuple[tuple[str, ...], Any]:
    """Validate the level-2 column names; with ``missing="drop"`` drop rows where they are NaN."""
    if group_covariates is None:
        return (), data
    if isinstance(group_covariates, str) or not all(
        isinstance(c, str) for c in group_covariates
    ):
        raise TypeError(
            "`group_covariates` must be a sequence of column names (strings); "
            f"got {group_covariates!r}"
        )
    names = tuple(dict.fromkeys(group_covariates))
    if not names:
        return (), data
    if not isinstance(data, pd.DataFrame):
        raise TypeError("`group_covariates` needs `data` to be a pandas DataFrame")
    unknown = [c for c in names if c not in data.columns]
    if unknown:
        raise ValueError(
            f"`group_covariates` column(s) not in data: {', '.join(map(repr, unknown))}"
        )
    for c in names:
        col = data[c]
        if not (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)):
            raise TypeError(
                f"`group_covariates` column {c!r} must be numeric; got dtype {col.dtype}"
            )
    isna = data[list(names)].isna().to_numpy()
    if isna.any():
        if missing == "raise":
            c = names[int(np.flatnonzero(isna.any(axis=0))[0])]
            raise ValueError(
                f"column {c!r} has {int(isna[:, names.index(c)].sum())} missing values "
                f"(NaN/None) in {data.shape[0]} rows; remove them or pass missing='drop' to "
                "drop incomplete rows"
            )
        if missing == "drop":
            from mlob_pp.validate import MissingDataWarning

            keep = ~isna.any(axis=1)
            warnings.warn(
                f"dropped {int((~keep).sum())} of {data.shape[0]} rows with missing values in "
                f"the group covariates {', '.join(map(repr, names))} (missing='drop')",
                MissingDataWarning,
                stacklevel=3,
            )
            data = data.loc[keep]
    return names, data


def _group_level_values(data: Any, names: tuple[str, ...], mf: Any) -> np.ndarray:
    """(J, k) values of the level-2 columns; ValueError if not constant within a group."""
    values = data[list(names)].to_numpy(dtype=float)[mf.rows]
    codes = mf.group_codes
    lo = np.full((mf.n_groups, len(names)), np.inf)
    hi = np.full((mf.n_groups, len(names)), -np.inf)
    np.minimum.at(lo, codes, values)
    np.maximum.at(hi, codes, values)
    bad = ~np.isclose(lo, hi, rtol=1e-12, atol=0.0)
    if bad.any():
        j, k = (int(v[0]) for v in np.nonzero(bad))
        raise ValueError(
            f"`group_covariates` column {names[k]!r} is not constant within groups "
            f"(e.g. group {mf.group_labels[j]!r} has values from {lo[j, k]:g} to {hi[j, k]:g})"
        )
    return lo


def _warn_diagnostics(table: pd.DataFrame, n_div: int, chains: int, draws: int) -> None:
    problems = []
    if n_div:
        problems.append(f"{n_div} divergent transitions after warm-up")
    bad_rhat = table.index[table["r_hat"] > 1.01].tolist()
    if bad_rhat:
        problems.append(
            f"R-hat > 1.01 for {', '.join(bad_rhat)} (max {table['r_hat'].max():.3f})"
        )
    limit = 100 * chains
    ess = table[["ess_bulk", "ess_tail"]].min(axis=1)
    low = ess.index[ess < limit].tolist()
    if low:
        problems.append(
            f"effective sample size below {limit} (100 per chain) for {', '.join(low)} "
            f"(min {ess.min():.0f})"
        )
    if problems:
        warnings.warn(
            "MCMC diagnostics: " + "; ".join(problems)
            + f". Increase `draws`/`tune` (now {draws} draws) or inspect the trace.",
            ConvergenceWarning,
            stacklevel=3,
        )


def _group_coord(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    return labels.astype(str) if labels.dtype == object else labels


def _to_datatree(
    raw: Any, stats: Any, mf: Any, seed: int, form: str, with_loglik: bool,
    w_j: np.ndarray | None = None,
) -> Any:
    import nutpie
    import xarray as xr
    from arviz_base import make_attrs

    from mlob_pp.models import latent_covariate as lc

    post_z = {k: np.asarray(v) for k, v in raw["posterior"].to_dataset().data_vars.items()}
    n_chain, n_draw = next(iter(post_z.values())).shape[:2]
    params = lc.to_original_scale(post_z, stats)
    rng = np.random.default_rng([seed, 20080901])
    effects = lc.draw_group_effects(post_z, stats, rng)

    def shaped(arr: np.ndarray) -> np.ndarray:
        return arr.reshape(n_chain, n_draw, *arr.shape[1:])

    terms = list(mf.covariate_names)
    groups = _group_coord(mf.group_labels)
    coords = {
        "chain": np.arange(n_chain),
        "draw": np.arange(n_draw),
        "group": groups,
        "term": terms,
        "obs": np.arange(mf.n_obs),
        "l2_term": list(stats.l2_names),
    }
    sd = ("chain", "draw")
    post: dict[str, Any] = {}
    for name in ("beta_b", "beta_w", "beta_c"):
        post[name] = (sd, shaped(params[name]))
    for vec in ("gamma", "gamma_w", "gamma_b"):
        if vec in params and terms:
            post[vec] = ((*sd, "term"), shaped(params[vec]))
    if "gamma_l2" in params:
        post["gamma_l2"] = ((*sd, "l2_term"), shaped(params["gamma_l2"]))
    for name in ("alpha", "mu_x", "tau2_x", "sigma2_x", "icc_x", "tau2", "sigma2"):
        post[name] = (sd, shaped(params[name]))
    if form == "level_specific" and terms:
        for name in ("mu_c", "tau2_c", "sigma2_c"):
            post[name] = ((*sd, "term"), shaped(params[name]))
    post["mu_xj"] = ((*sd, "group"), shaped(effects["mu_xj"]))
    post["delta"] = ((*sd, "group"), shaped(effects["delta"]))
    if "mu_cj" in effects and terms:
        post["mu_cj"] = ((*sd, "group", "term"), shaped(effects["mu_cj"]))

    attrs = make_attrs(inference_library=nutpie)
    post_dims = ("chain", "draw", "group", "term", *(("l2_term",) if stats.n_l2 else ()))
    posterior = xr.Dataset(post, coords={k: coords[k] for k in post_dims}, attrs=attrs)
    sample_stats = raw["sample_stats"].to_dataset()
    observed = xr.Dataset(
        {
            "y": (("obs",), mf.y),
            "x": (("obs",), mf.x),
            "covariates": (("obs", "term"), mf.covariates),
        },
        coords={"obs": coords["obs"], "term": terms, "group": (("obs",), groups[mf.group_codes])},
        attrs={**attrs, "response": mf.response, "target": mf.target},
    )
    groups_out = {
        "posterior": posterior,
        "sample_stats": sample_stats,
        "observed_data": observed,
    }
    if not with_loglik:
        return xr.DataTree.from_dict(groups_out)
    loglik = lc.pointwise_log_likelihood(
        mf.y, mf.x, mf.covariates, mf.group_codes, params, effects, form, w_j
    )
    groups_out["log_likelihood"] = xr.Dataset(
        {"y": ((*sd, "obs"), shaped(loglik))},
        coords={k: coords[k] for k in ("chain", "draw", "obs")},
        attrs={
            **attrs,
            "conditioning": "pointwise log N(y_ij | ...) given the parameters and the drawn "
            "group effects (mu_xj, delta)",
        },
    )
    return xr.DataTree.from_dict(groups_out)
