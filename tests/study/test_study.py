import json
import sys
import warnings

import numpy as np
import pytest
import xarray as xr

from mlob_pp.comparisons.study.runner import (
    COUNTS,
    METRICS,
    load_study,
    performance,
    run_study,
    save_study,
)

SMALL = {"icc_x": (0.1,), "J": (5, 10), "n": (5,), "beta_b": (0.5,), "beta_w": (0.2, 0.7)}
RESULT_VARS = ["value", "mcse", "n_used", "counts", "truth", "icc_y"]


def _results(ds):
    return ds[RESULT_VARS].drop_attrs()


def moment_ratio(y, x, covariates, *, conf_level):
    """A plug-in estimator: between-group OLS slope of the observed group means."""
    xm, ym = x.mean(axis=2), y.mean(axis=2)
    xc = xm - xm.mean(axis=1, keepdims=True)
    yc = ym - ym.mean(axis=1, keepdims=True)
    slope = (xc * yc).sum(axis=1) / (xc * xc).sum(axis=1)
    resid = yc - slope[:, None] * xc
    J = x.shape[1]
    se = np.sqrt((resid**2).sum(axis=1) / (J - 2) / (xc * xc).sum(axis=1))
    return {"estimate": slope, "se": se}


def flaky(y, x, covariates, *, conf_level):
    """Fails on data sets whose first value is positive; NaN SE when the second one is."""
    if len(y) > 1:
        raise RuntimeError("batch not supported")
    if y[0, 0, 0] > 0:
        raise ValueError("boom")
    se = np.where(y[:, 0, 1] > 0, np.nan, 0.1)
    return {"estimate": np.full(1, 0.5), "se": se, "converged": y[:, 0, 2] > 0}


# -- metrics ------------------------------------------------------------------------------------


def test_performance_against_hand_computation():
    est = np.array([0.4, 0.7, 0.5, 0.9, np.nan])
    se = np.array([0.1, 0.2, np.inf, 0.3, 0.2])
    lo = est - 0.25
    hi = est + 0.25
    lo[2], hi[2] = -np.inf, np.inf
    v, s, m = performance(est, se, lo, hi, truth=0.5)
    val, mc, used = dict(zip(METRICS, v, strict=True)), dict(zip(METRICS, s, strict=True)), dict(
        zip(METRICS, m, strict=True))
    b = np.array([0.4, 0.7, 0.5, 0.9])
    err = b - 0.5
    assert used["bias"] == used["rmse"] == 4 and used["coverage"] == 4 and used["se_ratio"] == 3
    assert val["bias"] == pytest.approx(err.mean(), rel=1e-14)
    assert val["relative_bias"] == pytest.approx(err.mean() / 0.5, rel=1e-14)
    assert val["rmse"] == pytest.approx(np.sqrt((err**2).mean()), rel=1e-14)
    assert val["empirical_se"] == pytest.approx(np.std(b, ddof=1), rel=1e-14)
    # 0.4, 0.5 (infinite interval), 0.7 cover 0.5; 0.9 - 0.25 = 0.65 does not
    assert val["coverage"] == pytest.approx(0.75)
    assert mc["coverage"] == pytest.approx(np.sqrt(0.75 * 0.25 / 4))
    fin = np.array([0.1, 0.2, 0.3])
    emp = np.std([0.4, 0.7, 0.9], ddof=1)
    assert val["mean_se"] == pytest.approx(0.2)
    assert val["se_ratio"] == pytest.approx(0.2 / emp)
    assert mc["bias"] == pytest.approx(np.std(b, ddof=1) / 2)
    assert mc["relative_bias"] == pytest.approx(np.std(b, ddof=1) / 2 / 0.5)
    mse = (err**2).mean()
    mc_mse = np.sqrt(((err**2 - mse) ** 2).sum() / (4 * 3))
    assert mc["mse"] == pytest.approx(mc_mse)
    assert mc["rmse"] == pytest.approx(mc_mse / (2 * np.sqrt(mse)))
    assert mc["empirical_se"] == pytest.approx(np.std(b, ddof=1) / np.sqrt(6))
    ratio = 0.2 / emp
    assert mc["se_ratio"] == pytest.approx(
        ratio * np.sqrt(np.var(fin, ddof=1) / (3 * 0.04) + 1 / 4))


