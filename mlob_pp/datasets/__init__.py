"""Bundled school data sets: HSB, Saeb and PASSNYC.

The CSV files ship inside the package (``mlob_pp/datasets/data``); their provenance is in
``PROVENANCE.md`` next to them and is attached to every loaded frame as ``df.attrs``.

Examples
--------
>>> from mlob_pp import datasets
>>> datasets.available()
('hsb', 'passnyc', 'saeb')
>>> df = datasets.load("hsb")
>>> df.shape
(7185, 8)
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import pandas as pd

__all__ = ["available", "load", "describe", "simulate_saeb"]

_FILES = {
    "hsb": "hsb.csv",
    "saeb": "saeb.csv",
    "passnyc": "passnyc_2016_school_explorer.csv",
}

_DESCRIPTIONS = {
    "hsb": (
        "High School and Beyond (Raudenbush & Bryk 2002; R package mlmRev, Hsb82): 7,185 "
        "students in 160 schools (14-67 each). Columns school, minrty, sx, ses, mAch, meanses, "
        "sector, cses. Rows are not sorted by school."
    ),
    "saeb": (
        "Brazil Saeb 2021 math proficiency of 12th graders in 160 Rio de Janeiro schools "
        "(from the R package ivd, GPL >= 3): 11,386 students. Columns school_id, public, "
        "student_ses, math_proficiency, location."
    ),
    "passnyc": (
        "PASSNYC 2016 School Explorer: New York City schools in 32 districts. load() keeps the "
        "1,217 schools with a numeric math proficiency and adds the analysis columns math "
        "(Average Math Proficiency), ELA (Average ELA Proficiency), ENI (Economic Need Index) "
        "and District; all 161 raw columns are kept."
    ),
}


def available() -> tuple[str, ...]:
    """Return the names of the bundled data sets."""
    return tuple(sorted(_FILES))


def describe(name: str) -> str:
    """Return a one-paragraph description of a bundled data set.

    Parameters
    ----------
    name : str
        One of :func:`available`.
    """
    return _DESCRIPTIONS[_check_name(name)]


def _check_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string, one of {available()}; got {type(name).__name__}")
    key = name.lower()
    if key not in _FILES:
        raise ValueError(f"`name` must be one of {available()}; got {name!r}")
    return key


@cache
def _read(key: str) -> pd.DataFrame:
    path = resources.files("mlob_pp.datasets").joinpath("data", _FILES[key])
    with resources.as_file(path) as p:
        if key == "passnyc":
            # "N/A" marks missing proficiencies; numbers like "9%" stay strings (raw columns)
            df = pd.read_csv(p, na_values=["N/A"], keep_default_na=True)
        else:
            df = pd.read_csv(p)
    if key == "passnyc":
        df = df[pd.to_numeric(df["Average Math Proficiency"], errors="coerce").notna()]
        df = df.reset_index(drop=True)
        analysis = pd.DataFrame(
            {
                "math": pd.to_numeric(df["Average Math Proficiency"]).astype(float),
                "ELA": pd.to_numeric(df["Average ELA Proficiency"]).astype(float),
                "ENI": pd.to_numeric(df["Economic Need Index"]).astype(float),
            }
        )
        df = pd.concat([analysis, df], axis=1)
        # `District` is already an integer column of the raw data
    return df


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set as a pandas DataFrame (a fresh copy on every call).

    Parameters
    ----------
    name : {"hsb", "saeb", "passnyc"}
        Which data set (case-insensitive).

    Returns
    -------
    pandas.DataFrame
        The data; ``df.attrs`` holds ``name``, ``description`` and ``source`` (provenance).

    Raises
    ------
    ValueError
        If `name` is not a bundled data set.

    Examples
    --------
    >>> from mlob_pp import datasets
    >>> df = datasets.load("passnyc")
    >>> len(df), df["District"].nunique()
    (1217, 32)
    """
    key = _check_name(name)
    df = _read(key).copy()
    df.attrs = {
        "name": key,
        "description": _DESCRIPTIONS[key],
        "source": "mlob_pp/datasets/data/PROVENANCE.md",
    }
    return df


# the national-scale generator draws its template schools with `load` (defined above)
from mlob_pp.datasets.simulate import simulate_saeb  # noqa: E402
