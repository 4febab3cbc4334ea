"""``mlob-pp compare``: small runs, output files, failed estimators, usage errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mlob_pp.cli import main
from mlob_pp.common_format import estimate_frame, is_point_estimate
from mlob_pp.comparisons import load


@pytest.fixture
def small_csv(tmp_path):
    """Unbalanced HSB subset: 15 schools, 15 to 25 students each."""
    import mlob_pp

    df = mlob_pp.datasets.load("hsb")
    rng = np.random.default_rng(0)
    schools = df["school"].drop_duplicates().iloc[:15]
    parts = [df[df["school"] == s].head(int(rng.integers(15, 26))) for s in schools]
    path = tmp_path / "small.csv"
    pd.concat(parts).to_csv(path, index=False)
    return path


MODEL = ["--formula", "mAch ~ ses + minrty + sx", "--group", "school"]


def test_compare_without_mcmc_writes_table_results_and_plot(small_csv, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(
        [
            "compare",
            "--data",
            str(small_csv),
            *MODEL,
            "--no-mcmc",
            "--n-balance",
            "3",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert status == 0, captured.err
    # progress and the balancing report on stderr, the table on stdout
    assert "[1/2] MLOB closed form" in captured.err and "[2/2] true ML" in captured.err
    assert "beta_b over 3 random balancings ranges" in captured.err
    for estimator in ("mlob", "ml_moments", "ml"):
        assert estimator in captured.out
    assert "gamma_sxMale" in captured.out and "beta_w" in captured.out
    assert {p.name for p in out.iterdir()} == {"results.nc", "compare.csv", "forest.png"}
    results = load(out / "results.nc")
    assert list(results) == ["mlob", "ml_moments", "ml"]
    assert all(is_point_estimate(dt) for dt in results.values())  # no posterior for these
    assert results["mlob"].attrs["random_seed"] == 2025  # the shared default seed
    table = pd.read_csv(out / "compare.csv", index_col=[0, 1])
    frame = estimate_frame(results["ml"])
    assert table.loc[("beta_b", "ml"), "estimate"] == pytest.approx(frame.loc["beta_b", "estimate"])
    assert f"{frame.loc['beta_b', 'estimate']:.3f}" in captured.out


def test_compare_bundled_hsb_mlob_only_zarr(tmp_path, capsys):
    status = main(
        ["compare", "--no-ml", "--no-mcmc", "--format", "zarr", "--quiet", "--out", str(tmp_path)]
    )
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.err == ""
    assert "mAch ~ ses + minrty + sx" in captured.out
    assert (tmp_path / "results.zarr").is_dir()
    assert list(load(tmp_path / "results.zarr")) == ["mlob", "ml_moments"]


def test_a_failing_estimator_is_reported_and_the_others_are_written(
    small_csv, tmp_path, capsys, monkeypatch
):
    import mlob_pp

    def broken(*args, **kwargs):
        raise KeyError("phi_b[x,x]")

    monkeypatch.setattr(mlob_pp, "fit_ml", broken)
    status = main(
        [
            "compare",
            "--data",
            str(small_csv),
            *MODEL,
            "--no-mcmc",
            "--n-balance",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "ml FAILED: KeyError: 'phi_b[x,x]'" in captured.err
    assert "ml: FAILED (KeyError: 'phi_b[x,x]'); the other estimators are shown" in captured.out
    assert list(load(tmp_path / "results.nc")) == ["mlob", "ml_moments"]
    assert (tmp_path / "forest.png").exists()


def test_all_estimators_failing_is_an_error(small_csv, tmp_path, capsys):
    status = main(
        [
            "compare",
            "--data",
            str(small_csv),
            *MODEL,
            "--no-ml",
            "--no-mcmc",
            "--balancing-limit",
            "0.0",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "mlob-pp compare: error: every estimator failed; the first said:" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "missing.csv"], "--data: no such file: 'missing.csv'"),
        (["--data", "."], "--data: '.' is not a file"),
        (["--dataset", "saeb"], "--formula and --group required for saeb"),
        (["--dataset", "nope"], "--dataset must be one of hsb, passnyc, saeb; got 'nope'"),
        (["--group", "nope"], "--group 'nope' is not a column of hsb"),
        (["--formula", "mAch ~ nope"], "--formula 'mAch ~ nope' on hsb: "),
        (["--formula", "mAch ~ ~"], "--formula 'mAch ~ ~' on hsb: "),
        (["--draws", "0"], "--draws must be an integer >= 1; got 0"),
        (["--n-balance", "0"], "--n-balance must be an integer >= 1; got 0"),
        (["--conf-level", "95"], "--conf-level must be strictly between 0 and 1; got 95.0"),
        (["--out", "afile"], "--out 'afile' is a file; give a directory for the outputs"),
        (["--out", "afile/sub"], "--out 'afile/sub': "),
    ],
)
def test_compare_usage_errors_exit_2(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    status = main(["compare", "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("mlob-pp compare: error: " + message), err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_garbage_csv_exits_2_without_traceback_in_a_subprocess(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x00\x01\x02\xff\xfe" * 50)
    proc = subprocess.run(
        [sys.executable, "-m", "mlob_pp.cli", "compare", "--data", str(bad), *MODEL],
        capture_output=True,
        text=True,
        env={**os.environ, "MPLBACKEND": "Agg"},
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("mlob-pp compare: error: ")
    assert "Traceback" not in proc.stderr


@pytest.mark.mcmc
@pytest.mark.slow
def test_compare_with_mcmc_small_file_and_loglik_on_request(small_csv, tmp_path, capsys):
    args = [
        "compare",
        "--data",
        str(small_csv),
        *MODEL,
        "--draws",
        "100",
        "--tune",
        "100",
        "--chains",
        "2",
        "--n-balance",
        "2",
        "--quiet",
    ]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    results = load(tmp_path / "a" / "results.nc")
    assert list(results) == ["mlob", "ml_moments", "ml", "mcmc"]
    assert "log_likelihood" not in results["mcmc"].children
    assert (tmp_path / "a" / "results.nc").stat().st_size < 1_000_000
    table = pd.read_csv(tmp_path / "a" / "compare.csv", index_col=[0, 1])
    assert table.loc[("beta_b", "mcmc"), "r_hat"] > 0
    assert main([*args, "--loglik", "--out", str(tmp_path / "b")]) == 0
    with_ll = load(tmp_path / "b" / "results.nc")
    assert "log_likelihood" in with_ll["mcmc"].children
    assert {"chain", "draw"} <= set(with_ll["mcmc"]["log_likelihood"].dims)
    capsys.readouterr()
