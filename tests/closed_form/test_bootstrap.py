"""Tests of mlob_pp.closed_form.bootstrap: generator, compiled refit, intervals, seeding, errors."""

from __future__ import annotations

import numpy as np
import pytest

from mlob_pp.closed_form.bootstrap import (
    BootstrapResult,
    GeneratingModel,
    bootstrap_batch,
    bootstrap_interval,
    fit_generating_model,
    inversion_interval,
    inversion_roots,
    parametric_bootstrap,
    refit,
    simulate_bootstrap,
)
from mlob_pp.closed_form.core import mlob_batch
from mlob_pp.comparisons.study.design import simulate_batch
from mlob_pp.warnings import NumericalWarning


def _cell(**kw):
    p = dict(icc_x=0.1, J=20, n=15, beta_b=0.5, beta_w=0.2, gamma=0.3, rho_c=0.4, tau2=0.1,
             sigma2=0.6)
    p.update(kw)
    return p


@pytest.fixture
def data(rng):
    y, x, c = simulate_batch(_cell(), 1, rng)
    return y[0], x[0], c[0]


# --------------------------------------------------------------------- compiled refit
@pytest.mark.parametrize("mode", ["r", "stable"])
@pytest.mark.parametrize(("J", "n", "icc"), [(10, 5, 0.05), (20, 15, 0.3), (40, 30, 0.1),
                                             (6, 2, 0.05)])
def test_refit_equals_core(rng, mode, J, n, icc):
    y, x, c = simulate_batch(_cell(J=J, n=n, icc_x=icc), 300, rng)
    core = mlob_batch(y, x, c, mode=mode, warn=False)
    b, bml, g = refit(y, x, c, mode=mode)
    np.testing.assert_array_equal(b, core.beta_b)
    np.testing.assert_array_equal(bml, core.beta_b_ml)
    np.testing.assert_array_equal(g, core.gamma)


def test_refit_equals_core_without_covariates_and_degenerate(rng):
    y, x, _ = simulate_batch(_cell(J=8, n=4), 200, rng)
    y[0] *= 1e-12  # below R's absolute 1e-7 thresholds: degenerate branch (R: beta_b = 0)
    for mode in ("r", "stable"):
        core = mlob_batch(y, x, mode=mode, warn=False)
        b, bml, g = refit(y, x, mode=mode)
        np.testing.assert_array_equal(b, core.beta_b)
        assert g.shape == (200, 0)


def test_refit_stable_equals_core_for_j5(rng):
    # R's bit emulation (mode="r", J = 3, 5) is not applied to refits; "stable" is exact
    y, x, c = simulate_batch(_cell(J=5, n=15), 200, rng)
    core = mlob_batch(y, x, c, mode="stable", warn=False)
    np.testing.assert_array_equal(refit(y, x, c, mode="stable")[0], core.beta_b)


# --------------------------------------------------------------------- generator
def test_generator_recovers_parameters():
    truth = GeneratingModel(
        mu_x=0.3, tau2_x=0.4, sigma2_x=0.8, alpha=0.1, beta_b=0.6, beta_w=0.2, tau2=0.15,
        sigma2=0.5, gamma=np.array([0.3]), phi_b=np.array([0.5]), phi_w=np.array([0.4]),
        c_resid=np.random.default_rng(3).normal(0, 0.9, size=(2000, 20, 1)), center="mlob",
    )
    y, x, c = simulate_bootstrap(truth, 1, np.random.default_rng(4))
    est = fit_generating_model(y[0], x[0], c[0], center="ml")
    tol = {"mu_x": 0.05, "tau2_x": 0.04, "sigma2_x": 0.02, "beta_b": 0.04, "beta_w": 0.02,
           "tau2": 0.02, "sigma2": 0.02, "alpha": 0.06}
    for name, atol in tol.items():
        assert getattr(est, name) == pytest.approx(getattr(truth, name), abs=atol), name
    np.testing.assert_allclose(est.gamma, truth.gamma, atol=0.01)
    np.testing.assert_allclose(est.phi_b, truth.phi_b, atol=0.05)
    np.testing.assert_allclose(est.phi_w, truth.phi_w, atol=0.01)
    assert not any(est.truncated.values())


