"""Side-by-side table and forest plot of common-format results: they show the same numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlob_pp.common_format import estimate_tree
from mlob_pp.comparisons import compare, match_sample_shape, plot_compare
from mlob_pp.comparisons.table import COLUMNS
from mlob_pp.tables import wald_table


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
    assert table.shape == (6 + 7 + 5, len(COLUMNS))
    assert table.attrs["conf_level"] == 0.95


def test_compare_reads_the_exact_estimates(results, standins):
    table = compare(results)
    expected = standins.FakeMLOB().summary_frame("mlob")
    for label in expected.index:
        row = table.loc[(label, "mlob")]
        for col in ("estimate", "std_error", "ci_lower", "ci_upper"):
            assert row[col] == expected.loc[label, col]  # exact, not from draws
        assert row["interval"] == "wald"
        assert np.isnan(row[["r_hat", "ess_bulk", "ess_tail"]].astype(float)).all()
    mc = table.loc[("beta_b", "mcmc")]
    draws = results["mcmc"]["posterior"]["beta_b"].values
    assert mc["estimate"] == pytest.approx(draws.mean())
    assert mc["std_error"] == pytest.approx(draws.std(ddof=1))
    assert mc["ci_lower"] == pytest.approx(np.quantile(draws, 0.025))
    assert mc["interval"] == "eti"
    assert 0.95 < mc["r_hat"] < 1.05 and mc["ess_bulk"] > 50 and mc["ess_tail"] > 50


def test_compare_other_level_recomputes_only_wald_intervals(results):
    table = compare(results, var_names=["beta_b"], conf_level=0.9)
    row = table.loc[("beta_b", "mlob")]
    assert row["ci_upper"] == pytest.approx(3.9 + 1.644854 * 0.31, rel=1e-6)
    mc = table.loc[("beta_b", "mcmc")]
    draws = results["mcmc"]["posterior"]["beta_b"].values
    assert mc["ci_upper"] == pytest.approx(np.quantile(draws, 0.95))
    frame = wald_table([0.5], [0.1], index=["beta_b"]).assign(ci_upper=np.inf)
    boot = estimate_tree(
        frame,
        estimator="mlob",
        conf_level=0.95,
        interval_method="bootstrap_inversion",
        se_method="bootstrap",
    )
    assert compare({"boot": boot}).loc[("beta_b", "boot"), "ci_upper"] == np.inf
    with pytest.raises(ValueError, match=r"intervals are 'bootstrap_inversion', not Wald"):
        compare({"boot": boot}, conf_level=0.9)


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


def test_compare_table_is_a_dataframe_that_pivots(results):
    table = compare(results, var_names=["beta_b"])
    wide = table["estimate"].unstack("estimator")
    assert isinstance(wide, pd.DataFrame) and wide.shape == (1, 4)


def test_compare_is_the_function():
    import mlob_pp.comparisons
    import mlob_pp.comparisons.table  # noqa: F401
    from mlob_pp.comparisons import compare as fn

    assert callable(fn) and fn.__name__ == "compare"
    assert mlob_pp.comparisons.compare is fn


def test_compare_default_includes_other_parameters_but_not_group_effects(results, standins):
    import xarray as xr

    from mlob_pp.comparisons import from_ml

    ml = standins.fake_ml()
    ml.coef["reliability"], ml.se["reliability"] = 0.25, 0.05
    mc = results["mcmc"].copy()
    post = mc["posterior"].to_dataset()
    mc["posterior"] = xr.DataTree(post.assign(reliability=post["tau2"] / 10))
    table = compare({"ml": from_ml(ml), "mcmc": mc})
    params = list(dict.fromkeys(table.index.get_level_values("parameter")))
    assert params[-1] == "reliability" and not any(p.startswith("u") for p in params)


def test_match_sample_shape(results, standins):
    from mlob_pp.comparisons import from_pymc

    results = {**results, "short": from_pymc(standins.fake_idata(chains=1, draws=50, seed=2))}
    aligned = match_sample_shape(results)
    assert aligned["mcmc"] is results["mcmc"] and aligned["mlob"] is results["mlob"]
    post = aligned["short"]["posterior"]
    assert dict(post.sizes)["chain"] == 2 and dict(post.sizes)["draw"] == 100
    assert post.attrs["resampled_from"] == "chain=1, draw=50"
    original = set(results["short"]["posterior"]["beta_b"].values.ravel())
    assert set(post["beta_b"].values.ravel()) <= original  # resampled joint draws


# ------------------------------------------------------------------------ the plot


def _plotted(fig) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    out: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for line in fig.axes[0].lines:
        gid = line.get_gid()
        if gid:
            param, est, kind = gid.split("|")
            out.setdefault((param, est), {})[kind] = np.asarray(line.get_xdata(), float)
    return out


def test_plot_and_table_show_the_same_numbers(results, tmp_path):
    import matplotlib.pyplot as plt

    fig = plot_compare(results, path=tmp_path / "forest.png")
    table = compare(results, var_names=["beta_b", "beta_w", "beta_c", "gamma"])
    plotted = _plotted(fig)
    assert set(plotted) == set(table.index)
    for key, row in table.iterrows():
        shown = plotted[key]
        # to the printed digits (3 decimals), for every estimator
        assert round(float(shown["estimate"][0]), 3) == round(row["estimate"], 3), key
        assert np.round(shown["interval"], 3).tolist() == [
            round(row["ci_lower"], 3),
            round(row["ci_upper"], 3),
        ], key
    pd.testing.assert_frame_equal(fig.compare_table, table)
    plt.close(fig)


def test_plot_has_axis_label_zero_line_and_explaining_legend(results, tmp_path):
    import matplotlib.pyplot as plt

    path = tmp_path / "forest.png"
    fig = plot_compare(results, path=path, title="stand-ins")
    assert path.stat().st_size > 10_000
    ax = fig.axes[0]
    assert ax.get_xlabel() == "estimate and 95% interval"
    assert any(
        np.allclose(line.get_xdata(), 0.0) and line.get_linestyle() == "--" for line in ax.lines
    )
    names, keys = fig.legends
    assert [t.get_text() for t in names.get_texts()] == ["mlob", "ml_moments", "ml", "mcmc"]
    texts = [t.get_text() for t in keys.get_texts()]
    assert texts == [
        "dot: estimate (posterior mean for MCMC)",
        "line: 95% interval (Wald, equal-tailed posterior)",
    ]
    # the legends are outside the axes (above and below): they cannot cover data
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    assert names.get_window_extent(renderer).y0 >= box.y1
    assert keys.get_window_extent(renderer).y1 <= box.y0
    # y tick labels are the parameters (no empty label columns)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["beta_b", "beta_w", "beta_c", "gamma_minrtyYes", "gamma_sxMale"]
    plt.close(fig)


def test_plot_marks_unbounded_intervals():
    import matplotlib.pyplot as plt

    frame = wald_table([0.5, 0.2], [0.1, 0.1], index=["beta_b", "gamma_c"])
    frame.loc["beta_b", "ci_upper"] = np.inf
    boot = estimate_tree(
        frame,
        estimator="mlob",
        conf_level=0.95,
        interval_method="bootstrap_inversion",
        se_method="bootstrap",
    )
    fig = plot_compare({"mlob": boot})
    plotted = _plotted(fig)
    assert "unbounded" in plotted[("beta_b", "mlob")]
    assert plotted[("beta_b", "mlob")]["unbounded"][0] == fig.axes[0].get_xlim()[1]
    texts = [t.get_text() for t in fig.legends[1].get_texts()]
    assert "arrow: unbounded" in texts
    assert "line: 95% interval (bootstrap test-inversion)" in texts
    plt.close(fig)


def test_plot_compare_errors(results):
    with pytest.raises(ValueError, match=r"`var_names` entries \['nope'\] are in none"):
        plot_compare(results, var_names=["nope"])
    frame = wald_table([1.0], [0.1], index=["tau2"])
    only_var = estimate_tree(
        frame,
        estimator="ml",
        conf_level=0.95,
        interval_method="wald",
        se_method="observed_information",
    )
    with pytest.raises(ValueError, match=r"no regression coefficients to plot; pass `var_names`"):
        plot_compare({"ml": only_var})


def test_real_bootstrap_result_table_and_plot_agree(hsb_small):
    import matplotlib.pyplot as plt

    import mlob_pp
    from mlob_pp.common_format import estimate_frame
    from mlob_pp.comparisons import from_ml, from_mlob

    res = mlob_pp.mlob(
        "mAch ~ ses + minrty + sx", hsb_small, "school", se="bootstrap", n_boot=200, random_seed=5
    )
    ml = mlob_pp.fit_ml("mAch ~ ses + minrty + sx", hsb_small, "school")
    results = {"mlob": from_mlob(res), "ml": from_ml(ml)}
    table = compare(results)
    expected = estimate_frame(results["mlob"])
    assert table.loc[("beta_b", "mlob"), "interval"] == "bootstrap_inversion"
    assert table.loc[("beta_b", "mlob"), "ci_lower"] == expected.loc["beta_b", "ci_lower"]
    assert (
        table.loc[("beta_b", "mlob"), "ci_lower"] == res.summary_frame().loc["beta_b", "ci_lower"]
    )
    fig = plot_compare(results)
    plotted = _plotted(fig)
    for key in table.index:
        if key[0].startswith(("beta", "gamma")):
            est = table.loc[key, "estimate"]
            assert round(float(plotted[key]["estimate"][0]), 3) == round(est, 3)
    plt.close(fig)