def test_performance_mcse_matches_the_spread_of_replicate_studies():
    # the Monte Carlo SE of each metric is close to its SD over many independent studies
    rng = np.random.default_rng(5)
    vals, ses = [], []
    for _ in range(400):
        b = 0.5 + 0.1 * rng.standard_normal(400)
        se = 0.1 * np.sqrt(rng.chisquare(20, 400) / 20)
        v, s, _m = performance(b, se, b - 1.96 * se, b + 1.96 * se, 0.5)
        vals.append(v)
        ses.append(s)
    sd = np.std(vals, axis=0, ddof=1)
    mean_mcse = np.mean(ses, axis=0)
    np.testing.assert_allclose(mean_mcse, sd, rtol=0.2)


def test_performance_with_nothing_usable_and_zero_truth():
    v, s, m = performance(np.full(3, np.nan), np.ones(3), np.zeros(3), np.ones(3), 0.5)
    assert np.isnan(v).all() and np.isnan(s).all() and (m == 0).all()
    v, _s, _m = performance(np.array([0.1, -0.1]), np.ones(2), -np.ones(2), np.ones(2), 0.0)
    assert np.isnan(dict(zip(METRICS, v, strict=True))["relative_bias"])


# -- runner -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_study():
    return run_study(SMALL, replications=60, random_seed=11, chunk_size=60, progress=False)


def test_dataset_layout_and_attrs(small_study):
    ds = small_study
    assert ds["value"].dims == ("icc_x", "J", "n", "beta_b", "beta_w", "estimator", "metric")
    assert ds["counts"].dims[-1] == "count"
    assert list(ds["estimator"].values) == ["mlob", "ml_moments"]
    assert list(ds["metric"].values) == list(METRICS)
    assert list(ds["count"].values) == list(COUNTS)
    assert list(ds["phase"].values) == ["generate", "mlob", "ml_moments"]
    assert (ds["counts"].sel(count="n_replications") == 60).all()
    assert (ds["truth"] == 0.5).all()
    assert ds.attrs["random_seed"] == "11" and ds.attrs["replications"] == 60
    assert json.loads(ds.attrs["design"])["factors"]["J"] == [5, 10]
    assert ds.attrs["param_gamma"] == 0.3 and ds.attrs["scheduler"] == "serial"
    assert "10.1002/sim.8086" in ds.attrs["references"]
    assert (ds["seconds"] >= 0).all()
    # J = 10: every estimate finite, metrics finite
    v = ds["value"].sel(J=10)
    assert np.isfinite(v.sel(metric=["rmse", "coverage", "relative_bias", "se_ratio"])).all()
    # J = 5: R's moment-ratio SE is degenerate (infinite or meaningless) and it is counted
    c5 = ds["counts"].sel(J=5, estimator="ml_moments", count="n_se_degenerate")
    assert (c5 == 60).all()


def test_identical_whatever_the_chunk_size(small_study):
    other = run_study(SMALL, replications=60, random_seed=11, chunk_size=7, progress=False)
    xr.testing.assert_identical(_results(small_study), _results(other))
    assert other.attrs["chunk_size"] == 7


def test_different_seed_differs(small_study):
    other = run_study(SMALL, replications=60, random_seed=12, chunk_size=60, progress=False)
    assert not np.allclose(other["value"], small_study["value"], equal_nan=True)


def test_cells_reproduce_in_a_larger_design(small_study):
    bigger = dict(SMALL, n=(5, 15))
    ds = run_study(bigger, replications=60, random_seed=11, progress=False)
    xr.testing.assert_identical(_results(ds.sel(n=[5])), _results(small_study))


class Stop(Exception):
    pass


