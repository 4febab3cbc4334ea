"""SS-MELSM: formulas, the marginalized likelihood against brute force, the error catalogue,
a small recovery run (mcmc) and the Saeb reference run (slow)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

import mlob_pp
from mlob_pp.melsm.fit import ConvergenceWarning, MELSMResult, _warn_diagnostics, prepare_saeb
from mlob_pp.formula.melsm import design_matrices, required_columns, split_mixed_formula


def _quiet_pymc():
    with warnings.catch_warnings():  # third-party import-time notices
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*could not link to a BLAS.*")
        import nutpie  # noqa: F401
        import pymc  # noqa: F401


def simulate(seed: int = 1, J: int = 40, n: int = 25) -> tuple[pd.DataFrame, dict]:
    """Groups s00-s03 have a 2.5x residual SD, s04-s07 a 0.4x SD, the rest are null; one extra
    group 'zz' has a single observation."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), n)
    x = rng.normal(size=J * n)
    a = rng.normal(0.0, 0.5, J)
    b = np.zeros(J)
    b[:4], b[4:8] = np.log(2.5), np.log(0.4)
    y = 1.0 + 0.5 * x + a[g] + rng.normal(size=J * n) * np.exp(-0.2 + 0.1 * x + b[g])
    df = pd.DataFrame({"y": y, "x": x, "school": [f"s{k:02d}" for k in g]})
    df = pd.concat(
        [df, pd.DataFrame({"y": [1.3], "x": [0.2], "school": ["zz"]})], ignore_index=True
    )
    truth = {
        "inflated": [f"s{k:02d}" for k in range(4)],
        "deflated": [f"s{k:02d}" for k in range(4, 8)],
        "null": [f"s{k:02d}" for k in range(8, J)],
    }
    return df.sample(frac=1.0, random_state=seed), truth  # rows unsorted on purpose


# ------------------------------------------------------------------------------- formulas
@pytest.mark.parametrize(
    ("formula", "one_sided", "expected"),
    [
        ("y ~ x1 * x2 + (1 + x1 | school)", False, ("y", "x1 * x2", "1 + x1", "school")),
        ("y ~ (1 | g)", False, ("y", "1", "1", "g")),
        ("y ~ (x | g) + x", False, ("y", "x", "x", "g")),
        ("y ~ x", False, ("y", "x", None, None)),
        ("~ x + (0 + x | g)", True, (None, "x", "0 + x", "g")),
        ("sigma ~ log(z) + (1 | g)", True, (None, "log(z)", "1", "g")),
        ("y~x+(1|`my group`)", False, ("y", "x", "1", "my group")),
    ],
)
def test_split_mixed_formula(formula, one_sided, expected):
    f = split_mixed_formula(formula, "location", one_sided=one_sided)
    assert (f.response, f.fixed, f.random, f.group) == expected


@pytest.mark.parametrize(
    ("formula", "one_sided", "match"),
    [
        ("y x + (1 | g)", False, r"`location` must be a formula with one '~'"),
        ("~ x + (1 | g)", False, r"must name the outcome on the left of '~'"),
        ("log(y) ~ x + (1 | g)", False, r"the outcome must be a column name"),
        ("y ~ x + (1 | g) + (0 + x | g)", False, r"only one random term"),
        ("y ~ x + (1 + x || g)", False, r"'\|\|' are not supported"),
        ("y ~ x + (1 | g | h)", False, r"one grouping column"),
        ("y ~ x + ( | g)", False, r"one grouping column"),
        ("y ~ x + + (1 | g)", False, r"has an empty term"),
    ],
)
def test_split_mixed_formula_errors(formula, one_sided, match):
    with pytest.raises(ValueError, match=match):
        split_mixed_formula(formula, "location", one_sided=one_sided)


def test_split_mixed_formula_type_error():
    with pytest.raises(TypeError, match=r"`scale` must be a formula string; got int"):
        split_mixed_formula(3, "scale")


