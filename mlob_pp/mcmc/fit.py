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

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.formula.groups import resolve_group
from mlob_pp.formula.parse import parse_formula
from mlob_pp.mcmc.checks import check_design, check_group_covariates, group_level_values
from mlob_pp.mcmc.result import MCMCResult, summary_table
from mlob_pp.mcmc.tree import posterior_tree
from mlob_pp.models import latent_covariate as lc
from mlob_pp.models.latent_covariate import COVARIATE_FORMS, data_updates
from mlob_pp.optional import require_all
from mlob_pp.provenance import make_attrs
from mlob_pp.seeds import as_int_seed, check_random_seed
from mlob_pp.validate import (
    check_bool,
    check_choice,
    check_int,
    check_positive,
    check_probability,
    reject_unknown,
    renamed_argument,
)
from mlob_pp.warnings import ConvergenceWarning

__all__ = ["fit_mcmc", "MCMCResult", "ConvergenceWarning", "clear_compiled_models"]

# compiled nutpie models, one per model structure (covariate form, number of split predictors,
# number of plain covariates, number of level-2 covariates); refits of new data only swap the
# pm.Data values
_COMPILED: dict[tuple, Any] = {}

#: deprecated argument names (0.2 series) -> new names
_RENAMED = {"progress_bar": "progress", "progressbar": "progress", "ci_prob": "conf_level",
            "random_state": "random_seed"}


def clear_compiled_models() -> None:
    """Forget the compiled models cached by :func:`fit_mcmc` (the next fit recompiles)."""
    _COMPILED.clear()


def _compiled_model(stats: Any, model: Any, slope_sd: float = lc.SLOPE_SD) -> tuple[Any, float]:
    """Return the nutpie model compiled once per structure of `stats` and slope prior.

    The returned model holds the data of `stats`.
    """
    import nutpie

    key = (stats.structure, float(slope_sd))
    t0 = time.perf_counter()
    if key not in _COMPILED:
        _COMPILED[key] = nutpie.compile_pymc_model(model)
    compile_time = time.perf_counter() - t0
    return _COMPILED[key].with_data(**data_updates(stats)), compile_time


def fit_mcmc(
    formula: str,
    data: Any,
    group: str | None = None,
    *,
    covariates: str = "shared",
    group_covariates: Sequence[str] | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    conf_level: float = 0.95,
    random_seed: Any = None,
    prior_slope_sd: float = lc.SLOPE_SD,
    missing: str = "raise",
    log_likelihood: bool = True,
    progress: bool = False,
    **deprecated: Any,
) -> MCMCResult:
    r"""Fit the two-level latent covariate model by MCMC (PyMC model, nutpie's NUTS).

    Parameters
    ----------
    formula : str
        ``"y ~ x + c1 + c2"``: the first right-hand term is the predictor X whose group mean is
        latent; further terms are level-1 covariates (factors become treatment dummies with R
        names, e.g. ``sxMale``).  The group may instead be given lme4-style in the formula,
        ``"y ~ x + c1 + (1 | school)"`` (same result as ``group="school"``).
    data : pandas.DataFrame
        One row per level-1 unit; groups may be unbalanced (nothing is deleted).
    group : str, optional
        Name of the grouping column (or a ``(1 | group)`` term in `formula`).
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
    random_seed : None, int, numpy Generator or SeedSequence
        Seed of the sampler and of the group-effect draws (:mod:`mlob_pp.seeds`); the integer
        seed actually used is stored in ``random_seed`` of the result.
    prior_slope_sd : float, default 5
        SD of the ``Normal(0, prior_slope_sd)`` priors of the slopes (``beta_b``, ``beta_w``,
        ``gamma``, ``gamma_l2``) on the standardised scale; the same option as in
        :func:`mlob_pp.mcmc_batch`.  The simulation study's MCMC arm uses 2.5, which
        narrows the posterior where few groups barely inform ``beta_b``.  Stored in the
        result's attrs.
    missing : {"raise", "drop"}
        Rows with missing values: raise (default) or drop with a warning.
    log_likelihood : bool
        Store the pointwise log-likelihood (``chain x draw x obs`` doubles: 230 MB for HSB's
        7185 students and 4000 draws); ``False`` leaves out the ``log_likelihood`` group.
    progress : bool
        Show nutpie's progress bar.
    **deprecated
        Old names, accepted with a ``DeprecationWarning`` for the 0.2 series:
        ``progress_bar``/``progressbar`` (now `progress`), ``ci_prob`` (`conf_level`),
        ``random_state`` (`random_seed`).

    Returns
    -------
    MCMCResult

    Raises
    ------
    ValueError
        For an unknown `covariates` form, non-positive `draws`/`tune`/`chains`, a
        `conf_level` outside (0, 1), the formula/data errors of
        :func:`mlob_pp.formula.parse.parse_formula` (empty data, non-finite values, ...), and
        designs the model cannot be fitted to, all before any compile
        (:func:`mlob_pp.mcmc.checks.check_design`: a single group, all groups of one row, a
        constant outcome, X constant within groups, a constant covariate, collinear terms); a
        `group_covariates` column that is not in `data`, has missing values
        (``missing="raise"``) or is not constant within groups.
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
    >>> mc.params["beta_b"], mc.bse["beta_b"]  # doctest: +SKIP
    """
    settings = _check_arguments(locals(), deprecated)
    mf, stats, w_j = _prepare_data(formula, data, group, settings)
    model, compiled, compile_time = _compile(stats, settings["prior_slope_sd"])
    raw, sampling_time = _sample(compiled, settings)
    return _make_result(raw, stats, mf, w_j, model, compile_time, sampling_time, settings)


