"""Side-by-side table, sample-shape matching and forest plot of common-format results."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlob_pp.comparisons import compare, from_ml, from_mlob, from_pymc, plot_compare
from mlob_pp.comparisons.compare import COLUMNS, match_sample_shape

_spec = importlib.util.spec_from_file_location(
    "_convert_standins", Path(__file__).with_name("test_convert.py")
)
_standins = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_standins)
FakeMLOB, fake_ml, fake_idata = _standins.FakeMLOB, _standins.fake_ml, _standins.fake_idata


@pytest.fixture
def results():
    return {
        "mlob": from_mlob(FakeMLOB(), chains=4, draws=250, random_seed=0),
        "ml_moments": from_mlob(FakeMLOB(), estimator="ml_moments", chains=4, draws=250),
        "ml": from_ml(fake_ml(), chains=4, draws=250, random_seed=1),
        "mcmc": from_pymc(fake_idata(chains=2, draws=100)),
    }


def test_compare_shape_index_and_columns(results):
    table = compare(results)
    assert list(table.columns) == list(COLUMNS)
    assert table.index.names == ["parameter", "estimator"]
    params = list(dict.fromkeys(table.index.get_level_values("parameter")))
    assert params == [
        "beta_b",
        "beta_w",
        "beta_c",
        "gamma_minrtyYes",
        "gamma_sxMale",
        "tau2",
        "sigma2",
    ]
    assert table.loc["beta_b"].index.tolist() == ["mlob", "ml_moments", "ml", "mcmc"]
    assert table.loc["beta_w"].index.tolist() == ["ml", "mcmc"]  # MLOB has no beta_w
    # 3 MLOB-table rows x 2 + 7 ML rows + 5 MCMC rows (beta_b, beta_w, 2 gammas, tau2)
    assert table.shape == (6 + 7 + 5, 7)
    assert table.attrs["conf_level"] == 0.95


def test_compare_values(results):
    table = compare(results)
    row = table.loc[("gamma_sxMale", "mlob")]
    assert row["estimate"] == 1.32 and row["std_error"] == 0.45
    assert row["ci_lower"] == pytest.approx(1.32 - 1.959964 * 0.45)
    assert np.isnan(row[["r_hat", "ess_bulk", "ess_tail"]].astype(float)).all()
    mc = table.loc[("beta_b", "mcmc")]
    draws = results["mcmc"]["posterior"]["beta_b"].values
    assert mc["estimate"] == pytest.approx(draws.mean())
    assert mc["std_error"] == pytest.approx(draws.std(ddof=1))
    assert mc["ci_lower"] == pytest.approx(np.quantile(draws, 0.025))
    assert 0.95 < mc["r_hat"] < 1.05 and mc["ess_bulk"] > 50 and mc["ess_tail"] > 50


def test_compare_other_level_gives_wald_intervals(results):
    table = compare(results, var_names=["beta_b"], conf_level=0.9)
    row = table.loc[("beta_b", "mlob")]
    assert row["ci_upper"] == pytest.approx(3.9 + 1.644854 * 0.31, rel=1e-6)
    mc = table.loc[("beta_b", "mcmc")]
    draws = results["mcmc"]["posterior"]["beta_b"].values
    assert mc["ci_upper"] == pytest.approx(np.quantile(draws, 0.95))


def test_compare_var_names_order_and_list_input(results):
    table = compare(list(results.values()), var_names=["gamma", "beta_b"])
    params = list(dict.fromkeys(table.index.get_level_values("parameter")))
    assert params == ["gamma_minrtyYes", "gamma_sxMale", "beta_b"]
    # list input: names from attrs["estimator"]
    assert table.loc["beta_b"].index.tolist() == ["mlob", "ml_moments", "ml", "mcmc"]
    group = compare({"mcmc": results["mcmc"]}, var_names="u")
    assert group.index.get_level_values("parameter").tolist() == ["u[0]", "u[1]", "u[2]"]


def test_compare_duplicate_estimators_in_a_list(results):
    table = compare([results["mlob"], results["mlob"]], var_names="beta_b")
    assert table.index.get_level_values("estimator").tolist() == ["mlob", "mlob_2"]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((3,), {}, TypeError, r"`results` must be a dict .*got int"),
        (({},), {}, ValueError, r"`results` must hold at least one result; got an empty"),
        (({"a": 1},), {}, TypeError, r"`results\['a'\]` must be an xarray.DataTree .*got int"),
        ((None,), {"var_names": ["nope"]}, ValueError, r"`var_names` entries \['nope'\] are in"),
        ((None,), {"var_names": 3}, TypeError, r"`var_names` must be a string or a list"),
        ((None,), {"conf_level": 95}, ValueError, r"`conf_level` must be strictly between 0"),
    ],
)
def test_compare_errors(results, args, kwargs, error, match):
    if args == (None,):
        args = (results,)
    with pytest.raises(error, match=match):
        compare(*args, **kwargs)


def test_match_sample_shape(results):
    aligned = match_sample_shape(results)
    for name, dt in aligned.items():
        assert dict(dt["posterior"].sizes)["chain"] == 2, name
        assert dict(dt["posterior"].sizes)["draw"] == 100, name
    assert aligned["mcmc"] is results["mcmc"]
    post = aligned["ml"]["posterior"]
    assert post.attrs["resampled_from"] == "chain=4, draw=250"
    # each resampled draw is an original joint draw: beta_c = beta_b - beta_w still holds
    np.testing.assert_allclose(post["beta_c"], post["beta_b"] - post["beta_w"])
    # the point estimates are untouched
    assert aligned["ml"]["point_estimate"]["beta_b"].item() == 5.0
    bigger = match_sample_shape(results, chains=4, draws=300)
    assert dict(bigger["mcmc"]["posterior"].sizes)["draw"] == 300


def test_plot_compare_writes_png_with_legend(results, tmp_path):
    import matplotlib.pyplot as plt

    path = tmp_path / "forest.png"
    fig = plot_compare(results, path=path, title="stand-ins")
    assert path.stat().st_size > 10_000
    legends = [leg for ax in fig.axes for leg in [ax.get_legend()] if leg] + fig.legends
    texts = {t.get_text() for leg in legends for t in leg.get_texts()}
    assert texts == {"mlob", "ml_moments", "ml", "mcmc"}
    plt.close(fig)


def test_plot_compare_errors(results):
    with pytest.raises(ValueError, match=r"`var_names` entries \['nope'\] are in no posterior"):
        plot_compare(results, var_names=["nope"])


def test_compare_table_is_a_dataframe_that_pivots(results):
    table = compare(results, var_names=["beta_b"])
    wide = table["estimate"].unstack("estimator")
    assert isinstance(wide, pd.DataFrame) and wide.shape == (1, 4)


def test_compare_name_is_the_function_even_after_importing_the_module():
    import mlob_pp.comparisons
    import mlob_pp.comparisons.compare  # noqa: F401  (binds the submodule name on import)
    from mlob_pp.comparisons import compare as fn

    assert callable(fn) and fn.__name__ == "compare"
    assert mlob_pp.comparisons.compare is fn


def test_compare_default_includes_other_parameters_but_not_group_effects(results):
    import xarray as xr

    extra = results["ml"].copy()
    post = extra["posterior"].to_dataset()
    extra["posterior"] = xr.DataTree(post.assign(reliability=post["tau2"] / 10))
    point = extra["point_estimate"].to_dataset()
    extra["point_estimate"] = xr.DataTree(
        point.assign(reliability=point["tau2"] / 10), children=extra["point_estimate"].children
    )
    table = compare({"ml": extra, "mcmc": results["mcmc"]})
    params = list(dict.fromkeys(table.index.get_level_values("parameter")))
    assert params[-1] == "reliability" and not any(p.startswith("u") for p in params)
