"""``mlob-pp fit`` and the options it shares with ``mlob-pp compare``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlob_pp.cli import build_parser, main
from mlob_pp.cli.options import DEFAULTS

SHARED = (
    "data",
    "dataset",
    "formula",
    "group",
    "missing",
    "mode",
    "se",
    "n_boot",
    "n_balance",
    "balancing_limit",
    "conf_level",
    "seed",
)


@pytest.fixture
def small_csv(tmp_path):
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(10), 6)
    x = rng.normal(size=60) + rng.normal(size=10)[g]
    csv = tmp_path / "d.csv"
    pd.DataFrame({"y": x + rng.normal(size=60), "x": x, "school": g}).to_csv(csv, index=False)
    return csv


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")  # noqa: SLF001
    return action.choices


def test_fit_and_compare_share_options_and_defaults():
    fit, compare = build_parser().parse_args(["fit"]), build_parser().parse_args(["compare"])
    for name in SHARED:
        assert getattr(fit, name) == getattr(compare, name), name
    assert fit.n_balance == DEFAULTS["n_balance"] == 20  # averaging over balancings by default
    assert fit.seed == compare.seed == 2025 and fit.mode == "r" and fit.se == "analytic"


@pytest.mark.parametrize("command", ["fit", "compare"])
def test_every_option_has_help(command):
    sub = _subparsers()[command]
    for action in sub._actions:  # noqa: SLF001
        assert action.help, f"{command} {action.option_strings or action.dest} has no help"
    options = {s for a in sub._actions for s in a.option_strings}  # noqa: SLF001
    for opt in (
        "--data",
        "--dataset",
        "--formula",
        "--group",
        "--mode",
        "--se",
        "--n-boot",
        "--n-balance",
        "--balancing-limit",
        "--seed",
        "--missing",
        "--out",
    ):
        assert opt in options, (command, opt)


def test_fit_default_averages_balancings_and_says_how_much_they_move(capsys):
    assert main(["fit"]) == 0
    captured = capsys.readouterr()
    assert "Summary of Coefficients:" in captured.out and "gamma_sxMale" in captured.out
    assert "deleted 3041 of 7185 rows" in captured.err
    assert "beta_b over 20 random balancings ranges" in captured.err


def test_fit_talk_application_with_one_balancing(capsys):
    args = ["fit", "--dataset", "passnyc", "--n-balance", "1", "--balancing-limit", "0.35"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "mlob('math ~ ENI + ELA + ENI:ELA', data, group='District', balancing_limit=0.35" in (
        captured.out
    )
    assert "gamma_ENI:ELA" in captured.out
    assert "one random balancing: another seed deletes other rows" in captured.err


def test_fit_user_csv_writes_table_and_summary(small_csv, tmp_path, capsys):
    table = tmp_path / "sub" / "t.csv"
    args = ["fit", "--data", str(small_csv), "--formula", "y ~ x", "--group", "school"]
    assert main([*args, "--out", str(table)]) == 0
    out = capsys.readouterr()
    assert "beta_b" in out.out and "balancing: the groups are already balanced" in out.err
    frame = pd.read_csv(table, index_col=0)
    assert list(frame.columns[:4]) == ["estimate", "std_error", "ci_lower", "ci_upper"]
    printed = out.out
    assert f"{frame.loc['beta_b', 'estimate']:.6f}"[:6] in printed
    text = tmp_path / "t.txt"
    assert main([*args, "--out", str(text)]) == 0
    assert text.read_text().strip() == capsys.readouterr().out.strip()
    assert main(["fit", str(small_csv), "--formula", "y ~ x", "--group", "school"]) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--formula", "y ~ z"], "--formula 'y ~ z' on d.csv: "),
        (["--formula", "y ~ x +"], "--formula 'y ~ x +' on d.csv: "),
        (["--group", "nope"], "--group 'nope' is not a column of d.csv"),
        (["--out", "."], "--out '.' is a directory; give a file name such as table.csv"),
        (["--n-balance", "0"], "--n-balance must be an integer >= 1; got 0"),
        (["--se", "bootstrap", "--n-boot", "1"], "--n-boot must be an integer >= 2; got 1"),
        (["--balancing-limit", "2"], "--balancing-limit must be in [0, 1]; got 2.0"),
        (["--dataset", "hsb"], "give the CSV file once"),
    ],
)
def test_fit_user_errors_are_one_line_exit_2(small_csv, extra, message, capsys, monkeypatch):
    monkeypatch.chdir(small_csv.parent)
    args = ["fit", str(small_csv), "--formula", "y ~ x", "--group", "school"]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlob-pp fit: error: " + message), err
    assert len(err.strip().splitlines()) == 1


def test_fit_missing_formula_for_a_csv(small_csv, capsys):
    assert main(["fit", "--data", str(small_csv)]) == 2
    err = capsys.readouterr().err
    assert "mlob-pp fit: error: --formula and --group required for d.csv" in err
