"""mlob(): behaviour beyond R parity — invariances, stable mode, batching, errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

import mlob_pp
from mlob_pp.closed_form.core import mlob_batch
from mlob_pp.validate import BalancingWarning, MissingDataWarning, NumericalWarning
from tests.conftest import reference_csv


def simulate(rng, J=12, n=10, icc=0.3, beta_b=0.6, beta_w=0.3, gamma=0.3, sizes=None):
    sizes = np.full(J, n) if sizes is None else np.asarray(sizes)
    g = np.repeat(np.arange(J), sizes)
    mu = rng.normal(0, math.sqrt(icc), J)[g]
    x = mu + rng.normal(0, math.sqrt(1 - icc), g.size)
    c = 0.4 * x + rng.normal(0, math.sqrt(0.84), g.size)
    y = beta_w * (x - mu) + beta_b * mu + gamma * c + rng.normal(0, 0.3, J)[g] \
        + rng.normal(0, 0.8, g.size)
    return pd.DataFrame({"y": y, "x": x, "c": c, "g": g})


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ----------------------------------------------------------------- invariances
def test_row_order_and_group_relabeling_do_not_matter(rng):
    df = simulate(rng)
    ref = mlob_pp.mlob("y ~ x + c", df, "g")
    shuffled = df.sample(frac=1, random_state=3)
    relabeled = df.assign(g=df["g"].map(lambda v: f"school-{(7 * v) % 12:02d}"))
    for other in (shuffled, relabeled, relabeled.sample(frac=1, random_state=4)):
        res = mlob_pp.mlob("y ~ x + c", other, "g")
        pd.testing.assert_series_equal(res.coef, ref.coef, rtol=1e-12)
        pd.testing.assert_series_equal(res.se, ref.se, rtol=1e-12)


@pytest.mark.parametrize("J", [3, 5, 8, 20])
def test_stable_mode_is_invariant_to_rescaling(rng, J):
    df = simulate(rng, J=J, n=15)
    base = quiet(mlob_pp.mlob, "y ~ x + c", df, "g", mode="stable")
    for ax, ay in [(1e-3, 1.0), (1e3, 1.0), (1.0, 1e-4), (50.0, 0.02)]:
        scaled = df.assign(x=df["x"] * ax, y=df["y"] * ay)
        res = quiet(mlob_pp.mlob, "y ~ x + c", scaled, "g", mode="stable")
        assert res.coef["beta_b"] == pytest.approx(base.coef["beta_b"] * ay / ax, rel=1e-9)
        assert res.se["beta_b"] == pytest.approx(base.se["beta_b"] * ay / ax, rel=1e-9)
        assert res.coef["gamma_c"] == pytest.approx(base.coef["gamma_c"] * ay, rel=1e-9)


def test_r_mode_is_not_scale_invariant_but_stable_is(rng):
    """R's absolute thresholds: rescaling x changes R's answer by more than the factor."""
    df = simulate(rng, J=10, n=10, icc=0.05)
    small = df.assign(x=df["x"] * 1e-3)
    r_base = mlob_pp.mlob("y ~ x", df, "g").coef["beta_b"]
    r_small = quiet(mlob_pp.mlob, "y ~ x", small, "g").coef["beta_b"]
    assert not math.isclose(r_small, r_base * 1e3, rel_tol=1e-3)


def test_stable_mode_warns_about_nonexistent_se_for_small_j(rng):
    df = simulate(rng, J=4, n=10)
    res = mlob_pp.mlob("y ~ x", df, "g", mode="stable")
    assert math.isinf(res.se_ml["beta_b"])  # ratio-of-Gammas variance does not exist (J <= 5)
    assert np.isfinite(res.coef["beta_b"])


def test_r_mode_warns_when_pole_decides(rng):
    df = simulate(rng, J=3, n=30)
    with pytest.warns(NumericalWarning) as record:
        mlob_pp.mlob("y ~ x", df, "g")
    assert any("pole" in str(w.message) or "rounding noise" in str(w.message) for w in record)


# ---------------------------------------------------------------- batched core
def test_batched_core_equals_single_fits(rng):
    B, J, n = 6, 10, 8
    data = [simulate(rng, J=J, n=n) for _ in range(B)]
    y = np.stack([d["y"].to_numpy().reshape(J, n) for d in data])
    x = np.stack([d["x"].to_numpy().reshape(J, n) for d in data])
    c = np.stack([d["c"].to_numpy().reshape(J, n, 1) for d in data])
    batch = mlob_batch(y, x, c)
    for i, d in enumerate(data):
        single = mlob_pp.mlob("y ~ x + c", d, "g")
        assert batch.beta_b[i] == pytest.approx(single.coef["beta_b"], rel=1e-12)
        assert batch.se_beta_b[i] == pytest.approx(single.se["beta_b"], rel=1e-12)
        assert batch.beta_b_ml[i] == pytest.approx(single.coef_ml["beta_b"], rel=1e-12)
        assert batch.se_beta_b_ml[i] == pytest.approx(single.se_ml["beta_b"], rel=1e-12)
        assert batch.gamma[i, 0] == pytest.approx(single.coef["gamma_c"], rel=1e-12)
        assert batch.se_gamma[i, 0] == pytest.approx(single.se["gamma_c"], rel=1e-12)
        assert batch.ci_lower[i] == pytest.approx(single.summary_frame()["ci_lower"].iloc[0],
                                                  rel=1e-12)


def test_closed_form_against_independent_computation(rng):
    """ANOVA moments and the estimator formula computed naively, without covariates."""
    df = simulate(rng, J=15, n=6)
    res = mlob_pp.mlob("y ~ x", df, "g")
    J, n = 15, 6
    x = df["x"].to_numpy().reshape(J, n)
    y = df["y"].to_numpy().reshape(J, n)
    msa = n * np.sum((x.mean(1) - x.mean()) * (y.mean(1) - y.mean())) / (J - 1)
    msd = np.sum((x - x.mean(1, keepdims=True)) * (y - y.mean(1, keepdims=True))) / (J * (n - 1))
    tau_yx = (msa - msd) / n
    msa_x = n * np.sum((x.mean(1) - x.mean()) ** 2) / (J - 1)
    msd_x = np.sum((x - x.mean(1, keepdims=True)) ** 2) / (J * (n - 1))
    tau_x = (msa_x - msd_x) / n
    assert res.coef_ml["beta_b"] == pytest.approx(tau_yx / tau_x, rel=1e-12)
    w, t = res.internals["w_opt"], res.internals["tau02_opt"]
    assert res.coef["beta_b"] == pytest.approx(tau_yx / ((1 - w) * t + w * tau_x), rel=1e-12)
    # brute-force the grid criterion of spec 3.6 and compare the arg-min
    K1, T1, K2, T2 = (res.internals[k] for k in ("K1", "T1", "K2", "T2"))
    s1, q1, b = K1 * T1 * 2, 2 * K1 * T1**2, tau_yx / tau_x
    lo, hi = res.internals["lo"], res.internals["hi"]
    best = (math.inf, None)
    for j in range(100):
        wj = min(0.01 + j * 0.01, 1.0)
        for i in range(100):
            ti = hi if i == 99 else lo + i * (hi - lo) / 99
            D = (1 - wj) * ti + wj * s1
            val = K2 * T2**2 * (K2 + 1) * D / ((D * D - 2 * wj**2 * q1) * (D * D - 4 * wj**2 * q1))
            val += -2 * b * K2 * T2 * D / (D * D - 2 * wj**2 * q1) + b
            if val < best[0]:
                best = (val, 100 * j + i)
    assert res.internals["grid_index"] == best[1]


# ------------------------------------------------------------------- balancing
def test_balancing_is_seeded_and_averaging_uses_rubins_rules(rng):
    df = simulate(rng, J=12, sizes=rng.integers(14, 20, 12))
    with pytest.warns(BalancingWarning, match="Deleted entries"):
        a = mlob_pp.mlob("y ~ x + c", df, "g", random_seed=5)
    with pytest.warns(BalancingWarning):
        b = mlob_pp.mlob("y ~ x + c", df, "g", random_seed=5)
    pd.testing.assert_series_equal(a.coef, b.coef)
    with pytest.warns(BalancingWarning):
        avg = mlob_pp.mlob("y ~ x + c", df, "g", random_seed=5, n_balance=20)
    assert avg.balancing["n_balance"] == 20
    # Rubin: total variance >= average within variance of the single fits
    singles = []
    for s in range(3):
        with pytest.warns(BalancingWarning):
            singles.append(mlob_pp.mlob("y ~ x + c", df, "g", random_seed=s).coef["beta_b"])
    assert np.isfinite(avg.se["beta_b"]) and avg.se["beta_b"] > 0
    text = avg.summary_text()
    assert "Averaged over 20 random balancings (Rubin's rules); beta_b across balancings: SD" \
        in text
    per = avg.balancing["beta_b_per_balancing"]
    est = avg.balancing["estimates"]
    assert est.shape == (20, 2) and list(est.columns) == ["beta_b", "gamma_c"]
    np.testing.assert_array_equal(est["beta_b"], per)
    assert avg.coef["gamma_c"] == pytest.approx(est["gamma_c"].mean(), rel=1e-12)
    assert avg.balancing["estimates_ml"]["beta_b"].std() > 0
    assert per.shape == (20,) and np.std(per) > 0
    assert avg.coef["beta_b"] == pytest.approx(np.mean(per), rel=1e-12)
    assert f"SD {np.std(per, ddof=1):.4g}" in text
    assert "AT RANDOM (random_seed = 5)" in text and "AT RANDOM" in str(avg)
    assert "refit with n_balance=20" in a.summary_text()


def test_balancing_over_the_limit_raises_after_warning(rng):
    df = simulate(rng, J=10, sizes=[5, 30, 30, 30, 30, 30, 30, 30, 10, 10])
    with pytest.warns(BalancingWarning, match="Your data is unbalanced"):
        with pytest.raises(ValueError, match=r"exceeds the `balancing_limit`, 20%"):
            mlob_pp.mlob("y ~ x", df, "g")


def test_jackknife_is_seeded(rng):
    df = simulate(rng, J=10, n=8)
    a = mlob_pp.mlob("y ~ x + c", df, "g", jackknife=True, random_seed=1)
    b = mlob_pp.mlob("y ~ x + c", df, "g", jackknife=True, random_seed=1)
    assert a.se_method == "jackknife"
    pd.testing.assert_series_equal(a.se, b.se)
    plain = mlob_pp.mlob("y ~ x + c", df, "g")
    assert a.se_ml["beta_b"] == plain.se_ml["beta_b"]  # ML row keeps its analytic SE (as R)
    pd.testing.assert_series_equal(a.coef, plain.coef)


# ------------------------------------------------------------ formula handling
def test_r_style_names_and_interactions(rng):
    df = simulate(rng).rename(columns={"y": "Sepal.Length", "x": "Sepal.Width",
                                       "c": "Petal Length"})
    df["sx"] = np.where(rng.random(len(df)) < 0.5, "Male", "Female")
    res = mlob_pp.mlob("Sepal.Length ~ Sepal.Width + `Petal Length` * sx", df, "g")
    assert list(res.coef.index) == ["beta_b", "gamma_Petal Length", "gamma_sxMale",
                                    "gamma_Petal Length:sxMale"]


def test_conf_level_is_a_confidence_level(rng):
    df = simulate(rng)
    res = mlob_pp.mlob("y ~ x", df, "g", conf_level=0.9)
    t = res.summary_frame()
    half = (t["ci_upper"] - t["ci_lower"]) / 2 / t["std_error"]
    assert np.allclose(half, 1.6448536269514722)
    assert "90%" in res.summary_text()


def test_missing_values_drop_with_warning(rng):
    df = simulate(rng, J=10, n=10)
    df.loc[[3, 17], "c"] = np.nan
    with pytest.raises(ValueError, match=r"column 'c' has 2 missing values .* in 100 rows"):
        mlob_pp.mlob("y ~ x + c", df, "g")
    with pytest.warns(MissingDataWarning, match="dropped 2 of 100 rows"):
        with pytest.warns(BalancingWarning):
            res = mlob_pp.mlob("y ~ x + c", df, "g", missing="drop")
    assert res.n_obs_input == 98


def test_print_and_summary_layout(rng, capsys):
    df = simulate(rng)
    res = mlob_pp.mlob("y ~ x + c", df, "g")
    text = str(res)
    for part in ["Call:", "Coefficients", "Standard_Error", "Confidence_Interval (95%)",
                 "Z value", "p value", "gamma_c"]:
        assert part in text
    summary = res.summary()
    out = str(summary)
    assert "<h4>" in summary._repr_html_() and "mlob" in summary.tables
    assert "Summary of Coefficients:" in out
    assert "For comparison, summary of coefficients from unoptimized analysis (ML):" in out
    assert "Signif. codes:" in out and "Note:" in out


def test_bundled_passnyc_talk_application():
    df = mlob_pp.datasets.load("passnyc")
    assert len(df) == 1217 and df["District"].nunique() == 32
    with pytest.warns(BalancingWarning):
        res = mlob_pp.mlob("math ~ ENI + ELA + ENI:ELA", df, "District", balancing_limit=0.35,
                           random_seed=2025)
    assert list(res.coef.index) == ["beta_b", "gamma_ELA", "gamma_ENI:ELA"]
    # what replicates from the talk: shrinkage toward 0, smaller SE, identical gammas
    assert abs(res.coef["beta_b"]) < abs(res.coef_ml["beta_b"])
    assert res.se["beta_b"] < res.se_ml["beta_b"]
    assert res.coef["gamma_ELA"] == res.coef_ml["gamma_ELA"]
    assert res.coef["beta_b"] < 0 and 0.8 < res.coef["gamma_ELA"] < 1.6


# ---------------------------------------------------------------- error catalogue
@pytest.fixture
def df(rng):
    return simulate(rng, J=6, n=5)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"conf_level": 0.0}, ValueError,
          r"`conf_level` must be strictly between 0 and 1; got 0\.0"),
        ({"conf_level": 1.5}, ValueError,
          r"`conf_level` must be strictly between 0 and 1; got 1.5"),
        ({"conf_level": "95%"}, TypeError, r"`conf_level` must be a number .* got '95%'"),
        ({"balancing_limit": 1.2}, ValueError, r"`balancing_limit` must be in \[0, 1\]; got 1.2"),
        ({"balancing_limit": None}, TypeError, r"`balancing_limit` must be a number"),
        ({"jackknife": "yes"}, TypeError, r"`jackknife` must be True or False; got 'yes'"),
        ({"punish_coeff": 0}, ValueError, r"`punish_coeff` must be a finite number greater than 0"),
        ({"punish_coeff": "2"}, TypeError, r"`punish_coeff` must be a number greater than 0"),
        ({"mode": "fast"}, ValueError, r"`mode` must be one of 'r', 'stable'; got 'fast'"),
        ({"n_balance": 0}, ValueError, r"`n_balance` must be an integer >= 1; got 0"),
        ({"random_seed": "seed"}, TypeError, r"`random_seed` must be None, a non-negative int"),
        ({"random_seed": -1}, ValueError, r"`random_seed` must be a non-negative integer"),
        ({"random_seed": 1, "random_state": 1}, TypeError,
         r"mlob\(\) got both `random_state` \(deprecated\) and `random_seed`"),
        ({"seed": 1}, TypeError, r"mlob\(\) got unexpected keyword argument\(s\) `seed`"),
        ({"missing": "ignore"}, ValueError, r"`missing` must be 'raise' or 'drop'; got 'ignore'"),
    ],
)
def test_bad_arguments(df, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        mlob_pp.mlob("y ~ x", df, "g", **kwargs)


def test_bad_data_errors(df):
    with pytest.raises(TypeError, match="`formula` must be a string"):
        mlob_pp.mlob(42, df, "g")
    with pytest.raises(ValueError, match="`formula` must be two-sided"):
        mlob_pp.mlob("not a formula", df, "g")
    with pytest.raises(TypeError, match="`data` must be a pandas DataFrame"):
        mlob_pp.mlob("y ~ x", [1, 2, 3], "g")
    with pytest.raises(ValueError, match=r"`data` is empty \(0 rows\)"):
        mlob_pp.mlob("y ~ x", df.iloc[:0], "g")
    with pytest.raises(ValueError, match=r"`group` column 'NotARealGroup' is not in data"):
        mlob_pp.mlob("y ~ x", df, "NotARealGroup")
    with pytest.raises(TypeError, match=r"`group` must be the name of a column"):
        mlob_pp.mlob("y ~ x", df, 3)
    with pytest.raises(ValueError, match=r"`formula` uses column\(s\) not in data: 'z'"):
        mlob_pp.mlob("y ~ z", df, "g")
    with pytest.raises(TypeError, match=r"The outcome 'y' must be numeric .* got dtype"):
        mlob_pp.mlob("y ~ x", df.assign(y=df["y"].astype(str)), "g")
    with pytest.raises(TypeError, match=r"The main predictor variable 'x' must be numeric"):
        mlob_pp.mlob("y ~ x", df.assign(x=np.where(df["x"] > 0, "a", "b")), "g")
    with pytest.raises(ValueError, match=r"column 'x' has 1 non-finite values"):
        mlob_pp.mlob("y ~ x", df.assign(x=df["x"].where(df.index != 2, np.inf)), "g")
    with pytest.raises(ValueError, match=r"column 'g' has 1 group labels \(NaN/None\)"):
        mlob_pp.mlob("y ~ x", df.assign(g=df["g"].where(df.index != 0, None)), "g")
    with pytest.raises(ValueError, match=r"at least 2 distinct groups; got 1"):
        mlob_pp.mlob("y ~ x", df.assign(g=1), "g")
    with pytest.raises(ValueError, match=r"groups of size 1"):
        mlob_pp.mlob("y ~ x", df.assign(g=np.arange(len(df))), "g")
    with pytest.raises(ValueError, match=r"does not include between-group variation"):
        mlob_pp.mlob("y ~ x", df.assign(x=np.tile(np.arange(5.0), 6)), "g")
    with pytest.raises(ValueError, match=r"does not include within-group variation"):
        mlob_pp.mlob("y ~ x", df.assign(x=df["g"] * 1.5), "g")
    with pytest.raises(ValueError, match=r"the outcome 'y' has no variation"):
        mlob_pp.mlob("y ~ x", df.assign(y=1.0), "g")
    with pytest.raises(ValueError, match=r"`formula`: the terms 'c', 'd' are collinear"):
        mlob_pp.mlob("y ~ x + c + d", df.assign(d=2 * df["c"] + 1), "g")
    with pytest.raises(ValueError, match=r"`jackknife=True` needs groups of at least 3 rows"):
        mlob_pp.mlob("y ~ x", df.iloc[df.groupby("g").cumcount().to_numpy() < 2], "g",
                     jackknife=True)
    with pytest.raises(ValueError, match=r"`summary_frame` which|`which` must be one of"):
        mlob_pp.mlob("y ~ x", df, "g").summary_frame("bayes")


def test_batched_core_shape_errors():
    with pytest.raises(ValueError, match=r"`x` and `y` must have the same shape"):
        mlob_batch(np.zeros((2, 3, 4)), np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match=r"at least 2 groups .* got J = 1"):
        mlob_batch(np.zeros((2, 1, 4)), np.zeros((2, 1, 4)))
    with pytest.raises(ValueError, match=r"groups need at least 2 members .* got n = 1"):
        mlob_batch(np.zeros((2, 3, 1)), np.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match=r"`covariates` must have shape"):
        mlob_batch(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), np.zeros((2, 3, 5, 1)))


def test_hsb_string_factors_match_dummies():
    """R: `mAch ~ ses + minrty + sx` on strings equals the 0/1 dummy version (finding 9)."""
    df = reference_csv("hsb82_sub30.csv")
    kw = dict(balancing_limit=0.5, random_seed=mlob_pp.RRandom(20240601))
    with pytest.warns(BalancingWarning):
        a = mlob_pp.mlob("mAch ~ ses + minrty + sx", df, "school", **kw)
    kw["random_seed"] = mlob_pp.RRandom(20240601)
    with pytest.warns(BalancingWarning):
        b = mlob_pp.mlob("mAch ~ ses + minrtyYes + sxFemale", df, "school", **kw)
    assert a.coef["beta_b"] == pytest.approx(b.coef["beta_b"], rel=1e-10)
    assert "gamma_minrtyYes" in a.coef.index and "gamma_sxMale" in a.coef.index


@pytest.mark.parametrize("stable", [False, True])
@pytest.mark.parametrize("J", [3, 5, 6, 20])
def test_compiled_grid_search_equals_numpy(rng, J, stable):
    from mlob_pp.closed_form import grid as grid_kernel
    from mlob_pp.closed_form.moments import GRID_W, grid_argmin_numpy

    if not grid_kernel.AVAILABLE:
        pytest.skip("numba not available")
    B = 300
    s1 = rng.uniform(0.05, 2, B)
    q1 = s1**2 / (J - 1) * rng.choice([1.0, 1 + 1e-16, 1 - 1e-16], B)
    K2 = rng.uniform(0.05, (J - 1) / 2, B)
    T2 = rng.normal(0, 0.5, B)
    b = rng.normal(0, 1, B)
    lo = np.full(B, 0.01)
    hi = lo + rng.uniform(0.01, 3, B)
    i1, v1, ok1 = grid_kernel.grid_argmin_compiled(GRID_W, s1, q1, K2, T2, b, lo, hi, stable)
    i2, v2, ok2 = grid_argmin_numpy(s1, q1, K2, T2, b, lo, hi, stable)
    np.testing.assert_array_equal(ok1, ok2)
    np.testing.assert_array_equal(i1[ok1], i2[ok2])
    np.testing.assert_array_equal(v1[ok1], v2[ok2])


# --------------------------------------------------------- se="bootstrap" (issue 7)
def test_bootstrap_se_is_wired_into_the_table(rng):
    df = simulate(rng, J=15, n=10)
    analytic = mlob_pp.mlob("y ~ x + c", df, "g")
    boot = mlob_pp.mlob("y ~ x + c", df, "g", se="bootstrap", n_boot=400, random_seed=3)
    again = mlob_pp.mlob("y ~ x + c", df, "g", se="bootstrap", n_boot=400, random_seed=3)
    pd.testing.assert_frame_equal(boot.summary_frame(), again.summary_frame())
    pd.testing.assert_series_equal(boot.coef, analytic.coef)  # same point estimates
    t = boot.summary_frame()
    assert boot.se_method == "bootstrap" and boot.interval_method == "inversion"
    assert t.loc["beta_b", "std_error"] != analytic.se["beta_b"]
    assert t.loc["beta_b", "ci_lower"] < t.loc["beta_b", "ci_upper"]
    # the ML (moment) table keeps its analytic SE
    pd.testing.assert_frame_equal(boot.summary_frame("ml"), analytic.summary_frame("ml"))
    text = boot.summary_text()
    assert "parametric bootstrap (400 refits), interval by inversion" in text
    assert "parametric bootstrap of" in text and "always at least as accurate" not in text
    assert "Standard errors: bootstrap" in str(boot)


def test_bootstrap_with_repeated_balancing_pools_roots(rng):
    df = simulate(rng, J=12, sizes=rng.integers(14, 18, 12))
    with pytest.warns(BalancingWarning):
        res = mlob_pp.mlob("y ~ x", df, "g", se="bootstrap", n_boot=200, n_balance=3,
                           random_seed=2)
    t = res.summary_frame()
    assert np.isfinite(t.loc["beta_b", "std_error"])
    assert t.loc["beta_b", "ci_lower"] < t.loc["beta_b", "ci_upper"]


def test_se_argument_errors(rng):
    df = simulate(rng, J=6, n=5)
    with pytest.raises(ValueError, match=r"`se` must be one of 'analytic', 'jackknife', "
                                         r"'bootstrap'; got 'wald'"):
        mlob_pp.mlob("y ~ x", df, "g", se="wald")
    with pytest.raises(ValueError, match=r"`jackknife=True` .* conflicts with se='bootstrap'"):
        mlob_pp.mlob("y ~ x", df, "g", se="bootstrap", jackknife=True)
    with pytest.raises(ValueError, match=r"`n_boot` must be an integer >= 1; got 0"):
        mlob_pp.mlob("y ~ x", df, "g", se="bootstrap", n_boot=0)
    res = mlob_pp.mlob("y ~ x", df, "g", se="jackknife", random_seed=1)
    assert res.se_method == "jackknife"


def test_stable_mode_shrinks_less_than_r_mode_but_is_not_unbiased():
    """Measured: at J = 40, n = 30, ICC_X = 0.3 (true beta_b 0.5) stable mode averages about
    0.445, R mode about 0.32, the moment ratio 0.50. Stable mode is biased toward 0, less
    than R mode (README statement), and its RMSE stays close to the moment ratio's.
    """
    from mlob_pp.simulate import simulate_arrays

    y, x, c, _ = simulate_arrays((600,), 40, 30, np.random.default_rng(11), beta_b=0.5,
                                 beta_w=0.2, tau2_x=0.3, sigma2_x=0.7, tau2=0.1, sigma2=0.6,
                                 gamma=[0.3], phi_w=[0.4], phi_b=[0.4])
    st = mlob_batch(y, x, c, mode="stable", warn=False)
    r = mlob_batch(y, x, c, mode="r", warn=False)
    mean = np.mean(st.beta_b)
    assert 0.41 < mean < 0.48  # biased toward 0 (Monte Carlo SE about 0.004)
    assert np.mean(r.beta_b) < mean - 0.05
    assert abs(np.mean(st.beta_b_ml) - 0.5) < 0.02
    rmse = np.sqrt(np.mean((st.beta_b - 0.5) ** 2))
    rmse_ml = np.sqrt(np.mean((st.beta_b_ml - 0.5) ** 2))
    assert rmse < 1.3 * rmse_ml
