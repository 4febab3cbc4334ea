r"""Parametric bootstrap standard errors and intervals for the regularised MLOB estimator.

Modules: the generating model (:mod:`~mlob_pp.closed_form.bootstrap_model`), the refit
(:mod:`~mlob_pp.closed_form.refit`), the intervals (:mod:`~mlob_pp.closed_form.bootstrap_intervals`)
and the result (:mod:`~mlob_pp.closed_form.bootstrap_result`); this module runs them
(:func:`parametric_bootstrap` for one data set, :func:`bootstrap_batch` for simulation studies)
and re-exports their public names.

Each of the ``n_boot`` simulated data sets, shaped like the original ``(J, n, k)``, is refitted
with the closed-form estimator, in chunks; the standard deviation of the refits is the
bootstrap SE. Intervals:

- ``"inversion"`` (default): test inversion with common random numbers. Every simulated data
  set is refitted twice, at the generating slope ``beta_gen`` (the regularised estimate) and
  at ``beta_gen + h`` (the same random draws, ``y`` raised by ``h`` times the latent group
  mean); on the secant through the two refits, the slope ``beta_i`` at which data set ``i``
  would reproduce the observed estimate is found, and the interval is the central
  ``conf_level`` range of the ``beta_i`` (order statistics). This is the set of slopes that a
  bootstrap test does not reject, so it corrects the estimator's shrinkage bias, which the
  percentile-type intervals inherit (twice, for the percentile interval). Where the refits do
  not increase with the slope (no information about ``beta_b``: low ICC, few or small groups)
  a bound is infinite.
- ``"bc"``: Efron's bias-corrected percentile interval; ``"percentile"``; ``"basic"``.

The calibration study in ``docs/bootstrap.md`` (the MLOB talk's design) chose the default:
the percentile-type intervals cover 27-90 % where MLOB shrinks strongly (even J = 40, n = 30).

At least ``10 / (1 - conf_level)`` refits are required (200 for a 95 % interval), so that each
tail quantile rests on at least 5 refits; fewer is an error (:func:`min_n_boot`).

Refits (:func:`refit`) run the same steps as :func:`mlob_pp.closed_form.core.mlob_batch`
(:func:`~mlob_pp.closed_form.moments.moment_fit`, the compiled grid search) but skip the SEs,
the warnings, the pole diagnostics and R's bit-level emulation of J = 3 and 5 (``mode="r"``):
estimates are identical to ``mlob_batch`` except for J = 3, 5 in ``mode="r"``, where the
criterion has poles and the selected grid point is decided
by rounding noise either way (tested).

References
----------
.. [1] Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B.
   (2008). The multilevel latent covariate model. Psychological Methods, 13(3), 203-229.
   https://doi.org/10.1037/a0012869
.. [2] Efron, B. (1987). Better bootstrap confidence intervals. Journal of the American
   Statistical Association, 82(397), 171-185. https://doi.org/10.1080/01621459.1987.10478410
.. [3] Carpenter, J. (1999). Test inversion bootstrap confidence intervals. Journal of the Royal
   Statistical Society B, 61(1), 159-172. https://doi.org/10.1111/1467-9868.00169
.. [4] Davison, A. C., & Hinkley, D. V. (1997). Bootstrap Methods and their Application.
   Cambridge University Press. https://doi.org/10.1017/CBO9780511802843
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from mlob_pp.closed_form.bootstrap_intervals import (
    INTERVALS,
    bias_constant,
    bootstrap_interval,
    inversion_interval,
    inversion_roots,
    inversion_step,
    unbounded_reason,
)
from mlob_pp.closed_form.bootstrap_model import (
    CENTERS,
    GeneratingModel,
    bootstrap_arrays,
    fit_generating_model,
    fit_models,
    simulate_bootstrap,
    simulate_models,
)
from mlob_pp.closed_form.bootstrap_result import BootstrapResult
from mlob_pp.closed_form.core import mlob_batch
from mlob_pp.closed_form.refit import refit
from mlob_pp.seeds import as_seed_sequence
from mlob_pp.validate import (
    check_choice,
    check_int,
    check_probability,
    reject_unknown,
    renamed_argument,
)
from mlob_pp.warnings import NumericalWarning

__all__ = [
    "INTERVALS",
    "CENTERS",
    "GeneratingModel",
    "BootstrapResult",
    "fit_generating_model",
    "simulate_bootstrap",
    "refit",
    "bootstrap_interval",
    "inversion_roots",
    "inversion_interval",
    "unbounded_reason",
    "min_n_boot",
    "parametric_bootstrap",
    "bootstrap_batch",
]

_CHUNK = 250  # data sets per refit chunk (seeded per chunk: results do not depend on n_jobs)


def min_n_boot(conf_level: float) -> int:
    """Return the fewest refits allowed for a `conf_level` interval: ``10 / (1 - conf_level)``.

    Examples
    --------
    >>> min_n_boot(0.95), min_n_boot(0.9), min_n_boot(0.99)
    (200, 100, 1000)
    """
    return int(math.ceil(10.0 / (1.0 - conf_level) - 1e-9))


def check_n_boot(n_boot: Any, conf_level: float) -> int:
    """Check `n_boot` against :func:`min_n_boot`; return it."""
    n_boot = check_int(n_boot, "n_boot", minimum=1)
    need = min_n_boot(conf_level)
    if n_boot < need:
        raise ValueError(
            f"`n_boot` must be at least {need} for a {100 * conf_level:g} % bootstrap interval "
            f"(10 / (1 - conf_level), so that each tail quantile rests on >= 5 refits); got "
            f"{n_boot}"
        )
    return n_boot


def _check_n_jobs(n_jobs: Any) -> int:
    n_jobs = check_int(n_jobs, "n_jobs")
    if n_jobs not in (1, 2):
        raise ValueError(f"`n_jobs` must be 1 or 2 (this machine has 2 cores); got {n_jobs}")
    return n_jobs


def parametric_bootstrap(
    y: np.ndarray,
    x: np.ndarray,
    covariates: np.ndarray | None = None,
    *,
    n_boot: int = 2000,
    conf_level: float = 0.95,
    mode: str = "r",
    interval: str = "inversion",
    center: str = "mlob",
    random_seed: Any = None,
    n_jobs: int = 1,
    covariate_names: tuple[str, ...] = (),
    **deprecated: Any,
) -> BootstrapResult:
    """Parametric bootstrap SE and interval for the regularised ``beta_b`` of one data set.

    Parameters
    ----------
    y, x : array_like, shape (J, n)
        Outcome and target regressor of one balanced data set (rows = groups).
    covariates : array_like, shape (J, n, k), optional
        Level-1 covariates (held fixed up to their regression on x; see
        :mod:`~mlob_pp.closed_form.bootstrap_model`).
    n_boot : int, default 2000
        Number of simulated data sets (refits); at least ``10 / (1 - conf_level)``
        (200 for 95 %).
    conf_level : float, default 0.95
        Interval level.
    mode : {"r", "stable"}
        Estimator mode of the refits (as :func:`mlob_pp.closed_form.core.mlob_batch`).
    interval : {"inversion", "bc", "percentile", "basic"}, default "inversion"
        Interval method (:mod:`~mlob_pp.closed_form.bootstrap_intervals`). ``"inversion"`` costs
        a second refit per simulated data set (common random numbers) and is the only method
        that corrects the estimator's shrinkage bias; it may return infinite bounds when the
        data carry no information on ``beta_b`` (then ``result.unbounded_reason`` says so).
        Its gamma intervals are percentile intervals.
    center : {"mlob", "ml"}, default "mlob"
        Which estimate generates the bootstrap data.
    random_seed : None, int, numpy.random.Generator or numpy.random.SeedSequence
        Seed. Chunks of 250 simulated data sets draw from child seeds, so the result does not
        depend on `n_jobs`. (``random_state`` is the deprecated spelling.)
    n_jobs : {1, 2}
        Threads for the refits (the compiled grid search releases the GIL).
    covariate_names : tuple of str, optional
        Names for the ``gamma_<name>`` rows of the result.

    Returns
    -------
    BootstrapResult
        Where every refit gives the same estimate (R's zero-variance fallback in
        ``mode="r"``), the SE is NaN, the interval is unbounded on both sides, the result is
        flagged ``"no_variation"`` and a :class:`~mlob_pp.warnings.NumericalWarning` says so.

    Raises
    ------
    ValueError
        For too few refits, a bad `interval`, `center`, `mode`, `n_jobs`, shapes or
        non-finite data.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> u = rng.normal(0, 0.5, size=(20, 1))
    >>> x = u + rng.normal(size=(20, 10))
    >>> y = 0.5 * u + 0.2 * (x - u) + rng.normal(size=(20, 10))
    >>> res = parametric_bootstrap(y, x, n_boot=200, random_seed=1)
    >>> res.interval, res.n_boot
    ('inversion', 200)
    """
    random_seed = renamed_argument("parametric_bootstrap", deprecated, "random_state",
                                   "random_seed", random_seed)
    reject_unknown("parametric_bootstrap", deprecated)
    conf_level = check_probability(conf_level, "conf_level")
    n_boot = check_n_boot(n_boot, conf_level)
    mode = check_choice(mode, "mode", ("r", "stable"))
    interval = check_choice(interval, "interval", INTERVALS)
    center = check_choice(center, "center", CENTERS)
    n_jobs = _check_n_jobs(n_jobs)
    seed = as_seed_sequence(random_seed)
    y, x, C = bootstrap_arrays(y, x, covariates)
    k = C.shape[-1]
    obs = mlob_batch(y[None], x[None], C[None] if k else None, mode=mode, warn=False)
    par = fit_models(y[None], x[None], C[None], obs, center)
    model = GeneratingModel.from_parameters(par, 0, center)
    draws, draws_ml, draws_gamma, draws_up = _run_refits(par, n_boot, seed, mode, interval, k,
                                                         n_jobs)
    estimate = float(obs.beta_b[0])
    return _summarise(
        estimate, obs.gamma[0], model, draws, draws_ml, draws_gamma, draws_up,
        float(inversion_step(par)[0]), conf_level=conf_level, interval=interval, center=center,
        mode=mode, n_boot=n_boot, covariate_names=tuple(covariate_names),
    )


def _run_refits(par, n_boot: int, seed: np.random.SeedSequence, mode: str, interval: str,
                k: int, n_jobs: int):
    """Simulate and refit in seeded chunks of 250 (identical for any `n_jobs`)."""
    starts = list(range(0, n_boot, _CHUNK))
    children = seed.spawn(len(starts))
    h = inversion_step(par)[0]

    def work(i: int):
        size = min(_CHUNK, n_boot - starts[i])
        yb, xb, cb, mb = simulate_models(par, size, np.random.default_rng(children[i]))
        cov = cb[0] if k else None
        b, bml, g = refit(yb[0], xb[0], cov, mode=mode)
        if interval != "inversion":
            return b, bml, g, np.full_like(b, np.nan)
        # common random numbers: the same data with beta_b raised by h
        b_up = refit(yb[0] + h * mb[0][..., None], xb[0], cov, mode=mode)[0]
        return b, bml, g, b_up

    if n_jobs == 1 or len(starts) == 1:
        parts = [work(i) for i in range(len(starts))]
    else:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            parts = list(pool.map(work, range(len(starts))))
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]).reshape(n_boot, k),
            np.concatenate([p[3] for p in parts]))


def _summarise(estimate, gamma_hat, model, draws, draws_ml, draws_gamma, draws_up, h, *,
               conf_level, interval, center, mode, n_boot, covariate_names) -> BootstrapResult:
    """SE, interval and flags from the refits."""
    finite = np.isfinite(draws)
    n_failed = int(n_boot - finite.sum())
    flags = []
    se = float(np.std(draws[finite], ddof=1)) if finite.sum() > 1 else np.nan
    if interval == "inversion":
        roots = inversion_roots(draws, draws_up, h, model.beta_b, estimate)
        lower, upper = (float(v) for v in inversion_interval(roots, conf_level))
    else:
        roots = None
        lower, upper = (float(v) for v in bootstrap_interval(draws, estimate, conf_level,
                                                             interval))
    if not se > 0:  # every refit equal (R's zero-variance fallback) or too few finite refits
        flags.append("no_variation")
        se, lower, upper = np.nan, -np.inf, np.inf
        warnings.warn(
            "parametric bootstrap: all refits gave the same estimate (R's zero-variance fallback "
            "or no between-group information), so there is no bootstrap SE and the interval is "
            "unbounded; use mode='stable' or check the data",
            NumericalWarning, stacklevel=3,
        )
    if not (np.isfinite(lower) and np.isfinite(upper)):
        flags.append("unbounded")
    z0 = float(bias_constant(draws, np.asarray(estimate)))
    k = draws_gamma.shape[1]
    if k:
        gd = draws_gamma.T  # (k, B)
        se_gamma = np.nanstd(gd, axis=-1, ddof=1)
        g_method = "percentile" if interval == "inversion" else interval
        glo, ghi = bootstrap_interval(gd, gamma_hat, conf_level, g_method)
    else:
        se_gamma = glo = ghi = np.empty(0)
    return BootstrapResult(
        estimate=estimate, se_beta_b=se, ci_lower=lower, ci_upper=upper,
        interval=interval, conf_level=conf_level, n_boot=n_boot, n_failed=n_failed,
        center=center, mode=mode, z0=z0, generating=model, draws_beta_b=draws,
        draws_beta_b_ml=draws_ml, gamma=np.asarray(gamma_hat, float),
        se_gamma=np.asarray(se_gamma, float), ci_lower_gamma=np.asarray(glo, float),
        ci_upper_gamma=np.asarray(ghi, float), draws_gamma=draws_gamma, roots=roots,
        covariate_names=covariate_names, flags=tuple(flags),
    )


def bootstrap_batch(
    y: np.ndarray,
    x: np.ndarray,
    covariates: np.ndarray | None = None,
    *,
    n_boot: int = 200,
    mode: str = "r",
    center: str = "mlob",
    random_seed: Any = None,
    max_elements: int = 4_000_000,
    inversion: bool = True,
    **deprecated: Any,
) -> dict[str, np.ndarray]:
    """Bootstrap draws for each of R data sets at once (for simulation studies).

    Parameters
    ----------
    y, x : ndarray (R, J, n)
    covariates : ndarray (R, J, n, k), optional
    n_boot : int
        Refits per data set (at least 2; intervals need ``min_n_boot(conf_level)``).
    mode, center : str
        As in :func:`parametric_bootstrap`.
    random_seed : None, int, numpy.random.Generator or numpy.random.SeedSequence
        Seed (``random_state`` is the deprecated spelling).
    max_elements : int
        Bound on ``R_chunk * n_boot * J * n`` per refit call (memory).
    inversion : bool
        Also refit with ``beta_b`` raised (common random numbers) and return the inversion
        ``roots`` (R, n_boot).

    Returns
    -------
    dict
        ``beta_b``, ``beta_b_ml``, ``se_beta_b``, ``se_beta_b_ml`` (R,): the estimator on the
        data (analytic SEs); ``draws_beta_b``, ``draws_beta_b_ml`` (R, n_boot); ``beta_gen``.
    """
    random_seed = renamed_argument("bootstrap_batch", deprecated, "random_state", "random_seed",
                                   random_seed)
    reject_unknown("bootstrap_batch", deprecated)
    n_boot = check_int(n_boot, "n_boot", minimum=2)
    mode = check_choice(mode, "mode", ("r", "stable"))
    center = check_choice(center, "center", CENTERS)
    rng = np.random.default_rng(as_seed_sequence(random_seed))
    y = np.asarray(y, float)
    x = np.asarray(x, float)
    R, J, n = x.shape
    C = np.empty((R, J, n, 0)) if covariates is None else np.asarray(covariates, float)
    k = C.shape[-1]
    obs = mlob_batch(y, x, C if k else None, mode=mode, warn=False)
    par = fit_models(y, x, C, obs, center)
    draws, draws_ml, draws_up = (np.empty((R, n_boot)) for _ in range(3))
    h = inversion_step(par)
    step = max(1, max_elements // (n_boot * J * n))
    for a in range(0, R, step):
        sl = slice(a, min(R, a + step))
        yb, xb, cb, mb = simulate_models({key: val[sl] for key, val in par.items()}, n_boot, rng)
        m = yb.shape[0]
        shape = (m * n_boot, J, n)
        cov = cb.reshape(*shape, k) if k else None
        b, bm, _ = refit(yb.reshape(shape), xb.reshape(shape), cov, mode=mode)
        draws[sl] = b.reshape(m, n_boot)
        draws_ml[sl] = bm.reshape(m, n_boot)
        if inversion:
            yb += h[sl, None, None, None] * mb[..., None]
            draws_up[sl] = refit(yb.reshape(shape), xb.reshape(shape), cov,
                                 mode=mode)[0].reshape(m, n_boot)
    out = {
        "beta_b": obs.beta_b, "beta_b_ml": obs.beta_b_ml, "se_beta_b": obs.se_beta_b,
        "se_beta_b_ml": obs.se_beta_b_ml, "draws_beta_b": draws, "draws_beta_b_ml": draws_ml,
        "beta_gen": par["beta_b"],
    }
    if inversion:
        out["roots"] = inversion_roots(draws, draws_up, h, par["beta_b"], obs.beta_b)
    return out
