"""fit_mcmc: design validation before compile, group spellings, deprecated names, protocol."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mlob_pp
from mlob_pp.mcmc import fit as fit_module
from mlob_pp.mcmc.fit import fit_mcmc
from mlob_pp.models import latent_covariate as lc
from mlob_pp.tables import Summary
from mlob_pp.warnings import ConvergenceWarning

FORMULA = "y ~ x + c1 + c2"


@pytest.fixture
def no_compile(monkeypatch):
    """Fail loudly if fit_mcmc gets as far as building/compiling the model."""

    def boom(stats, *args):
        raise AssertionError("the model was built: validation came too late")

    monkeypatch.setattr(fit_module, "_compile", boom)


def _data():
    data, _ = lc.simulate(6, 4, gamma=(0.3, -0.2), random_seed=1)
    return data


def _case(name):
    d = _data()
    if name == "constant outcome":
        d["y"] = 2.5
    elif name == "x constant within groups":
        d["x"] = d.groupby("g")["x"].transform("mean")
    elif name == "collinear terms":
        d["c2"] = 2.0 * d["c1"] + 1.0
    elif name == "constant covariate":
        d["c1"] = 1e9
    elif name == "all groups of size 1":
        d = d.groupby("g").head(1)
    elif name == "inf value":
        d.loc[3, "x"] = np.inf
    elif name == "empty frame":
        d = d.iloc[:0]
    elif name == "single group":
        d["g"] = "only"
    return d


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("constant outcome", r"outcome 'y' has no variation"),
        ("x constant within groups", r"predictor 'x' has no within-group variation"),
        ("collinear terms", r"`formula`: the terms .*'c1'.*'c2'.* collinear"),
        ("constant covariate", r"covariate 'c1' has no variation"),
        ("all groups of size 1", r"`group`: every group of 'g' has a single row"),
        ("inf value", r"column 'x' has 1 non-finite values"),
        ("empty frame", r"`data` is empty \(0 rows\)"),
        ("single group", r"`group` column .g. must have at least 2 distinct groups; got 1"),
    ],
)
def test_degenerate_design_fails_before_compile(case, match, no_compile):
    with pytest.raises(ValueError, match=match):
        fit_mcmc(FORMULA, _case(case), "g")


def test_bad_prior_slope_sd_fails_before_compile(no_compile):
    with pytest.raises(ValueError, match=r"`prior_slope_sd` must be a finite number greater "
                                         r"than 0; got -1.0"):
        fit_mcmc(FORMULA, _data(), "g", prior_slope_sd=-1)


def test_prior_slope_sd_reaches_the_model_and_keys_the_compiled_cache(monkeypatch):
    """fit_mcmc passes the prior SD to the model build, and a model compiled with one prior
    is never reused for another (that would silently sample the wrong prior)."""
    seen = []

    def record(stats, slope_sd):
        seen.append(slope_sd)
        raise RuntimeError("stop before compiling")

    monkeypatch.setattr(fit_module, "_compile", record)
    with pytest.raises(RuntimeError, match="stop before compiling"):
        fit_mcmc(FORMULA, _data(), "g", prior_slope_sd=2.5)
    assert seen == [2.5]
    monkeypatch.undo()

    nutpie = pytest.importorskip("nutpie")
    compiled = []

    class Fake:
        def with_data(self, **kwargs):
            return self

    def fake_compile(model):
        compiled.append(model)
        return Fake()

    monkeypatch.setattr(nutpie, "compile_pymc_model", fake_compile)
    monkeypatch.setattr(fit_module, "_COMPILED", {})
    settings = {"group_covariates": None, "missing": "raise", "covariates": "shared"}
    _, stats, _ = fit_module._prepare_data(FORMULA, _data(), "g", settings)
    for sd in (5.0, 2.5, 5.0, 2.5):
        fit_module._compiled_model(stats, f"model with slope SD {sd}", sd)
    assert compiled == ["model with slope SD 5.0", "model with slope SD 2.5"]


def test_scaled_data_is_not_degenerate(no_compile):
    """Validation is relative to scale: y * 1e-12 and x + 1e9 pass on to the model build."""
    d = _data()
    d["y"] *= 1e-12
    d["x"] += 1e9
    with pytest.raises(AssertionError, match="validation came too late"):
        fit_mcmc(FORMULA, d, "g")


def _fit(data, formula, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit_mcmc(formula, data, *args, **kwargs)


@pytest.fixture(scope="module")
def small_fit():
    data, _ = lc.simulate(20, 8, gamma=(0.3, -0.2), random_seed=4)
    return data, _fit(data, FORMULA, "g", draws=200, tune=200, chains=2, random_seed=3)


@pytest.mark.mcmc
def test_group_term_spelling_gives_identical_results(small_fit):
    data, mc = small_fit
    lme4 = _fit(data, FORMULA + " + (1 | g)", draws=200, tune=200, chains=2, random_seed=3)
    np.testing.assert_array_equal(lme4.idata["posterior"]["beta_b"].values,
                                  mc.idata["posterior"]["beta_b"].values)
    pd.testing.assert_frame_equal(lme4.to_frame(), mc.to_frame())
    assert lme4.group == "g"


@pytest.mark.mcmc
def test_deprecated_names_still_work(small_fit):
    data, mc = small_fit
    with pytest.warns(DeprecationWarning, match=r"`progress_bar` is deprecated .* `progress`"):
        old = _fit(data, FORMULA, "g", draws=200, tune=200, chains=2, random_seed=3,
                   progress_bar=False)
    np.testing.assert_array_equal(old.idata["posterior"]["beta_b"].values,
                                  mc.idata["posterior"]["beta_b"].values)
    with pytest.warns(DeprecationWarning, match=r"`ci_prob` is deprecated .* `conf_level`"):
        old = _fit(data, FORMULA, "g", draws=200, tune=200, chains=2, random_seed=3,
                   ci_prob=0.9)
    assert old.conf_level == 0.9
    with pytest.raises(TypeError, match=r"got both `ci_prob` \(deprecated\) and `conf_level`"):
        fit_mcmc(FORMULA, data, "g", ci_prob=0.9, conf_level=0.8)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) `progresbar`"):
        fit_mcmc(FORMULA, data, "g", progresbar=True)


@pytest.mark.mcmc
def test_result_protocol(small_fit):
    _, mc = small_fit
    assert isinstance(mc, mlob_pp.results.EstimatorResult)
    post = mc.idata["posterior"]
    assert mc.params["beta_b"] == pytest.approx(float(post["beta_b"].mean()))
    assert mc.bse["tau2"] == pytest.approx(float(post["tau2"].std(ddof=1)))
    flat = post["beta_b"].values.ravel()
    ci = mc.conf_int()
    assert ci.loc["beta_b", "lower"] == pytest.approx(np.quantile(flat, 0.025))
    assert mc.conf_int(0.5).loc["beta_b", "upper"] == pytest.approx(np.quantile(flat, 0.75))
    with pytest.raises(AttributeError, match="p values are not defined for 'mcmc'"):
        _ = mc.pvalues
    summary = mc.summary()
    assert isinstance(summary, Summary)
    assert "beta_b" in str(summary) and "<table" in summary._repr_html_()
    text = repr(mc)
    assert "\n" not in text and len(text) < 200 and text.startswith("<MCMCResult mcmc:")
    assert mc.to_datatree() is mc.idata
    assert mc.to_datatree().attrs["estimator"] == "mcmc"
    assert mlob_pp.MCMCResult is type(mc)