def test_generator_keeps_shape_and_fixed_covariate_residual(data):
    y, x, c = data
    model = fit_generating_model(y, x, c)
    assert model.shape == (20, 15, 1)
    yb, xb, cb = simulate_bootstrap(model, 7, np.random.default_rng(1))
    assert yb.shape == xb.shape == (7, 20, 15) and cb.shape == (7, 20, 15, 1)
    # the covariate minus its regression on x is the same in every bootstrap data set
    xbar = xb.mean(axis=2, keepdims=True)
    resid = (cb[..., 0] - model.phi_b[0] * (xbar - xbar.mean(axis=1, keepdims=True))
             - model.phi_w[0] * (xb - xbar))
    np.testing.assert_allclose(resid, np.broadcast_to(model.c_resid[..., 0], resid.shape),
                               atol=1e-12)
    # the data set's own decomposition reproduces the covariates exactly
    xbar0 = x.mean(axis=1, keepdims=True)
    back = (model.c_resid[..., 0] + model.phi_b[0] * (xbar0 - xbar0.mean())
            + model.phi_w[0] * (x - xbar0))
    np.testing.assert_allclose(back, c[..., 0], atol=1e-12)


def test_generator_truncates_negative_between_variance(rng):
    x = rng.normal(size=(6, 10))
    x -= 0.97 * x.mean(axis=1, keepdims=True)  # nearly equal group means: tau_x < 0
    y = 0.3 * x + rng.normal(size=(6, 10))
    model = fit_generating_model(y, x)
    assert model.truncated["tau2_x"]
    assert model.tau2_x == pytest.approx(0.05 * model.sigma2_x / 10)
    assert model.tau2 > 0 and model.sigma2 > 0


# --------------------------------------------------------------------- intervals
def test_intervals_on_normal_draws():
    draws = np.random.default_rng(0).normal(1.0, 2.0, size=(1, 200_000))
    lo, hi = bootstrap_interval(draws, 1.0, 0.95, "percentile")
    assert lo[0] == pytest.approx(1.0 - 1.96 * 2.0, abs=0.03)
    assert hi[0] == pytest.approx(1.0 + 1.96 * 2.0, abs=0.03)
    # z0 = 0 at the median: bc equals percentile
    blo, bhi = bootstrap_interval(draws, np.median(draws), 0.95, "bc")
    assert blo[0] == pytest.approx(lo[0], abs=1e-3) and bhi[0] == pytest.approx(hi[0], abs=1e-3)
    # basic reflects the percentile interval about the estimate
    rlo, rhi = bootstrap_interval(draws, 2.0, 0.95, "basic")
    assert rlo[0] == pytest.approx(4.0 - hi[0]) and rhi[0] == pytest.approx(4.0 - lo[0])


def test_bc_shifts_towards_estimate():
    # draws centred below the estimate (shrinkage): bc moves the interval up
    draws = np.random.default_rng(0).normal(0.0, 1.0, size=(1, 100_000))
    plo, phi = bootstrap_interval(draws, 0.5, 0.95, "percentile")
    blo, bhi = bootstrap_interval(draws, 0.5, 0.95, "bc")
    assert blo[0] > plo[0] and bhi[0] > phi[0]
    # z0 = Phi^-1(P(draw < 0.5)) = 0.5: quantiles Phi(1 -+ 1.96) of N(0, 1), i.e. 1 -+ 1.96
    assert blo[0] == pytest.approx(1.0 - 1.96, abs=0.05)
    assert bhi[0] == pytest.approx(1.0 + 1.96, abs=0.05)


