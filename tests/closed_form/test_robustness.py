"""Hostile and degenerate input for mlob() and mlob_batch() (issue 12), with exact input classes."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import mlob_pp
from mlob_pp.closed_form.core import mlob_batch
from mlob_pp.simulate import simulate_arrays
from mlob_pp.warnings import BalancingWarning, NumericalWarning


def frame(seed=1, J=12, n=10, tau2_x=0.36, covariate=True):
    rng = np.random.default_rng(seed)
    y, x, c, _ = simulate_arrays((1,), J, n, rng, beta_b=0.6, beta_w=0.2, tau2_x=tau2_x,
                                 sigma2_x=0.64, tau2=0.1, sigma2=0.6, gamma=[0.3],
                                 phi_w=[0.4], phi_b=[0.4])
    df = pd.DataFrame({"y": y[0].ravel(), "x": x[0].ravel(), "g": np.repeat(np.arange(J), n)})
    if covariate:
        df["c"] = c[0, ..., 0].ravel()
    return df


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ------------------------------------------------------------ covariates derived from x
@pytest.mark.parametrize("derived", [lambda x: 2 * x + 1, lambda x: 0.1 * x, lambda x: -x + 1e6])
def test_covariate_linear_in_x_is_an_error(derived):
    df = frame()
    with pytest.raises(ValueError, match=r"`formula`: the terms 'x', 'd' are collinear"):
        mlob_pp.mlob("y ~ x + d", df.assign(d=derived(df["x"])), "g")
    with pytest.raises(ValueError, match=r"the terms 'x', 'd' are collinear"):
        mlob_pp.mlob("y ~ x + c + d", df.assign(d=derived(df["x"])), "g")


def test_covariate_linear_in_x_and_another_covariate_is_an_error():
    df = frame()
    with pytest.raises(ValueError, match=r"the terms 'x', 'c', 'd' are collinear"):
        mlob_pp.mlob("y ~ x + c + d", df.assign(d=df["x"] - 3 * df["c"]), "g")


# ------------------------------------------------------------------ level-2 covariates
@pytest.mark.parametrize("kind", ["group_mean_of_x", "school_characteristic", "scaled_1e9"])
def test_level2_covariate_is_an_error(kind):
    df = frame()
    rng = np.random.default_rng(5)
    if kind == "group_mean_of_x":
        w = df.groupby("g")["x"].transform("mean")
    elif kind == "school_characteristic":
        w = pd.Series(rng.normal(size=12)[df["g"]])
    else:
        w = pd.Series(1e9 + rng.normal(size=12)[df["g"]])
    with pytest.raises(ValueError, match=r"`formula`: covariate 'w' is constant within every "
                                         r"group \(a level-2 variable"):
        mlob_pp.mlob("y ~ x + c + w", df.assign(w=w.to_numpy()), "g")


def test_level1_covariate_with_level2_part_is_accepted():
    df = frame()
    w = df.groupby("g")["x"].transform("mean") + df["c"]  # varies within groups
    res = mlob_pp.mlob("y ~ x + w", df.assign(w=w), "g")
    assert np.isfinite(res.params["beta_b"])


# --------------------------------------------------------------- stable mode, extreme scales
@pytest.mark.parametrize("ax", [1e-9, 1e-3, 1.0, 1e3, 1e9])
@pytest.mark.parametrize("ay", [1e-9, 1.0, 1e9])
def test_stable_mode_extreme_scales_are_finite_and_equivariant(ax, ay):
    df = frame(J=8, n=6)
    base = quiet(mlob_pp.mlob, "y ~ x + c", df, "g", mode="stable")
    shifts = [(0.0, 0.0)]
    if ax >= 1e-3 and ay >= 1e-3:  # a shift of 1e6 keeps >= 6 significant digits of the data
        shifts += [(1e6, 0.0), (0.0, 1e6), (1e6, 1e6)]
    for sx, sy in shifts:
        res = quiet(mlob_pp.mlob, "y ~ x + c", df.assign(x=df["x"] * ax + sx,
                                                        y=df["y"] * ay + sy), "g", mode="stable")
        tol = 1e-9 if sx == sy == 0 else 1e-6
        assert np.isfinite(res.params).all() and np.isfinite(res.bse).all()
        assert res.params["beta_b"] == pytest.approx(base.params["beta_b"] * ay / ax, rel=tol)
        assert res.bse["beta_b"] == pytest.approx(base.bse["beta_b"] * ay / ax, rel=tol)
        assert res.params["gamma_c"] == pytest.approx(base.params["gamma_c"] * ay, rel=tol)


def test_stable_mode_finite_when_a_shift_eats_digits():
    """x * 1e-3 + 1e6 keeps ~7 digits of x: finite, and close within that precision."""
    df = frame(J=8, n=6)
    base = quiet(mlob_pp.mlob, "y ~ x", df, "g", mode="stable").params["beta_b"]
    res = quiet(mlob_pp.mlob, "y ~ x", df.assign(x=df["x"] * 1e-3 + 1e6), "g", mode="stable")
    assert np.isfinite(res.params["beta_b"]) and np.isfinite(res.bse["beta_b"])
    assert res.params["beta_b"] * 1e-3 == pytest.approx(base, rel=1e-4)


# --------------------------------------------------------------------------- mlob_batch
def batch(B=5, J=10, n=6, seed=3):
    y, x, c, _ = simulate_arrays((B,), J, n, np.random.default_rng(seed), beta_b=0.5,
                                 beta_w=0.2, gamma=[0.3], phi_w=[0.4], phi_b=[0.4])
    return y, x, c


@pytest.mark.parametrize(("arg", "value"), [("y", np.nan), ("x", np.inf), ("covariates", np.nan)])
def test_batch_with_a_nan_data_set_is_an_error(arg, value):
    y, x, c = batch()
    data = {"y": y, "x": x, "covariates": c}
    data[arg][3, 2, 1] = value
    with pytest.raises(ValueError, match=rf"`{arg}` has non-finite values \(NaN or inf\) in 1 of "
                                         rf"5 data set\(s\) \(index 3\)"):
        mlob_batch(data["y"], data["x"], data["covariates"])


@pytest.mark.parametrize("prior", [np.nan, [0.1, 0.2, np.nan, 0.1, 0.3]])
def test_batch_with_a_nan_prior_is_an_error(prior):
    y, x, c = batch()
    with pytest.raises(ValueError, match=r"`b_prior` must be finite; got NaN or inf"):
        mlob_batch(y, x, c, b_prior=prior)
    with pytest.raises(ValueError, match=r"`b_prior` must be a number or an array of shape \(5,\)"):
        mlob_batch(y, x, c, b_prior=np.zeros(4))


def test_batch_with_x_constant_within_groups_is_an_error():
    y, x, c = batch()
    x[1] = x[1].mean(axis=1, keepdims=True) + 1e6  # data set 1: level-2 x (and shifted)
    with pytest.raises(ValueError, match=r"`x` is constant within every group \(no "
                                         r"within-group variation\) in 1 of 5 data set\(s\) "
                                         r"\(index 1\)"):
        mlob_batch(y, x, c)
    y, x, c = batch()
    x[4] -= x[4].mean(axis=1, keepdims=True)  # equal group means
    with pytest.raises(ValueError, match=r"the group means of `x` are all equal .* \(index 4\)"):
        mlob_batch(y, x, c)


def test_batch_r_fallback_is_flagged_and_warned_never_silent():
    y, x, c = batch()
    y[2] *= 1e-12  # below R's absolute 1e-7 thresholds: R's fallback beta_b = 0, SE = 1
    with pytest.warns(NumericalWarning, match=r"R's fallback \(beta_b = 0, SE = 1\) was returned"
                                              r".*\(1 of 5 data sets\)"):
        res = mlob_batch(y, x, c)
    np.testing.assert_array_equal(res.degenerate, [False, False, True, False, False])
    assert res.beta_b[2] == 0.0 and res.se_beta_b[2] == 1.0
    quiet_res = mlob_batch(y, x, c, warn=False)
    assert quiet_res.degenerate[2]  # flagged even without the warning
    stable = mlob_batch(y, x, c, mode="stable", warn=False)  # scale-free: a real estimate
    assert np.isfinite(stable.beta_b).all()


# -------------------------------------------------------------------------- bootstrap
@pytest.mark.parametrize(("n_boot", "level", "need"), [(1, 0.95, 200), (150, 0.95, 200),
                                                        (999, 0.99, 1000)])
def test_too_few_bootstrap_refits_is_an_error(n_boot, level, need):
    df = frame()
    with pytest.raises(ValueError, match=rf"`n_boot` must be at least {need} for a "
                                         rf"{100 * level:g} % bootstrap interval .* got {n_boot}"):
        mlob_pp.mlob("y ~ x", df, "g", se="bootstrap", n_boot=n_boot, conf_level=level)


def test_bootstrap_where_r_fallback_fires_reports_no_se():
    df = frame(covariate=False)
    df["y"] *= 1e-12
    with pytest.warns(NumericalWarning) as record:
        res = mlob_pp.mlob("y ~ x", df, "g", se="bootstrap", n_boot=200, random_seed=1)
    messages = " ".join(str(w.message) for w in record)
    assert "R's fallback" in messages and "all refits gave the same estimate" in messages
    row = res.to_frame().loc["beta_b"]
    assert math.isnan(row["std_error"])
    assert (row["ci_lower"], row["ci_upper"]) == (-np.inf, np.inf)
    assert "unbounded both sides" in res.summary_text()


def test_unbounded_bootstrap_interval_is_reported_with_a_reason():
    # J = 10, n = 5, ICC_X = 0.05: too little between-group information (seed found by search)
    rng = np.random.default_rng(1)
    y, x, _, _ = simulate_arrays((1,), 10, 5, rng, beta_b=0.5, beta_w=0.2, tau2_x=0.05,
                                 sigma2_x=0.95, tau2=0.1, sigma2=0.6)
    df = pd.DataFrame({"y": y[0].ravel(), "x": x[0].ravel(), "g": np.repeat(np.arange(10), 5)})
    res = mlob_pp.mlob("y ~ x", df, "g", se="bootstrap", n_boot=200, random_seed=1)
    lo, hi = res.conf_int().loc["beta_b"]
    assert lo == -np.inf and np.isfinite(hi)
    assert res.unbounded_reason.startswith("unbounded below: ")
    for text in (res.summary_text(), str(res)):
        assert "The bootstrap interval of beta_b is unbounded below" in text
        assert "too little between-group information" in text


# ---------------------------------------------------------------- invariance statements
def test_row_order_invariance_holds_for_balanced_data_and_analytic_se():
    df = frame()
    shuffled = df.sample(frac=1, random_state=7)
    relabeled = df.assign(g=df["g"].map(lambda v: f"s{(5 * v) % 12:02d}"))
    ref = mlob_pp.mlob("y ~ x + c", df, "g")
    for other in (shuffled, relabeled):
        pd.testing.assert_frame_equal(mlob_pp.mlob("y ~ x + c", other, "g").to_frame(),
                                      ref.to_frame(), rtol=1e-12)


def test_row_order_changes_seeded_balancing_jackknife_and_bootstrap():
    """What is NOT invariant: which rows a seed deletes, drops or pairs with which draw."""
    df = frame(J=12, n=12)
    unbalanced = df.iloc[np.r_[0:140, 141:144]]  # groups of 12 and one of 11 ... drop rows
    unbalanced = unbalanced[~((unbalanced["g"] == 3) & (unbalanced.index % 12 == 5))]
    shuffled = unbalanced.sample(frac=1, random_state=3)
    with pytest.warns(BalancingWarning):
        a = mlob_pp.mlob("y ~ x", unbalanced, "g", random_seed=1, balancing_limit=0.5)
    with pytest.warns(BalancingWarning):
        b = mlob_pp.mlob("y ~ x", shuffled, "g", random_seed=1, balancing_limit=0.5)
    assert a.params["beta_b"] != b.params["beta_b"]
    bal, shuf = frame(), frame().sample(frac=1, random_state=3)
    ja = mlob_pp.mlob("y ~ x", bal, "g", se="jackknife", random_seed=1)
    jb = mlob_pp.mlob("y ~ x", shuf, "g", se="jackknife", random_seed=1)
    assert ja.params["beta_b"] == pytest.approx(jb.params["beta_b"], rel=1e-12)
    assert ja.bse["beta_b"] != jb.bse["beta_b"]
    # bootstrap: without covariates the refits depend only on (J, n) and the moments, so row
    # order does not matter; with covariates their fixed residuals are paired with the draws
    # by position, so it does (the point estimate never changes)
    boot = {name: mlob_pp.mlob(form, d, "g", se="bootstrap", n_boot=200, random_seed=1)
            for name, form, d in [("a", "y ~ x", bal), ("b", "y ~ x", shuf),
                                  ("ca", "y ~ x + c", bal), ("cb", "y ~ x + c", shuf)]}
    pd.testing.assert_frame_equal(boot["a"].to_frame(), boot["b"].to_frame())
    assert boot["ca"].params["beta_b"] == pytest.approx(boot["cb"].params["beta_b"], rel=1e-12)
    assert boot["ca"].bse["beta_b"] != boot["cb"].bse["beta_b"]


# --------------------------------------------------------------------- argument spellings
def test_group_term_in_formula_gives_identical_results():
    df = frame(J=12, n=10)
    df = df.iloc[:-3]  # unbalanced: the seeded balancing must match too
    with pytest.warns(BalancingWarning):
        a = mlob_pp.mlob("y ~ x + c", df, "g", random_seed=4, se="jackknife")
    with pytest.warns(BalancingWarning):
        b = mlob_pp.mlob("y ~ x + c + (1 | g)", df, random_seed=4, se="jackknife")
    pd.testing.assert_frame_equal(a.to_frame(), b.to_frame())
    pd.testing.assert_frame_equal(a.to_frame("ml_moments"), b.to_frame("ml_moments"))
    assert a.formula == b.formula == "y ~ x + c" and a.group == b.group == "g"
    with pytest.raises(ValueError, match=r"`group` \('h'\) and the formula's group term \('g'\) "
                                         r"disagree"):
        mlob_pp.mlob("y ~ x + (1 | g)", df, "h")
    with pytest.raises(ValueError, match=r"`group` is required"):
        mlob_pp.mlob("y ~ x", df)
    with pytest.raises(ValueError, match=r"supports the group term \(1 \| g\); got '\(x \| g\)'"):
        mlob_pp.mlob("y ~ x + (x | g)", df)


def test_random_state_still_works_with_a_deprecation_warning():
    df = frame().iloc[:-2]
    with pytest.warns(BalancingWarning):
        new = mlob_pp.mlob("y ~ x", df, "g", random_seed=9)
    with pytest.warns(DeprecationWarning, match=r"mlob\(\): `random_state` is deprecated since "
                                                r"0\.2 and will be removed; use `random_seed`"):
        with pytest.warns(BalancingWarning):
            old = mlob_pp.mlob("y ~ x", df, "g", random_state=9)
    pd.testing.assert_frame_equal(new.to_frame(), old.to_frame())


def test_all_scale_shift_combinations_are_finite_or_a_clear_error_in_stable_mode():
    """Finite everywhere, except where the shift leaves x no variation above rounding (spread
    below 1e-11 of its size, mlob_pp.design.RTOL): then a clear error, never NaN."""
    df = frame(J=6, n=5, covariate=False)
    for ax, ay, sx in itertools.product([1e-9, 1e9], [1e-9, 1e9], [0.0, 1e6]):
        data = df.assign(x=df["x"] * ax + sx, y=df["y"] * ay)
        if sx and ax * 1.0 / sx < 1e-11:
            with pytest.raises(ValueError, match="does not include between-group variation"):
                quiet(mlob_pp.mlob, "y ~ x", data, "g", mode="stable")
            continue
        res = quiet(mlob_pp.mlob, "y ~ x", data, "g", mode="stable")
        assert np.isfinite(res.params["beta_b"]) and np.isfinite(res.bse["beta_b"])


def test_balancing_that_removes_the_within_variation_is_an_error():
    # x varies within group 0 only; balancing to 2 rows per group keeps 2 of its 6 rows at
    # random, and x is constant within every other group
    g = np.repeat(np.arange(6), [6, 2, 2, 2, 2, 2])
    x = np.r_[[0.0, 0.0, 0.0, 0.0, 0.0, 1.0], np.repeat([1.0, 2.0, 3.0, 4.0, 5.0], 2)]
    y = np.random.default_rng(1).normal(size=g.size)
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    with pytest.warns(BalancingWarning):
        with pytest.raises(ValueError, match=r"`x` is constant within every group .* in 1 of 1 "
                                             r"data set\(s\)"):
            mlob_pp.mlob("y ~ x", df, "g", random_seed=1, balancing_limit=0.5)
    with pytest.warns(BalancingWarning):  # this seed keeps the row with x = 1 in group 0
        assert np.isfinite(mlob_pp.mlob("y ~ x", df, "g", random_seed=0,
                                        balancing_limit=0.5).params["beta_b"])
