"""Without the [mcmc] extra, every MCMC entry point says which extra to install (issue 14)."""

import sys

import numpy as np
import pytest

import mlob_pp

MCMC_MODULES = ("pymc", "pytensor", "nutpie", "jax", "jaxlib", "blackjax", "numpyro")
MESSAGE = r"needs the optional dependencies of mlob_pp\[mcmc\]: pip install 'mlob_pp\[mcmc\]'"


@pytest.fixture
def without_mcmc_extra(monkeypatch):
    # sys.modules[name] = None: `import name` raises ModuleNotFoundError, as if not installed
    for name in MCMC_MODULES:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture(scope="module")
def small_hsb():
    hsb = mlob_pp.datasets.load("hsb")
    return hsb[hsb["school"].isin(hsb["school"].unique()[:12])].reset_index(drop=True)


def test_fit_mcmc_names_the_extra(without_mcmc_extra, small_hsb):
    with pytest.raises(ImportError, match=r"^fit_mcmc " + MESSAGE):
        mlob_pp.fit_mcmc("mAch ~ ses", small_hsb, group="school", draws=50, tune=50, chains=1)


def test_fit_melsm_names_the_extra(without_mcmc_extra, small_hsb):
    with pytest.raises(ImportError, match=r"^fit_melsm " + MESSAGE):
        mlob_pp.fit_melsm("mAch ~ ses + (1 | school)", small_hsb, scale="~ 1 + (1 | school)",
                          draws=50, tune=50, chains=1)


def test_mcmc_batch_names_the_extra(without_mcmc_extra):
    rng = np.random.default_rng(1)
    y, x = rng.normal(size=(2, 2, 6, 5))
    with pytest.raises(ImportError, match=r"^mcmc_batch " + MESSAGE):
        mlob_pp.mcmc_batch(y, x, draws=50, tune=50, chains=2)


def test_run_study_on_dask_names_the_extra(monkeypatch):
    from mlob_pp.comparisons import run_study, talk_design

    monkeypatch.setitem(sys.modules, "distributed", None)
    design = talk_design(icc_x=0.1, J=5, n=5, beta_b=0.5, beta_w=0.2)
    with pytest.raises(ImportError, match=r"^run_study\(scheduler=\.\.\.\) needs the optional "
                                          r"dependencies of mlob_pp\[dask\]"):
        run_study(design, replications=2, estimators=("mlob",), random_seed=1,
                  scheduler="local", progress=False)
