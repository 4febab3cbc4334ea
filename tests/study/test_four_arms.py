"""A small study with all four arms on every replication (issue 13.4), checked against the
batched estimators called directly."""

import json
import warnings

import numpy as np
import pytest

from mlob_pp.comparisons.study.arms import arm_seed
from mlob_pp.comparisons.study.design import simulate_replications
from mlob_pp.comparisons.study.runner import run_study

pytest.importorskip("blackjax")

DESIGN = {"icc_x": (0.3,), "J": (10, 20), "n": (5,), "beta_b": (0.5,), "beta_w": (0.2,)}
MCMC = {"draws": 100, "tune": 100, "chains": 2}
REPS = 6


@pytest.fixture(scope="module")
def study():
    return run_study(DESIGN, replications=REPS, random_seed=5, progress=False, chunk_size=REPS,
                     estimators=["mlob", "ml_moments", "ml", "mcmc"], n_boot=40,
                     mcmc_kwargs=MCMC, keep_replications=True)


@pytest.mark.mcmc
def test_every_arm_runs_on_every_replication(study):
    counts = study["counts"]
    assert (counts.sel(count="n_replications") == REPS).all()
    assert (counts.sel(count="n_error") == 0).all()
    assert list(study["interval"].values) == [
        "mlob_analytic", "mlob_bootstrap", "ml_moments_analytic", "ml_wald", "ml_profile",
        "mcmc_credible"]
    n = study["interval_n_used"].sel(interval_metric="coverage")
    assert (n == REPS).all()
    assert np.isfinite(study["estimate"]).all()
    for phase in ("mlob", "ml", "mcmc", "mlob_bootstrap"):
        assert (study["seconds"].sel(phase=phase) > 0).all()
    # J = 10, n = 5 with 100 draws has divergent transitions: the flag reaches the counts
    assert int(study["counts"].sel(estimator="mcmc", count="n_divergent", J=10).sum()) > 0
    assert json.loads(study.attrs["mcmc_kwargs"])["draws"] == 100
    # the study's MCMC prior is stored with the results
    assert json.loads(study.attrs["mcmc_kwargs"])["prior_slope_sd"] == 2.5
    assert study.attrs["n_boot"] == 40


@pytest.mark.mcmc
def test_arms_equal_the_batched_estimators_called_directly(study):
    from mlob_pp import mcmc_batch, ml_batch, mlob_batch

    cell = dict(icc_x=0.3, J=20, n=5, beta_b=0.5, beta_w=0.2, gamma=0.3, rho_c=0.4, tau2=0.1,
                sigma2=0.6)
    y, x, c = simulate_replications(cell, 0, REPS, random_seed=5)
    rep = study.sel(J=20).squeeze()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cf = mlob_batch(y, x, c, warn=False)
        ml = ml_batch(y, x, c)
        mc = mcmc_batch(y, x, c, random_seed=[arm_seed(5, cell, r, "mcmc") for r in range(REPS)],
                        target_accept=0.95, prior_slope_sd=2.5, **MCMC)
    np.testing.assert_allclose(rep["estimate"].sel(estimator="mlob"), cf.beta_b, rtol=1e-12)
    np.testing.assert_allclose(rep["estimate"].sel(estimator="ml_moments"), cf.beta_b_ml,
                               rtol=1e-12)
    np.testing.assert_allclose(rep["estimate"].sel(estimator="ml"), ml.beta_b, rtol=1e-12)
    np.testing.assert_allclose(rep["interval_lower"].sel(interval="ml_profile"),
                               ml.profile_lower, rtol=1e-12)
    np.testing.assert_allclose(rep["estimate"].sel(estimator="mcmc"), mc.beta_b, rtol=1e-10)
    np.testing.assert_allclose(rep["ci_upper"].sel(estimator="mcmc"), mc.ci_upper, rtol=1e-10)
    # coverage of the MCMC interval, from the stored intervals
    lo, hi = mc.ci_lower, mc.ci_upper
    cov = rep["interval_value"].sel(interval="mcmc_credible", interval_metric="coverage")
    assert float(cov) == pytest.approx(np.mean((lo <= 0.5) & (0.5 <= hi)))
    n_bad = int(np.sum(~((mc.rhat <= 1.01) & (mc.ess_bulk >= 400)) | ~mc.converged))
    assert int(rep["counts"].sel(estimator="mcmc", count="n_nonconverged")) == n_bad
    assert int(rep["counts"].sel(estimator="mcmc", count="n_divergent")) == int(
        np.sum(mc.n_divergent > 0))


@pytest.mark.mcmc
def test_mcmc_arm_does_not_depend_on_chunk_size(study):
    small = run_study({**DESIGN, "J": (10,)}, replications=REPS, random_seed=5, progress=False,
                      chunk_size=2, estimators=["mcmc"], mcmc_kwargs=MCMC,
                      keep_replications=True)
    for name in ("estimate", "ci_lower", "ci_upper"):
        np.testing.assert_array_equal(small[name].sel(J=10, estimator="mcmc").squeeze(),
                                      study[name].sel(J=10, estimator="mcmc").squeeze())
