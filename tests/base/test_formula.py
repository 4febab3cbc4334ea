"""Direct tests of the base formula layer: parse_formula and the lme4 group term."""

import numpy as np
import pandas as pd
import pytest

from mlob_pp.formula.groups import resolve_group, split_group_term
from mlob_pp.formula.parse import parse_formula


@pytest.fixture
def df():
    rng = np.random.default_rng(1)
    return pd.DataFrame({"y": rng.uniform(1, 2, 40), "x": rng.normal(size=40),
                         "c": rng.normal(size=40), "g": np.repeat(list("abcdefgh"), 5)})


@pytest.mark.parametrize("formula, fixed, group, random", [
    ("y ~ x + c + (1 | school)", "y ~ x + c", "school", "1"),
    ("y ~ (1|g) + x", "y ~ x", "g", "1"),
    ("y ~ 1 + (1 | g)", "y ~ 1", "g", "1"),
    ("y ~ (1 | g)", "y ~ 1", "g", "1"),
    ("y ~ x + (1 + x | g)", "y ~ x", "g", "1 + x"),
    ("y ~ x", "y ~ x", None, None),
])
def test_split_group_term_returns_fixed_part_group_and_random_part(formula, fixed, group, random):
    assert split_group_term(formula) == (fixed, group, random)


def test_resolve_group_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"`group` is required: pass group='school'"):
        resolve_group("y ~ x", None)
    with pytest.raises(ValueError, match=r"`group` \('a'\) and the formula's group term \('b'\) "
                                         "disagree"):
        resolve_group("y ~ x + (1 | b)", "a")
    with pytest.raises(ValueError,
                       match=r"supports the group term \(1 \| g\); got '\(1 \+ x \| g\)'"):
        resolve_group("y ~ x + (1 + x | g)", None)
    with pytest.raises(ValueError, match="at most one group term"):
        split_group_term("y ~ x + (1 | a) + (1 | b)")


def test_both_group_spellings_give_the_same_model_frame(df):
    a = parse_formula("y ~ x + c", df, "g")
    b = parse_formula("y ~ x + c + (1 | g)", df)
    for name in ("y", "x", "covariates", "group_codes"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.covariate_names == b.covariate_names == ("c",)


def test_left_hand_transform_is_evaluated(df):
    mf = parse_formula("log(y) ~ x", df, "g")
    np.testing.assert_allclose(mf.y, np.log(df["y"].to_numpy()), rtol=1e-15)
    mf2 = parse_formula("np.log(y) ~ x + c + (1 | g)", df)
    np.testing.assert_allclose(mf2.y, np.log(df["y"].to_numpy()), rtol=1e-15)


def test_formula_without_outcome_is_a_clear_error(df):
    with pytest.raises(ValueError, match=r"`formula` must name the outcome on the left of '~'"):
        parse_formula("~ x", df, "g")


def test_parse_errors_carry_no_terminal_colour_codes(df):
    with pytest.raises(ValueError, match="could not be parsed") as info:
        parse_formula("y ~ x +", df, "g")
    assert "\x1b" not in str(info.value)


def test_multiindex_and_duplicated_columns_are_clear_errors(df):
    multi = df.copy()
    multi.columns = pd.MultiIndex.from_tuples([("a", c) for c in df.columns])
    with pytest.raises(TypeError, match="`data` must have one level of column names"):
        parse_formula("y ~ x", multi, "g")
    dup = pd.concat([df, df[["x"]]], axis=1)
    with pytest.raises(ValueError, match="`data` has duplicated column names: 'x'"):
        parse_formula("y ~ x", dup, "g")


@pytest.mark.parametrize("dtype", ["Float64", "float32", "int64"])
def test_nullable_and_narrow_numeric_dtypes_give_the_same_numbers(df, dtype):
    x = (df["x"] * 100).round() if dtype == "int64" else df["x"]
    ref = parse_formula("y ~ x", df.assign(x=x.astype(float)), "g")
    got = parse_formula("y ~ x", df.assign(x=x.astype(dtype)), "g")
    np.testing.assert_allclose(got.x, ref.x, rtol=1e-6)


def test_categorical_and_string_group_labels_give_the_same_codes(df):
    a = parse_formula("y ~ x", df, "g")
    b = parse_formula("y ~ x", df.assign(g=df["g"].astype("category")), "g")
    np.testing.assert_array_equal(a.group_codes, b.group_codes)
