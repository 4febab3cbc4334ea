"""fit_ml on boundary (Heywood) data, extreme scales, both group spellings, and the protocol."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlob_pp
from mlob_pp.ml.fit import fit_ml
from mlob_pp.simulate import simulate_arrays
from mlob_pp.tables import Summary
from mlob_pp.warnings import BoundaryWarning, InadmissibleWarning


def _data(seed, j=6, n=5, tau2_x=0.1, k=1):
    rng = np.random.default_rng(seed)
    out = simulate_arrays((1,), j, n, rng, beta_b=0.5, beta_w=0.2, tau2_x=tau2_x, tau2=0.5,
                          gamma=[0.3][:k])
    df = pd.DataFrame({"y": out[0][0].ravel(), "x": out[1][0].ravel(),
                       "g": np.repeat([f"s{i}" for i in range(j)], n)})
    if k:
        df["c"] = out[2][0, ..., 0].ravel()
    return df


# seeds of J = 6, n = 5, ICC_X ~ 0.1 data sets where 0.1 crashed with KeyError: 'phi_b[x,x]'
HEYWOOD = [(3, 4), (3, 7), (3, 9), (3, 15)]


def _heywood_frame(seed, index):
    rng = np.random.default_rng(seed)
    out = simulate_arrays((20,), 6, 5, rng, beta_b=0.5, beta_w=0.2, tau2_x=0.1,
                          gamma=[0.3, -0.2])
    y, x, c = out[0][index], out[1][index], out[2][index]
    return pd.DataFrame({"y": y.ravel(), "x": x.ravel(), "c1": c[..., 0].ravel(),
                         "c2": c[..., 1].ravel(), "g": np.repeat(np.arange(6), 5)})


@pytest.mark.parametrize(("seed", "index"), HEYWOOD)
def test_heywood_case_is_a_result_with_a_warning(seed, index):
    df = _heywood_frame(seed, index)
    with pytest.warns(InadmissibleWarning, match=r"boundary ML solution: variance estimate"):
        res = fit_ml("y ~ x + c1 + c2", df, "g")
    assert issubclass(InadmissibleWarning, BoundaryWarning)
    assert res.converged
    assert "tau2_x" in res.boundary or "tau2" in res.boundary
    assert res.inadmissible == res.boundary
    for lab in res.boundary:
        assert not res.params[lab] > 0
    assert np.isfinite(res.bse[["beta_b", "beta_w", "tau2", "sigma2"]]).all()
    assert "boundary (variance estimated at or below zero" in str(res.summary())
    tree = res.to_datatree()
    flags = tree["estimate"]["boundary"].to_series()
    assert set(flags[flags].index) == set(res.boundary)


@pytest.mark.parametrize(
    ("ay", "ax", "ac", "shift"),
    [(1e-3, 1.0, 1.0, 0.0), (1e12, 1.0, 1.0, 0.0), (1.0, 1e-3, 1e12, 0.0),
     (1.0, 1.0, 1.0, 1e6), (1e12, 1e-3, 1.0, 1e6)],
)
def test_equivariance_under_scale_and_shift(ay, ax, ac, shift):
    df = _data(21, j=12, n=8, tau2_x=0.5)
    base = fit_ml("y ~ x + c", df, "g")
    moved = df.assign(y=ay * df["y"] + shift, x=ax * df["x"] + shift, c=ac * df["c"] + shift)
    res = fit_ml("y ~ x + c", moved, "g")
    assert res.converged
    units = {"beta_b": ay / ax, "beta_w": ay / ax, "beta_c": ay / ax, "gamma_c": ay / ac,
             "tau2": ay**2, "sigma2": ay**2, "tau2_x": ax**2, "sigma2_x": ax**2, "icc_x": 1.0}
    for lab, unit in units.items():
        assert res.params[lab] == pytest.approx(unit * base.params[lab], rel=1e-6)
        assert res.bse[lab] == pytest.approx(unit * base.bse[lab], rel=1e-6)
    # intercepts move with the shift: mu_x exactly, alpha through the slopes
    assert res.params["mu_x"] == pytest.approx(ax * base.params["mu_x"] + shift, rel=1e-9)
    alpha = (ay * base.params["alpha"] + shift - res.params["beta_b"] * shift
             - res.params["gamma_c"] * shift)
    assert res.params["alpha"] == pytest.approx(alpha, rel=1e-6, abs=1e-6 * ay)
    assert np.isfinite(res.bse).all()
    assert res.loglik == pytest.approx(base.loglik - res.n_obs * np.log(ay * ax), rel=1e-9)


def test_level_specific_is_equivariant_too():
    df = _data(21, j=15, n=10, tau2_x=0.8)
    base = fit_ml("y ~ x + c", df, "g", covariates="level_specific")
    res = fit_ml("y ~ x + c", df.assign(y=df["y"] * 1e9, c=df["c"] + 1e6), "g",
                 covariates="level_specific")
    for lab in ("beta_b", "beta_w", "gamma_w_c", "gamma_b_c"):
        assert res.params[lab] == pytest.approx(1e9 * base.params[lab], rel=1e-6)
        assert res.bse[lab] == pytest.approx(1e9 * base.bse[lab], rel=1e-6)
    assert res.nuisance["mu_c"] == pytest.approx(base.nuisance["mu_c"] + 1e6, rel=1e-9)


def test_group_term_in_formula_gives_identical_results():
    df = _data(23, j=10, n=6, tau2_x=0.5)
    a = fit_ml("y ~ x + c", df, "g")
    b = fit_ml("y ~ x + c + (1 | g)", df)
    pd.testing.assert_frame_equal(a.to_frame(), b.to_frame())
    assert b.group == "g" and b.formula == "y ~ x + c + (1 | g)"
    with pytest.raises(ValueError, match=r"`group` \('h'\) and the formula's group term"):
        fit_ml("y ~ x + (1 | g)", df, "h")
    with pytest.raises(ValueError, match=r"`group` is required"):
        fit_ml("y ~ x", df)
    with pytest.raises(ValueError, match=r"supports the group term \(1 \| g\)"):
        fit_ml("y ~ x + (x | g)", df)


def test_shared_protocol():
    df = _data(24, j=12, n=6, tau2_x=0.5)
    res = fit_ml("y ~ x + c", df, "g", conf_level=0.9)
    assert isinstance(res, mlob_pp.results.EstimatorResult) and res.estimator == "ml"
    frame = res.to_frame()
    assert list(frame.columns) == ["estimate", "std_error", "ci_lower", "ci_upper", "z",
                                   "p_value"]
    pd.testing.assert_series_equal(res.params, frame["estimate"].rename("params"))
    pd.testing.assert_series_equal(res.coef, res.params)
    pd.testing.assert_series_equal(res.se, res.bse)
    ci = res.conf_int(0.95)
    assert ci.loc["beta_b", "upper"] == pytest.approx(
        res.params["beta_b"] + 1.959963984540054 * res.bse["beta_b"], rel=1e-12)
    assert res.pvalues["beta_b"] == pytest.approx(frame.loc["beta_b", "p_value"])
    summary = res.summary()
    assert isinstance(summary, Summary) and "logLik" in str(summary)
    assert "90% lower" in str(summary) and "<h4>" in summary._repr_html_()
    text = repr(res)
    assert "\n" not in text and len(text) < 200 and text.startswith("<MLResult ml: y ~ x + c")
    tree = res.to_datatree()
    est = tree["estimate"]
    assert est.attrs["interval_method"] == "wald"
    assert float(est["estimate"].sel(term="beta_b")) == pytest.approx(res.params["beta_b"])


def test_scaled_outcome_is_not_called_collinear():
    df = _data(25, j=10, n=6, tau2_x=0.5)
    res = fit_ml("y ~ x + c", df.assign(y=df["y"] * 1e12), "g")
    assert res.converged and np.isfinite(res.bse["beta_b"])
    tiny = fit_ml("y ~ x + c", df.assign(y=df["y"] * 1e-12, x=df["x"] * 1e-9), "g")
    assert tiny.converged and np.isfinite(tiny.bse).all()


def test_design_checked_before_fitting():
    df = _data(26, j=8, n=5, tau2_x=0.5)
    df["c2"] = 3.0 * df["c"] - 0.5 * df["x"] + 7.0
    with pytest.raises(ValueError, match=r"`formula`: the terms 'x', 'c', 'c2' are collinear"):
        fit_ml("y ~ x + c + c2", df, "g")
    df["w"] = df.groupby("g")["x"].transform("mean") * 1e9
    with pytest.raises(ValueError, match=r"`formula` term 'w' has no within-group variation"):
        fit_ml("y ~ x + w", df, "g")


def test_no_warning_for_an_interior_solution():
    df = _data(27, j=30, n=10, tau2_x=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = fit_ml("y ~ x + c", df, "g")
    assert res.boundary == ()