def test_design_matrices_lme4_semantics():
    df = pd.DataFrame(
        {"y": [1.0, 2, 3, 4], "a": [0.1, 0.5, 0.2, 0.9], "b": [1.0, 0, 1, 0], "g": [1, 1, 2, 2]}
    )
    f = split_mixed_formula("y ~ a * b + (a | g)", "location")
    X, xn, Z, zn = design_matrices(f, df, "location")
    assert xn == ["Intercept", "a", "b", "a:b"]
    np.testing.assert_allclose(X[:, 3], df["a"] * df["b"])
    assert zn == ["Intercept", "a"]
    f0 = split_mixed_formula("~ 0 + a + (0 + a | g)", "scale", one_sided=True)
    _, xn0, Z0, zn0 = design_matrices(f0, df, "scale")
    assert xn0 == ["a"] and zn0 == ["a"]
    assert required_columns(f, "location") == ["a", "b", "g", "y"]


def test_absorbed_columns_hierarchical_centring():
    from mlob_pp.models.melsm import absorbed_columns

    g = np.repeat([0, 1, 2], 3)
    x = np.arange(9.0)
    w = np.array([0.5, -1.0, 2.0])[g]  # group-level
    X = np.c_[np.ones(9), x, w, x * w, x * x]
    Z = np.c_[np.ones(9), x]
    H, absorbed = absorbed_columns(X, Z, g, 3)
    assert absorbed.tolist() == [True, True, True, True, False]
    np.testing.assert_allclose(H[:, 0, 2], [0.5, -1.0, 2.0])  # w -> random intercept
    np.testing.assert_allclose(H[:, 1, 3], [0.5, -1.0, 2.0])  # x:w -> random slope of x
    np.testing.assert_allclose(H[:, 1, 1], 1.0)


# --------------------------------------------------------------- the marginal likelihood
def _brute_force(d, beta, zeta, u, pi):
    """log p(y | theta) with the indicators summed out by enumeration, with scipy."""
    Kr, Sr = d.Z.shape[1], d.V.shape[1]
    total = 0.0
    for j in range(d.n_groups):
        rows = d.group_idx == j
        a, b = u[j, :Kr], u[j, Kr:]
        mu = d.X[rows] @ beta + d.Z[rows] @ a
        terms = []
        for m in itertools.product((0, 1), repeat=Sr):
            m = np.array(m)
            sd = np.exp(d.W[rows] @ zeta + d.V[rows] @ (m * b))
            prior = np.sum(m * np.log(pi) + (1 - m) * np.log1p(-pi))
            terms.append(prior + norm.logpdf(d.y[rows], mu, sd).sum())
        total += logsumexp(terms)
    return total


@pytest.fixture(scope="module")
def tiny_data():
    from mlob_pp.models.melsm import MELSMData

    rng = np.random.default_rng(0)
    N, J = 40, 6
    g = np.sort(np.r_[np.arange(J), rng.integers(0, J, N - J)])
    x = rng.normal(size=N)
    X = np.c_[np.ones(N), x]
    names = ["Intercept", "x"]
    return MELSMData(
        rng.normal(size=N),
        X,
        X.copy(),
        X.copy(),
        X.copy(),
        g,
        list("abcdef"),
        names,
        names,
        names,
        names,
        np.arange(N),
    )


@pytest.mark.filterwarnings("ignore:.*could not link to a BLAS:UserWarning")  # C backend notice
@pytest.mark.parametrize("parametrization", ["auto", "centered", "noncentered"])
def test_marginal_likelihood_matches_enumeration(tiny_data, parametrization):
    _quiet_pymc()
    from mlob_pp.models.melsm import build_melsm

    pi = 0.3
    model = build_melsm(tiny_data, prior_inclusion=pi, location_parametrization=parametrization)
    fn = model.compile_fn(
        [model.potentials[0], model["u"], model["beta"], model["zeta"]],
        inputs=model.value_vars,
        on_unused_input="ignore",
        point_fn=True,
    )
    rng = np.random.default_rng(1)
    point = {
        k: v + rng.normal(scale=0.3, size=np.shape(v)) for k, v in model.initial_point().items()
    }
    value, u, beta, zeta = fn(point)
    expected = _brute_force(tiny_data, beta, zeta, u, pi)
    assert value == pytest.approx(expected, rel=1e-10)


