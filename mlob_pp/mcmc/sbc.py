"""Simulation-based calibration (Talts et al. 2018) of :func:`mlob_pp.mcmc_batch`.

For each of ``n_sims`` replications: draw the parameters from the prior, simulate one balanced
data set from the model with them (:func:`mlob_pp.simulate.simulate_arrays`), sample its
posterior, and record the rank of the drawn parameter among ``n_ranked`` thinned posterior
draws.  If the sampler and the log density are right, every rank is uniform on
``0 .. n_ranked``.

SBC needs a fixed prior, so the model is sampled with ``standardize=False``: the priors of
:mod:`mlob_pp.mcmc.density` on the data's own scale (in :func:`mlob_pp.mcmc_batch`'s default
they are stated on the standardised scale, which depends on the data).  This calibrates the
computation (log density, sampler, adaptation, reruns), which the default path shares.

References
----------
Talts, S., Betancourt, M., Simpson, D., Vehtari, A., & Gelman, A. (2018). Validating Bayesian
inference algorithms with simulation-based calibration. arXiv:1804.06788.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlob_pp.mcmc.batch import mcmc_batch
from mlob_pp.mcmc.density import SLOPE_SD
from mlob_pp.seeds import as_generator
from mlob_pp.simulate import simulate_arrays
from mlob_pp.validate import check_positive

__all__ = ["SBC_PARAMETERS", "prior_draws", "SBCResult", "run_sbc", "uniformity_pvalue"]

#: Parameters whose ranks are checked.
SBC_PARAMETERS = ("beta_b", "beta_w", "tau2", "sigma2", "tau2_x", "sigma2_x")


def prior_draws(rng: np.random.Generator, size: int, k: int = 0,
                slope_sd: float = SLOPE_SD) -> dict[str, np.ndarray]:
    """Draw the model's parameters from its priors (see :func:`mlob_pp.mcmc.density.priors`)."""
    out = {
        "alpha": rng.normal(0.0, 2.5, size),
        "mu_x": rng.normal(0.0, 2.5, size),
        "beta_b": rng.normal(0.0, slope_sd, size),
        "beta_w": rng.normal(0.0, slope_sd, size),
        "gamma": rng.normal(0.0, slope_sd, (size, k)),
    }
    for name in ("tau2", "sigma2", "tau2_x", "sigma2_x"):
        out[name] = np.abs(rng.normal(0.0, 1.0, size)) ** 2
    return out


def uniformity_pvalue(ranks: np.ndarray, n_ranked: int, bins: int = 10) -> float:
    """Chi-square test of uniform ranks on ``0 .. n_ranked`` in `bins` equal bins."""
    from scipy import stats

    if (n_ranked + 1) % bins:
        raise ValueError(f"`bins` must divide n_ranked + 1 = {n_ranked + 1}; got {bins}")
    counts = np.bincount(np.asarray(ranks) * bins // (n_ranked + 1), minlength=bins)
    return float(stats.chisquare(counts).pvalue)


@dataclass
class SBCResult:
    """Ranks of :func:`run_sbc`.

    Attributes
    ----------
    ranks : dict of str to ndarray of int (n_sims,)
        Rank of the prior draw among the thinned posterior draws, per parameter.
    n_ranked : int
        Number of thinned posterior draws (ranks run from 0 to n_ranked).
    truth : dict of str to ndarray
        The prior draws.
    pvalues : dict of str to float
        Chi-square uniformity p-values (10 bins when they divide n_ranked + 1).
    fit : MCMCBatchResult
        The batch fit (convergence, reruns, timing).
    seconds : float
        Wall time of the whole calibration.
    """

    ranks: dict[str, np.ndarray]
    n_ranked: int
    truth: dict[str, np.ndarray]
    pvalues: dict[str, float]
    fit: Any
    seconds: float


def run_sbc(n_sims: int = 1000, *, J: int = 20, n: int = 10, k: int = 0, n_ranked: int = 99,
            draws: int = 500, tune: int = 500, chains: int = 4, random_seed: Any = None,
            **batch_options: Any) -> SBCResult:
    """Run simulation-based calibration of :func:`mlob_pp.mcmc_batch`.

    Parameters
    ----------
    n_sims : int
        Number of prior draws (data sets).
    J, n, k : int
        Groups, group size and number of covariates of each simulated data set.
    n_ranked : int
        Number of posterior draws kept (evenly thinned) for the ranks.
    draws, tune, chains : int
        Passed to :func:`mlob_pp.mcmc_batch`.
    random_seed : None, int, Generator or SeedSequence
        Seed.
    **batch_options
        Further keyword arguments of :func:`mlob_pp.mcmc_batch`; its ``prior_slope_sd`` is
        also the SD of the slopes' prior draws.

    Returns
    -------
    SBCResult
    """
    import time

    t0 = time.perf_counter()
    rng = as_generator(random_seed)
    slope_sd = check_positive(batch_options.get("prior_slope_sd", SLOPE_SD), "prior_slope_sd")
    truth = prior_draws(rng, n_sims, k, slope_sd)
    y, x, cov, _ = simulate_arrays(
        (n_sims,), J, n, rng, beta_b=truth["beta_b"], beta_w=truth["beta_w"],
        alpha=truth["alpha"], mu_x=truth["mu_x"], tau2_x=truth["tau2_x"],
        sigma2_x=truth["sigma2_x"], tau2=truth["tau2"], sigma2=truth["sigma2"],
        gamma=truth["gamma"] if k else (),
    )
    fit = mcmc_batch(y, x, cov if k else None, draws=draws, tune=tune, chains=chains,
                     random_seed=rng, standardize=False, return_draws=True, **batch_options)
    ranks = {}
    for name in SBC_PARAMETERS:
        ranks[name] = _ranks(fit.draws[name], truth[name], n_ranked)
    bins = 10 if (n_ranked + 1) % 10 == 0 else n_ranked + 1
    pvalues = {name: uniformity_pvalue(r, n_ranked, bins) for name, r in ranks.items()}
    return SBCResult(ranks=ranks, n_ranked=n_ranked, truth=truth, pvalues=pvalues, fit=fit,
                     seconds=time.perf_counter() - t0)


def _ranks(draws: np.ndarray, truth: np.ndarray, n_ranked: int) -> np.ndarray:
    """Rank of `truth` among `n_ranked` evenly thinned draws of each data set.

    `draws` is (B, chains, draws) with NaN padding for data sets whose chains are shorter.
    """
    out = np.empty(truth.shape[0], dtype=int)
    for b in range(truth.shape[0]):
        d = draws[b]
        d = d[:, ~np.isnan(d).any(axis=0)].ravel()
        keep = d[np.linspace(0, d.size - 1, n_ranked).round().astype(int)]
        out[b] = int(np.sum(keep < truth[b]))
    return out
