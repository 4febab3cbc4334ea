"""Converters to the common format: point estimates stay point estimates, MCMC stays MCMC."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from mlob_pp.common_format import (
    NotAPosteriorError,
    PointEstimateTree,
    estimate_frame,
    estimate_tree,
)
from mlob_pp.comparisons import from_ml, from_mlob, from_pymc, load, make_attrs, save

TERMS = ("minrtyYes", "sxMale")
NOT_POSTERIOR = r"point estimate from {}"


# ------------------------------------------------------------------------ from_mlob


def test_from_mlob_is_a_point_estimate_with_the_exact_table(standins):
    res = standins.FakeMLOB()
    dt = from_mlob(res)
    assert isinstance(dt, PointEstimateTree)
    assert set(dt.children) == {"estimate"}
    est = dt["estimate"]
    assert est["term"].values.tolist() == ["beta_b", "gamma_minrtyYes", "gamma_sxMale"]
    assert est["ci"].dims == ("term", "ci_bound")
    pd.testing.assert_frame_equal(
        estimate_frame(dt), res.summary_frame("mlob").rename_axis("term"), check_exact=True
    )
    assert est.attrs["interval_method"] == "wald" and est.attrs["se_method"] == "analytic"
    assert est.attrs["conf_level"] == 0.95


def test_from_mlob_ml_moments_and_attrs(standins):
    dt = from_mlob(standins.FakeMLOB(), estimator="ml_moments")
    assert dt["estimate"]["estimate"].sel(term="beta_b").item() == pytest.approx(4.9)
    for node in dt.subtree:
        assert node.attrs["estimator"] == "ml_moments"
    attrs = dt.attrs
    assert attrs["inference_library"] == "mlob_pp"
    assert attrs["mlob_pp_version"] == __import__("mlob_pp").__version__
    assert attrs["random_seed"] == 3  # the estimator's seed (balancing)
    assert json.loads(attrs["settings"])["n_balance"] == 20
    balancing = json.loads(attrs["balancing"])
    assert balancing["rows_deleted"] == 3041 and "kept_rows" not in balancing
    assert attrs["formula"] == "mAch ~ ses + minrty + sx" and attrs["n_groups"] == 148
    assert "created_at" in attrs and "posterior_kind" not in attrs


@pytest.mark.parametrize("name", ["summary", "loo", "ess", "plot_forest"])
def test_arviz_refuses_mlob_and_ml_results(standins, name):
    import arviz as az

    for dt, estimator in (
        (from_mlob(standins.FakeMLOB()), "mlob"),
        (from_mlob(standins.FakeMLOB(), estimator="ml_moments"), "ml_moments"),
        (from_ml(standins.fake_ml()), "ml"),
    ):
        with pytest.raises(NotAPosteriorError, match=NOT_POSTERIOR.format(estimator)):
            getattr(az, name)(dt)


def test_arviz_works_on_mcmc_results(standins):
    import arviz as az

    dt = from_pymc(standins.fake_idata(chains=2, draws=200), log_likelihood=True)
    summary = az.summary(dt, var_names=["beta_b"], kind="stats")
    assert summary.loc["beta_b", "mean"] == pytest.approx(5.0, abs=0.1)
    assert np.isfinite(az.loo(dt).elpd)


def test_normal_approximation_only_on_request(standins):
    assert "normal_approximation" not in from_mlob(standins.FakeMLOB()).children
    dt = from_mlob(standins.FakeMLOB(), draws=2000, chains=4, random_seed=2)
    assert set(dt.children) == {"estimate", "normal_approximation"}
    group = dt["normal_approximation"]
    assert dict(group.sizes) == {"chain": 4, "draw": 2000, "term": 2}
    assert group["beta_b"].values.mean() == pytest.approx(3.9, abs=0.02)
    assert group["beta_b"].values.std() == pytest.approx(0.31, rel=0.03)
    assert "not a posterior" in group.attrs["description"]
    again = from_mlob(standins.FakeMLOB(), draws=2000, chains=4, random_seed=2)
    np.testing.assert_array_equal(again["normal_approximation"]["gamma"], group["gamma"])
    with pytest.raises(NotAPosteriorError):
        __import__("arviz").summary(dt)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"estimator": "ml"}, ValueError, r"`estimator` must be one of \('mlob', 'ml_moments'\)"),
        ({"chains": 0}, ValueError, r"`chains` must be an integer >= 1; got 0"),
        ({"draws": 2.5}, TypeError, r"`draws` must be an integer; got 2.5"),
        ({"draws": 5, "random_seed": "a"}, TypeError, r"`random_seed` must be"),
        ({"draws": 5, "random_seed": -1}, ValueError, r"`random_seed` must be"),
    ],
)
def test_from_mlob_errors(standins, kwargs, error, match):
    with pytest.raises(error, match=match):
        from_mlob(standins.FakeMLOB(), **kwargs)


def test_from_mlob_type_error():
    with pytest.raises(TypeError, match=r"`res` must be an MLOBResult .*got int"):
        from_mlob(3)


def test_from_mlob_uses_the_results_own_tree(standins):
    class WithTree(standins.FakeMLOB):
        def to_datatree(self, estimator="mlob"):
            frame = self.summary_frame(estimator)
            return estimate_tree(
                frame,
                estimator=estimator,
                conf_level=0.95,
                interval_method="wald",
                se_method="analytic",
                attrs={"made_by": "result"},
            )

    dt = from_mlob(WithTree(), estimator="ml_moments")
    assert dt.attrs["made_by"] == "result" and dt.attrs["estimator"] == "ml_moments"

    class CallsBack(standins.FakeMLOB):  # an old to_datatree that calls from_mlob itself
        def to_datatree(self, **kwargs):
            return from_mlob(self, **kwargs)

    dt = from_mlob(CallsBack())
    assert set(dt.children) == {"estimate"}

    class OnlyMain(standins.FakeMLOB):  # to_datatree() of the main table only
        def to_datatree(self):
            raise AssertionError("must not be called for ml_moments")

    dt = from_mlob(OnlyMain(), estimator="ml_moments")
    assert dt["estimate"]["estimate"].sel(term="beta_b").item() == pytest.approx(4.9)


def test_from_mlob_maps_the_bootstrap_interval_name(standins):
    class Boot(standins.FakeMLOB):
        se_method, interval_method = "bootstrap", "inversion"

    dt = from_mlob(Boot())
    assert dt["estimate"].attrs["interval_method"] == "bootstrap_inversion"
    assert dt["estimate"].attrs["se_method"] == "bootstrap"
    moments = from_mlob(Boot(), estimator="ml_moments")
    assert moments["estimate"].attrs["interval_method"] == "wald"


# ------------------------------------------------------------------------ labels


def test_labels_to_dataset_level_specific_and_ambiguous_names():
    from mlob_pp.comparisons.labels import labels_to_dataset

    values = {"gamma_w_a": 1.0, "gamma_b_a": 2.0, "gamma_w_b": 3.0, "gamma_b_b": 4.0, "tau2": 5}
    ds = labels_to_dataset(values, terms=["a", "b"])
    assert list(ds.data_vars) == ["gamma_w", "gamma_b", "tau2"]
    assert ds["gamma_w"].dims == ("term",) and ds["gamma_w"].sel(term="b").item() == 3.0
    assert ds["gamma_b"].sel(term="a").item() == 2.0
    # a covariate literally named "w_x" stays a plain gamma
    ds = labels_to_dataset({"gamma_w_x": 1.0, "gamma_z": 2.0}, terms=["w_x", "z"])
    assert list(ds.data_vars) == ["gamma"] and ds["term"].values.tolist() == ["w_x", "z"]


# ------------------------------------------------------------------------ from_ml


def test_from_ml_from_coef_and_se(standins):
    dt = from_ml(standins.fake_ml())
    assert isinstance(dt, PointEstimateTree) and set(dt.children) == {"estimate"}
    frame = estimate_frame(dt)
    assert list(frame.index) == list(standins.fake_ml().coef.index)
    assert frame.loc["beta_b", "ci_upper"] == pytest.approx(5.0 + 1.959964 * 0.4, rel=1e-6)
    assert frame.loc["beta_b", "z"] == pytest.approx(12.5)
    assert dt.attrs["estimator"] == "ml" and dt.attrs["converged"] == 1
    assert dt.attrs["loglik"] == -23000.5
    assert dt["estimate"].attrs["interval_method"] == "wald"
    assert json.loads(dt.attrs["settings"]) == {"covariates": "shared"}
    assert "log_likelihood" not in dt.children


def test_from_ml_keeps_the_results_own_intervals(standins):
    ml = standins.fake_ml()
    table = pd.DataFrame(
        {
            "estimate": ml.coef,
            "std_error": ml.se,
            "ci_lower": ml.coef - 1.0,
            "ci_upper": ml.coef + 2.0,
        }
    )
    ml.to_frame = lambda: table
    frame = estimate_frame(from_ml(ml))
    np.testing.assert_array_equal(frame["ci_upper"], ml.coef + 2.0)  # not recomputed
    other = estimate_frame(from_ml(ml, conf_level=0.9))  # another level: Wald at 0.9
    assert other.loc["tau2", "ci_upper"] == pytest.approx(2.5 + 1.644854 * 0.4, rel=1e-6)
    assert from_ml(ml, conf_level=0.9)["estimate"].attrs["conf_level"] == 0.9


def test_from_ml_correlated_draws_on_request(standins):
    dt = from_ml(standins.fake_ml(), chains=4, draws=5000, random_seed=3)
    draws = dt["normal_approximation"]
    bb, bw = draws["beta_b"].values.ravel(), draws["beta_w"].values.ravel()
    assert np.corrcoef(bb, bw)[0, 1] == pytest.approx(0.5, abs=0.03)
    np.testing.assert_allclose(draws["beta_c"].values, draws["beta_b"] - draws["beta_w"])
    assert draws["sigma2"].values.std() == pytest.approx(0.6, rel=0.03)
    assert "posterior" not in dt.children


def test_from_ml_type_error():
    with pytest.raises(TypeError, match=r"`res` must be an MLResult .*got dict"):
        from_ml({"coef": 1})


# ------------------------------------------------------------------------ from_pymc


def test_from_pymc_drops_pointwise_loglik_unless_asked(standins):
    idata = standins.fake_idata()
    dt = from_pymc(idata, random_seed=7)
    assert set(dt.children) == {"posterior", "observed_data", "sample_stats"}
    assert dt["posterior"]["u"].dims == ("chain", "draw", "group")
    for node in dt.subtree:
        assert node.attrs["estimator"] == "mcmc"
        assert node.attrs["inference_library"] == "pymc"
    assert dt.attrs["random_seed"] == 7
    assert json.loads(dt.attrs["settings"]) == {"chains": 2, "draws": 100}
    assert "estimator" not in idata.attrs  # the input is not modified
    full = from_pymc(idata, log_likelihood=True)
    assert full["log_likelihood"]["y"].dims == ("chain", "draw", "obs")


def test_from_pymc_accepts_result_objects(standins):
    result = SimpleNamespace(
        idata=standins.fake_idata(),
        settings={"draws": 100, "tune": 100, "chains": 2, "random_seed": 5},
        formula="y ~ x",
        group="g",
    )
    dt = from_pymc(result)
    assert dt.attrs["random_seed"] == 5 and dt.attrs["formula"] == "y ~ x"
    assert json.loads(dt.attrs["settings"])["tune"] == 100


def test_from_pymc_errors(standins):
    with pytest.raises(TypeError, match=r"`idata` must be an xarray.DataTree .*got int"):
        from_pymc(1)
    with pytest.raises(ValueError, match=r"`idata` must have a 'posterior' group; got groups"):
        from_pymc(xr.DataTree.from_dict({"prior": xr.Dataset()}))
    idata = standins.fake_idata()
    del idata["log_likelihood"]
    with pytest.raises(ValueError, match=r"`log_likelihood=True` but the MCMC result has no"):
        from_pymc(idata, log_likelihood=True)
    with pytest.raises(TypeError, match=r"`log_likelihood` must be True or False"):
        from_pymc(idata, log_likelihood="yes")


# ------------------------------------------------------------------------ attrs, files


def test_make_attrs_is_netcdf_safe():
    attrs = make_attrs(
        "ml",
        settings={"x": np.float64(1.5), "t": (1, 2)},
        random_seed=np.random.default_rng(0),
        extra={"flag": True, "none": None, "n": np.int64(3)},
    )
    assert attrs["random_seed"] == "Generator"
    assert attrs["flag"] == 1 and attrs["n"] == 3 and "none" not in attrs
    assert json.loads(attrs["settings"]) == {"t": [1, 2], "x": 1.5}
    assert make_attrs("mlob")["random_seed"] == "none"


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_round_trip_through_a_file(standins, tmp_path, suffix):
    results = {
        "mlob": from_mlob(standins.FakeMLOB(), draws=20, random_seed=0),
        "ml": from_ml(standins.fake_ml()),
        "mcmc": from_pymc(standins.fake_idata(draws=20)),
    }
    path = save(results, tmp_path / f"results{suffix}")
    back = load(path)
    assert list(back) == ["mlob", "ml", "mcmc"]
    for name, dt in results.items():
        xr.testing.assert_identical(back[name], dt)
        for node in dt.subtree:
            # lists (ArviZ's sample_dims) come back as arrays
            np.testing.assert_equal(back[name][node.path].attrs, node.attrs)
    assert isinstance(back["ml"], PointEstimateTree)
    with pytest.raises(NotAPosteriorError, match="point estimate from ml"):
        __import__("arviz").summary(back["ml"])
    single = load(save(results["ml"], tmp_path / f"ml{suffix}"))
    xr.testing.assert_identical(single, results["ml"])


def test_netcdf_is_compressed(standins, tmp_path):
    idata = standins.fake_idata(chains=2, draws=2000)
    path = save({"mcmc": from_pymc(idata)}, tmp_path / "r.nc")
    with xr.open_datatree(path, engine="h5netcdf") as opened:
        enc = opened["mcmc/posterior"]["beta_b"].encoding
    assert enc.get("compression") == "gzip" or enc.get("zlib") is True


def test_save_load_errors(standins, tmp_path):
    with pytest.raises(ValueError, match=r"`engine` must be 'h5netcdf' or 'zarr'; got 'csv'"):
        save(from_pymc(standins.fake_idata()), tmp_path / "a.nc", engine="csv")
    with pytest.raises(TypeError, match=r"`results` must be a DataTree or a dict .*got list"):
        save([1], tmp_path / "a.nc")
    with pytest.raises(ValueError, match=r"keys name groups and must be non-empty without '/'"):
        save({"a/b": from_pymc(standins.fake_idata())}, tmp_path / "a.nc")
    with pytest.raises(FileNotFoundError, match=r"`path` does not exist"):
        load(tmp_path / "missing.nc")


def test_load_of_a_file_that_is_not_a_result(tmp_path):
    text = tmp_path / "notes.nc"
    text.write_text("y,x\n1,2\n")
    with pytest.raises(ValueError, match=r"notes\.nc' is not a mlob_pp results file"):
        load(text)
    other = tmp_path / "other.nc"
    xr.Dataset({"a": ("x", [1.0, 2.0])}).to_netcdf(other, engine="h5netcdf")
    with pytest.raises(ValueError, match=r"other\.nc' holds no mlob_pp result"):
        load(other)


def test_load_reads_01_files_as_point_estimates(tmp_path):
    ci = xr.Dataset({"beta_b": ("ci_bound", [0.2, 0.6])}, coords={"ci_bound": ["lower", "upper"]})
    legacy = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset({"beta_b": (("chain", "draw"), np.zeros((1, 5)))}),
            "point_estimate": xr.Dataset({"beta_b": 0.4}),
            "point_estimate/std_error": xr.Dataset({"beta_b": 0.1}),
            "point_estimate/conf_interval": ci,
        }
    )
    legacy.attrs = {"estimator": "mlob", "conf_level": 0.95, "posterior_kind": "normal"}
    legacy.to_netcdf(tmp_path / "old.nc", engine="h5netcdf")
    dt = load(tmp_path / "old.nc")
    assert "posterior" not in dt.children and "normal_approximation" in dt.children
    frame = estimate_frame(dt)
    assert frame.loc["beta_b"].tolist() == [0.4, 0.1, 0.2, 0.6]


def test_import_has_no_pymc():
    code = (
        "import sys, mlob_pp.comparisons as c; c.compare; c.from_mlob; c.load; "
        "print(any(m.split('.')[0] in ('pymc', 'pytensor', 'matplotlib') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------ real results


def test_from_mlob_real_result(hsb_small):
    import mlob_pp

    res = mlob_pp.mlob("mAch ~ ses + minrty + sx", hsb_small, "school", random_seed=4)
    for which in ("mlob", "ml_moments"):
        dt = from_mlob(res, estimator=which)
        table = res.summary_frame(which)
        np.testing.assert_array_equal(estimate_frame(dt)["estimate"], table["estimate"])
        np.testing.assert_array_equal(estimate_frame(dt)["ci_lower"], table["ci_lower"])
        assert "posterior" not in dt.children and dt.attrs["estimator"] == which


def test_from_ml_real_result(hsb_small):
    import mlob_pp

    ml = mlob_pp.fit_ml("mAch ~ ses + minrty + sx", hsb_small, "school")
    frame = estimate_frame(from_ml(ml))
    for name in ("beta_b", "beta_w", "beta_c", "tau2", "sigma2", "icc_x"):
        assert frame.loc[name, "estimate"] == ml.coef[name]
        assert frame.loc[name, "std_error"] == ml.se[name]


@pytest.mark.mcmc
def test_from_pymc_real_fit(hsb_small):
    import warnings

    import mlob_pp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains: convergence warnings expected
        mc = mlob_pp.fit_mcmc(
            "mAch ~ ses + minrty + sx",
            hsb_small,
            "school",
            draws=100,
            tune=100,
            chains=2,
            random_seed=3,
        )
    dt = from_pymc(mc)
    post = dt["posterior"]
    for name in ("beta_b", "beta_w", "beta_c", "tau2", "sigma2"):
        assert post[name].dims == ("chain", "draw"), name
    assert post["gamma"].dims == ("chain", "draw", "term")
    assert post["term"].values.tolist() == ["minrtyYes", "sxMale"]
    assert "log_likelihood" not in dt.children
    assert dt.attrs["estimator"] == "mcmc" and dt.attrs["random_seed"] == 3


def test_results_file_small_without_pointwise_loglik(standins, tmp_path):
    from arviz_base import from_dict

    rng = np.random.default_rng(0)
    idata = from_dict(
        {
            "posterior": {
                "beta_b": rng.normal(size=(2, 500)),
                "delta": rng.normal(size=(2, 500, 160)),
            },
            "log_likelihood": {"y": rng.normal(size=(2, 500, 3000))},
        },
        dims={"delta": ["group"], "y": ["obs"]},
    )
    small = save({"mcmc": from_pymc(idata)}, tmp_path / "small.nc").stat().st_size
    large = save({"mcmc": from_pymc(idata, log_likelihood=True)}, tmp_path / "ll.nc")
    assert small < 1_500_000  # raw posterior 1.3 MB
    assert large.stat().st_size > 10 * small  # the pointwise log-likelihood dominates