def test_posterior_inclusion_matches_enumeration(tiny_data):
    from mlob_pp.models.melsm import posterior_inclusion

    rng = np.random.default_rng(2)
    D, J = 3, tiny_data.n_groups
    beta, zeta = rng.normal(size=(D, 2)), rng.normal(scale=0.2, size=(D, 2))
    u = rng.normal(scale=0.4, size=(D, J, 4))
    prob, delta, ll = posterior_inclusion(tiny_data, beta, zeta, u, 0.4, rng=rng, chunk=2)
    assert prob.shape == delta.shape == (D, J, 2) and ll.shape == (D, 40)
    d = tiny_data
    for s in range(D):
        for j in range(J):
            rows = d.group_idx == j
            mu = d.X[rows] @ beta[s] + d.Z[rows] @ u[s, j, :2]
            logp = {}
            for m in itertools.product((0, 1), repeat=2):
                sd = np.exp(d.W[rows] @ zeta[s] + d.V[rows] @ (np.array(m) * u[s, j, 2:]))
                logp[m] = (
                    sum(np.log(0.4) if k else np.log(0.6) for k in m)
                    + norm.logpdf(d.y[rows], mu, sd).sum()
                )
            z = logsumexp(list(logp.values()))
            p1 = sum(np.exp(v - z) for m, v in logp.items() if m[0] == 1)
            p2 = sum(np.exp(v - z) for m, v in logp.items() if m[1] == 1)
            np.testing.assert_allclose(prob[s, j], [p1, p2], rtol=1e-10)
            # the stored log-likelihood is that of the drawn indicator pattern
            m = tuple(delta[s, j])
            sd = np.exp(d.W[rows] @ zeta[s] + d.V[rows] @ (np.array(m) * u[s, j, 2:]))
            np.testing.assert_allclose(ll[s, rows], norm.logpdf(d.y[rows], mu, sd))


# ------------------------------------------------------------------------- Saeb helper
def test_prepare_saeb():
    raw = mlob_pp.datasets.load("saeb")
    df = prepare_saeb()
    assert len(df) == 11386 and df["school_id"].nunique() == 160
    within = df.groupby("school_id")["student_ses"].mean()
    np.testing.assert_allclose(within, 0.0, atol=1e-10)
    assert df["school_ses"].mean() == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(df["student_ses_raw"], raw["student_ses"])
    np.testing.assert_allclose(
        df["student_ses"] + df["school_ses"], raw["student_ses"] - raw["student_ses"].mean()
    )
    assert "school_ses" not in raw.columns  # input untouched
    with pytest.raises(
        ValueError, match=r"must have the Saeb columns .* missing \['student_ses'\]"
    ):
        prepare_saeb(raw.drop(columns="student_ses"))
    with pytest.raises(TypeError, match=r"`data` must be a pandas DataFrame; got list"):
        prepare_saeb([1, 2])


