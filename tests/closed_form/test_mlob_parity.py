"""Parity of mlob() with R MLOB 0.0.2.0 on every reference data set and variant.

Tolerance: 1e-10 relative on every table cell (estimates, SEs, CI bounds, z, p) of both tables.
J = 3 and J = 5 (poles of R's criterion) are reproduced through the bit emulation of spec 7.3;
there the ML-row SE is rounding noise (1e8 .. Inf) and is compared with the same tolerance
where finite. Unbalanced sets use ``RRandom(seed)`` so the balancing draws are R's.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import mlob_pp
from tests.conftest import load_reference, numeric, reference_csv

REL = 1e-10

SETS = ["S01", "S02", "S03", "S04", "S05", "S06", "S07", "S08", "S10", "S12", "U01", "U02",
        "U03", "I01", "N01", "iris", "hsb82_sub30", "hsb82_limit0.5"]


def _cases():
    import json

    from tests.conftest import REFERENCE

    for name in SETS:
        path = REFERENCE / "outputs" / "mlob" / f"{name}.json"
        if not path.exists():
            continue
        ref = json.loads(path.read_text())
        for fname, fit in ref["fits"].items():
            for vname in fit["variants"]:
                yield pytest.param(name, fname, vname, id=f"{name}-{fname}-{vname}")


def _args(args) -> dict:
    out = {}
    if isinstance(args, dict):
        if "conf.level" in args:
            out["conf_level"] = 1 - args["conf.level"]
        if "balancing.limit" in args:
            out["balancing_limit"] = float(args["balancing.limit"])
        if "punish.coeff" in args:
            out["punish_coeff"] = float(args["punish.coeff"])
        if "jackknife" in args:
            out["jackknife"] = bool(args["jackknife"])
    return out


def _close(ours, theirs, rel=REL):
    ours = np.asarray(ours, dtype=float)
    theirs = np.asarray(numeric(theirs), dtype=float)
    both_inf = np.isinf(ours) & np.isinf(theirs) & (np.sign(ours) == np.sign(theirs))
    with np.errstate(invalid="ignore"):
        ok = both_inf | (np.abs(ours - theirs) <= rel * np.abs(theirs) + 1e-300)
    return bool(ok.all()), ours, theirs


@pytest.mark.parametrize(("name", "fname", "vname"), list(_cases()))
def test_parity_with_r(name, fname, vname):
    ref = load_reference(f"mlob/{name}.json")
    fit = ref["fits"][fname]
    v = fit["variants"][vname]
    csv = "hsb82.csv" if name.startswith("hsb82_limit") else f"{name}.csv"
    df = reference_csv(csv)
    kwargs = _args(v["args"])
    rs = mlob_pp.RRandom(v["seed"])
    if v["error"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(ValueError, match="exceeds the `balancing_limit`"):
                mlob_pp.mlob(fit["formula"], df, ref["group"], random_seed=rs, **kwargs)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = mlob_pp.mlob(fit["formula"], df, ref["group"], random_seed=rs, **kwargs)
    J = res.n_groups
    for table, key in (("mlob", "regularized"), ("ml", "ML")):
        t = res.summary_frame(table)
        r = v["tables"][key]
        assert list(t.index) == r["row_names"]
        for col, rcol in [("estimate", "Estimate"), ("std_error", "Std_Error"),
                          ("ci_lower", "Lower_CI"), ("ci_upper", "Upper_CI"),
                          ("z", "Z_value"), ("p_value", "p_value")]:
            ours = t[col].to_numpy()
            theirs = numeric(r[rcol])
            if kwargs.get("jackknife") and J in (3, 5) and table == "mlob" and col != "estimate":
                # J = 3, 5 jackknife replicates sit on R's pole: their beta_b is BLAS noise
                ours, theirs = ours[1:], theirs[1:]
            if table == "ml" and J in (3, 5) and col in ("z", "p_value"):
                # z = estimate / (noise-sized SE): compare absolutely (both ~0 / ~1)
                assert np.allclose(ours[:1], theirs[:1], rtol=1e-6, atol=1e-7)
                ours, theirs = ours[1:], theirs[1:]
            ok, a, b = _close(ours, theirs)
            assert ok, f"{table}.{col}: ours {a} vs R {b}"


def test_iris_reference_values_from_spec():
    """Spec 10.1 values of the package's own iris example (J = 3, emulated)."""
    df = reference_csv("iris.csv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = mlob_pp.mlob("Sepal.Length ~ Sepal.Width + Petal.Length", df, "Species")
    messages = [str(w.message) for w in caught]
    assert all(issubclass(w.category, mlob_pp.validate.NumericalWarning) for w in caught)
    assert any("pole of R MLOB's criterion (J = 3" in m for m in messages)
    assert any("standard error for J = 3 divides by rounding noise" in m for m in messages)
    assert math.isclose(res.coef["beta_b"], 0.830871091123234, rel_tol=1e-12)
    assert math.isclose(res.se["beta_b"], 1.4655555571816, rel_tol=1e-12)
    assert math.isclose(res.coef_ml["beta_b"], 0.602743971438784, rel_tol=1e-12)
    assert math.isclose(res.se_ml["beta_b"], 5.42478029083716e15, rel_tol=1e-10)
    assert res.internals["grid_index"] + 1 == 5011


def test_unsorted_rows_match_sorted_r_result():
    """S05_shuffled (rows permuted) gives R's answer for the sorted S05, not R's chunk answer."""
    shuffled = reference_csv("S05_shuffled.csv")
    ref = load_reference("mlob/S05.json")["fits"]["main"]["variants"]["default"]
    wrong = load_reference("mlob/S05_shuffled.json")["fits"]["main"]["variants"]["default"]
    res = mlob_pp.mlob("Y ~ X + C", shuffled, "group")
    assert math.isclose(res.coef["beta_b"], ref["tables"]["regularized"]["Estimate"][0],
                        rel_tol=1e-10)
    assert not math.isclose(res.coef["beta_b"], wrong["tables"]["regularized"]["Estimate"][0],
                            rel_tol=1e-3)
