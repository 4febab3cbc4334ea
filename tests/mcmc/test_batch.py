"""Tests of mlob_pp.mcmc_batch: log density, recovery, calibration, errors (issue 13 part 2-3)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mlob_pp
from mlob_pp.mcmc import density as dens
from mlob_pp.simulate import simulate_arrays

pytest.importorskip("blackjax")

# one compiled configuration shared by the sampling tests (compiling costs ~20-40 s)
SMALL = {"draws": 250, "tune": 250, "chains": 4}


def _pymc_point(theta: np.ndarray, k: int) -> dict[str, np.ndarray]:
    point = {
        "alpha_z": theta[0], "mu_z": theta[1:2], "beta_b_z": theta[2:3], "beta_w_z": theta[3:4],
        "tau_z_log__": theta[4 + k], "sigma_z_log__": theta[5 + k],
        "tau_x_z_log__": theta[6 + k], "sigma_x_z_log__": theta[7 + k],
    }
    if k:
        point["gamma_z"] = theta[4 : 4 + k]
    return point


@pytest.mark.filterwarnings("ignore:.*could not link to a BLAS:UserWarning")
@pytest.mark.parametrize(("k", "slope_sd"), [(0, 5.0), (2, 5.0), (1, 2.5)])
def test_jax_log_density_equals_pymc_model(k, slope_sd):
    """JAX density from summary numbers == PyMC model logp (jacobian=True) at random points.

    PyMC rounds log(sqrt(2 pi)) in its normal log densities (a constant of ~3e-8 per prior
    term, independent of the parameters), so the two are compared up to one additive constant
    (bounded by 1e-6) and point-to-point differences must agree to 1e-8.
    """
    from mlob_pp.models import latent_covariate as lc

    lc.import_pymc()
    rng = np.random.default_rng(7)
    J, n = 9, 4
    y, x, c, _ = simulate_arrays((2,), J, n, rng, beta_b=0.7, beta_w=0.2, gamma=[0.3] * k,
                                 phi_w=[0.4] * k, phi_b=[0.2] * k)
    stats = dens.batch_statistics(y, x, c if k else None)
    jax = dens.import_jax()
    logdensity = jax.jit(dens.make_logdensity(k, slope_sd))
    for b in range(2):
        codes = np.repeat(np.arange(J), n)
        ss = lc.sufficient_statistics(y[b].ravel(), x[b].ravel(), c[b].reshape(J * n, k), codes,
                                      J, term_names=tuple(f"c{i}" for i in range(k)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = lc.build_model(ss, slope_sd=slope_sd)
            logp = model.compile_logp(jacobian=True)
        thetas = rng.normal(0.0, 0.8, (6, dens.n_parameters(k)))
        ref = np.array([float(logp(_pymc_point(t, k))) for t in thetas])
        ours = np.array([float(logdensity(t, stats["within"][b], stats["between"][b],
                                          stats["mbar"][b], stats["J"], stats["n"]))
                         for t in thetas])
        ours_np = np.array([dens.logdensity_numpy(t, stats, b, slope_sd) for t in thetas])
        np.testing.assert_allclose(ours, ours_np, rtol=1e-12)
        offset = ref - ours
        assert abs(offset[0]) < 1e-6
        np.testing.assert_allclose(offset - offset[0], 0.0, atol=1e-8)
        assert np.ptp(ref) > 1.0  # the points differ enough for the check to mean something


def test_slope_prior_sd_changes_the_density_by_the_normal_log_density_ratio():
    """log p(theta; slope SD 2.5) - log p(theta; 5) = sum over the 2 + k slopes of
    log N(b; 0, 2.5) - log N(b; 0, 5), computed by hand with SciPy."""
    from scipy import stats as st

    rng = np.random.default_rng(3)
    y, x, c, _ = simulate_arrays((1,), 8, 5, rng, beta_b=0.5, beta_w=0.2, gamma=[0.3],
                                 phi_w=[0.3], phi_b=[0.3])
    stats = dens.batch_statistics(y, x, c)
    theta = rng.normal(0.0, 1.5, dens.n_parameters(1))
    slopes = theta[[2, 3, 4]]
    by_hand = np.sum(st.norm.logpdf(slopes, 0, 2.5) - st.norm.logpdf(slopes, 0, 5.0))
    diff = dens.logdensity_numpy(theta, stats, 0, 2.5) - dens.logdensity_numpy(theta, stats, 0)
    assert diff == pytest.approx(by_hand, rel=1e-12)
    assert dens.priors(2.5)["gamma_z"] == "Normal(0, 2.5)" and dens.PRIORS["beta_b_z"] == (
        "Normal(0, 5)")


@pytest.fixture(scope="module")
def recovery():
    rng = np.random.default_rng(11)
    truth = {"beta_b": 0.8, "beta_w": 0.3, "tau2": 0.2, "sigma2": 1.0, "tau2_x": 0.5,
             "sigma2_x": 1.0}
    y, x, c, _ = simulate_arrays((8,), 40, 20, rng, gamma=[0.4], phi_w=[0.3], phi_b=[0.3],
                                 **truth)
    return truth, mlob_pp.mcmc_batch(y, x, c, random_seed=3, **SMALL), (y, x, c)


def test_vectorised_nuts_recovers_parameters(recovery):
    truth, res, _ = recovery
    assert res.beta_b.shape == res.se_beta_b.shape == res.rhat.shape == (8,)
    assert np.all(res.rhat < 1.02) and np.all(res.ess_bulk > 300)
    for name in ("beta_b", "beta_w", "tau2", "sigma2", "tau2_x", "sigma2_x"):
        est, sd = res.estimates[name], res.std_errors[name]
        # the mean over 8 data sets is within 3.5 (SD / sqrt 8) of the truth
        assert abs(est.mean() - truth[name]) < 3.5 * sd.mean() / np.sqrt(8) + 0.02, name
    assert np.all(res.ci_lower < res.beta_b) and np.all(res.beta_b < res.ci_upper)
    assert res.attrs["priors"]["beta_b_z"] == "Normal(0, 5)"
    assert res.attrs["settings"]["draws"] == SMALL["draws"]


@pytest.mark.slow
@pytest.mark.mcmc
def test_batch_agrees_with_pymc_posterior_on_one_data_set(recovery):
    """Posterior mean/SD of beta_b agree with fit_mcmc (PyMC + nutpie) on the same data."""
    pytest.importorskip("nutpie")
    import pandas as pd

    _, res, (y, x, c) = recovery
    J, n = y.shape[1:]
    frame = pd.DataFrame({"y": y[0].ravel(), "x": x[0].ravel(), "c1": c[0, ..., 0].ravel(),
                          "g": np.repeat(np.arange(J), n)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = mlob_pp.fit_mcmc("y ~ x + c1", frame, "g", draws=1000, tune=500, chains=4,
                               random_seed=1)
    row = ref.to_frame().loc["beta_b"]
    assert abs(res.beta_b[0] - row["estimate"]) < 0.15 * row["std_error"] + 1e-3
    assert abs(res.se_beta_b[0] / row["std_error"] - 1) < 0.12


def test_seed_reproducible(recovery):
    _, res, (y, x, c) = recovery
    again = mlob_pp.mcmc_batch(y[:2], x[:2], c[:2], random_seed=3, **SMALL)
    other = mlob_pp.mcmc_batch(y[:2], x[:2], c[:2], random_seed=3, **SMALL)
    np.testing.assert_array_equal(again.beta_b, other.beta_b)


def test_data_set_draws_do_not_depend_on_batch_companions():
    """With one seed per data set, a data set's posterior summary is the same whether it is
    sampled alone, with others, or in another order (reruns included: J = 5, n = 5 data sets
    often miss the ESS rule)."""
    rng = np.random.default_rng(4)
    y, x, c, _ = simulate_arrays((5,), 5, 5, rng, beta_b=0.5, beta_w=0.2, tau2_x=0.1)
    seeds = [11, 12, 13, 14, 15]
    opts = {"draws": 100, "tune": 100, "chains": 2, "batch_size": 2}
    whole = mlob_pp.mcmc_batch(y, x, c, random_seed=seeds, **opts)
    assert whole.n_rerun > 0  # the check covers reruns
    sub = [3, 0]
    part = mlob_pp.mcmc_batch(y[sub], x[sub], c[sub], random_seed=[seeds[i] for i in sub],
                              **opts)
    for name in ("beta_b", "se_beta_b", "ci_lower", "ci_upper", "rhat", "n_reruns"):
        np.testing.assert_array_equal(getattr(part, name), getattr(whole, name)[sub])
    one = mlob_pp.mcmc_batch(y[4:], x[4:], c[4:], random_seed=[15], **opts)
    assert one.beta_b[0] == whole.beta_b[4]
    # an int seed spawns child i for data set i: the same as passing those children
    spawned = mlob_pp.mcmc_batch(y[:2], x[:2], c[:2], random_seed=7, **opts)
    children = [np.random.SeedSequence(7, spawn_key=(i,)) for i in range(2)]
    explicit = mlob_pp.mcmc_batch(y[:2], x[:2], c[:2], random_seed=children, **opts)
    np.testing.assert_array_equal(spawned.beta_b, explicit.beta_b)


def test_seed_sequence_of_wrong_length_is_refused():
    y = np.random.default_rng(0).normal(size=(2, 5, 4))
    with pytest.raises(ValueError, match=r"one seed per data set \(2\); got 3"):
        mlob_pp.mcmc_batch(y, y + 1.0, random_seed=[1, 2, 3])
    with pytest.raises(TypeError, match=r"`random_seed\[1\]` must be None, a non-negative int"):
        mlob_pp.mcmc_batch(y, y + 1.0, random_seed=[1, "a"])
    with pytest.raises(ValueError, match=r"`random_seed\[0\]` must be a non-negative integer"):
        mlob_pp.mcmc_batch(y, y + 1.0, random_seed=[-1, 2])


def test_small_sbc_ranks_are_uniform():
    from mlob_pp.mcmc.sbc import run_sbc

    # the study's prior (slopes Normal(0, 2.5)): the prior draws and the sampler must agree
    res = run_sbc(60, J=20, n=10, k=1, n_ranked=99, random_seed=5, prior_slope_sd=2.5, **SMALL)
    assert res.fit.attrs["priors"]["beta_b_z"] == "Normal(0, 2.5)"
    assert np.std(res.truth["beta_b"]) < 3.5  # drawn from Normal(0, 2.5), not Normal(0, 5)
    for name, p in res.pvalues.items():
        assert p > 0.001, (name, p, np.bincount(res.ranks[name] // 10, minlength=10))
    # a wrong posterior scale is caught: ranks of a shifted truth are far from uniform
    shifted = {name: (r.copy()) for name, r in res.ranks.items()}
    from mlob_pp.mcmc.sbc import _ranks, uniformity_pvalue

    bad = _ranks(res.fit.draws["beta_b"], res.truth["beta_b"] + 2 * res.fit.se_beta_b, 99)
    assert uniformity_pvalue(bad, 99) < 1e-6
    assert shifted


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((np.zeros((2, 5)), np.zeros((2, 5))), {}, ValueError, r"`y` must be an array shaped"),
        ((np.ones((2, 5, 3)), np.zeros((2, 5, 4))), {}, ValueError, r"`x` must have the shape"),
        ((np.ones((2, 2, 3)), np.ones((2, 2, 3))), {}, ValueError, r"J >= 3 groups"),
        ("nan", {}, ValueError, r"`y` has NaN or infinite values in data sets \[1\]"),
        ("const_y", {}, ValueError, r"`y` is constant in data sets \[0\]"),
        ("x_between", {}, ValueError, r"`x` is constant within groups in data sets \[1\]"),
        ("ok", {"draws": 5}, ValueError, r"draws"),
        ("ok", {"random_seed": "a"}, TypeError, r"random_seed"),
        ("ok", {"conf_level": 1.5}, ValueError, r"conf_level"),
        ("ok", {"prior_slope_sd": 0}, ValueError,
         r"`prior_slope_sd` must be a finite number greater than 0; got 0.0"),
        ("ok", {"prior_slope_sd": "wide"}, TypeError, r"`prior_slope_sd` must be a number"),
    ],
)
def test_bad_input_raises_before_sampling(args, kwargs, error, match):
    rng = np.random.default_rng(0)
    y, x, _, _ = simulate_arrays((2,), 6, 4, rng, beta_b=0.5, beta_w=0.2)
    if args == "nan":
        y[1, 0, 0] = np.nan
        args = (y, x)
    elif args == "const_y":
        y[0] = 3.0
        args = (y, x)
    elif args == "x_between":
        x[1] = np.repeat(rng.normal(size=(6, 1)), 4, axis=1)
        args = (y, x)
    elif args == "ok":
        args = (y, x)
    with pytest.raises(error, match=match):
        mlob_pp.mcmc_batch(*args, **kwargs)


def test_import_does_not_import_jax():
    import subprocess
    import sys

    code = ("import sys, mlob_pp, mlob_pp.mcmc.batch, mlob_pp.mcmc.sbc; "
            "mlob_pp.mcmc_batch; print('jax' in sys.modules, 'blackjax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]