# ---------------------------------------------------------------------- error catalogue
@pytest.fixture(scope="module")
def small_df():
    return simulate(J=6, n=5)[0]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (
            {"location": "y ~ x + (1 | school)", "scale": "~ x"},
            ValueError,
            r"`scale` must contain a random term such as '\(1 \| school\)'",
        ),
        (
            {"location": "y ~ x + (1 | school)", "scale": "~ x + (1 | x)"},
            ValueError,
            r"must be grouped by the same variable; got 'school' \(location\) and 'x' \(scale\)",
        ),
        (
            {"location": "y ~ x + w + (1 | school)", "scale": "~ (1 | school)"},
            ValueError,
            r"`data` lacks the column\(s\) \['w'\] used in the formulas",
        ),
        (
            {"location": "y ~ x + (1 | district)", "scale": "~ (1 | district)"},
            ValueError,
            r"lacks the column\(s\) \['district'\]",
        ),
        (
            {"prior_inclusion": 0.0},
            ValueError,
            r"`prior_inclusion` must be strictly between 0 and 1; got 0.0",
        ),
        (
            {"prior_inclusion": 1.0},
            ValueError,
            r"`prior_inclusion` must be strictly between 0 and 1; got 1.0",
        ),
        ({"prior_inclusion": -0.2}, ValueError, r"`prior_inclusion` must be strictly between"),
        (
            {"prior_inclusion": "half"},
            TypeError,
            r"`prior_inclusion` must be a number strictly between 0 and 1; got 'half'",
        ),
        ({"draws": 0}, ValueError, r"`draws` must be an integer >= 1; got 0"),
        ({"chains": 1.5}, TypeError, r"`chains` must be an integer; got 1.5"),
        (
            {"location_parametrization": "funnel"},
            ValueError,
            r"`location_parametrization` must be 'auto', 'centered' or 'noncentered'; got 'funnel'",
        ),
        ({"random_seed": "seed"}, TypeError, r"`random_seed` must be None, an int or a numpy"),
        ({"random_seed": -1}, ValueError, r"`random_seed` must be a non-negative integer"),
        (
            {"location": "y ~ x + (1 | school) + (x | school)"},
            ValueError,
            r"`location` may contain only one random term",
        ),
    ],
)
def test_fit_melsm_errors(small_df, kwargs, exc, match):
    args = {"location": "y ~ x + (1 | school)", "scale": "~ x + (1 | school)", **kwargs}
    with pytest.raises(exc, match=match):
        mlob_pp.fit_melsm(small_df, **args)


def test_fit_melsm_rejects_nan_and_bad_data(small_df):
    bad = small_df.copy()
    bad.iloc[[0, 3], bad.columns.get_loc("x")] = np.nan
    with pytest.raises(ValueError, match=r"missing values \(NaN\) in \{'x': 2\}; drop or impute"):
        mlob_pp.fit_melsm(bad, "y ~ x + (1 | school)", "~ (1 | school)")
    bad = small_df.copy()
    bad.iloc[1, bad.columns.get_loc("school")] = None
    with pytest.raises(ValueError, match=r"missing values \(NaN\) in \{'school': 1\}"):
        mlob_pp.fit_melsm(bad, "y ~ x + (1 | school)", "~ (1 | school)")
    with pytest.raises(TypeError, match=r"`data` must be a pandas DataFrame; got dict"):
        mlob_pp.fit_melsm({"y": [1.0]}, "y ~ (1 | school)", "~ (1 | school)")
    text = small_df.assign(y=small_df["y"].astype(str))
    with pytest.raises(TypeError, match=r"the outcome 'y' must be numeric; got dtype"):
        mlob_pp.fit_melsm(text, "y ~ x + (1 | school)", "~ (1 | school)")


def test_bf10_formula():
    from mlob_pp.melsm.fit import _bf10

    pip = np.array([0.5, 0.75, 0.9, 1.0])
    np.testing.assert_allclose(_bf10(pip, 0.5), [1.0, 3.0, 9.0, np.inf])
    np.testing.assert_allclose(_bf10(np.array([0.2]), 0.2), [1.0])


# ------------------------------------------------------------------- recovery (sampling)
@pytest.fixture(scope="module")
def recovery():
    _quiet_pymc()
    df, truth = simulate(seed=1)
    with warnings.catch_warnings():
        # 2 x 400 draws: single PIPs may show R-hat slightly above 1.01; checked below
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = mlob_pp.fit_melsm(
            df,
            "y ~ x + (1 | school)",
            "~ x + (1 | school)",
            draws=400,
            tune=400,
            chains=2,
            random_seed=11,
            indicator_draws=True,
        )
    return df, truth, fit