def test_checkpoint_resume_gives_identical_results(tmp_path, small_study):
    ckpt = tmp_path / "ckpt"
    seen = []

    def kill_after_three(info):
        seen.append(info)
        if len(seen) == 3:
            raise Stop

    with pytest.raises(Stop):
        run_study(SMALL, replications=60, random_seed=11, chunk_size=20, checkpoint=ckpt,
                  progress=False, callback=kill_after_three)
    assert len(list((ckpt / "chunks").glob("*.npz"))) == 3
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert manifest["config"]["random_seed"] == 11
    resumed = []
    ds = run_study(SMALL, replications=60, random_seed=11, chunk_size=20, checkpoint=ckpt,
                   progress=False, callback=resumed.append)
    assert len(resumed) == 12 - 3  # only the missing chunks were computed
    assert resumed[-1].done == 12 and resumed[-1].total == 12
    xr.testing.assert_identical(_results(ds), _results(small_study))
    # a finished checkpoint recomputes nothing; the seed comes from the manifest
    again = []
    ds2 = run_study(SMALL, replications=60, chunk_size=20, checkpoint=ckpt, progress=False,
                    callback=again.append)
    assert again == []
    xr.testing.assert_identical(_results(ds2), _results(small_study))


def test_checkpoint_of_another_study_is_refused(tmp_path):
    run_study({**SMALL, "J": (10,)}, replications=4, random_seed=1, chunk_size=2,
              checkpoint=tmp_path, progress=False)
    with pytest.raises(ValueError, match="holds a different study: 'replications' was 4 there"):
        run_study({**SMALL, "J": (10,)}, replications=6, random_seed=1, chunk_size=2,
                  checkpoint=tmp_path, progress=False)


def test_netcdf_round_trip(tmp_path, small_study):
    path = save_study(small_study, tmp_path / "out" / "study.nc")
    back = load_study(path)
    xr.testing.assert_identical(back[RESULT_VARS], small_study[RESULT_VARS])
    assert back.attrs["design"] == small_study.attrs["design"]


def test_plugin_estimator_and_subsets(small_study):
    ds = run_study(
        SMALL, replications=60, random_seed=11, progress=False,
        estimators={"mlob": None, "means": moment_ratio},
        subsets={"means": {"replications": 25, "cells": {"J": [10]}}},
    )
    xr.testing.assert_identical(
        _results(ds.sel(estimator=["mlob"])), _results(small_study.sel(estimator=["mlob"])))
    n = ds["counts"].sel(estimator="means", count="n_replications")
    assert (n.sel(J=10) == 25).all() and (n.sel(J=5) == 0).all()
    assert np.isnan(ds["value"].sel(estimator="means", J=5)).all()
    assert (ds["n_used"].sel(estimator="means", J=10, metric="rmse") == 25).all()
    # check against a direct computation for one cell
    from mlob_pp.comparisons.study.design import simulate_replications

    cell = dict(icc_x=0.1, J=10, n=5, beta_b=0.5, beta_w=0.7, gamma=0.3, rho_c=0.4, tau2=0.1,
                sigma2=0.6)
    y, x, c = simulate_replications(cell, 0, 25, random_seed=11)
    est = moment_ratio(y, x, c, conf_level=0.95)["estimate"]
    rmse = ds["value"].sel(estimator="means", J=10, beta_w=0.7, metric="rmse").item()
    assert rmse == pytest.approx(np.sqrt(np.mean((est - 0.5) ** 2)), rel=1e-12)


