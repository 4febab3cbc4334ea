"""``mlob-pp compare`` in a subprocess: small runs, output files, usage errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mlob_pp.comparisons import load


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "mlob_pp.cli", "compare", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture
def small_csv(tmp_path):
    """Unbalanced HSB subset: 15 schools, 15 to 25 students each."""
    import numpy as np

    import mlob_pp

    df = mlob_pp.datasets.load("hsb")
    rng = np.random.default_rng(0)
    schools = df["school"].drop_duplicates().iloc[:15]
    parts = [df[df["school"] == s].head(int(rng.integers(15, 26))) for s in schools]
    path = tmp_path / "small.csv"
    import pandas as pd

    pd.concat(parts).to_csv(path, index=False)
    return path


def test_compare_without_mcmc_writes_table_results_and_plot(small_csv, tmp_path):
    out = tmp_path / "out"
    proc = run_cli(
        "--data",
        str(small_csv),
        "--formula",
        "mAch ~ ses + minrty + sx",
        "--group",
        "school",
        "--no-mcmc",
        "--draws",
        "50",
        "--chains",
        "2",
        "--n-balance",
        "3",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    # progress and the balancing report on stderr, the table on stdout
    assert "[1/2] MLOB closed form" in proc.stderr and "[2/2] true ML" in proc.stderr
    assert "deleted" in proc.stderr and "averaged over 3 random balancings" in proc.stderr
    for estimator in ("mlob", "ml_moments", "ml"):
        assert estimator in proc.stdout
    assert "gamma_sxMale" in proc.stdout and "beta_w" in proc.stdout
    assert {p.name for p in out.iterdir()} == {"results.nc", "compare.csv", "forest.png"}
    results = load(out / "results.nc")
    assert list(results) == ["mlob", "ml_moments", "ml"]
    assert dict(results["ml"]["posterior"].sizes)["draw"] == 50
    assert results["mlob"].attrs["random_seed"] == 1


def test_compare_bundled_hsb_mlob_only_zarr(tmp_path, capsys):
    from mlob_pp.cli import main

    status = main(
        [
            "compare",
            "--no-ml",
            "--no-mcmc",
            "--format",
            "zarr",
            "--quiet",
            "--draws",
            "20",
            "--out",
            str(tmp_path),
        ]
    )
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.err == ""
    assert "mAch ~ ses + minrty + sx" in captured.out
    assert (tmp_path / "results.zarr").is_dir()
    assert list(load(tmp_path / "results.zarr")) == ["mlob", "ml_moments"]


def test_unknown_dataset_exits_2_in_a_subprocess(tmp_path):
    proc = run_cli("--dataset", "nope", cwd=tmp_path)
    assert proc.returncode == 2
    assert "mlob-pp compare: error: --dataset must be one of hsb, passnyc, saeb; got 'nope'" in (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "missing.csv"], "--data: no such file: 'missing.csv'"),
        (["--dataset", "saeb"], "--formula and --group required for saeb"),
        (["--group", "nope"], "--group 'nope' is not a column of hsb"),
        (["--draws", "0"], "--draws must be an integer >= 1; got 0"),
        (["--conf-level", "95"], "--conf-level must be strictly between 0 and 1; got 95.0"),
        (["--formula", "mAch ~ nope", "--no-ml", "--no-mcmc"], "MLOB:"),
    ],
)
def test_compare_usage_errors_exit_2(args, message, tmp_path, capsys, monkeypatch):
    from mlob_pp.cli import main

    monkeypatch.chdir(tmp_path)
    status = main(["compare", *args, "--out", str(tmp_path / "o")])
    assert status == 2
    assert "mlob-pp compare: error: " + message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.mcmc
@pytest.mark.slow
def test_compare_with_mcmc(small_csv, tmp_path, capsys):
    from mlob_pp.cli import main

    status = main(
        [
            "compare",
            "--data",
            str(small_csv),
            "--formula",
            "mAch ~ ses + minrty + sx",
            "--group",
            "school",
            "--draws",
            "100",
            "--tune",
            "100",
            "--chains",
            "2",
            "--n-balance",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "[3/3] MCMC with PyMC" in captured.err
    results = load(tmp_path / "results.nc")
    assert list(results) == ["mlob", "ml_moments", "ml", "mcmc"]
    shapes = {
        k: tuple(dt["posterior"].sizes[d] for d in ("chain", "draw")) for k, dt in results.items()
    }
    assert set(shapes.values()) == {(2, 100)}  # one sample shape for ArviZ plots
    table = __import__("pandas").read_csv(tmp_path / "compare.csv", index_col=[0, 1])
    assert table.loc[("beta_b", "mcmc"), "r_hat"] > 0