@pytest.mark.mcmc
def test_recovery_of_unusual_groups(recovery):
    df, truth, fit = recovery
    pip = fit.pip
    assert isinstance(pip, pd.Series) and pip.index.name == "school"
    assert list(pip.index) == sorted(df["school"].unique())
    unusual = truth["inflated"] + truth["deflated"]
    assert (pip[unusual] > 0.75).all(), pip[unusual]
    null = pip[truth["null"]]
    assert null.median() < 0.5 and (null > 0.75).mean() <= 0.1
    # the singleton group carries almost no information: PIP near the prior
    assert 0.2 < pip["zz"] < 0.8
    np.testing.assert_allclose(fit.bf10, pip / (1 - pip))
    table = fit.summary("model")
    assert table.loc["beta_x", "ci_lower"] < 0.5 < table.loc["beta_x", "ci_upper"]
    assert table.loc["zeta_x", "ci_lower"] < 0.1 < table.loc["zeta_x", "ci_upper"]
    assert table.loc["sd_Intercept", "ci_lower"] < 0.5 < table.loc["sd_Intercept", "ci_upper"]
    assert (table["r_hat"] < 1.05).all() and (table["ess_bulk"] > 50).all()
    # funnel: inflated groups have larger plug-in SDs than deflated ones
    sd = fit.idata["inclusion"]["within_sd"].sel(scale_effect="Intercept").to_series()
    assert sd[truth["inflated"]].min() > sd[truth["deflated"]].max()