def test_inversion_roots_linear_and_flat():
    draws = np.array([[0.1, 0.3, 0.5, 0.2]])
    lam, h = 0.8, 0.25
    up = draws + lam * h
    up[0, 3] = draws[0, 3]  # flat: no information
    roots = inversion_roots(draws, up, h, 0.4, 0.35)
    np.testing.assert_allclose(roots[0, :3], 0.4 + (0.35 - draws[0, :3]) / lam)
    assert roots[0, 3] == np.inf  # stays below the estimate for every slope
    lo, hi = inversion_interval(roots, 0.5)
    assert np.isfinite(lo[0]) and hi[0] == np.inf
    # flat AND equal to the estimate (R's fallback: every refit 0): any slope reproduces it,
    # so these replicates widen both ends (alternating +inf, -inf), never [-inf, -inf]
    flat = inversion_roots(np.zeros((1, 4)), np.zeros((1, 4)), h, 0.0, 0.0)
    np.testing.assert_array_equal(flat[0], [np.inf, -np.inf, np.inf, -np.inf])
    lo, hi = inversion_interval(flat, 0.95)
    assert lo[0] == -np.inf and hi[0] == np.inf


def test_inversion_interval_is_unbounded_when_an_infinite_root_enters_the_quantile():
    """A quantile that interpolates between a finite and an infinite root is infinite.

    Roots 0..98 and one +inf (100 roots): the 97.5 % quantile lies at position 96.525, between
    the finite roots 96 and 97 (finite, 96.525); the 99.5 % quantile (conf_level 0.99) lies at
    98.505, i.e. half-way to the infinite root: unbounded, not 0.495 * 1e300 as a fixed
    threshold on a 1e300 stand-in gave (the study's bootstrap arm reported 2.5e298).
    """
    roots = np.concatenate([np.arange(99.0), [np.inf]])[None, :]
    lo, hi = inversion_interval(roots, 0.95)
    assert lo[0] == pytest.approx(0.0 + 0.025 * 99) and hi[0] == pytest.approx(96.525)
    lo, hi = inversion_interval(roots, 0.99)
    assert np.isfinite(lo[0]) and hi[0] == np.inf
    lo, hi = inversion_interval(-roots, 0.99)
    assert lo[0] == -np.inf and np.isfinite(hi[0])
    # exactly on a finite root: no weight on the infinite one, so finite
    roots = np.concatenate([np.arange(40.0), [np.inf]])[None, :]  # 97.5 % at position 39.0
    assert inversion_interval(roots, 0.95)[1][0] == 39.0


def test_random_state_is_deprecated_but_works(data):
    y, x, c = data
    new = parametric_bootstrap(y, x, c, n_boot=200, random_seed=4)
    with pytest.warns(DeprecationWarning, match=r"`random_state` is deprecated .* use "
                                                r"`random_seed`"):
        old = parametric_bootstrap(y, x, c, n_boot=200, random_state=4)
    np.testing.assert_array_equal(new.draws_beta_b, old.draws_beta_b)


def test_inversion_covers_the_unshrunk_slope():
    # well-identified data: the inversion interval sits above the shrunken estimate, as
    # the estimator's bias requires, and is finite
    p = _cell(J=40, n=30, icc_x=0.5)
    y, x, c = simulate_batch(p, 1, np.random.default_rng(5))
    res = parametric_bootstrap(y[0], x[0], c[0], n_boot=400, random_seed=2)
    perc = parametric_bootstrap(y[0], x[0], c[0], n_boot=400, random_seed=2,
                                interval="percentile")
    assert np.isfinite(res.ci_lower) and np.isfinite(res.ci_upper)
    assert res.ci_upper > perc.ci_upper and res.ci_lower > perc.ci_lower
    assert np.mean(res.draws_beta_b) < res.estimate  # the refits shrink further


# --------------------------------------------------------------------- front end
def test_parametric_bootstrap_result(data):
    y, x, c = data
    res = parametric_bootstrap(y, x, c, n_boot=300, random_seed=1)
    assert isinstance(res, BootstrapResult)
    assert res.interval == "inversion" and res.n_boot == 300 and res.n_failed == 0
    assert res.roots.shape == (300,)
    assert 0.0 <= res.p_value <= 1.0
    assert (res.p_value < 0.05) == (res.ci_lower > 0 or res.ci_upper < 0)
    assert res.draws_beta_b.shape == (300,) and res.draws_gamma.shape == (300, 1)
    assert res.estimate == mlob_batch(y, x, c, warn=False).beta_b[0]
    assert res.ci_lower < res.estimate < res.ci_upper
    assert res.se_beta_b == pytest.approx(np.std(res.draws_beta_b, ddof=1))
    assert res.ci_lower_gamma[0] < res.gamma[0] < res.ci_upper_gamma[0]
    assert 0.01 < res.se_gamma[0] < 0.1
    assert "inversion interval" in str(res) and "inversion, n_boot=300" in res.method
    bc = parametric_bootstrap(y, x, c, n_boot=300, random_seed=1, interval="bc")
    assert bc.roots is None and "bc interval" in str(bc)


