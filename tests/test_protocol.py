"""One result protocol and one vocabulary for every estimator (issue 10).

Every public estimator accepts ``(formula, data, group)`` and the lme4 spelling
``y ~ x + c + (1 | group)`` with identical results, and every result class offers the same face:
``params``, ``bse``, ``conf_int()``, ``pvalues`` (where defined), ``summary()`` (text and HTML),
``to_frame()``, ``to_datatree()`` and a one-line ``repr``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import mlob_pp
from mlob_pp.results import EstimatorResult
from mlob_pp.simulate import simulate_arrays, simulate_frame
from mlob_pp.tables import Summary
from mlob_pp.warnings import MLOBWarning


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(20261130)
    y, x, c, _ = simulate_arrays((1,), 20, 10, rng, beta_b=0.6, beta_w=0.2, tau2_x=0.4,
                                 sigma2_x=0.6, tau2=0.15, sigma2=0.6, gamma=[0.3],
                                 phi_w=[0.4], phi_b=[0.4], s_c=[0.9])
    return simulate_frame(y[0], x[0], c[0], names=("y", "x", "c", "g"))


def _quiet(fn, *args, **kwargs):
    """Run an estimator with mlob_pp's own warnings (short chains, balancing) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MLOBWarning)
        return fn(*args, **kwargs)


# name -> (callable taking (formula, data, group) with group possibly None, formula, marks)
FITS = {
    "mlob": (lambda f, d, g: mlob_pp.mlob(f, d, g, random_seed=1), "y ~ x + c", ()),
    "mlob_bootstrap": (lambda f, d, g: mlob_pp.mlob(f, d, g, se="bootstrap", n_boot=200,
                                                    random_seed=1), "y ~ x + c", ()),
    "ml": (lambda f, d, g: mlob_pp.fit_ml(f, d, g), "y ~ x + c", ()),
    "null_model": (lambda f, d, g: mlob_pp.null_model(f, d, g), "y ~ 1", ()),
    "contextual_model": (lambda f, d, g: mlob_pp.contextual_model(f, d, g), "y ~ x + c", ()),
    "mcmc": (lambda f, d, g: mlob_pp.fit_mcmc(f, d, g, draws=200, tune=200, chains=2,
                                              random_seed=1), "y ~ x + c",
             (pytest.mark.mcmc,)),
    "melsm": (lambda f, d, g: mlob_pp.fit_melsm(f, d, g, scale="~ 1", draws=200, tune=200,
                                                chains=2, random_seed=1), "y ~ x",
              (pytest.mark.mcmc,)),
}
PARAMS = [pytest.param(name, marks=marks, id=name) for name, (_, _, marks) in FITS.items()]

_results: dict[str, EstimatorResult] = {}


def _fit(name: str, data: pd.DataFrame) -> EstimatorResult:
    if name not in _results:
        fn, formula, _ = FITS[name]
        _results[name] = _quiet(fn, formula, data, "g")
    return _results[name]


@pytest.mark.parametrize("name", PARAMS)
def test_result_offers_the_shared_protocol(name, data):
    res = _fit(name, data)
    assert isinstance(res, EstimatorResult)

    frame = res.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert {"estimate", "std_error", "ci_lower", "ci_upper"} <= set(frame.columns)
    params, bse = res.params, res.bse
    assert isinstance(params, pd.Series) and params.index.equals(frame.index)
    assert bse.index.equals(params.index)
    np.testing.assert_array_equal(params.to_numpy(), frame["estimate"].to_numpy())
    finite = np.isfinite(bse.to_numpy())
    assert finite.any() and (bse.to_numpy()[finite] >= 0).all()
    if name not in ("null_model", "melsm"):
        assert "beta_b" in params.index and np.isfinite(params["beta_b"])

    ci = res.conf_int()
    assert list(ci.columns) == ["lower", "upper"] and ci.index.equals(params.index)
    ok = np.isfinite(ci["lower"]) & np.isfinite(ci["upper"])
    assert (ci.loc[ok, "lower"] <= params[ok] + 1e-12).all()
    assert (params[ok] <= ci.loc[ok, "upper"] + 1e-12).all()
    try:
        narrow = res.conf_int(0.5)
    except ValueError as err:  # non-normal intervals: only at the fitted level, said clearly
        assert "conf_level" in str(err)
    else:
        both = ok & np.isfinite(narrow["lower"])
        assert (narrow.loc[both, "upper"] - narrow.loc[both, "lower"]
                <= ci.loc[both, "upper"] - ci.loc[both, "lower"] + 1e-12).all()

    try:
        p = res.pvalues
    except AttributeError as err:
        assert "not defined" in str(err)
    else:
        assert p.index.equals(params.index)
        assert ((p.dropna() >= 0) & (p.dropna() <= 1)).all()

    summ = res.summary()
    assert isinstance(summ, Summary)
    text, html = str(summ), summ._repr_html_()
    assert isinstance(text, str) and len(text) > 20
    assert "<table" in html or "<pre" in html

    tree = res.to_datatree()
    assert isinstance(tree, xr.DataTree)
    if name in ("mcmc", "melsm"):
        assert "posterior" in tree.children
    else:
        assert "posterior" not in tree.children and "estimate" in tree.children
        est = tree["estimate"].to_dataset()
        assert set(np.asarray(est["term"]).tolist()) == set(params.index)

    line = repr(res)
    assert "\n" not in line and len(line) < 300
    assert type(res).__name__ in line and "groups" in line


@pytest.mark.parametrize("name", PARAMS)
def test_group_term_in_formula_gives_identical_results(name, data):
    fn, formula, _ = FITS[name]
    by_argument = _fit(name, data)
    by_formula = _quiet(fn, formula.replace("~", "~", 1) + " + (1 | g)", data, None)
    pd.testing.assert_series_equal(by_formula.params, by_argument.params, rtol=1e-12)
    pd.testing.assert_series_equal(by_formula.bse, by_argument.bse, rtol=1e-12)
