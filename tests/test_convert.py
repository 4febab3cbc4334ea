"""Converters to the common format: names, dims, attrs, draws, round trip through a file."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from mlob_pp.comparisons import from_ml, from_mlob, from_pymc, load, make_attrs, save

TERMS = ("minrtyYes", "sxMale")


# ------------------------------------------------------------------------ stand-ins


class FakeMLOB:
    """Follows the MLOBResult interface used by from_mlob."""

    covariate_names = TERMS
    conf_level = 0.95
    settings = {"balancing_limit": 0.5, "random_state": 3, "n_balance": 20}
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
        est = np.array([3.9, -2.25, 1.32]) + (1.0 if which == "ml" else 0.0)
        se = np.array([0.31, 0.58, 0.45])
        return pd.DataFrame(
            {
                "estimate": est,
                "std_error": se,
                "ci_lower": est - 1.959964 * se,
                "ci_upper": est + 1.959964 * se,
                "z": est / se,
                "p_value": 0.01,
            },
            index=["beta_b", *(f"gamma_{t}" for t in TERMS)],
        )


def fake_ml(loglik: float | None = -23000.5) -> SimpleNamespace:
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
    )


def fake_idata(chains: int = 2, draws: int = 100, seed: int = 0) -> xr.DataTree:
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


# ------------------------------------------------------------------------ from_mlob


def test_from_mlob_groups_names_dims():
    dt = from_mlob(FakeMLOB(), chains=3, draws=50, random_seed=1)
    assert set(dt.children) == {"posterior", "point_estimate"}
    assert set(dt["point_estimate"].children) == {"std_error", "conf_interval"}
    post = dt["posterior"]
    assert list(post.data_vars) == ["beta_b", "gamma"]
    assert post["beta_b"].dims == ("chain", "draw")
    assert post["gamma"].dims == ("chain", "draw", "term")
    assert dict(post.sizes) == {"chain": 3, "draw": 50, "term": 2}
    assert post["term"].values.tolist() == list(TERMS)
    assert dt["point_estimate"]["beta_b"].item() == pytest.approx(3.9)
    assert dt["point_estimate/std_error"]["gamma"].sel(term="sxMale").item() == 0.45
    ci = dt["point_estimate/conf_interval"]["gamma"]
    assert ci.dims == ("term", "ci_bound")
    assert ci["ci_bound"].values.tolist() == ["lower", "upper"]
    assert ci.sel(term="minrtyYes", ci_bound="lower").item() == pytest.approx(
        -2.25 - 1.959964 * 0.58
    )
    assert "log_likelihood" not in dt.children


def test_from_mlob_ml_moments_and_attrs():
    dt = from_mlob(FakeMLOB(), estimator="ml_moments", chains=2, draws=10, random_seed=1)
    assert dt["point_estimate"]["beta_b"].item() == pytest.approx(4.9)
    for node in dt.subtree:
        assert node.attrs["estimator"] == "ml_moments"
    attrs = dt.attrs
    assert attrs["posterior_kind"] == "normal_approximation"
    assert attrs["inference_library"] == "mlob_pp"
    assert attrs["mlob_pp_version"] == __import__("mlob_pp").__version__
    assert attrs["random_seed"] == 3  # the estimator's seed (balancing)
    assert attrs["draws_random_seed"] == 1
    assert json.loads(attrs["settings"])["n_balance"] == 20
    balancing = json.loads(attrs["balancing"])
    assert balancing["rows_deleted"] == 3041 and "kept_rows" not in balancing
    assert attrs["formula"] == "mAch ~ ses + minrty + sx" and attrs["n_groups"] == 148
    assert "created_at" in attrs


def test_from_mlob_draws_follow_the_sampling_distribution():
    dt = from_mlob(FakeMLOB(), chains=4, draws=2000, random_seed=2)
    draws = dt["posterior"]["beta_b"].values
    assert draws.mean() == pytest.approx(3.9, abs=0.02)
    assert draws.std() == pytest.approx(0.31, rel=0.03)
    again = from_mlob(FakeMLOB(), chains=4, draws=2000, random_seed=2)
    np.testing.assert_array_equal(again["posterior"]["gamma"], dt["posterior"]["gamma"])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"estimator": "ml"}, ValueError, r"`estimator` must be one of \('mlob', 'ml_moments'\)"),
        ({"chains": 0}, ValueError, r"`chains` must be an integer >= 1; got 0"),
        ({"draws": 2.5}, TypeError, r"`draws` must be an integer; got 2.5"),
        ({"random_seed": "a"}, TypeError, r"`random_seed` must be None, a non-negative int"),
        ({"random_seed": -1}, ValueError, r"`random_seed` must be a non-negative integer"),
    ],
)
def test_from_mlob_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        from_mlob(FakeMLOB(), **kwargs)


def test_from_mlob_type_error():
    with pytest.raises(TypeError, match=r"`res` must be an MLOBResult .*got int"):
        from_mlob(3)


def test_from_mlob_real_result(hsb_small):
    import mlob_pp

    res = mlob_pp.mlob("mAch ~ ses + minrty + sx", hsb_small, "school", random_state=4)
    dt = from_mlob(res, chains=2, draws=20, random_seed=0)
    assert dt["posterior"]["term"].values.tolist() == ["minrtyYes", "sxMale"]
    np.testing.assert_allclose(dt["point_estimate"]["beta_b"].item(), res.coef["beta_b"])
    np.testing.assert_allclose(
        dt["point_estimate/std_error"]["gamma"].values, res.se[["gamma_minrtyYes", "gamma_sxMale"]]
    )
    assert dt.attrs["random_seed"] == 4
    # the result's own conversion method goes through from_mlob
    if hasattr(res, "to_datatree"):
        assert res.to_datatree(chains=2, draws=20).attrs["estimator"] == "mlob"


@pytest.fixture
def hsb_small():
    """Balanced subset of HSB: 12 schools with 20 students each (no rows deleted)."""
    import mlob_pp

    df = mlob_pp.datasets.load("hsb")
    big = df["school"].value_counts()
    schools = big[big >= 20].index[:12]
    sub = df[df["school"].isin(schools)]
    return sub.groupby("school", sort=False).head(20).reset_index(drop=True)


# ------------------------------------------------------------------------ labels


def test_labels_to_dataset_level_specific_and_ambiguous_names():
    from mlob_pp.comparisons.convert import labels_to_dataset

    values = {"gamma_w_a": 1.0, "gamma_b_a": 2.0, "gamma_w_b": 3.0, "gamma_b_b": 4.0, "tau2": 5}
    ds = labels_to_dataset(values, terms=["a", "b"])
    assert list(ds.data_vars) == ["gamma_w", "gamma_b", "tau2"]
    assert ds["gamma_w"].dims == ("term",) and ds["gamma_w"].sel(term="b").item() == 3.0
    assert ds["gamma_b"].sel(term="a").item() == 2.0
    # a covariate literally named "w_x" stays a plain gamma
    ds = labels_to_dataset({"gamma_w_x": 1.0, "gamma_z": 2.0}, terms=["w_x", "z"])
    assert list(ds.data_vars) == ["gamma"] and ds["term"].values.tolist() == ["w_x", "z"]


# ------------------------------------------------------------------------ from_ml


def test_from_ml_layout_and_loglik():
    dt = from_ml(fake_ml(), chains=2, draws=30, random_seed=0)
    assert set(dt.children) == {"posterior", "point_estimate", "log_likelihood"}
    assert list(dt["posterior"].data_vars) == [
        "beta_b",
        "beta_w",
        "beta_c",
        "gamma",
        "tau2",
        "sigma2",
    ]
    assert dt["log_likelihood"]["loglik"].item() == -23000.5
    assert dt["log_likelihood"]["loglik"].dims == ()
    assert dt.attrs["estimator"] == "ml" and dt.attrs["converged"] == 1
    assert json.loads(dt.attrs["settings"]) == {"covariates": "shared"}
    assert dt["point_estimate/conf_interval"]["beta_b"].sel(ci_bound="upper").item() == (
        pytest.approx(5.0 + 1.959964 * 0.4, rel=1e-6)
    )


def test_from_ml_correlated_draws_and_derived_beta_c():
    dt = from_ml(fake_ml(), chains=4, draws=5000, random_seed=3)
    post = dt["posterior"]
    bb, bw = post["beta_b"].values.ravel(), post["beta_w"].values.ravel()
    assert np.corrcoef(bb, bw)[0, 1] == pytest.approx(0.5, abs=0.03)
    np.testing.assert_allclose(post["beta_c"].values, post["beta_b"] - post["beta_w"])
    assert post["sigma2"].values.std() == pytest.approx(0.6, rel=0.03)


def test_from_ml_without_vcov_or_loglik_and_other_level():
    ml = fake_ml(loglik=None)
    ml.vcov = None
    dt = from_ml(ml, chains=1, draws=10, random_seed=0, conf_level=0.9)
    assert "log_likelihood" not in dt.children
    assert dt.attrs["conf_level"] == 0.9
    upper = dt["point_estimate/conf_interval"]["tau2"].sel(ci_bound="upper").item()
    assert upper == pytest.approx(2.5 + 1.644854 * 0.4, rel=1e-6)


def test_from_ml_type_error():
    with pytest.raises(TypeError, match=r"`res` must be an MLResult .*got dict"):
        from_ml({"coef": 1})


# ------------------------------------------------------------------------ from_pymc


def test_from_pymc_keeps_groups_and_stamps_attrs():
    idata = fake_idata()
    dt = from_pymc(idata, random_seed=7)
    assert set(dt.children) == {"posterior", "log_likelihood", "observed_data", "sample_stats"}
    assert dt["posterior"]["u"].dims == ("chain", "draw", "group")
    assert dt["log_likelihood"]["y"].dims == ("chain", "draw", "obs")
    for node in dt.subtree:
        assert node.attrs["estimator"] == "mcmc"
        assert node.attrs["inference_library"] == "pymc"
    assert dt.attrs["random_seed"] == 7
    assert json.loads(dt.attrs["settings"]) == {"chains": 2, "draws": 100}
    assert "estimator" not in idata.attrs  # the input is not modified


def test_from_pymc_accepts_result_objects():
    result = SimpleNamespace(
        idata=fake_idata(),
        settings={"draws": 100, "tune": 100, "chains": 2, "random_seed": 5},
        formula="y ~ x",
        group="g",
    )
    dt = from_pymc(result)
    assert dt.attrs["random_seed"] == 5 and dt.attrs["formula"] == "y ~ x"
    assert json.loads(dt.attrs["settings"])["tune"] == 100


def test_from_pymc_errors():
    with pytest.raises(TypeError, match=r"`idata` must be an xarray.DataTree .*got int"):
        from_pymc(1)
    with pytest.raises(ValueError, match=r"`idata` must have a 'posterior' group; got groups"):
        from_pymc(xr.DataTree.from_dict({"prior": xr.Dataset()}))


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
def test_round_trip_through_a_file(tmp_path, suffix):
    results = {
        "mlob": from_mlob(FakeMLOB(), chains=2, draws=20, random_seed=0),
        "ml": from_ml(fake_ml(), chains=2, draws=20, random_seed=0),
        "mcmc": from_pymc(fake_idata(draws=20)),
    }
    path = save(results, tmp_path / f"results{suffix}")
    back = load(path)
    assert list(back) == ["mlob", "ml", "mcmc"]
    for name, dt in results.items():
        xr.testing.assert_identical(back[name], dt)
        for node in dt.subtree:
            # lists (ArviZ's sample_dims) come back as arrays
            np.testing.assert_equal(back[name][node.path].attrs, node.attrs)
    single = load(save(results["ml"], tmp_path / f"ml{suffix}"))
    xr.testing.assert_identical(single, results["ml"])


def test_save_load_errors(tmp_path):
    with pytest.raises(ValueError, match=r"`engine` must be 'h5netcdf' or 'zarr'; got 'csv'"):
        save(from_pymc(fake_idata()), tmp_path / "a.nc", engine="csv")
    with pytest.raises(TypeError, match=r"`results` must be a DataTree or a dict .*got list"):
        save([1], tmp_path / "a.nc")
    with pytest.raises(ValueError, match=r"keys name groups and must be non-empty without '/'"):
        save({"a/b": from_pymc(fake_idata())}, tmp_path / "a.nc")
    with pytest.raises(FileNotFoundError, match=r"`path` does not exist"):
        load(tmp_path / "missing.nc")


def test_import_has_no_pymc():
    import subprocess

    code = (
        "import sys, mlob_pp.comparisons as c; c.compare; c.from_mlob; "
        "print(any(m.split('.')[0] in ('pymc', 'pytensor', 'matplotlib') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_from_ml_real_result(hsb_small):
    import mlob_pp

    ml = mlob_pp.fit_ml("mAch ~ ses + minrty + sx", hsb_small, "school")
    dt = from_ml(ml, chains=2, draws=20, random_seed=0)
    assert dt["posterior"]["term"].values.tolist() == ["minrtyYes", "sxMale"]
    for name in ("beta_b", "beta_w", "beta_c", "tau2", "sigma2", "icc_x"):
        np.testing.assert_allclose(dt["point_estimate"][name].item(), ml.coef[name])
        np.testing.assert_allclose(dt["point_estimate/std_error"][name].item(), ml.se[name])
    assert dt["log_likelihood"]["loglik"].item() == pytest.approx(ml.loglik)
    assert dt.attrs["n_obs"] == ml.n_obs


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
    for name in (
        "beta_b",
        "beta_w",
        "beta_c",
        "alpha",
        "mu_x",
        "tau2_x",
        "sigma2_x",
        "icc_x",
        "tau2",
        "sigma2",
    ):
        assert post[name].dims == ("chain", "draw"), name
    assert post["gamma"].dims == ("chain", "draw", "term")
    assert post["term"].values.tolist() == ["minrtyYes", "sxMale"]
    assert dict(post.sizes)["chain"] == 2 and dict(post.sizes)["draw"] == 100
    assert "obs" in dt["log_likelihood"].dims
    assert dt.attrs["estimator"] == "mcmc" and dt.attrs["random_seed"] == 3
    settings = json.loads(dt.attrs["settings"])
    assert settings["draws"] == 100 and settings["tune"] == 100


def test_from_mlob_records_the_interval_method():
    import numpy as np
    import pandas as pd

    import mlob_pp
    from mlob_pp.comparisons import from_mlob

    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(12), 8)
    u = rng.normal(0, 0.6, 12)[g]
    x = u + rng.normal(size=g.size)
    df = pd.DataFrame({"y": 0.5 * u + 0.2 * (x - u) + rng.normal(size=g.size), "x": x, "g": g})
    res = mlob_pp.mlob("y ~ x", df, "g", se="bootstrap", n_boot=200, random_state=1)
    dt = from_mlob(res, chains=2, draws=50, random_seed=1)
    assert dt.attrs["se_method"] == "bootstrap"
    assert dt.attrs["interval_method"] == "inversion"
    lo = float(dt["point_estimate/conf_interval"]["beta_b"].sel(ci_bound="lower"))
    assert lo == res.summary_frame().loc["beta_b", "ci_lower"]
    ml = from_mlob(res, estimator="ml_moments", chains=2, draws=50, random_seed=1)
    assert ml.attrs["interval_method"] == "wald"
