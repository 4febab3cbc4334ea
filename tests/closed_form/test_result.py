"""MLOBResult: the result protocol, the common format and the honest notes (issues 10, 11)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mlob_pp
from mlob_pp.results import EstimatorResult
from mlob_pp.simulate import simulate_arrays
from mlob_pp.tables import Summary, normal_quantile
from mlob_pp.warnings import BalancingWarning


@pytest.fixture
def df():
    y, x, c, _ = simulate_arrays((1,), 15, 8, np.random.default_rng(2), beta_b=0.6, beta_w=0.2,
                                 tau2_x=0.3, sigma2_x=0.7, gamma=[0.3], phi_w=[0.4],
                                 phi_b=[0.4])
    return pd.DataFrame({"y": y[0].ravel(), "x": x[0].ravel(), "c": c[0, ..., 0].ravel(),
                         "g": np.repeat(np.arange(15), 8)})


def test_protocol(df):
    res = mlob_pp.mlob("y ~ x + c", df, "g")
    assert isinstance(res, EstimatorResult) and res.estimator == "mlob"
    frame = res.to_frame()
    assert list(frame.index) == ["beta_b", "gamma_c"]
    assert list(frame.columns) == ["estimate", "std_error", "ci_lower", "ci_upper", "z",
                                   "p_value"]
    np.testing.assert_array_equal(res.params, frame["estimate"])
    np.testing.assert_array_equal(res.bse, frame["std_error"])
    np.testing.assert_array_equal(res.pvalues, frame["p_value"])
    # aliases
    pd.testing.assert_series_equal(res.coef, res.params)
    pd.testing.assert_series_equal(res.se, res.bse)
    pd.testing.assert_frame_equal(res.summary_frame(), frame)
    pd.testing.assert_frame_equal(res.summary_frame("ml"), res.to_frame("ml_moments"))
    np.testing.assert_array_equal(res.confint()["lower"], frame["ci_lower"])
    # conf_int at another level: Wald, from the same SE
    ci90 = res.conf_int(0.9)
    half = (ci90["upper"] - ci90["lower"]) / 2
    np.testing.assert_allclose(half, normal_quantile(0.9) * frame["std_error"], rtol=1e-12)
    np.testing.assert_array_equal(res.conf_int()["upper"], frame["ci_upper"])
    r = repr(res)
    assert len(r.splitlines()) == 1 and len(r) < 160
    assert r.startswith("<MLOBResult mlob: y ~ x + c; 15 groups; 120 rows; beta_b=")


def test_summary_is_r_layout_with_honest_note(df):
    res = mlob_pp.mlob("y ~ x + c", df, "g")
    summary = res.summary()
    assert isinstance(summary, Summary)
    text = str(summary)
    assert text == res.summary_text()
    for part in ["Summary of Coefficients:", "Lower CI (95%)", "Pr(>|z|)",
                 "For comparison, summary of coefficients from unoptimized analysis (ML):",
                 "Signif. codes:", "Note:"]:
        assert part in text
    assert "always at least as accurate" not in text and "please use them" not in text
    for part in ["shrinks beta_b toward 0", "lowers its variance but biases it toward 0",
                 "so it is too small", "10-64% of data sets", 'use se="bootstrap"']:
        assert part in " ".join(text.split()) or part in text, part
    pd.testing.assert_frame_equal(summary["mlob"], res.to_frame())
    pd.testing.assert_frame_equal(summary["ml_moments"], res.to_frame("ml_moments"))
    # printing keeps R's print() layout
    printed = str(res)
    assert printed.startswith("Call:\n mlob('y ~ x + c', data, group='g') \n\nCoefficients")
    assert "Confidence_Interval (95%)" in printed


def test_datatree_for_both_tables(df):
    res = mlob_pp.mlob("y ~ x + c", df, "g")
    tree = res.to_datatree()
    assert "posterior" not in tree.children and "estimate" in tree.children
    est = tree["estimate"]
    assert float(est["estimate"].sel(term="beta_b")) == res.params["beta_b"]
    np.testing.assert_array_equal(est["ci"].sel(term="beta_b").values,
                                  res.to_frame().loc["beta_b", ["ci_lower", "ci_upper"]])
    assert est.attrs["interval_method"] == "wald" and est.attrs["se_method"] == "analytic"
    ml = res.to_datatree(estimator="ml_moments")
    assert float(ml["estimate"]["estimate"].sel(term="beta_b")) == res.coef_ml["beta_b"]
    assert ml.attrs["estimator"] == "ml_moments"
    with pytest.raises(ValueError, match=r"`estimator` must be 'mlob' or 'ml_moments'; got 'ml'"):
        res.to_datatree(estimator="ml")


def test_datatree_holds_bootstrap_refits_and_balancings(df):
    df = df.iloc[:-3]
    with pytest.warns(BalancingWarning):
        res = mlob_pp.mlob("y ~ x", df, "g", se="bootstrap", n_boot=200, n_balance=2,
                           random_seed=1)
    tree = res.to_datatree()
    assert tree["bootstrap"].sizes["replicate"] == 400  # 2 balancings x 200 refits
    assert "inversion_root" in tree["bootstrap"]
    assert tree["balancing"]["beta_b"].shape == (2,)
    assert tree["estimate"].attrs["interval_method"] == "bootstrap_inversion"
    with pytest.raises(ValueError, match=r"`level` must equal the fit's conf_level"):
        res.conf_int(0.9)
    assert "parametric bootstrap" in res.summary_text()
    assert "10-64%" not in res.summary_text()