@pytest.mark.mcmc
def test_result_format(recovery):
    import arviz as az

    df, _, fit = recovery
    idata = fit.idata
    for group in ("posterior", "sample_stats", "log_likelihood", "observed_data", "inclusion"):
        assert group in idata.children
    assert idata["inclusion"]["pip"].dims == ("group", "scale_effect")
    assert idata["posterior"]["inclusion_prob"].dims == ("chain", "draw", "group", "scale_effect")
    assert set(np.unique(idata["posterior"]["delta"].values)) <= {0, 1}
    ll = idata["log_likelihood"]["y"]
    assert ll.dims == ("chain", "draw", "obs") and ll.sizes["obs"] == len(df)
    # observations keep the user's row labels and order
    np.testing.assert_array_equal(idata["observed_data"]["obs"].values, df.index.to_numpy())
    np.testing.assert_allclose(idata["observed_data"]["y"].values, df["y"].to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pareto-k notices of the singleton
        loo = az.loo(idata)
    assert np.isfinite(loo.elpd)
    table = fit.summary()
    assert list(table.columns) == [
        "estimate",
        "std_error",
        "ci_lower",
        "ci_upper",
        "mcse",
        "ess_bulk",
        "ess_tail",
        "r_hat",
    ]
    assert "pip[scl_Intercept, s00]" in table.index
    assert "corr[scl_Intercept, Intercept]" in table.index
    assert table.loc["pip[scl_Intercept, s05]", "estimate"] == pytest.approx(fit.pip["s05"])
    assert len(fit.summary("pip")) == fit.pip.size
    assert "Groups with PIP >= 0.75" in str(fit)
    with pytest.raises(ValueError, match=r"`pip` must be one of 'all', 'model', 'pip'; got 'x'"):
        fit.summary("x")


@pytest.mark.mcmc
@pytest.mark.parametrize("kind", ["pip", "funnel", "outcome"])
def test_plots(recovery, kind):
    import matplotlib.pyplot as plt

    fig = recovery[2].plot(kind)
    assert fig.axes and fig.axes[0].get_ylabel() == "Posterior inclusion probability"
    plt.close(fig)


@pytest.mark.mcmc
def test_plot_errors(recovery):
    fit = recovery[2]
    with pytest.raises(ValueError, match=r"`kind` must be one of 'pip', 'funnel', 'outcome'"):
        fit.plot("trace")
    with pytest.raises(ValueError, match=r"`variable` must be one of \['Intercept'\]; got 'x'"):
        fit.plot("pip", variable="x")
    with pytest.raises(ValueError, match=r"`pip_level` must be strictly between 0 and 1"):
        fit.plot("funnel", pip_level=1.5)


@pytest.mark.mcmc
def test_convergence_warnings(recovery):
    fit = recovery[2]
    idata = fit.idata.copy()
    stats = idata["sample_stats"].to_dataset()
    div = stats["diverging"].values.copy()
    div[0, :3] = True
    idata["sample_stats"] = stats.assign(diverging=(("chain", "draw"), div))
    post = idata["posterior"].to_dataset()
    beta = post["beta"].values.copy()
    beta[0] += 5.0  # chains disagree
    idata["posterior"] = post.assign(beta=(post["beta"].dims, beta))
    broken = MELSMResult(idata, fit.pip, fit.bf10, 0.5, fit.location, fit.scale, fit.group)
    with (
        pytest.warns(ConvergenceWarning, match=r"3 divergent transitions after tuning"),
        pytest.warns(ConvergenceWarning, match=r"R-hat > 1.01: .*beta_Intercept"),
    ):
        _warn_diagnostics(broken)


# -------------------------------------------------------- general formulas (sampling)
@pytest.mark.slow  # a second numba compilation; the likelihood itself is checked above
def test_random_slopes_in_both_parts():
    _quiet_pymc()
    df, _ = simulate(seed=4, J=12, n=15)
    df = df[df["school"] != "zz"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = mlob_pp.fit_melsm(
            df,
            "y ~ x + (1 + x | school)",
            "~ x + (x | school)",
            draws=100,
            tune=150,
            chains=1,
            random_seed=3,
            log_likelihood=False,
            prior_inclusion=0.3,
        )
    assert isinstance(fit.pip, pd.DataFrame)
    assert list(fit.pip.columns) == ["Intercept", "x"] and fit.pip.shape == (12, 2)
    assert ((fit.pip >= 0) & (fit.pip <= 1)).all().all()
    np.testing.assert_allclose(fit.bf10, (fit.pip / (1 - fit.pip)) / (0.3 / 0.7))
    assert list(fit.idata["posterior"]["re_sd"]["effect"].values) == [
        "Intercept",
        "x",
        "scl_Intercept",
        "scl_x",
    ]
    assert "log_likelihood" not in fit.idata.children
    with pytest.raises(ValueError, match=r"`variable` must name the scale random effect"):
        fit.plot("pip")
    import matplotlib.pyplot as plt

    plt.close(fit.plot("funnel", variable="x"))


# ------------------------------------------------------------- Saeb reference (slow)
SAEB_REF = {  # spec §8.1, getting-started (6 x 3000): mean, SD, n_eff
    "beta_Intercept": (0.129, 0.024, 209),
    "beta_student_ses": (0.082, 0.010, 17766),
    "beta_school_ses": (0.675, 0.082, 263),
    "beta_student_ses:school_ses": (-0.023, 0.039, 17916),
    "sd_Intercept": (0.269, 0.020, 354),
    "sd_scl_Intercept": (0.080, 0.015, 941),
    "zeta_Intercept": (-0.234, 0.008, 1007),
    "zeta_student_ses": (0.031, 0.009, 3079),
    "zeta_school_ses": (0.120, 0.034, 685),
    "zeta_student_ses:school_ses": (0.075, 0.036, 1499),
    "corr[scl_Intercept, Intercept]": (-0.700, 0.178, 472),
}


@pytest.mark.slow
def test_saeb_reference():
    _quiet_pymc()
    df = prepare_saeb()
    fit = mlob_pp.fit_melsm(
        df,
        "math_proficiency ~ student_ses * school_ses + (1 | school_id)",
        "~ student_ses * school_ses + (1 | school_id)",
        draws=1000,
        tune=1000,
        chains=4,
        random_seed=2026,
    )
    flagged = set(fit.pip[fit.pip > 0.75].index)
    assert {9, 46, 53, 114, 115, 153} <= flagged
    assert flagged <= {9, 46, 53, 114, 115, 153, 124, 95, 39, 87, 64, 92, 149}
    table = fit.summary("model")
    for row, (mean, sd, n_eff) in SAEB_REF.items():
        tol = 4.0 * np.hypot(table.loc[row, "mcse"], sd / np.sqrt(n_eff)) + 0.005
        assert table.loc[row, "estimate"] == pytest.approx(mean, abs=tol), row
        assert table.loc[row, "std_error"] == pytest.approx(sd, rel=0.25), row
