"""simulate_saeb: Saeb's columns and school sizes, reproducible, and the planted truth is real."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mlob_pp
from mlob_pp.datasets import simulate_saeb
from mlob_pp.datasets.simulate import SAEB_FIT


@pytest.fixture(scope="module")
def big() -> pd.DataFrame:
    return simulate_saeb(3000, random_seed=7)


def test_columns_sizes_and_types_like_saeb(big):
    saeb = mlob_pp.datasets.load("saeb")
    assert list(big.columns) == list(saeb.columns)
    for col in saeb.columns:
        assert big[col].dtype.kind == saeb[col].dtype.kind, col
    sizes = big.groupby("school_id").size()
    assert list(sizes.index) == list(range(1, 3001))
    ref = saeb.groupby("school_id").size()
    assert sizes.min() >= ref.min() and sizes.max() <= ref.max()
    assert sizes.mean() == pytest.approx(ref.mean(), rel=0.1)  # about 71 students
    assert set(big["public"]) <= set(saeb["public"]) and set(big["location"]) <= {1, 2}
    # student SES values are Saeb's; school type constant within school, as in Saeb
    assert set(big["student_ses"]) <= set(saeb["student_ses"])
    assert big.groupby("school_id")[["public", "location"]].nunique().max().max() == 1
    # outcome on Saeb's scale (mean 0.149, SD 0.848)
    assert big["math_proficiency"].mean() == pytest.approx(0.149, abs=0.08)
    assert big["math_proficiency"].std() == pytest.approx(0.848, rel=0.1)


def test_reproducible_by_seed():
    a, b = simulate_saeb(200, random_seed=3), simulate_saeb(200, random_seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs["unusual_schools"] == b.attrs["unusual_schools"]
    c = simulate_saeb(200, random_seed=4)
    assert not np.allclose(a["math_proficiency"].iloc[:50], c["math_proficiency"].iloc[:50])
    g = simulate_saeb(200, random_seed=np.random.default_rng(3))
    assert len(g) > 0 and g.attrs["random_seed"] == "Generator"


def test_attrs_describe_the_planted_truth(big):
    unusual = big.attrs["unusual_schools"]
    inflated, deflated = big.attrs["inflated_schools"], big.attrs["deflated_schools"]
    assert sorted(inflated + deflated) == unusual and not set(inflated) & set(deflated)
    # Binomial(3000, 0.05): mean 150, SD 12
    assert 100 < len(unusual) < 200
    assert inflated and deflated
    params = big.attrs["parameters"]
    assert params["unusual_log_sd"] == 0.3 and params["zeta_Intercept"] == SAEB_FIT[
        "zeta_Intercept"]
    assert big.attrs["random_seed"] == 7


def _log_sd_departure(df: pd.DataFrame) -> pd.DataFrame:
    """Empirical log within-school SD of y minus its model prediction, with its z score."""
    prep = mlob_pp.prepare_saeb(df)
    p = SAEB_FIT
    w, s = prep["student_ses"], prep["school_ses"]
    # remove the within-school mean structure (the location RE cancels in the within-school SD)
    resid = prep["math_proficiency"] - (p["beta_student_ses"] * w
                                        + p["beta_student_ses:school_ses"] * w * s)
    pred = np.exp(p["zeta_Intercept"] + p["zeta_student_ses"] * w + p["zeta_school_ses"] * s
                  + p["zeta_student_ses:school_ses"] * w * s)
    frame = pd.DataFrame({"school": prep["school_id"], "r": resid, "pred2": pred**2})
    g = frame.groupby("school")
    out = pd.DataFrame({"n": g.size(), "sd": g["r"].std(ddof=1),
                        "pred": np.sqrt(g["pred2"].mean())})
    out = out[out["n"] >= 20]
    out["departure"] = np.log(out["sd"] / out["pred"])
    out["z"] = out["departure"] * np.sqrt(2.0 * (out["n"] - 1))
    return out


def test_planted_schools_are_far_out_and_the_others_are_not(big):
    dep = _log_sd_departure(big)
    inflated = dep.index.isin(big.attrs["inflated_schools"])
    deflated = dep.index.isin(big.attrs["deflated_schools"])
    ordinary = ~(inflated | deflated)
    # the planted departure is +-0.3 on the log-SD scale
    assert dep.loc[inflated, "departure"].median() == pytest.approx(0.3, abs=0.06)
    assert dep.loc[deflated, "departure"].median() == pytest.approx(-0.3, abs=0.06)
    assert abs(dep.loc[ordinary, "departure"].median()) < 0.03
    # ordinary schools: z scores look standard normal; planted ones are far out
    z = dep.loc[ordinary, "z"]
    assert z.std() == pytest.approx(1.0, abs=0.15) and (z.abs() > 3.5).mean() < 0.01
    big_planted = dep["n"] >= 60
    assert (dep.loc[inflated & big_planted, "z"] > 2).mean() > 0.8
    assert (dep.loc[deflated & big_planted, "z"] < -2).mean() > 0.8


@pytest.mark.parametrize("n_schools", [160, 10_000])
def test_scales_from_160_to_10000_schools(n_schools):
    df = simulate_saeb(n_schools, random_seed=1)
    assert df["school_id"].nunique() == n_schools
    assert 0.02 * n_schools < len(df.attrs["unusual_schools"]) + 2 < 0.09 * n_schools + 5
    assert set(df.attrs["unusual_schools"]) <= set(df["school_id"])
    assert np.isfinite(df["math_proficiency"]).all()


def test_arguments_and_errors():
    df = simulate_saeb(400, unusual_fraction=0.5, unusual_log_sd=0.1, random_seed=2)
    assert 150 < len(df.attrs["unusual_schools"]) < 250
    with pytest.raises(ValueError, match=r"`n_schools` must be an integer >= 2; got 1"):
        simulate_saeb(1)
    with pytest.raises(TypeError, match=r"`n_schools` must be an integer; got 'many'"):
        simulate_saeb("many")
    with pytest.raises(ValueError, match=r"`unusual_fraction` must be strictly between 0 and 1"):
        simulate_saeb(100, unusual_fraction=0.0)
    with pytest.raises(ValueError, match=r"`unusual_log_sd` must be"):
        simulate_saeb(100, unusual_log_sd=-0.3)
    with pytest.raises(TypeError, match=r"`random_seed` must be None, a non-negative int"):
        simulate_saeb(100, random_seed="x")
    with pytest.raises(TypeError, match=r"`random_seed` cannot be mlob_pp.RRandom"):
        simulate_saeb(100, random_seed=mlob_pp.RRandom(1))
