"""SS-MELSM front end: the Saeb preparation, the error catalogue (checked before any compile),
both spellings of the call, a small recovery run (mcmc) and the Saeb reference run (slow)."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest

import mlob_pp
from mlob_pp.melsm.assemble import bf10
from mlob_pp.melsm.fit import ConvergenceWarning, MELSMResult, prepare_saeb
from mlob_pp.melsm.result import warn_diagnostics
from mlob_pp.tables import Summary


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


LOC, SCL = "y ~ x + (1 | school)", "~ x"


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (
            {"formula": "y ~ x", "group": None, "scale": "~ x"},
            ValueError,
            r"`group` is required: pass group='school' or write the group term",
        ),
        (
            {"scale": "~ x + (1 | x)"},
            ValueError,
            r"must be grouped by the same variable; got 'school' \(location\) and 'x' \(scale\)",
        ),
        (
            {"group": "district"},
            ValueError,
            r"`group` \('district'\) and the formula's group term \('school'\) disagree",
        ),
        ({"group": 3}, TypeError, r"`group` must be a column name \(str\) or None; got int"),
        (
            {"formula": "y ~ x + w + (1 | school)"},
            ValueError,
            r"`data` lacks the column\(s\) \['w'\] used in the formulas",
        ),
        (
            {"formula": "y ~ x + (1 | district)", "scale": "~ 1"},
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
        ({"conf_level": 95}, ValueError, r"`conf_level` must be strictly between 0 and 1"),
        (
            {"location_parametrization": "funnel"},
            ValueError,
            r"`location_parametrization` must be 'auto', 'centered' or 'noncentered'; got 'funnel'",
        ),
        ({"random_seed": "seed"}, TypeError, r"`random_seed` must be None, a non-negative int"),
        ({"random_seed": -1}, ValueError, r"`random_seed` must be a non-negative integer"),
        (
            {"formula": "y ~ x + (1 | school) + (x | school)"},
            ValueError,
            r"`formula` may contain only one random term",
        ),
        ({"formula": 3}, TypeError, r"`formula` must be a formula string; got int"),
        ({"progres": True}, TypeError, r"fit_melsm\(\) got unexpected keyword argument\(s\)"),
    ],
)
def test_fit_melsm_errors(small_df, kwargs, exc, match):
    args = {"formula": LOC, "group": None, "scale": SCL, **kwargs}
    formula, group = args.pop("formula"), args.pop("group")
    with pytest.raises(exc, match=match):
        mlob_pp.fit_melsm(formula, small_df, group, **args)


def _design_cases(df: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, str, str, str]]:
    """Degenerate designs (issue 12): data, location, scale, expected message."""
    one = df.copy()
    one["school"] = "a"
    singles = df.drop_duplicates("school").copy()
    inf = df.copy()
    inf.iloc[2, inf.columns.get_loc("x")] = np.inf
    const_within = df.copy()
    const_within["y"] = const_within.groupby("school")["y"].transform("mean")
    return {
        "empty": (df.iloc[:0], LOC, SCL, r"`data` has no rows"),
        "constant outcome": (df.assign(y=2.5), LOC, SCL,
                             r"the outcome 'y' has no variation"),
        "shifted constant outcome": (df.assign(y=1e9), LOC, SCL, r"'y' has no variation"),
        "outcome constant within groups": (const_within, LOC, SCL,
                                           r"outcome 'y' is constant within every group"),
        "collinear location": (df.assign(c=2 * df["x"] + 1), "y ~ x + c + (1 | school)", SCL,
                               r"`formula`: the terms 'x', 'c' are collinear"),
        "collinear scaled": (df.assign(c=1e-8 * df["x"]), "y ~ x + c + (1 | school)", SCL,
                             r"`formula`: the terms 'x', 'c' are collinear"),
        "collinear scale": (df.assign(c=-3 * df["x"]), LOC, "~ x + c",
                            r"`scale`: the terms 'x', 'c' are collinear"),
        "inf": (inf, LOC, SCL, r"`data` has infinite values in \{'x': 1\}"),
        "single group": (one, LOC, SCL, r"at least 2 groups; column 'school' has 1"),
        "all groups size 1": (singles, LOC, SCL, r"every group of 'school' has a single row"),
        "level-2 random slope": (
            df.assign(w=df.groupby("school")["x"].transform("mean")),
            "y ~ w + (1 + w | school)", SCL,
            r"`formula`: the random slope 'w' has no within-group variation"),
    }


@pytest.mark.parametrize("case", list(_design_cases(simulate(J=6, n=5)[0])))
def test_degenerate_designs_fail_fast(small_df, case):
    data, loc, scl, match = _design_cases(small_df)[case]
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=match):
        mlob_pp.fit_melsm(loc, data, scale=scl)
    # before any compile: well under a second (a compile takes 20-50 s)
    assert time.perf_counter() - t0 < 2.0


def test_fit_melsm_rejects_nan_and_bad_data(small_df):
    bad = small_df.copy()
    bad.iloc[[0, 3], bad.columns.get_loc("x")] = np.nan
    with pytest.raises(ValueError, match=r"missing values \(NaN\) in \{'x': 2\}; drop or impute"):
        mlob_pp.fit_melsm("y ~ x + (1 | school)", bad)
    bad = small_df.copy()
    bad.iloc[1, bad.columns.get_loc("school")] = None
    with pytest.raises(ValueError, match=r"missing values \(NaN\) in \{'school': 1\}"):
        mlob_pp.fit_melsm("y ~ x", bad, "school")
    with pytest.raises(TypeError, match=r"`data` must be a pandas DataFrame; got dict"):
        mlob_pp.fit_melsm("y ~ (1 | school)", {"y": [1.0]})
    text = small_df.assign(y=small_df["y"].astype(str))
    with pytest.raises(TypeError, match=r"the outcome 'y' must be numeric; got dtype"):
        mlob_pp.fit_melsm("y ~ x + (1 | school)", text)
    dup = pd.concat([small_df, small_df[["x"]]], axis=1)
    with pytest.raises(ValueError, match=r"unique, single-level column names; got duplicated"):
        mlob_pp.fit_melsm("y ~ x + (1 | school)", dup)


def test_old_spelling_is_parsed_like_the_new_one(small_df):
    """``fit_melsm(data, location, scale)`` warns and reaches the same checks (no sampling)."""
    with (
        pytest.warns(DeprecationWarning, match=r"fit_melsm\(data, location, scale\) is "
                     r"deprecated since 0.2 .* use fit_melsm\(formula, data, group=None"),
        pytest.raises(ValueError, match=r"`prior_inclusion` must be strictly between"),
    ):
        mlob_pp.fit_melsm(small_df, location=LOC, scale="~ x + (1 | school)",
                          prior_inclusion=2.0)
    with (
        pytest.warns(DeprecationWarning, match=r"`progressbar` is deprecated .* use `progress`"),
        pytest.raises(ValueError, match=r"`draws` must be an integer >= 1"),
    ):
        mlob_pp.fit_melsm(LOC, small_df, progressbar=False, draws=0)


def test_parse_formulas_spellings():
    from mlob_pp.melsm.data import parse_formulas

    a = parse_formulas("y ~ x + (1 | school)", "~ x", None)
    b = parse_formulas("y ~ x", "~ x + (1 | school)", "school")
    c = parse_formulas("y ~ x", "~ x", "school")
    for spec in (a, b, c):
        assert spec.group == "school"
        assert spec.location_text == "y ~ x + (1 | school)"
        assert spec.scale_text == "~ x + (1 | school)"
        assert (spec.location.fixed, spec.location.random) == ("x", "1")
        assert (spec.scale.fixed, spec.scale.random) == ("x", "1")
    d = parse_formulas("y ~ x + (1 + x | g)", "~ 1", None)
    assert d.location.random == "1 + x" and d.scale_text == "~ 1 + (1 | g)"


class _Stop(Exception):
    pass


def test_both_spellings_reach_the_sampler_identically(small_df, monkeypatch):
    """Old spelling, lme4 term and ``group=``: the sampler gets the same model and seed.

    nutpie is deterministic given the model and the seed, and everything after sampling depends
    only on the draws, the data arrays and the seed, so identical inputs give identical results
    (the lead's protocol test also compares two real fits of the two new spellings).
    """
    import mlob_pp.melsm.fit as fit_module

    seen = []

    def record(mdata, settings, seed, sampler_kwargs):
        seen.append((mdata, settings, seed))
        raise _Stop

    monkeypatch.setattr(fit_module, "_sample", record)
    calls = [
        lambda: mlob_pp.fit_melsm("y ~ x + (1 | school)", small_df, scale="~ x", random_seed=5),
        lambda: mlob_pp.fit_melsm("y ~ x", small_df, "school", scale="~ x", random_seed=5),
        lambda: mlob_pp.fit_melsm("y ~ x", small_df, group="school",
                                  scale="~ x + (1 | school)", random_seed=5),
    ]
    for call in calls:
        with pytest.raises(_Stop):
            call()
    with pytest.warns(DeprecationWarning, match=r"fit_melsm\(data, location, scale\)"), \
            pytest.raises(_Stop):
        mlob_pp.fit_melsm(small_df, "y ~ x + (1 | school)", "~ x + (1 | school)",
                          random_seed=5)
    with pytest.warns(DeprecationWarning), pytest.raises(_Stop):
        mlob_pp.fit_melsm(small_df, location="y ~ x + (1 | school)",
                          scale="~ x + (1 | school)", random_seed=5)
    ref_data, ref_settings, ref_seed = seen[0]
    assert len(seen) == 5
    for mdata, settings, seed in seen[1:]:
        assert settings == ref_settings and seed == ref_seed
        for name in ("y", "X", "Z", "W", "V", "group_idx", "obs_labels"):
            np.testing.assert_array_equal(getattr(mdata, name), getattr(ref_data, name))
        for name in ("group_labels", "x_names", "z_names", "w_names", "v_names"):
            assert list(getattr(mdata, name)) == list(getattr(ref_data, name))
    # another seed reaches the sampler as another seed
    with pytest.raises(_Stop):
        mlob_pp.fit_melsm("y ~ x + (1 | school)", small_df, scale="~ x", random_seed=6)
    assert seen[-1][2] != ref_seed


def test_bf10_formula():
    pip = np.array([0.5, 0.75, 0.9, 1.0])
    np.testing.assert_allclose(bf10(pip, 0.5), [1.0, 3.0, 9.0, np.inf])
    np.testing.assert_allclose(bf10(np.array([0.2]), 0.2), [1.0])


# ------------------------------------------------------------------- recovery (sampling)
@pytest.fixture(scope="module")
def recovery():
    _quiet_pymc()
    df, truth = simulate(seed=1)
    with warnings.catch_warnings():
        # 2 x 400 draws: single PIPs may show R-hat slightly above 1.01; checked below
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = mlob_pp.fit_melsm(
            "y ~ x + (1 | school)",
            df,
            scale="~ x",
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
    table = fit.table("model")
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
    table = fit.table()
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
    assert len(fit.table("pip")) == fit.pip.size
    assert "Groups with PIP >= 0.75" in str(fit)
    with pytest.raises(ValueError, match=r"`which` must be one of 'all', 'model', 'pip'; got 'x'"):
        fit.table("x")


@pytest.mark.mcmc
def test_result_protocol(recovery):
    df, _, fit = recovery
    frame = fit.to_frame()
    assert fit.params.index.equals(frame.index)
    assert {"beta_Intercept", "beta_x", "zeta_x", "sd_Intercept", "sd_scl_Intercept",
            "tau2", "corr[scl_Intercept, Intercept]"} <= set(frame.index)
    assert not any(k.startswith("pip[") for k in frame.index)
    # params / bse are the posterior means / SDs of the draws
    beta_x = fit.idata["posterior"]["beta"].sel(location_term="x").values
    assert fit.params["beta_x"] == pytest.approx(beta_x.mean(), rel=1e-12)
    assert fit.bse["beta_x"] == pytest.approx(beta_x.std(ddof=1), rel=1e-12)
    sd = fit.idata["posterior"]["re_sd"].sel(effect="Intercept").values
    assert fit.params["tau2"] == pytest.approx((sd**2).mean(), rel=1e-12)
    ci = fit.conf_int()
    assert ci.loc["beta_x", "lower"] == pytest.approx(np.quantile(beta_x, 0.025))
    with pytest.raises(ValueError, match=r"`level` must equal the fit's conf_level \(0.95\)"):
        fit.conf_int(0.5)
    narrow = fit.table("model", conf_level=0.5)
    assert narrow.loc["beta_x", "ci_upper"] < frame.loc["beta_x", "ci_upper"]
    with pytest.raises(AttributeError, match=r"p values are not defined for 'melsm'"):
        fit.pvalues  # noqa: B018
    summ = fit.summary()
    assert isinstance(summ, Summary) and "<table" in summ._repr_html_()
    assert set(summ.tables) == {"parameters", "flagged"}
    assert "Groups with PIP >= 0.75" in str(summ)
    with pytest.warns(DeprecationWarning, match=r"`ci_prob` is deprecated .* use `conf_level`"):
        old = fit.summary(ci_prob=0.9)
    assert old["parameters"].loc["beta_x", "ci_upper"] < frame.loc["beta_x", "ci_upper"]
    assert fit.to_datatree() is fit.idata
    line = repr(fit)
    assert "\n" not in line and len(line) < 300
    n_flag = len(fit.flagged())
    assert f"{df['school'].nunique()} groups" in line and f"{n_flag} flagged" in line
    assert fit.n_obs == len(df) and fit.formula == "y ~ x + (1 | school)"
    assert fit.scale == "~ x + (1 | school)"
    assert fit.idata.attrs["estimator"] == "melsm" and fit.idata.attrs["random_seed"] == 11


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
        warn_diagnostics(broken)


# -------------------------------------------------------- general formulas (sampling)
@pytest.mark.slow  # a second numba compilation; the likelihood itself is checked above
def test_random_slopes_in_both_parts():
    _quiet_pymc()
    df, _ = simulate(seed=4, J=12, n=15)
    df = df[df["school"] != "zz"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = mlob_pp.fit_melsm(
            "y ~ x + (1 + x | school)",
            df,
            scale="~ x + (x | school)",
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
        "math_proficiency ~ student_ses * school_ses + (1 | school_id)",
        df,
        scale="~ student_ses * school_ses",
        draws=1000,
        tune=1000,
        chains=4,
        random_seed=2026,
    )
    flagged = set(fit.pip[fit.pip > 0.75].index)
    assert {9, 46, 53, 114, 115, 153} <= flagged
    assert flagged <= {9, 46, 53, 114, 115, 153, 124, 95, 39, 87, 64, 92, 149}
    table = fit.table("model")
    for row, (mean, sd, n_eff) in SAEB_REF.items():
        tol = 4.0 * np.hypot(table.loc[row, "mcse"], sd / np.sqrt(n_eff)) + 0.005
        assert table.loc[row, "estimate"] == pytest.approx(mean, abs=tol), row
        assert table.loc[row, "std_error"] == pytest.approx(sd, rel=0.25), row


def test_recovery_rule_by_hand():
    pip = pd.Series([0.9, 0.8, 0.76, 0.5, 0.2, 0.75], index=[1, 2, 3, 4, 5, 6])
    res = MELSMResult(None, pip, pip, 0.5, "y ~ (1 | g)", "~ (1 | g)", "g")
    rec = res.recovery([1, 4, 6])  # flagged {1, 2, 3}: one hit of three planted
    assert rec["flagged"] == 3 and rec["true_positives"] == 1
    assert rec["sensitivity"] == pytest.approx(1 / 3) and rec["fdr"] == pytest.approx(2 / 3)
    assert res.recovery([], pip_level=0.95)["fdr"] == 0.0
    with pytest.raises(ValueError, match=r"`truth` names groups that are not in the fit: \[9\]"):
        res.recovery([1, 9])


@pytest.mark.mcmc
def test_recovery_of_planted_schools_simulate_saeb():
    """The PIP > 0.75 rule against simulate_saeb's planted truth, small configuration."""
    _quiet_pymc()
    raw = mlob_pp.simulate_saeb(60, unusual_fraction=0.2, unusual_log_sd=0.7, random_seed=3)
    df = prepare_saeb(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # short chains
        fit = mlob_pp.fit_melsm(
            "math_proficiency ~ student_ses * school_ses + (1 | school_id)", df,
            scale="~ student_ses", draws=300, tune=300, chains=2, random_seed=4,
            log_likelihood=False,
        )
    truth = raw.attrs["unusual_schools"]
    sizes = raw.groupby("school_id").size()
    detectable = [j for j in truth if sizes[j] >= 30]
    assert len(detectable) >= 4
    assert (fit.pip[detectable] > 0.75).mean() >= 0.75, fit.pip[truth]
    rec = fit.recovery(truth)
    assert rec["fdr"] <= 0.25, (rec, fit.flagged())
    ordinary = fit.pip.drop(truth)
    assert ordinary.median() < 0.6
