"""Checkpoints carry their identity and are verified on load (issue 12)."""

import json
import shutil

import numpy as np
import pytest
import xarray as xr

from mlob_pp.comparisons.study.checkpoint import CheckpointWarning
from mlob_pp.comparisons.study.runner import run_study

SMALL = {"icc_x": (0.1,), "J": (5, 10), "n": (5,), "beta_b": (0.5,), "beta_w": (0.2,)}
VARS = ["value", "mcse", "n_used", "counts", "interval_value", "interval_n_used"]


def _run(ckpt, **kw):
    return run_study(SMALL, replications=20, random_seed=11, chunk_size=10, checkpoint=ckpt,
                     progress=False, **kw)


@pytest.fixture(scope="module")
def reference():
    return run_study(SMALL, replications=20, random_seed=11, chunk_size=10, progress=False)


def _chunks(ckpt):
    return sorted((ckpt / "chunks").glob("*.npz"))


def test_chunk_stores_its_identity(tmp_path):
    _run(tmp_path)
    files = _chunks(tmp_path)
    assert [f.name for f in files] == ["cell00000_rep0000000.npz", "cell00000_rep0000010.npz",
                                       "cell00001_rep0000000.npz", "cell00001_rep0000010.npz"]
    with np.load(files[2]) as f:
        ident = json.loads(str(f["identity"][()]))
    assert ident["cell"] == 1 and ident["start"] == 0 and ident["stop"] == 10
    assert ident["params"]["J"] == 10 and ident["random_seed"] == 11
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert len(ident["study"]) == 20 and manifest["config"]["random_seed"] == 11


def test_chunk_of_another_cell_is_not_reused(tmp_path, reference):
    # before: a stored chunk whose cell did not match its name was silently reused, so the
    # replications of cell 0 were counted as those of cell 1
    _run(tmp_path)
    files = _chunks(tmp_path)
    shutil.copy(files[0], files[2])  # cell 0's first chunk under cell 1's name
    calls = []
    with pytest.warns(CheckpointWarning, match=r"cell00001_rep0000000\.npz' does not belong "
                      r"to this chunk of the study \(its cell is 0, expected 1\); recomputing"):
        ds = _run(tmp_path, callback=calls.append)
    assert [(c.cell, c.start) for c in calls] == [(1, 0)]
    xr.testing.assert_identical(ds[VARS].drop_attrs(), reference[VARS].drop_attrs())
    # the recomputed chunk replaced the wrong one: a third run loads everything silently
    again = []
    ds = _run(tmp_path, callback=again.append)
    assert again == []


def test_chunk_of_another_replication_range_is_not_reused(tmp_path, reference):
    _run(tmp_path)
    files = _chunks(tmp_path)
    shutil.copy(files[1], files[0])  # replications 10-19 under the name of 0-9
    with pytest.warns(CheckpointWarning, match="its start is 10, expected 0"):
        ds = _run(tmp_path)
    xr.testing.assert_identical(ds[VARS].drop_attrs(), reference[VARS].drop_attrs())


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "no_identity"])
def test_corrupt_chunk_is_reported_by_name_and_recomputed(tmp_path, reference, damage):
    _run(tmp_path)
    path = _chunks(tmp_path)[3]
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"this is not a zip archive\n" * 20)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files if k != "identity"}
        np.savez(path, **arrays)
    calls = []
    with pytest.warns(CheckpointWarning, match=r"cell00001_rep0000010\.npz' is unreadable"):
        ds = _run(tmp_path, callback=calls.append)
    assert [(c.cell, c.start) for c in calls] == [(1, 10)]
    xr.testing.assert_identical(ds[VARS].drop_attrs(), reference[VARS].drop_attrs())


def test_chunk_missing_an_estimator_is_recomputed(tmp_path):
    _run(tmp_path)
    path = _chunks(tmp_path)[0]
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files if not k.startswith("r::ml_moments::")}
    np.savez(path, **arrays)
    with pytest.warns(CheckpointWarning, match="estimator 'ml_moments' lacks"):
        _run(tmp_path)


def test_unreadable_manifest_is_a_clear_error(tmp_path):
    _run(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="has an unreadable manifest.json"):
        _run(tmp_path)


def test_chunks_of_another_seed_are_refused_by_the_manifest(tmp_path):
    _run(tmp_path)
    with pytest.raises(ValueError, match="holds a different study: 'random_seed' was 11"):
        run_study(SMALL, replications=20, random_seed=12, chunk_size=10, checkpoint=tmp_path,
                  progress=False)
