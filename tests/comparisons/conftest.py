"""Stand-ins of the estimator results used by the comparisons tests (duck-typed, fast)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr

TERMS = ("minrtyYes", "sxMale")
Z95 = 1.959963984540054


class FakeMLOB:
    """Follows the MLOBResult interface used by from_mlob (tables only, no to_datatree)."""

    covariate_names = TERMS
    conf_level = 0.95
    se_method = "analytic"
    interval_method = "wald"
    mode = "r"
    settings = {"balancing_limit": 0.5, "random_seed": 3, "n_balance": 20}
    balancing = {
        "target_group_size": 28,
        "rows_deleted": 3041,
        "groups_deleted": 12,
        "n_balance": 20,
        "kept_rows": np.arange(10),
    }
    n_obs, n_groups, group_size = 4144, 148, 28
    formula, group = "mAch ~ ses + minrty + sx", "school"

    def summary_frame(self, which: str = "mlob") -> pd.DataFrame:
        est = np.array([3.9, -2.25, 1.32]) + (1.0 if which in ("ml", "ml_moments") else 0.0)
        se = np.array([0.31, 0.58, 0.45])
        return pd.DataFrame(
            {
                "estimate": est,
                "std_error": se,
                "ci_lower": est - Z95 * se,
                "ci_upper": est + Z95 * se,
                "z": est / se,
                "p_value": 0.01,
            },
            index=["beta_b", *(f"gamma_{t}" for t in TERMS)],
        )


def fake_ml(loglik: float | None = -23000.5) -> SimpleNamespace:
    """An MLResult stand-in with coef/se/vcov only (no table)."""
    labels = ["beta_b", "beta_w", "beta_c", "gamma_minrtyYes", "gamma_sxMale", "tau2", "sigma2"]
    coef = pd.Series([5.0, 2.0, 3.0, -2.0, 1.2, 2.5, 36.0], index=labels)
    se = pd.Series([0.4, 0.1, 0.41, 0.3, 0.2, 0.4, 0.6], index=labels)
    vc_labels = [lab for lab in labels if lab != "beta_c"]
    cov = np.diag(se[vc_labels].to_numpy() ** 2)
    cov[0, 1] = cov[1, 0] = 0.5 * 0.4 * 0.1  # corr(beta_b, beta_w) = 0.5
    return SimpleNamespace(
        coef=coef,
        se=se,
        vcov=pd.DataFrame(cov, index=vc_labels, columns=vc_labels),
        loglik=loglik,
        converged=True,
        covariates="shared",
        covariate_names=TERMS,
        conf_level=0.95,
    )


def fake_idata(chains: int = 2, draws: int = 100, seed: int = 0) -> xr.DataTree:
    """A PyMC-like DataTree with posterior, log_likelihood, observed_data, sample_stats."""
    from arviz_base import from_dict

    rng = np.random.default_rng(seed)
    post = {
        "beta_b": rng.normal(5, 0.4, (chains, draws)),
        "beta_w": rng.normal(2, 0.1, (chains, draws)),
        "gamma": rng.normal(0, 1, (chains, draws, 2)),
        "tau2": rng.gamma(20, 0.1, (chains, draws)),
        "u": rng.normal(size=(chains, draws, 3)),
    }
    return from_dict(
        {
            "posterior": post,
            "log_likelihood": {"y": rng.normal(size=(chains, draws, 5))},
            "observed_data": {"y": rng.normal(size=5)},
            "sample_stats": {"diverging": np.zeros((chains, draws), dtype=bool)},
        },
        dims={"gamma": ["term"], "u": ["group"], "y": ["obs"]},
        coords={"term": list(TERMS)},
    )


@pytest.fixture
def standins():
    """The stand-in factories: FakeMLOB, fake_ml, fake_idata."""
    return SimpleNamespace(FakeMLOB=FakeMLOB, fake_ml=fake_ml, fake_idata=fake_idata)


@pytest.fixture
def results():
    """Four common-format results: mlob, ml_moments, ml (stand-ins) and mcmc (fake draws)."""
    from mlob_pp.comparisons import from_ml, from_mlob, from_pymc

    return {
        "mlob": from_mlob(FakeMLOB()),
        "ml_moments": from_mlob(FakeMLOB(), estimator="ml_moments"),
        "ml": from_ml(fake_ml()),
        "mcmc": from_pymc(fake_idata(chains=2, draws=100)),
    }


@pytest.fixture
def hsb_small():
    """Balanced subset of HSB: 12 schools with 20 students each (no rows deleted)."""
    import mlob_pp

    df = mlob_pp.datasets.load("hsb")
    big = df["school"].value_counts()
    schools = big[big >= 20].index[:12]
    sub = df[df["school"].isin(schools)]
    return sub.groupby("school", sort=False).head(20).reset_index(drop=True)
