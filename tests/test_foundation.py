"""Foundation: bundled data, R's RNG, the `mlob-pp fit` command, the set-up script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mlob_pp
from mlob_pp.rrandom import RRandom

ROOT = Path(__file__).resolve().parents[1]


def test_bundled_datasets_shapes_and_provenance():
    assert mlob_pp.datasets.available() == ("hsb", "passnyc", "saeb")
    hsb = mlob_pp.datasets.load("hsb")
    assert hsb.shape == (7185, 8) and hsb["school"].nunique() == 160
    saeb = mlob_pp.datasets.load("SAEB")
    assert saeb.shape == (11386, 5) and saeb["school_id"].nunique() == 160
    nyc = mlob_pp.datasets.load("passnyc")
    assert len(nyc) == 1217 and nyc["District"].nunique() == 32
    assert nyc[["math", "ELA", "ENI"]].notna().all().all()
    assert nyc.groupby("District").size().agg(["min", "max"]).tolist() == [22, 60]
    assert "School Name" in nyc.columns  # raw columns kept
    assert "mlmRev" in mlob_pp.datasets.describe("hsb") or "Raudenbush" in \
        mlob_pp.datasets.describe("hsb")
    assert hsb.attrs["name"] == "hsb"
    hsb["mAch"] = 0  # a fresh copy on every call
    assert mlob_pp.datasets.load("hsb")["mAch"].iloc[0] != 0


def test_dataset_errors():
    with pytest.raises(ValueError, match=r"`name` must be one of \('hsb', 'passnyc', 'saeb'\); "
                                         r"got 'iris'"):
        mlob_pp.datasets.load("iris")
    with pytest.raises(TypeError, match=r"`name` must be a string"):
        mlob_pp.datasets.load(3)


def test_r_random_matches_r():
    r = RRandom(1)  # R: set.seed(1); runif(3)
    np.testing.assert_allclose([r.unif_rand() for _ in range(3)],
                               [0.2655086631421, 0.3721238996368, 0.5728533633519], rtol=1e-12)
    r = RRandom(42)  # R: set.seed(42); sample(10, 4); sample(1:7, 5, TRUE); sample(100000, 3)
    assert (r.sample(10, 4) + 1).tolist() == [1, 5, 10, 8]
    assert (r.sample_replace(7, 5) + 1).tolist() == [2, 4, 2, 2, 1]
    assert (r.sample(100000, 3) + 1).tolist() == [95535, 95833, 64110]
    with pytest.raises(TypeError, match="`seed` must be an integer"):
        RRandom(1.5)


def test_import_is_lazy():
    code = ("import sys, mlob_pp; mlob_pp.mlob; "
            "print(any(m.split('.')[0] in ('pymc', 'arviz', 'matplotlib') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(sys.platform != "linux", reason="bash set-up script")
def test_setup_script_stops_clearly_without_python_312(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path / "pe"),
           "MLOB_PP_VENV": str(tmp_path / "venv")}
    if any(Path(p, n).exists() for p in ("/usr/bin", "/bin")
           for n in ("python3.12", "python3.13", "python3.14")):
        pytest.skip("a system Python >= 3.12 exists")
    out = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh")], capture_output=True,
                         text=True, env=env)
    assert out.returncode == 1
    assert "mlob_pp needs Python >= 3.12" in out.stderr
    assert not (tmp_path / "venv").exists()
