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

The steps live in :mod:`mlob_pp.melsm.data` (formulas, design checks before any compile),
:mod:`mlob_pp.melsm.assemble` (draws to the result tree) and :mod:`mlob_pp.melsm.result`.

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
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.melsm.assemble import assemble_tree, pip_frames
from mlob_pp.melsm.data import build_data, check_data, parse_formulas, prepare_saeb
from mlob_pp.melsm.result import MELSMResult, warn_diagnostics
from mlob_pp.models.melsm import build_melsm
from mlob_pp.optional import require_all
from mlob_pp.provenance import make_attrs
from mlob_pp.seeds import as_int_seed, as_seed_sequence, check_random_seed, seed_attr
from mlob_pp.validate import (
    check_bool,
    check_int,
    check_probability,
    reject_unknown,
    renamed_argument,
)
from mlob_pp.warnings import ConvergenceWarning

__all__ = ["fit_melsm", "MELSMResult", "prepare_saeb", "ConvergenceWarning"]

_OLD_LOCATION = "y ~ x + (1 | school)"
_OLD_SCALE = "~ x + (1 | school)"


def _old_spelling(formula: Any, data: Any, group: Any, scale: Any,
                  deprecated: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """Map ``fit_melsm(data, location=..., scale=...)`` (before 0.2) to the new spelling."""
    frame = formula
    location = deprecated.pop("location", None)
    if data is not None:
        if location is not None:
            raise TypeError("fit_melsm() got the location formula twice (positionally and as "
                            "`location`); use fit_melsm(formula, data, scale=...)")
        location = data
    if group is not None:
        if scale is not None:
            raise TypeError("fit_melsm() got the scale formula twice; use "
                            "fit_melsm(formula, data, scale=...)")
        scale = group
    warnings.warn(
        "fit_melsm(data, location, scale) is deprecated since 0.2 and will be removed; use "
        "fit_melsm(formula, data, group=None, scale=...), e.g. "
        "fit_melsm('y ~ x + (1 | school)', data, scale='~ x')",
        DeprecationWarning,
        stacklevel=3,
    )
    return (_OLD_LOCATION if location is None else location, frame, None,
            _OLD_SCALE if scale is None else scale)


def _settings(prior_inclusion, draws, tune, chains, cores, conf_level, location_parametrization,
              indicator_draws, log_likelihood, progress) -> dict[str, Any]:
    """Check the scalar arguments; return them by name."""
    if location_parametrization not in ("auto", "centered", "noncentered"):
        raise ValueError(
            "`location_parametrization` must be 'auto', 'centered' or 'noncentered'; "
            f"got {location_parametrization!r}"
        )
    chains = check_int(chains, "chains", minimum=1)
    return {
        "prior_inclusion": check_probability(prior_inclusion, "prior_inclusion"),
        "draws": check_int(draws, "draws", minimum=1),
        "tune": check_int(tune, "tune", minimum=0),
        "chains": chains,
        "cores": (min(chains, os.cpu_count() or 1) if cores is None
                  else check_int(cores, "cores", minimum=1)),
        "conf_level": check_probability(conf_level, "conf_level"),
        "location_parametrization": location_parametrization,
        "indicator_draws": check_bool(indicator_draws, "indicator_draws"),
        "log_likelihood": check_bool(log_likelihood, "log_likelihood"),
        "progress": check_bool(progress, "progress"),
    }


def _import_quietly() -> None:
    """Import PyMC and nutpie without their import-time deprecation and BLAS notices."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*could not link to a BLAS.*")
        import nutpie  # noqa: F401
        import pymc  # noqa: F401


def _sample(mdata: Any, s: dict[str, Any], seed: int,
            sampler_kwargs: dict[str, Any] | None) -> tuple[Any, float, float]:
    """Build, compile (numba) and sample the model; return the tree and the two wall times."""
    _import_quietly()
    import nutpie

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*could not link to a BLAS.*")
        model = build_melsm(mdata, prior_inclusion=s["prior_inclusion"],
                            location_parametrization=s["location_parametrization"])
        t0 = time.perf_counter()
        compiled = nutpie.compile_pymc_model(model, backend="numba")
        t1 = time.perf_counter()
        idata = nutpie.sample(
            compiled, draws=s["draws"], tune=s["tune"], chains=s["chains"], cores=s["cores"],
            seed=seed, progress_bar=s["progress"], save_warmup=False, **(sampler_kwargs or {}),
        )
        t2 = time.perf_counter()
    return idata, t1 - t0, t2 - t1


def fit_melsm(
    formula: Any = None,
    data: Any = None,
    group: str | None = None,
    *,
    scale: str | None = None,
    prior_inclusion: float = 0.5,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    conf_level: float = 0.95,
    location_parametrization: str = "auto",
    indicator_draws: bool = False,
    log_likelihood: bool = True,
    random_seed: Any = None,
    progress: bool = False,
    sampler_kwargs: dict[str, Any] | None = None,
    **deprecated: Any,
) -> MELSMResult:
    """Fit a spike-and-slab mixed-effects location-scale model (SS-MELSM) with nutpie.

    Parameters
    ----------
    formula : str
        Location formula. The group may be written lme4-style, ``"y ~ x1 * x2 + (1 | school)"``
        or with random slopes ``"y ~ x1 + (1 + x1 | school)"``, or given as `group` (then the
        location has a random intercept). Fixed effects follow formulaic/R semantics.
    data : pandas.DataFrame
        One row per observation (student).
    group : str, optional
        Grouping column (instead of the formula's group term).
    scale : str, default "~ 1"
        One-sided formula for the log residual SD, ``"~ x1 + (1 | school)"``. Without a random
        term a random intercept ``(1 | group)`` is added: the spike-and-slab prior sits on every
        scale random effect, so there is always at least one.
    prior_inclusion : float, default 0.5
        Prior inclusion probability pi, strictly between 0 and 1.
    draws, tune, chains : int
        Retained draws and warm-up iterations per chain, number of chains.
    cores : int, optional
        Chains run in parallel (default ``min(chains, os.cpu_count())``).
    conf_level : float, default 0.95
        Level of the equal-tailed credible intervals of the result's table.
    location_parametrization : {"auto", "centered", "noncentered"}, default "auto"
        ``"auto"`` centres the location random intercept (hierarchically, on its group-level
        fixed effects: best with tens of observations per group) and leaves random slopes
        non-centred; scale effects are always non-centred. See
        :func:`mlob_pp.models.melsm.build_melsm`.
    indicator_draws : bool, default False
        Store draws of the indicators as ``posterior.delta``.
    log_likelihood : bool, default True
        Store the conditional pointwise log-likelihood (chains x draws x N doubles).
    random_seed : None, int, numpy Generator or SeedSequence
        Seeds the sampler and the indicator draws (:mod:`mlob_pp.seeds`).
    progress : bool, default False
        Show nutpie's progress bar (``progressbar`` before 0.2).
    sampler_kwargs : dict, optional
        Further arguments to ``nutpie.sample`` (e.g. ``{"target_accept": 0.9}``).

    Returns
    -------
    MELSMResult
        With ``pip``, ``bf10``, ``idata``, ``params``, ``summary()``, ``table()`` and ``plot()``.

    Raises
    ------
    TypeError
        If `data` is not a DataFrame, a formula is not a string or the outcome is not numeric.
    ValueError
        Before any compilation, for: missing columns, NaN or infinite values, an empty frame,
        a constant outcome (or one constant within every group), collinear fixed effects, fewer
        than 2 groups, all groups of size 1, a random slope without within-group variation,
        different grouping variables, or invalid settings.

    Warns
    -----
    ConvergenceWarning
        On divergent transitions or rank-normalized R-hat > 1.01.
    DeprecationWarning
        For the spelling before 0.2, ``fit_melsm(data, location=..., scale=...)``, and for
        ``progressbar=``.

    See Also
    --------
    prepare_saeb : the documented Saeb preparation.
    mlob_pp.datasets.simulate_saeb : national-scale Saeb-like data with planted truth.
    mlob_pp.models.melsm.build_melsm : the PyMC model.

    Examples
    --------
    >>> import mlob_pp
    >>> df = mlob_pp.prepare_saeb()
    >>> fit = mlob_pp.fit_melsm(
    ...     "math_proficiency ~ student_ses * school_ses + (1 | school_id)", df,
    ...     scale="~ student_ses * school_ses", random_seed=1)  # doctest: +SKIP
    >>> fit.pip.sort_values().tail(6)  # doctest: +SKIP
    """
    if isinstance(formula, pd.DataFrame):
        formula, data, group, scale = _old_spelling(formula, data, group, scale, deprecated)
    progress = renamed_argument("fit_melsm", deprecated, "progressbar", "progress", progress,
                                False)
    reject_unknown("fit_melsm", deprecated)
    spec = parse_formulas(formula, "~ 1" if scale is None else scale, group)
    check_data(data, spec)
    s = _settings(prior_inclusion, draws, tune, chains, cores, conf_level,
                  location_parametrization, indicator_draws, log_likelihood, progress)
    check_random_seed(random_seed, r_allowed=False)
    mdata, order, codes = build_data(data, spec)
    sampler_ss, post_ss = as_seed_sequence(random_seed).spawn(2)
    require_all(("pymc", "pytensor", "nutpie"), "mcmc", "fit_melsm")

    idata, t_compile, t_sample = _sample(mdata, s, as_int_seed(sampler_ss), sampler_kwargs)
    pip = assemble_tree(
        idata, mdata, prior_inclusion=s["prior_inclusion"], rng=np.random.default_rng(post_ss),
        indicator_draws=s["indicator_draws"], log_likelihood=s["log_likelihood"], order=order,
        codes=codes, obs=np.asarray(data.index), response=spec.location.response,
    )
    settings = {k: s[k] for k in ("prior_inclusion", "draws", "tune", "chains",
                                  "location_parametrization", "conf_level")}
    idata.attrs.update(make_attrs("melsm", settings=settings, random_seed=random_seed,
                                  inference_library="nutpie"))
    idata.attrs.update({
        "model": "SS-MELSM", "location": spec.location_text, "scale": spec.scale_text,
        "group": spec.group, "compile_time": t_compile, "sampling_time": t_sample,
        "random_seed": seed_attr(random_seed),
    })
    pip_out, bf_out = pip_frames(pip, mdata, spec.group, s["prior_inclusion"])
    result = MELSMResult(
        idata=idata, pip=pip_out, bf10=bf_out, prior_inclusion=s["prior_inclusion"],
        location=spec.location_text, scale=spec.scale_text, group=spec.group,
        timing={"compile": t_compile, "sampling": t_sample}, conf_level=s["conf_level"],
    )
    warn_diagnostics(result)
    return result
