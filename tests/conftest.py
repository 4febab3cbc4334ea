"""Shared fixtures: paths to the R reference outputs in ../shared/reference (tests only)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MLOB_PP_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"

os.environ.setdefault("MPLBACKEND", "Agg")


def _num(value):
    if isinstance(value, str):
        return {"Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan, "NA": math.nan}[value]
    if isinstance(value, list):
        return [_num(v) for v in value]
    return value


def load_reference(name: str) -> dict:
    """Return a reference output JSON from ../shared/reference/outputs (skip if absent)."""
    path = REFERENCE / "outputs" / name
    if not path.exists():
        pytest.skip(f"reference file {path} not available")
    return json.loads(path.read_text())


def reference_csv(name: str):
    import pandas as pd

    path = REFERENCE / "data" / name
    if not path.exists():
        pytest.skip(f"reference data {path} not available")
    return pd.read_csv(path)


@pytest.fixture
def rng():
    return np.random.default_rng(20241121)


numeric = _num
