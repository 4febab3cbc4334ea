"""Tests of the common format for point estimates (mlob_pp.common_format)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from mlob_pp.common_format import (
    NotAPosteriorError,
    PointEstimateTree,
    as_point_estimate,
    estimate_dataset,
    estimate_frame,
    estimate_tree,
    has_posterior,
    is_point_estimate,
)
from mlob_pp.tables import wald_table

MESSAGE = r"point estimate from mlob \(intervals: wald at conf_level=0\.9\)"


@pytest.fixture
def frame():
    return wald_table(
        [0.5, 0.3, 1.2], [0.1, 0.05, 0.4], conf_level=0.9, index=["beta_b", "beta_w", "tau2"]
    )


@pytest.fixture
def tree(frame):
    return estimate_tree(
        frame,
        estimator="mlob",
        conf_level=0.9,
        interval_method="wald",
        se_method="analytic",
        attrs={"formula": "y ~ x"},
        groups={"bootstrap": {"beta_b": ("replicate", np.arange(4.0))}},
    )


def _mcmc_tree():
    from arviz_base import from_dict

    rng = np.random.default_rng(1)
    return from_dict(
        {
            "posterior": {"beta_b": rng.normal(0.5, 0.1, (2, 200))},
            "log_likelihood": {"y": rng.normal(-1.0, 0.1, (2, 200, 30))},
        }
    )


def test_layout_and_values(tree, frame):
    est = tree["estimate"]
    assert list(tree.children) == ["estimate", "bootstrap"]
    assert est["term"].values.tolist() == ["beta_b", "beta_w", "tau2"]
    assert est["ci_bound"].values.tolist() == ["lower", "upper"]
    assert est["ci"].dims == ("term", "ci_bound")
    # hand computation: 0.5 +- 1.644854 * 0.1
    np.testing.assert_allclose(
        est["ci"].sel(term="beta_b").values, [0.3355146, 0.6644854], atol=1e-7
    )
    assert est.attrs["conf_level"] == 0.9
    assert est.attrs["interval_method"] == "wald"
    assert est.attrs["se_method"] == "analytic"
    assert est.attrs["estimator"] == tree.attrs["estimator"] == "mlob"
    assert tree.attrs["formula"] == est.attrs["formula"] == "y ~ x"
    assert tree["bootstrap"]["beta_b"].dims == ("replicate",)
    assert "posterior" not in tree.children
    assert is_point_estimate(tree) and not has_posterior(tree)


def test_round_trip_exact(tree, frame, tmp_path):
    back = estimate_frame(tree)
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert back.attrs["interval_method"] == "wald"
    path = tmp_path / "t.nc"
    tree.to_netcdf(path)
    with xr.open_datatree(path) as loaded:
        loaded = as_point_estimate(loaded.load())
        assert isinstance(loaded, PointEstimateTree)
        pd.testing.assert_frame_equal(estimate_frame(loaded), frame, check_exact=True)
        with pytest.raises(NotAPosteriorError, match=MESSAGE):
            loaded.posterior  # noqa: B018


def test_extra_columns_round_trip(frame):
    frame = frame.assign(boundary=[False, False, True], note=["", "", "at zero"])
    back = estimate_frame(
        estimate_tree(
            frame, estimator="ml", conf_level=0.9, interval_method="wald", se_method="observed"
        )
    )
    assert back["boundary"].tolist() == [False, False, True]
    assert back["note"].tolist() == ["", "", "at zero"]
    np.testing.assert_array_equal(back["estimate"], frame["estimate"])


def test_without_z_and_p(frame):
    frame = frame.drop(columns=["z", "p_value"])
    ds = estimate_dataset(
        frame, estimator="ml", conf_level=0.9, interval_method="profile", se_method="observed"
    )
    assert set(ds.data_vars) == {"estimate", "std_error", "ci"}
    assert list(estimate_frame(ds).columns) == ["estimate", "std_error", "ci_lower", "ci_upper"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"frame": [1.0]}, TypeError, "`frame` must be a pandas DataFrame"),
        ({"drop": "ci_upper"}, ValueError, r"missing \['ci_upper'\]"),
        ({"conf_level": 1.5}, ValueError, "conf_level"),
        ({"estimator": ""}, TypeError, "`estimator` must be a non-empty string"),
        ({"groups": {"posterior": {}}}, ValueError, "must not contain 'posterior'"),
        ({"groups": {"bootstrap": [1, 2]}}, TypeError, r"`groups\['bootstrap'\]` must be"),
        ({"duplicate": True}, ValueError, r"duplicated terms \['beta_b'\]"),
    ],
)
def test_bad_input(frame, kwargs, error, match):
    kwargs = dict(kwargs)
    if kwargs.pop("drop", None):
        frame = frame.drop(columns="ci_upper")
    if kwargs.pop("duplicate", False):
        frame = frame.rename(index={"beta_w": "beta_b"})
    call = {
        "frame": frame,
        "estimator": "mlob",
        "conf_level": 0.9,
        "interval_method": "wald",
        "se_method": "analytic",
        **kwargs,
    }
    with pytest.raises(error, match=match):
        estimate_tree(call.pop("frame"), **call)


def test_estimate_frame_needs_estimate_group():
    with pytest.raises(ValueError, match="has no 'estimate' group"):
        estimate_frame(_mcmc_tree())
    with pytest.raises(TypeError, match="must be an xarray DataTree or Dataset"):
        estimate_frame({"estimate": 1})


@pytest.mark.parametrize(
    "name", ["summary", "loo", "ess", "rhat", "hdi", "mcse", "extract", "loo_pit"]
)
def test_arviz_stats_refuse_point_estimates(tree, name):
    import arviz as az

    with pytest.raises(NotAPosteriorError, match=MESSAGE) as info:
        getattr(az, name)(tree)
    assert isinstance(info.value, ValueError)
    assert "mlob_pp.comparisons.compare" in str(info.value)


@pytest.mark.parametrize("name", ["plot_forest", "plot_dist", "plot_trace_dist"])
def test_arviz_plots_refuse_point_estimates(tree, name):
    import arviz as az

    with pytest.raises(NotAPosteriorError, match=MESSAGE):
        getattr(az, name)(tree)


def test_missing_other_groups_still_key_and_attribute_errors(tree):
    with pytest.raises(KeyError):
        tree["no_such_group"]
    with pytest.raises(AttributeError):
        tree.no_such_group  # noqa: B018
    assert tree.estimate.name == "estimate"  # attribute access to present groups still works
    assert not hasattr(tree, "constant_data")


def test_arviz_still_works_on_mcmc_trees():
    import arviz as az

    mcmc = _mcmc_tree()
    assert has_posterior(mcmc) and not is_point_estimate(mcmc)
    assert as_point_estimate(mcmc) is mcmc
    summary = az.summary(mcmc, kind="stats")
    assert abs(summary.loc["beta_b", "mean"] - 0.5) < 0.05
    assert np.isfinite(az.loo(mcmc).elpd)


def test_base_layer_import_is_light():
    code = (
        "import sys, mlob_pp.common_format; "
        "print(sorted(m for m in ('arviz', 'arviz_base', 'arviz_stats', 'matplotlib', "
        "'pymc') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