def test_seed_reproducible_and_independent_of_n_jobs(data):
    y, x, c = data
    a = parametric_bootstrap(y, x, c, n_boot=600, random_seed=7)
    b = parametric_bootstrap(y, x, c, n_boot=600, random_seed=7, n_jobs=2)
    c2 = parametric_bootstrap(y, x, c, n_boot=600, random_seed=np.random.default_rng(7))
    d = parametric_bootstrap(y, x, c, n_boot=600, random_seed=8)
    np.testing.assert_array_equal(a.draws_beta_b, b.draws_beta_b)
    assert (a.ci_lower, a.ci_upper) == (b.ci_lower, b.ci_upper)
    assert not np.array_equal(a.draws_beta_b, d.draws_beta_b)
    assert np.isfinite(c2.se_beta_b)


def test_interval_methods_share_draws(data):
    y, x, c = data
    res = {m: parametric_bootstrap(y, x, c, n_boot=200, random_seed=3, interval=m)
           for m in ("inversion", "bc", "percentile", "basic")}
    np.testing.assert_array_equal(res["bc"].draws_beta_b, res["basic"].draws_beta_b)
    np.testing.assert_array_equal(res["bc"].draws_beta_b, res["inversion"].draws_beta_b)
    lo, hi = bootstrap_interval(res["bc"].draws_beta_b, res["bc"].estimate, 0.95, "percentile")
    assert (res["percentile"].ci_lower, res["percentile"].ci_upper) == (lo, hi)


def test_without_covariates_and_stable_mode(rng):
    y, x, _ = simulate_batch(_cell(J=5, n=5), 1, rng)
    res = parametric_bootstrap(y[0], x[0], n_boot=200, random_seed=1, mode="stable",
                               center="ml")
    assert res.gamma.shape == (0,) and res.draws_gamma.shape == (200, 0)
    assert res.center == "ml" and res.mode == "stable"


def test_bootstrap_batch_matches_shapes(rng):
    y, x, c = simulate_batch(_cell(J=10, n=5), 4, rng)
    out = bootstrap_batch(y, x, c, n_boot=50, random_seed=1, max_elements=1000)
    assert out["draws_beta_b"].shape == (4, 50)
    np.testing.assert_array_equal(out["beta_b"], mlob_batch(y, x, c, warn=False).beta_b)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"n_boot": 0}, ValueError, r"`n_boot` must be an integer >= 1; got 0"),
        ({"n_boot": 2.5}, TypeError, r"`n_boot` must be an integer; got 2.5"),
        ({"interval": "bca"}, ValueError,
         r"`interval` must be one of 'inversion', 'bc', 'percentile', 'basic'; got 'bca'"),
        ({"center": "mean"}, ValueError, r"`center` must be one of 'mlob', 'ml'; got 'mean'"),
        ({"mode": "R"}, ValueError, r"`mode` must be one of 'r', 'stable'; got 'R'"),
        ({"n_jobs": 3}, ValueError, r"`n_jobs` must be 1 or 2 \(this machine has 2 cores\); "
                                    r"got 3"),
        ({"conf_level": 95}, ValueError, r"`conf_level` must be strictly between 0 and 1"),
        ({"n_boot": 1}, ValueError, r"`n_boot` must be at least 200 for a 95 % bootstrap "
                                    r"interval .*; got 1"),
        ({"n_boot": 199}, ValueError, r"`n_boot` must be at least 200 .* got 199"),
        ({"n_boot": 99, "conf_level": 0.9}, ValueError,
         r"`n_boot` must be at least 100 for a 90 % bootstrap interval"),
        ({"random_seed": -1}, ValueError,
         r"`random_seed` must be a non-negative integer seed; got -1"),
        ({"random_seed": "a"}, TypeError, r"`random_seed` must be None, a non-negative int, a "
                                          r"numpy Generator, a numpy SeedSequence .* got str"),
        ({"random_seed": 1, "random_state": 1}, TypeError,
         r"parametric_bootstrap\(\) got both `random_state` \(deprecated\) and `random_seed`"),
        ({"seed": 1}, TypeError, r"unexpected keyword argument\(s\) `seed`"),
    ],
)
def test_errors(data, kwargs, exc, match):
    y, x, c = data
    with pytest.raises(exc, match=match):
        parametric_bootstrap(y, x, c, **kwargs)