def test_failures_are_counted_not_dropped():
    ds = run_study({**SMALL, "J": (10,), "beta_w": (0.2,)}, replications=40, random_seed=3,
                   estimators={"flaky": flaky}, progress=False)
    from mlob_pp.comparisons.study.design import simulate_replications

    cell = dict(icc_x=0.1, J=10, n=5, beta_b=0.5, beta_w=0.2, gamma=0.3, rho_c=0.4, tau2=0.1,
                sigma2=0.6)
    y = simulate_replications(cell, 0, 40, random_seed=3)[0]
    err = y[:, 0, 0] > 0
    c = ds["counts"].sel(estimator="flaky").squeeze()
    assert c.sel(count="n_replications") == 40
    assert c.sel(count="n_error") == err.sum()
    assert c.sel(count="n_nonfinite_se") == (~err & (y[:, 0, 1] > 0)).sum()
    assert c.sel(count="n_nonconverged") == (~err & (y[:, 0, 2] <= 0)).sum()
    used = ds["n_used"].sel(estimator="flaky").squeeze()
    assert used.sel(metric="rmse") == (~err).sum()
    assert used.sel(metric="se_ratio") == (~err & (y[:, 0, 1] <= 0)).sum()


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"estimators": ["mlob", "lasso"]}, ValueError, "unknown estimator 'lasso'"),
        ({"estimators": 3}, TypeError, "`estimators` must be a name, a sequence of names"),
        ({"estimators": ["mlob", "mlob"]}, ValueError, "estimator 'mlob' is listed twice"),
        ({"estimators": {"f": 3}}, TypeError, "estimator 'f' must be callable; got 3"),
        ({"estimators": []}, ValueError, "`estimators` must name at least one estimator"),
        ({"subsets": {"ml": {}}}, ValueError, "`subsets` names estimator 'ml', which is not in"),
        ({"subsets": {"mlob": {"reps": 2}}}, ValueError, "allows keys 'replications' and 'cells'"),
        ({"subsets": {"mlob": {"cells": {"K": [1]}}}}, ValueError, r"names \['K'\], which are not"),
        ({"subsets": {"mlob": 5}}, TypeError, r"`subsets\['mlob'\]` must be a mapping"),
        ({"scheduler": "cluster"}, ValueError, "`scheduler` must be None"),
        ({"replications": 0}, ValueError, "`replications` must be an integer >= 1; got 0"),
        ({"chunk_size": 1.5}, TypeError, "`chunk_size` must be an integer; got 1.5"),
        ({"conf_level": 95}, ValueError, "`conf_level` must be strictly between 0 and 1"),
        ({"mode": "fast"}, ValueError, "`mode` must be one of 'r', 'stable'; got 'fast'"),
        ({"mcmc_kwargs": {"cores": 2}}, ValueError, "`mcmc_kwargs` allows draws, tune"),
        ({"random_seed": -1}, ValueError, "`random_seed` must be a non-negative integer seed"),
        ({"design": "paper"}, ValueError, "`design` must be 'talk', a Design or a mapping"),
    ],
)
def test_run_study_errors(kwargs, exc, match):
    args = {"design": SMALL, "replications": 2, "random_seed": 1, "progress": False}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        run_study(**args)


def test_keep_replications_and_stable_mode():
    ds = run_study({**SMALL, "J": (10,)}, replications=30, random_seed=2, progress=False,
                   keep_replications=True, mode="stable", chunk_size=8)
    assert ds["estimate"].dims[-2:] == ("estimator", "replication")
    est = ds["estimate"].sel(estimator="mlob", beta_w=0.2).squeeze().values
    rmse = ds["value"].sel(estimator="mlob", beta_w=0.2, metric="rmse").item()
    assert rmse == pytest.approx(np.sqrt(np.mean((est - 0.5) ** 2)), rel=1e-12)
    assert ds.attrs["mode"] == "stable"


def test_progress_bar_goes_to_stderr(capsys):
    run_study({**SMALL, "J": (10,), "beta_w": (0.2,)}, replications=4, random_seed=1,
              progress=True)
    out = capsys.readouterr()
    assert out.out == "" and "simulate" in out.err


def test_dask_local_cluster_matches_serial(small_study):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        ds = run_study(SMALL, replications=60, random_seed=11, chunk_size=15, progress=False,
                       scheduler=client)
        # also a plug-in estimator defined here, shipped to the workers by value (a local
        # function is not picklable by reference, so distributed falls back to cloudpickle)
        import cloudpickle

        def means(y, x, covariates, *, conf_level):
            return moment_ratio(y, x, covariates, conf_level=conf_level)

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
        try:
            dp = run_study(SMALL, replications=20, random_seed=11, progress=False,
                           scheduler=cluster.scheduler_address, estimators={"means": means})
        finally:
            cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    xr.testing.assert_identical(_results(ds), _results(small_study))
    assert ds.attrs["scheduler"].startswith("dask client")
    serial = run_study(SMALL, replications=20, random_seed=11, progress=False,
                       estimators={"means": moment_ratio})
    xr.testing.assert_identical(_results(dp), _results(serial))


# -- per-replication arms -----------------------------------------------------------------------

