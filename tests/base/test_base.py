"""Direct tests of the base layer: seeds, validate, design checks, tables, results, simulate."""

import warnings

import numpy as np
import pandas as pd
import pytest

from mlob_pp import RRandom
from mlob_pp.design import (
    check_full_rank,
    check_variation,
    check_within_variation,
    constant_within_groups,
    has_variation,
)
from mlob_pp.results import EstimatorResult
from mlob_pp.seeds import as_generator, as_int_seed, as_seed_sequence, check_random_seed
from mlob_pp.simulate import simulate_arrays, simulate_frame
from mlob_pp.tables import Summary, wald, wald_table
from mlob_pp.validate import reject_unknown, renamed_argument

# ----------------------------------------------------------------------------- seeds


def test_seed_rule_accepts_the_four_kinds_and_rrandom():
    for seed in (None, 3, np.random.default_rng(1), np.random.SeedSequence(2), RRandom(1)):
        assert check_random_seed(seed) is seed


@pytest.mark.parametrize("bad, exc, match", [
    (-1, ValueError, "must be a non-negative integer seed; got -1"),
    (True, TypeError, "got bool"),
    (1.5, TypeError, "got float"),
    ("1", TypeError, "got str"),
])
def test_bad_seeds_are_named_errors(bad, exc, match):
    with pytest.raises(exc, match=match):
        check_random_seed(bad)


def test_same_seed_same_stream_and_int_seed_is_stable():
    assert as_generator(5).random() == as_generator(5).random()
    assert as_int_seed(7) == 7
    assert as_int_seed(np.random.SeedSequence(7)) == as_int_seed(np.random.SeedSequence(7))
    assert 0 <= as_int_seed(2**40) < 2**31
    ss = as_seed_sequence(11)
    assert ss.entropy == 11
    with pytest.raises(TypeError, match="cannot be mlob_pp.RRandom here"):
        as_seed_sequence(RRandom(1))


# -------------------------------------------------------------------------- validate