def _check_arguments(args: dict[str, Any], deprecated: dict[str, Any]) -> dict[str, Any]:
    """Validate the sampler arguments (old names mapped with a DeprecationWarning)."""
    deprecated = dict(deprecated)
    for old, new in _RENAMED.items():
        default = {"progress": False, "conf_level": 0.95, "random_seed": None}[new]
        current = args[new]
        same = current is default or (default is not None and current == default)
        args[new] = renamed_argument("fit_mcmc", deprecated, old, new,
                                     default if same else current, default)
    reject_unknown("fit_mcmc", deprecated)
    out = {
        "covariates": check_choice(args["covariates"], "covariates", COVARIATE_FORMS),
        "draws": check_int(args["draws"], "draws", minimum=1),
        "tune": check_int(args["tune"], "tune", minimum=1),
        "chains": check_int(args["chains"], "chains", minimum=1),
        "cores": None if args["cores"] is None else check_int(args["cores"], "cores",
                                                               minimum=1),
        "conf_level": check_probability(args["conf_level"], "conf_level"),
        "prior_slope_sd": check_positive(args["prior_slope_sd"], "prior_slope_sd"),
        "log_likelihood": check_bool(args["log_likelihood"], "log_likelihood"),
        "progress": check_bool(args["progress"], "progress"),
        "missing": args["missing"],
        "group_covariates": args["group_covariates"],
    }
    check_random_seed(args["random_seed"], r_allowed=False)
    out["seed"] = as_int_seed(args["random_seed"])
    return out


def _prepare_data(formula: Any, data: Any, group: Any, settings: dict[str, Any]):
    """Parse the formula, check the design (before any compile), reduce to statistics."""
    formula, group = resolve_group(formula, group)
    l2_names, data = check_group_covariates(settings["group_covariates"], data,
                                            settings["missing"])
    mf = parse_formula(formula, data, group, missing=settings["missing"])
    check_design(mf)
    w_j = group_level_values(data, l2_names, mf) if l2_names else None
    stats = lc.sufficient_statistics(
        mf.y, mf.x, mf.covariates, mf.group_codes, mf.n_groups,
        form=settings["covariates"], term_names=mf.covariate_names,
        group_covariates=w_j, l2_names=l2_names,
    )
    return mf, stats, w_j


def _compile(stats: Any, slope_sd: float = lc.SLOPE_SD) -> tuple[Any, Any, float]:
    """Build the PyMC model and get its compiled nutpie version (cached per structure, prior)."""
    require_all(("pymc", "pytensor", "nutpie"), "mcmc", "fit_mcmc")
    model = lc.build_model(stats, slope_sd=slope_sd)
    with warnings.catch_warnings():
        # PyTensor's C backend (used for the initial point only) warns about a missing BLAS
        warnings.filterwarnings(
            "ignore", message=".*could not link to a BLAS", category=UserWarning
        )
        compiled, compile_time = _compiled_model(stats, model, slope_sd)
    return model, compiled, compile_time


def _sample(compiled: Any, settings: dict[str, Any]) -> tuple[Any, float]:
    """Run nutpie's NUTS."""
    nutpie = _import_nutpie()
    kwargs: dict[str, Any] = {}
    if settings["cores"] is not None:
        kwargs["cores"] = settings["cores"]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*could not link to a BLAS", category=UserWarning
        )
        raw = nutpie.sample(
            compiled, draws=settings["draws"], tune=settings["tune"],
            chains=settings["chains"], seed=settings["seed"],
            progress_bar=settings["progress"], **kwargs,
        )
    return raw, time.perf_counter() - t0


def _import_nutpie() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import nutpie
    return nutpie


def _make_result(raw: Any, stats: Any, mf: Any, w_j: Any, model: Any, compile_time: float,
                 sampling_time: float, settings: dict[str, Any]) -> MCMCResult:
    """Posterior tree, summary table, diagnostics warning, result object."""
    nutpie = _import_nutpie()
    seed = settings["seed"]
    idata = posterior_tree(raw, stats, mf, seed, settings["covariates"],
                           settings["log_likelihood"], w_j)
    provenance = make_attrs(
        "mcmc", settings={k: settings[k] for k in ("covariates", "draws", "tune", "chains",
                                                   "conf_level", "prior_slope_sd")},
        random_seed=seed, inference_library="nutpie",
        extra={"formula": mf.formula, "group": mf.group_name, "n_obs": mf.n_obs},
    )
    idata.attrs.update(provenance)
    idata.attrs.update(
        {
            "model": "latent_covariate",
            "covariates": settings["covariates"],
            "formula": mf.formula,
            "group": mf.group_name,
            "draws": settings["draws"],
            "tune": settings["tune"],
            "chains": settings["chains"],
            "random_seed": seed,
            "prior_slope_sd": settings["prior_slope_sd"],
            "compile_time_s": compile_time,
            "sampling_time_s": sampling_time,
            "sampler": f"nutpie {nutpie.__version__} (numba backend)",
        }
    )
    table = summary_table(idata["posterior"].to_dataset(), settings["conf_level"])
    n_div = int(np.asarray(idata["sample_stats"]["diverging"]).sum())
    _warn_diagnostics(table, n_div, settings["chains"], settings["draws"])
    return MCMCResult(
        idata=idata, model=model, formula=mf.formula, group=mf.group_name,
        covariates=settings["covariates"], draws=settings["draws"], tune=settings["tune"],
        chains=settings["chains"], random_seed=seed, conf_level=settings["conf_level"],
        compile_time=compile_time, sampling_time=sampling_time, n_obs=mf.n_obs,
        n_groups=mf.n_groups, term_names=tuple(mf.covariate_names), _table=table,
    )


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