ONE = {"icc_x": (0.3,), "J": (10,), "n": (5,), "beta_b": (0.5,), "beta_w": (0.2,)}


def test_ml_arm_on_a_subset_matches_direct_fits():
    from mlob_pp import fit_ml
    from mlob_pp.comparisons.study.design import frame_from_arrays, simulate_replications

    ds = run_study({**ONE, "n": (5, 15)}, replications=6, random_seed=4, progress=False,
                   estimators=["mlob", "ml"],
                   subsets={"ml": {"replications": 3, "cells": {"n": [5]}}},
                   keep_replications=True)
    c = ds["counts"].sel(estimator="ml").squeeze()
    assert c.sel(n=5, count="n_replications") == 3 and c.sel(n=15, count="n_replications") == 0
    assert c.sel(count="n_error").sum() == 0
    cell = dict(icc_x=0.3, J=10, n=5, beta_b=0.5, beta_w=0.2, gamma=0.3, rho_c=0.4, tau2=0.1,
                sigma2=0.6)
    y, x, cov = simulate_replications(cell, 0, 3, random_seed=4)
    est = ds["estimate"].sel(estimator="ml", n=5).squeeze().values
    assert np.isnan(est[3:]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = [fit_ml("Y ~ X + C", frame_from_arrays(y[r], x[r], cov[r]), "group")
                  for r in range(3)]
    np.testing.assert_allclose(est[:3], [f.coef["beta_b"] for f in direct], rtol=1e-10)


@pytest.mark.mcmc
@pytest.mark.slow
def test_mcmc_arm_on_two_replications():
    ds = run_study(ONE, replications=4, random_seed=4, progress=False,
                   estimators=["mlob", "mcmc"], subsets={"mcmc": {"replications": 2}},
                   mcmc_kwargs={"draws": 200, "tune": 200, "chains": 2})
    c = ds["counts"].sel(estimator="mcmc").squeeze()
    assert c.sel(count="n_replications") == 2 and c.sel(count="n_error") == 0
    v = ds["value"].sel(estimator="mcmc").squeeze()
    assert np.isfinite(v.sel(metric=["rmse", "coverage"])).all()
    assert json.loads(ds.attrs["mcmc_kwargs"])["draws"] == 200


# -- CLI and plots ------------------------------------------------------------------------------


def test_cli_simulate_writes_netcdf_and_plots(tmp_path, capsys):
    import matplotlib

    matplotlib.use("Agg")
    from mlob_pp.cli import main

    out = tmp_path / "r.nc"
    argv = ["simulate", "--set", "J=5,10", "--set", "n=5", "--set", "icc_x=0.1",
            "--set", "beta_b=0.5", "--set", "beta_w=0.2", "--set", "rho_c=0.2",
            "--replications", "20", "--seed", "3", "--chunk-size", "8", "--out", str(out),
            "--plots", str(tmp_path / "figs"), "--no-progress"]
    assert main(argv) == 0
    ds = load_study(out)
    assert ds.sizes["J"] == 2 and ds.attrs["param_rho_c"] == 0.2
    assert ds.attrs["random_seed"] == "3" and ds.attrs["chunk_size"] == 8
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "intervals.png", "relative_bias.png", "rmse.png"]
    assert "wrote" in capsys.readouterr().out
    direct = run_study({"J": (5, 10), "n": (5,), "icc_x": (0.1,), "beta_b": (0.5,),
                        "beta_w": (0.2,), "rho_c": 0.2}, replications=20, random_seed=3,
                       progress=False)
    xr.testing.assert_identical(_results(ds), _results(direct))


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--set", "K=1"], "--set expects NAME=V1"),
        (["--set", "J=a"], "--set J: values must be numbers"),
        (["--estimators", "lasso"], "unknown estimator 'lasso'"),
    ],
)
def test_cli_simulate_errors(tmp_path, capsys, argv, match):
    from mlob_pp.cli import main

    code = main(["simulate", "--out", str(tmp_path / "x.nc"), "--replications", "2",
                 "--no-progress", *argv])
    assert code == 2
    assert match in capsys.readouterr().err