def test_renamed_argument_warns_and_forwards_and_rejects_both():
    kw = {"random_state": 4}
    with pytest.warns(DeprecationWarning, match=r"f\(\): `random_state` is deprecated since 0.2 "
                                                r"and will be removed; use `random_seed`"):
        assert renamed_argument("f", kw, "random_state", "random_seed", None) == 4
    assert kw == {}
    with pytest.raises(TypeError,
                       match=r"got both `random_state` \(deprecated\) and `random_seed`"):
        renamed_argument("f", {"random_state": 1}, "random_state", "random_seed", 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert renamed_argument("f", {}, "random_state", "random_seed", 9) == 9
    with pytest.raises(TypeError, match=r"f\(\) got unexpected keyword argument\(s\) `bogus`"):
        reject_unknown("f", {"bogus": 1})


# ---------------------------------------------------------------------------- design


@pytest.mark.parametrize("shift, scale", [(0, 1), (1e9, 1), (0, 1e-12), (1e6, 1e3), (-5, 1e9)])
def test_variation_is_decided_relative_to_scale(shift, scale):
    x = np.random.default_rng(1).normal(size=50)
    assert has_variation(shift + scale * x)
    assert not has_variation(np.full(50, shift + scale * 0.3))


def test_constant_column_and_level_two_column_are_named():
    with pytest.raises(ValueError, match="column 'c' has no variation"):
        check_variation(np.full(10, 2.5), "c")
    codes = np.repeat(np.arange(5), 4)
    level2 = np.repeat(np.random.default_rng(2).normal(size=5), 4) * 1e6 + 3e9
    assert constant_within_groups(level2, codes, 5)
    with pytest.raises(ValueError, match="'w' has no within-group variation"):
        check_within_variation(level2, codes, 5, "w")
    assert not constant_within_groups(level2 + np.arange(20.0), codes, 5)
    # a unit-scale level-2 column shifted by 1e9 (rounding of group means ~1e-7 of its spread)
    shifted = np.repeat(np.random.default_rng(3).normal(size=5), 4) + 1e9
    assert constant_within_groups(shifted, codes, 5)
    assert not constant_within_groups(shifted + 1e-3 * np.arange(20.0), codes, 5)


@pytest.mark.parametrize("make", [lambda x: 2 * x + 1, lambda x: 0.1 * x, lambda x: -3e8 * x + 7])
def test_affine_copies_of_x_are_collinear_at_any_scale(make):
    x = np.random.default_rng(3).normal(size=60)
    with pytest.raises(ValueError, match="the terms 'x', 'c' are collinear"):
        check_full_rank(np.c_[x, make(x)], ["x", "c"])
    check_full_rank(np.c_[x, make(x) + 1e-3 * np.abs(make(x)).max()
                          * np.random.default_rng(4).normal(size=60)], ["x", "c"])


def test_rank_check_names_only_the_dependent_columns():
    rng = np.random.default_rng(5)
    a, b, c = rng.normal(size=(3, 40))
    with pytest.raises(ValueError, match="the terms 'a', 'b', 'd' are collinear"):
        check_full_rank(np.c_[np.ones(40), a, b, c, a - 2 * b], ["1", "a", "b", "c", "d"])


# ---------------------------------------------------------------------------- tables


def test_wald_matches_hand_computation():
    z, p, lo, hi = wald(1.0, 0.5, 0.95)
    assert z == 2.0
    assert p == pytest.approx(0.04550026389635842, rel=1e-12)
    assert (lo, hi) == pytest.approx((1 - 1.959963984540054 * 0.5, 1 + 1.959963984540054 * 0.5),
                                     rel=1e-12)
    z, p, lo, hi = wald(0.3, np.inf, 0.9)
    assert (float(z), float(p), float(lo), float(hi)) == (0.0, 1.0, -np.inf, np.inf)


def test_wald_table_and_summary_render_text_and_html():
    t = wald_table([1.0, -2.0], [0.5, 1.0], index=["beta_b", "beta_w"])
    assert list(t.columns) == ["estimate", "std_error", "ci_lower", "ci_upper", "z", "p_value"]
    assert t.index.name == "term" and t.loc["beta_w", "z"] == -2.0
    s = Summary("mlob: y ~ x", {"coefficients": t}, notes=["a note"])
    assert str(s).startswith("mlob: y ~ x") and "a note" in str(s) and "beta_w" in str(s)
    assert "<table" in s._repr_html_() and "a note" in s._repr_html_()
    assert Summary("t", {}, text="R layout").as_text() == "R layout"


# ---------------------------------------------------------------------------- results


class _Toy(EstimatorResult):
    estimator = "toy"

    def __init__(self):
        self.formula, self.n_groups, self.n_obs, self.conf_level = "y ~ x", 12, 240, 0.9

    def to_frame(self):
        return wald_table([0.5, 0.2, 0.3], [0.1, 0.05, 0.11], conf_level=0.9,
                          index=["beta_b", "beta_w", "beta_c"])


def test_protocol_mixin_derives_everything_from_the_table():
    r = _Toy()
    assert r.params["beta_b"] == 0.5 and r.bse["beta_w"] == 0.05
    assert r.coef.equals(r.params.rename("params")) and r.se.equals(r.bse)
    ci90 = r.conf_int()
    np.testing.assert_allclose(ci90.loc["beta_b"], [0.5 - 1.6448536269514722 * 0.1,
                                                    0.5 + 1.6448536269514722 * 0.1], rtol=1e-12)
    ci95 = r.conf_int(0.95)
    assert (ci95["lower"] < ci90["lower"]).all() and (ci95["upper"] > ci90["upper"]).all()
    assert r.pvalues["beta_b"] == pytest.approx(2 * (1 - 0.9999997133484281), rel=1e-6)
    text = repr(r)
    assert text == "<_Toy toy: y ~ x; 12 groups; 240 rows; beta_b=0.5, beta_w=0.2, beta_c=0.3>"
    assert isinstance(r.summary(), Summary)
    with pytest.raises(ValueError, match="`level` must be strictly between 0 and 1"):
        r.conf_int(1.5)


# --------------------------------------------------------------------------- simulate


def test_generator_recovers_its_parameters_in_large_samples():
    rng = np.random.default_rng(8)
    y, x, c, mu = simulate_arrays((1,), 4000, 20, rng, beta_b=0.6, beta_w=0.2, alpha=1.0,
                                  mu_x=2.0, tau2_x=0.3, sigma2_x=0.7, tau2=0.1, sigma2=0.6,
                                  gamma=[0.3], phi_w=[0.4], phi_b=[0.4], s_c=[0.9])
    x0, y0, c0 = x[0], y[0], c[0, ..., 0]
    assert x0.mean() == pytest.approx(2.0, abs=0.03)
    assert x0.mean(axis=1).var() == pytest.approx(0.3 + 0.7 / 20, rel=0.08)
    assert x0.var(axis=1, ddof=1).mean() == pytest.approx(0.7, rel=0.02)
    # within regression of y on x and c recovers beta_w and gamma
    xw = (x0 - x0.mean(axis=1, keepdims=True)).ravel()
    cw = (c0 - c0.mean(axis=1, keepdims=True)).ravel()
    yw = (y0 - y0.mean(axis=1, keepdims=True)).ravel()
    coef = np.linalg.lstsq(np.c_[xw, cw], yw, rcond=None)[0]
    np.testing.assert_allclose(coef, [0.2, 0.3], atol=0.02)
    # between: regressing group means of y (minus gamma*c) on latent mu gives beta_b
    ybar = (y0 - 0.3 * c0).mean(axis=1)
    slope = np.polyfit(mu[0], ybar, 1)[0]
    assert slope == pytest.approx(0.6, abs=0.03)


def test_generator_stream_is_fixed_by_the_seed_and_frame_is_long():
    kw = dict(beta_b=0.5, beta_w=0.2, gamma=[0.3, 0.1], phi_w=[0.4, 0.0], phi_b=[0.4, 0.0])
    a = simulate_arrays((3,), 5, 4, np.random.default_rng(1), **kw)
    b = simulate_arrays((3,), 5, 4, np.random.default_rng(1), **kw)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    df = simulate_frame(a[0][0], a[1][0], a[2][0])
    assert list(df.columns) == ["Y", "X", "C1", "C2", "group"] and len(df) == 20
    assert isinstance(df, pd.DataFrame)