def test_shape_errors(data):
    y, x, c = data
    with pytest.raises(ValueError, match=r"`x` and `y` must be arrays of the same shape \(J, n\)"):
        parametric_bootstrap(y[None], x[None])
    with pytest.raises(ValueError, match=r"`covariates` must have shape \(J, n, k\) matching x"):
        parametric_bootstrap(y, x, c[:3])
    with pytest.raises(ValueError, match=r"need at least 2 groups of at least 2 members"):
        parametric_bootstrap(y[:1], x[:1])
    y2 = y.copy()
    y2[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"`y` contains non-finite values"):
        parametric_bootstrap(y2, x, c)


# --------------------------------------------------------------------- calibration
@pytest.mark.slow
def test_coverage_sanity_one_cell():
    """200 replications of J = 20, n = 15, ICC 0.3: the inversion interval covers 90-99 %."""
    p = _cell(J=20, n=15, icc_x=0.3)
    y, x, c = simulate_batch(p, 200, np.random.default_rng(11))
    out = bootstrap_batch(y, x, c, n_boot=200, random_seed=12)
    lo, hi = inversion_interval(out["roots"], 0.95)
    cover = np.mean((lo <= 0.5) & (0.5 <= hi))
    assert 0.90 <= cover <= 0.99


# --------------------------------------------------------------------- degenerate (issue 12)
def test_zero_variance_fallback_never_gives_se_zero_and_minus_inf_interval(rng):
    """mode='r', y on a scale below R's absolute 1e-7 thresholds: every refit is R's 0."""
    y, x, c = simulate_batch(_cell(J=10, n=5), 1, rng)
    with pytest.warns(NumericalWarning, match="all refits gave the same estimate"):
        res = parametric_bootstrap(y[0] * 1e-12, x[0], n_boot=200, random_seed=1)
    assert np.all(res.draws_beta_b == 0.0) and res.estimate == 0.0
    assert np.isnan(res.se_beta_b)
    assert (res.ci_lower, res.ci_upper) == (-np.inf, np.inf)
    assert "no_variation" in res.flags and "unbounded" in res.flags
    assert "no bootstrap SE" in str(res)


def test_bootstrap_result_protocol(data):
    from mlob_pp.results import EstimatorResult

    y, x, c = data
    res = parametric_bootstrap(y, x, c, n_boot=200, random_seed=1, covariate_names=("c",))
    assert isinstance(res, EstimatorResult)
    frame = res.to_frame()
    assert list(frame.index) == ["beta_b", "gamma_c"]
    assert frame.loc["beta_b", "ci_lower"] == res.ci_lower
    assert res.params["beta_b"] == res.estimate and res.bse["beta_b"] == res.se_beta_b
    ci = res.conf_int()
    assert ci.loc["beta_b", "upper"] == res.ci_upper
    with pytest.raises(ValueError, match=r"`level` must equal the fit's conf_level"):
        res.conf_int(0.9)
    assert len(repr(res).splitlines()) == 1 and len(repr(res)) < 200
    tree = res.to_datatree()
    assert "posterior" not in tree.children
    assert tree["bootstrap"]["beta_b"].dims == ("replicate",)
    assert tree["bootstrap"].sizes["replicate"] == 200
    assert float(tree["estimate"]["estimate"].sel(term="beta_b")) == res.estimate
    assert tree["estimate"].attrs["interval_method"] == "bootstrap_inversion"
    assert str(res.summary()) == str(res)