def test_plots(small_study):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mlob_pp.comparisons.study import plots as study_plots

    fig = study_plots.plot_rmse(small_study)
    assert len(fig.axes) == 1 * 1  # one icc_x level x one n level
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and len(ax.lines) >= 2
    plt.close(fig)
    fig = study_plots.plot_coverage(small_study, row=None, col="beta_w")
    assert len(fig.axes) == 2
    plt.close(fig)
    fig = study_plots.plot_relative_bias(small_study, select={"beta_w": 0.2})
    plt.close(fig)
    value, mcse = study_plots.reduce_metric(small_study, "rmse", ["J"])
    assert value.dims == ("J", "estimator") or set(value.dims) == {"J", "estimator"}
    expected = small_study["value"].sel(metric="rmse").mean(["icc_x", "n", "beta_b", "beta_w"])
    xr.testing.assert_allclose(value, expected)
    with pytest.raises(ValueError, match="`metric` must be one of rmse"):
        study_plots.plot_metric(small_study, "mae")
    with pytest.raises(ValueError, match="`K` is not a factor of this study"):
        study_plots.plot_metric(small_study, x="K")


def _figure_texts(fig):
    texts = [t.get_text() for t in fig.texts]
    for leg in fig.legends:
        texts += [t.get_text() for t in leg.get_texts()]
    return texts


def test_plot_captions_are_whole_and_labels_name_the_estimators(small_study):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mlob_pp.comparisons.study import plots

    fig = plots.plot_rmse_ratio(small_study, "mlob", "ml_moments")
    texts = _figure_texts(fig)
    assert "RMSE ratio mlob / ml_moments" in texts
    assert not any("MLOB / ML" in t for t in texts)
    assert fig.axes[0].get_ylabel() == "RMSE ratio mlob / ml_moments"
    # the caption lies inside the figure, whole (wrapped, not cut at the edge)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    fbox = fig.bbox
    for t in fig.texts:
        box = t.get_window_extent(renderer)
        assert box.x0 >= fbox.x0 - 1 and box.x1 <= fbox.x1 + 1
        assert box.y0 >= fbox.y0 - 1 and box.y1 <= fbox.y1 + 1
    caption = " ".join(t.get_text() for t in fig.texts).replace("\n", " ")
    assert "60 replications per cell." in caption
    assert "Cells with beta_b = 0.5; averaged over beta_w (mean over cells)" in caption
    plt.close(fig)
    fig = plots.plot_metric(small_study, "rmse")
    assert "ML moments (R MLOB's 'ML')" in _figure_texts(fig)
    plt.close(fig)


def test_panels_get_their_own_y_scale_when_ranges_differ(small_study):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mlob_pp.comparisons.study import plots

    ds = small_study.copy(deep=True)
    # make the J = 10 panel's values 10,000 times those of J = 5
    ds["value"].loc[{"J": 10}] = ds["value"].sel(J=10) * 1e4
    fig = plots.plot_metric(ds, "rmse", x="beta_w", row=None, col="J")
    a, b = fig.axes[:2]
    assert a.get_ylim() != b.get_ylim()
    plt.close(fig)
    fig = plots.plot_metric(small_study, "coverage", x="beta_w", row=None, col="J",
                            sharey=True)
    assert fig.axes[0].get_ylim() == fig.axes[1].get_ylim()
    plt.close(fig)


def test_interval_plot_rows(small_study):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mlob_pp.comparisons.study import plots

    fig = plots.plot_intervals(small_study)
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels == ["coverage", "coverage, bounded intervals", "share unbounded",
                      "median width"]
    assert {"MLOB, analytic SE", "ML moments, analytic SE"} <= set(_figure_texts(fig))
    plt.close(fig)


def test_load_study_of_a_file_that_is_not_a_study(tmp_path):
    bad = tmp_path / "x.nc"
    bad.write_text("not netcdf")
    with pytest.raises(ValueError, match=r"`path` '.*x.nc' is not a study written by save_study"):
        load_study(bad)
    other = tmp_path / "other.nc"
    xr.Dataset({"a": ("t", np.arange(3.0))}).to_netcdf(other, engine="h5netcdf")
    with pytest.raises(ValueError, match="is a netCDF file but not a study result"):
        load_study(other)
