"""The sufficient-statistics engine, the shared call, scale equivariance and identification.

Tolerances
----------
* Sufficient statistics vs statsmodels' MixedLM (Powell, polished by BFGS): rel 1e-6 on fixed
  effects, their SEs, variance components, variance SEs and the log-likelihood (observed 2e-7
  to 6e-7 on HSB; issue 15).
* Equivariance under shifting (1e9) and rescaling (1e-12, 1e6): rel 1e-6 (the arithmetic is
  scale free; what is left is the rounding of the shifted data themselves, 1e9 + y keeps y to
  ~1e-7, and the optimizer's stopping point in the flat direction; observed 5e-8).
* Variance-component SEs with random slopes vs a dense, group-by-group REML/ML likelihood
  written here (Cholesky of every V_j) and differentiated by central differences: rel 1e-4
  (the reference's own difference error is about 1e-6).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlob_pp
from mlob_pp.variability import contextual_model, means_as_outcomes, null_model
from mlob_pp.warnings import BoundaryWarning, SingularFitWarning


@pytest.fixture(scope="module")
def hsb() -> pd.DataFrame:
    return mlob_pp.datasets.load("hsb")


def _unbalanced(seed: int, J: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 40, J)
    g = np.repeat(np.arange(J), sizes)
    x = rng.normal(size=J)[g] + rng.normal(size=g.size)
    c = rng.normal(size=g.size)
    xbar = pd.Series(x).groupby(g).transform("mean").to_numpy()
    y = (2.0 + 0.4 * (x - xbar) + 1.1 * xbar + 0.3 * c + rng.normal(0, 0.8, J)[g]
         + rng.normal(size=g.size))
    return pd.DataFrame({"y": y, "x": x, "c": c, "g": [f"s{k}" for k in g]})


def _assert_same(a, b, rtol=1e-6):
    for name in ("fe", "cov_re", "sigma2", "llf"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, err_msg=name)
    np.testing.assert_allclose(np.sqrt(np.diag(a.cov_fe)), np.sqrt(np.diag(b.cov_fe)),
                               rtol=rtol, err_msg="fixed-effect SEs")
    np.testing.assert_allclose(a.variance_se, b.variance_se, rtol=rtol, err_msg="variance SEs")


# --------------------------------------------------------------------------- engines agree
@pytest.mark.parametrize("method", ["reml", "ml"])
def test_sufficient_statistics_equal_statsmodels_on_hsb(hsb, method):
    fast = null_model("mAch ~ 1", hsb, "school", method=method)
    slow = null_model("mAch ~ 1", hsb, "school", method=method, engine="statsmodels")
    assert fast.fit.optimizer["engine"] == "sufficient"
    assert slow.fit.optimizer["engine"] == "statsmodels"
    _assert_same(fast.fit, slow.fit)
    ctx_fast = contextual_model("mAch ~ ses + (1 | school)", hsb, method=method)
    ctx_slow = contextual_model("mAch ~ ses + (1 | school)", hsb, method=method,
                                engine="statsmodels")
    _assert_same(ctx_fast.fit, ctx_slow.fit)
    np.testing.assert_allclose(ctx_fast.to_frame()["std_error"],
                               ctx_slow.to_frame()["std_error"], rtol=1e-6)


@pytest.mark.parametrize(("seed", "method"), [(1, "reml"), (2, "ml")])
def test_sufficient_statistics_equal_statsmodels_on_simulated_data(seed, method):
    df = _unbalanced(seed)
    fast = contextual_model("y ~ x + c", df, "g", method=method)
    slow = contextual_model("y ~ x + c", df, "g", method=method, engine="statsmodels")
    _assert_same(fast.fit, slow.fit)
    # the EB predictions and their comparative SEs as well
    np.testing.assert_allclose(fast.random_effects, slow.random_effects, rtol=1e-5, atol=1e-8)


# --------------------------------------------------------------------------- one call
def test_group_spellings_and_old_orders_give_identical_results(hsb):
    new = null_model("mAch ~ 1", hsb, group="school")
    term = null_model("mAch ~ 1 + (1 | school)", hsb)
    with pytest.warns(DeprecationWarning, match=r"use null_model\('y ~ 1', data, group='g'\)"):
        old = null_model(hsb, "mAch", "school")
    for other in (term, old):
        pd.testing.assert_frame_equal(new.to_frame(), other.to_frame())
    ctx = contextual_model("mAch ~ ses", hsb, group="school")
    ctx_term = contextual_model("mAch ~ ses + (1 | school)", hsb)
    with pytest.warns(DeprecationWarning, match=r"use contextual_model\('y ~ x', data"):
        ctx_old = contextual_model(hsb, "mAch ~ ses", "school")
    for other in (ctx_term, ctx_old):
        pd.testing.assert_frame_equal(ctx.to_frame(), other.to_frame())
    mo = means_as_outcomes("mAch ~ meanses", hsb, "school", null=new)
    with pytest.warns(DeprecationWarning, match="means_as_outcomes"):
        mo_old = means_as_outcomes(hsb, "mAch ~ meanses", "school", null=new)
    pd.testing.assert_frame_equal(mo.to_frame(), mo_old.to_frame())


def test_results_follow_the_shared_protocol(hsb):
    from mlob_pp.results import EstimatorResult
    from mlob_pp.tables import Summary

    m0 = null_model("mAch ~ 1", hsb, "school")
    ctx = contextual_model("mAch ~ ses", hsb, "school")
    for res, key in ((m0, "tau2"), (ctx, "beta_b")):
        assert isinstance(res, EstimatorResult)
        text = repr(res)
        assert "\n" not in text and len(text) < 200 and f"{res.n_groups} groups" in text
        assert res.params[key] == res.to_frame().loc[key, "estimate"]
        assert res.bse[key] == res.to_frame().loc[key, "std_error"]
        ci90 = res.conf_int(0.9)
        z = 1.6448536269514722
        assert ci90.loc[key, "upper"] == pytest.approx(res.params[key] + z * res.bse[key])
        summary = res.summary()
        assert isinstance(summary, Summary) and "<table" in summary._repr_html_()
        assert "Random effects:" in str(summary)
    assert list(ctx.to_frame().index) == ["alpha", "beta_w", "beta_b", "beta_c", "tau2",
                                          "sigma2", "icc"]


def test_random_slope_in_the_group_term(hsb):
    a = contextual_model("mAch ~ ses + (ses | school)", hsb)
    b = contextual_model("mAch ~ ses", hsb, "school", random_slope=True)
    assert a.random_slope and b.random_slope
    pd.testing.assert_frame_equal(a.to_frame(), b.to_frame())
    with pytest.raises(ValueError, match="supports the group term"):
        contextual_model("mAch ~ ses + (female | school)", hsb)


# --------------------------------------------------------------------------- scale
@pytest.mark.parametrize(("shift", "scale"), [(1e9, 1.0), (0.0, 1e-12), (-3e6, 1e6)])
def test_null_model_is_equivariant_under_shift_and_scale(hsb, shift, scale):
    base = null_model("mAch ~ 1", hsb, "school")
    moved = null_model("y ~ 1", hsb.assign(y=shift + scale * hsb["mAch"]), "school")
    assert moved.grand_mean == pytest.approx(shift + scale * base.grand_mean, rel=1e-6,
                                             abs=1e-6 * scale * base.grand_mean_se)
    assert moved.grand_mean_se == pytest.approx(scale * base.grand_mean_se, rel=1e-6)
    assert moved.tau2 == pytest.approx(scale**2 * base.tau2, rel=1e-6)
    assert moved.sigma2 == pytest.approx(scale**2 * base.sigma2, rel=1e-6)
    assert moved.icc == pytest.approx(base.icc, rel=1e-6)
    np.testing.assert_allclose(moved.reliability, base.reliability, rtol=1e-6)
    t0, t1 = base.to_frame(), moved.to_frame()
    assert t1.loc["tau2", "std_error"] == pytest.approx(scale**2 * t0.loc["tau2", "std_error"],
                                                        rel=1e-6)
    # the log-likelihood moves by the Jacobian of the rescaling only
    assert moved.llf == pytest.approx(base.llf - (moved.n_obs - 1) * np.log(scale), rel=1e-9)


def _slopes(seed: int, J: int = 40, n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), n)
    x = rng.normal(size=J)[g] + rng.normal(size=J * n)
    xbar = pd.Series(x).groupby(g).transform("mean").to_numpy()
    u0, u1 = rng.normal(0, 1.0, J), rng.normal(0, 0.6, J)
    y = 1 + (0.5 + u1[g]) * (x - xbar) + 1.2 * xbar + u0[g] + rng.normal(size=J * n)
    return pd.DataFrame({"y": y, "x": x, "c": rng.normal(size=J * n), "g": g})


@pytest.mark.parametrize("random_slope", [False, True])
def test_contextual_model_is_equivariant_under_rescaling(random_slope):
    df = _slopes(4)
    base = contextual_model("y ~ x + c", df, "g", random_slope=random_slope)
    a, b = 1e-6, 1e4
    moved = contextual_model("y ~ x + c", df.assign(y=1.0 + a * df["y"], x=b * df["x"]), "g",
                             random_slope=random_slope)
    for name in ("beta_w", "beta_b", "beta_c"):
        assert moved.params[name] == pytest.approx(a / b * base.params[name], rel=1e-6)
        assert moved.bse[name] == pytest.approx(a / b * base.bse[name], rel=1e-5)
    assert moved.tau2 == pytest.approx(a**2 * base.tau2, rel=1e-5)
    assert moved.sigma2 == pytest.approx(a**2 * base.sigma2, rel=1e-6)


# --------------------------------------------------------------------------- identification
def test_too_few_groups_is_a_clear_error():
    rng = np.random.default_rng(0)
    g = np.repeat([0, 1], 100)
    x = rng.normal(size=200) + g
    df = pd.DataFrame({"y": x + rng.normal(size=200), "x": x, "g": g})
    # J = 2: tau2 of the contextual model is not identified (was 3.5 to 13 with SEs)
    with pytest.raises(ValueError, match=r"2 groups are too few .* at least 4 groups; got 2"):
        contextual_model("y ~ x", df, "g")
    with pytest.raises(ValueError, match=r"at least 3 groups; got 2"):
        null_model("y ~ 1", df, "g")
    df3 = pd.DataFrame({"y": rng.normal(size=30), "g": np.repeat([0, 1, 2], 10)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        assert null_model("y ~ 1", df3, "g").n_groups == 3  # 2 between df: allowed


def test_boundary_estimate_warns_and_is_reported():
    rng = np.random.default_rng(8)
    # every school holds a permutation of the same 10 values: all school means are equal, so
    # the between-school variance is estimated at its boundary 0 (REML and ML)
    base = rng.normal(size=10)
    df = pd.DataFrame({"y": np.concatenate([rng.permutation(base) for _ in range(20)]),
                       "g": np.repeat(np.arange(20), 10)})
    fits = {}
    for method in ("reml", "ml"):
        with pytest.warns(SingularFitWarning, match="boundary 0") as rec:
            fits[method] = null_model("y ~ 1", df, "g", method=method)
        assert issubclass(rec[0].category, BoundaryWarning)
    res = fits["ml"]
    assert res.tau2 == 0.0 and res.boundary == ("tau2",)
    assert np.isnan(res.to_frame().loc["tau2", "std_error"])
    assert "boundary (singular) fit" in str(res.summary())
    tree = res.to_datatree()
    assert tree.attrs["boundary"] == "tau2"
    assert tree["estimate"]["boundary"].sel(term="tau2").item() is True
    assert not tree["estimate"]["boundary"].sel(term="sigma2").item()
    # statsmodels agrees that the maximum is on the boundary
    with pytest.warns(SingularFitWarning):
        sm = null_model("y ~ 1", df, "g", method="ml", engine="statsmodels")
    assert sm.tau2 <= 1e-6 * sm.sigma2 and sm.llf == pytest.approx(res.llf, abs=1e-6)


# --------------------------------------------------------------------------- random slopes
def _dense_loglik(y, X, Z, codes, G, sigma2, reml):
    """Log-likelihood with beta profiled out, one Cholesky per group (a reference)."""
    p = X.shape[1]
    xtvx = np.zeros((p, p))
    xtvy = np.zeros(p)
    parts = []
    logdet = 0.0
    for j in np.unique(codes):
        m = codes == j
        V = Z[m] @ G @ Z[m].T + sigma2 * np.eye(m.sum())
        c = np.linalg.cholesky(V)
        logdet += 2 * np.sum(np.log(np.diag(c)))
        wx, wy = np.linalg.solve(c, X[m]), np.linalg.solve(c, y[m])
        xtvx += wx.T @ wx
        xtvy += wx.T @ wy
        parts.append((wx, wy))
    beta = np.linalg.solve(xtvx, xtvy)
    quad = sum(float(np.sum((wy - wx @ beta) ** 2)) for wx, wy in parts)
    N = y.size
    if reml:
        return -0.5 * ((N - p) * np.log(2 * np.pi) + logdet + np.linalg.slogdet(xtvx)[1] + quad)
    return -0.5 * (N * np.log(2 * np.pi) + logdet + quad)


def _dense_variance_se(y, X, Z, codes, G, sigma2, reml):
    theta = np.array([G[0, 0], G[1, 0], G[1, 1], sigma2])
    h = 1e-4 * np.array([G[0, 0], np.sqrt(G[0, 0] * G[1, 1]), G[1, 1], sigma2])

    def f(t):
        return _dense_loglik(y, X, Z, codes, np.array([[t[0], t[1]], [t[1], t[2]]]), t[3], reml)

    H = np.zeros((4, 4))
    for a in range(4):
        for b in range(a, 4):
            ea, eb = np.eye(4)[a] * h[a], np.eye(4)[b] * h[b]
            H[a, b] = H[b, a] = (f(theta + ea + eb) - f(theta + ea - eb) - f(theta - ea + eb)
                                 + f(theta - ea - eb)) / (4 * h[a] * h[b])
    return np.sqrt(np.diag(np.linalg.inv(-H)))


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_random_slope_variance_standard_errors(method):
    df = _slopes(12)
    y, x, g = df["y"].to_numpy(), df["x"].to_numpy(), df["g"].to_numpy()
    xbar = pd.Series(x).groupby(g).transform("mean").to_numpy()
    res = contextual_model("y ~ x", df, "g", random_slope=True, method=method)
    frame = res.to_frame()
    assert list(frame.index[-5:]) == ["tau2", "tau01", "tau2_x_within", "sigma2", "icc"]
    se = frame.loc[["tau2", "tau01", "tau2_x_within", "sigma2"], "std_error"].to_numpy()
    assert np.all(np.isfinite(se)) and np.all(se > 0)
    X = np.column_stack([np.ones_like(x), x - xbar, xbar])
    Z = X[:, :2]
    ref = _dense_variance_se(y, X, Z, g, res.cov_re.to_numpy(), res.sigma2, method == "reml")
    np.testing.assert_allclose(se, ref, rtol=1e-4)
    # and the optimum is one: the dense likelihood agrees with the fit's
    assert res.llf == pytest.approx(
        _dense_loglik(y, X, Z, g, res.cov_re.to_numpy(), res.sigma2, method == "reml"), abs=1e-6)


def test_random_slope_ml_near_singular_is_fast_and_at_the_optimum():
    # 40 groups of 5: the slope correlation is at +-1; statsmodels' Nelder-Mead used to run its
    # 5,000 iterations here (70-90 s); now the lme4-style optimum on the boundary is kept
    rng = np.random.default_rng(0)
    J, n = 40, 5
    g = np.repeat(np.arange(J), n)
    x = rng.normal(size=J * n) + rng.normal(size=J)[g]
    y = 1 + 0.5 * x + rng.normal(size=J)[g] * 0.3 + rng.normal(size=J * n)
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    with pytest.warns(SingularFitWarning, match="singular"):
        res = contextual_model("y ~ x", df, "g", random_slope=True, method="ml")
    assert res.boundary and res.fit.singular
    assert res.fit.optimizer["method"] == "lbfgsb_sufficient (boundary)"
    ri = contextual_model("y ~ x", df, "g", method="ml")
    assert res.llf >= ri.llf - 1e-8
    # at least as high as statsmodels' own Powell search on the same design (-294.31798)
    from statsmodels.regression.mixed_linear_model import MixedLM

    xbar = pd.Series(x).groupby(g).transform("mean").to_numpy()
    X = np.column_stack([np.ones_like(x), x - xbar, xbar])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = MixedLM(y, X, groups=g, exog_re=X[:, :2]).fit(reml=False, method="powell")
    assert res.llf >= sm.llf - 1e-9


@pytest.mark.parametrize("seed", range(6))
def test_random_designs_give_a_clear_error_or_a_finite_answer(seed):
    # unbalanced designs with singleton groups, scales 1e-9..1e9 and shifts; random slopes
    # included (statsmodels returned NaN log-likelihoods on one such design: the lme4-style
    # optimum is kept then)
    rng = np.random.default_rng(100 + seed)
    J = int(rng.integers(2, 40))
    g = np.repeat(np.arange(J), rng.integers(1, 12, J))
    x = rng.normal(size=J)[g] * rng.uniform(0, 2) + rng.normal(size=g.size)
    y = (rng.choice([0.0, 1e6, -1e9]) + 10.0 ** rng.uniform(-9, 9)
         * (x * rng.normal() + rng.normal(size=J)[g] + rng.normal(size=g.size)))
    df = pd.DataFrame({"y": y, "x": x * 10.0 ** rng.uniform(-6, 6), "g": g})
    calls = [lambda: null_model("y ~ 1", df, "g"),
             lambda: contextual_model("y ~ x", df, "g"),
             lambda: contextual_model("y ~ x", df, "g", method="ml", random_slope=True)]
    for call in calls:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BoundaryWarning)
                res = call()
        except ValueError as exc:
            assert str(exc).startswith(("`", "outcome", "the target", "the group means"))
            continue
        frame = res.to_frame()
        assert np.all(np.isfinite(frame["estimate"]))
        assert res.sigma2 > 0 and res.tau2 >= 0


@pytest.mark.slow
def test_random_slope_variance_standard_errors_are_calibrated():
    # Monte Carlo: over 150 simulated data sets (60 schools of 15, G = [[1, .2], [.2, .36]],
    # sigma2 = 1) the mean observed-information SE of each variance parameter is within 15 %
    # of the standard deviation of its estimates (the Monte Carlo error of an SD from 150
    # draws is about 6 %)
    rng = np.random.default_rng(2024)
    J, n, reps = 60, 15, 150
    G = np.array([[1.0, 0.2], [0.2, 0.36]])
    g = np.repeat(np.arange(J), n)
    est, se = [], []
    for _ in range(reps):
        x = rng.normal(size=J)[g] + rng.normal(size=J * n)
        xbar = pd.Series(x).groupby(g).transform("mean").to_numpy()
        u = rng.multivariate_normal([0, 0], G, J)
        y = 1 + (0.5 + u[g, 1]) * (x - xbar) + 1.2 * xbar + u[g, 0] + rng.normal(size=J * n)
        res = contextual_model("y ~ x", pd.DataFrame({"y": y, "x": x, "g": g}), "g",
                               random_slope=True)
        frame = res.to_frame().loc[["tau2", "tau01", "tau2_x_within", "sigma2"]]
        est.append(frame["estimate"].to_numpy())
        se.append(frame["std_error"].to_numpy())
    est, se = np.array(est), np.array(se)
    np.testing.assert_allclose(se.mean(axis=0), est.std(axis=0, ddof=1), rtol=0.15)
    # and REML recovers the truth (bias within 3 Monte Carlo SEs)
    truth = np.array([1.0, 0.2, 0.36, 1.0])
    assert np.all(np.abs(est.mean(axis=0) - truth) < 3 * est.std(axis=0) / np.sqrt(reps))


# --------------------------------------------------------------------------- design helpers
def test_design_helpers_added_for_the_variability_models():
    from mlob_pp.design import between_rank, check_frame, column_values, group_index

    with pytest.raises(TypeError, match="`data` must be a pandas DataFrame; got dict"):
        check_frame({"y": [1.0]})
    with pytest.raises(ValueError, match="`data` is empty"):
        check_frame(pd.DataFrame({"y": []}))
    multi = pd.DataFrame(np.ones((2, 2)), columns=pd.MultiIndex.from_tuples([("a", 1), ("a", 2)]))
    with pytest.raises(ValueError, match="flat column names; got a MultiIndex"):
        check_frame(multi)
    dup = pd.DataFrame(np.ones((2, 2)), columns=["y", "y"])
    with pytest.raises(ValueError, match="duplicated column names: y"):
        check_frame(dup)
    df = pd.DataFrame({"y": [1.0, np.inf], "b": [True, False], "n": pd.array([1, None]),
                       "g": ["a", "b"]})
    with pytest.raises(ValueError, match="`outcome` column 'y' has non-finite values"):
        column_values(df, "y", "outcome", numeric=True)
    with pytest.raises(TypeError, match="`outcome` column 'b' must be numeric; got dtype bool"):
        column_values(df, "b", "outcome", numeric=True)
    with pytest.raises(ValueError, match="`outcome` column 'n' has 1 missing values"):
        column_values(df, "n", "outcome", numeric=True)
    codes, labels = group_index(np.array(["b", "a", "b"]), "g")
    assert codes.tolist() == [1, 0, 1] and labels.tolist() == ["a", "b"]
    with pytest.raises(ValueError, match="one row per group"):
        group_index(np.array([1, 2, 3]), "g")
    # between rank: intercept + group mean of x = 2; a within-centred column adds nothing
    g = np.repeat(np.arange(5), 4)
    x = np.arange(20.0) ** 1.3
    xbar = pd.Series(x).groupby(g).transform("mean").to_numpy()
    X = np.column_stack([np.ones(20), x - xbar, xbar])
    assert between_rank(X, g, 5) == 2
    assert between_rank(np.column_stack([X, 1e9 * xbar + 3.0]), g, 5) == 2  # any scale
    assert between_rank(np.column_stack([X, x]), g, 5) == 2  # x's means = xbar


@pytest.mark.parametrize("reml", [True, False])
def test_closed_form_slope_of_the_profiled_deviance(hsb, reml):
    from mlob_pp.variability.sufficient import (
        Standardiser,
        deviance_slope,
        mixed_stats,
        profiled_deviance,
    )

    codes = pd.factorize(hsb["school"], sort=True)[0]
    y = hsb["mAch"].to_numpy(float)
    X = np.column_stack([np.ones(y.size), hsb["ses"], hsb["meanses"]])
    Z = np.ones((y.size, 1))
    ys, Xs, Zs = Standardiser.from_data(y, X, Z).apply(y, X, Z)
    stats = mixed_stats(ys, Xs, Zs, codes, 160)
    for gamma in (0.01, 0.07, 0.5):
        h = 1e-6 * gamma
        fd = (profiled_deviance(stats, np.array([[np.sqrt(gamma + h)]]), reml=reml)
              - profiled_deviance(stats, np.array([[np.sqrt(gamma - h)]]), reml=reml)) / (2 * h)
        assert deviance_slope(stats, gamma, reml=reml) == pytest.approx(fd, rel=1e-5)
