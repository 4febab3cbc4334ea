"""``mlob-pp fit``: a closed-form MLOB fit of a CSV file or a bundled data set.

Prints R MultiLevelOptimalBayes' summary layout on stdout; what balancing did (and how much
beta_b moves across random balancings) and any warnings go to stderr. ``--out FILE`` also writes
the table (``.csv``: the estimate table; any other suffix: the printed summary).

With no arguments it fits ``mAch ~ ses + minrty + sx`` by ``school`` on the bundled HSB data;
``--dataset passnyc`` repeats the MLOB talk's application (``math ~ ENI + ELA + ENI:ELA`` by
``District``). The options and defaults are those of ``mlob-pp compare``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlob_pp.cli.options import (
    UsageError,
    add_common_arguments,
    balancing_lines,
    check_common,
    fit_mlob,
    load_data,
    run_guarded,
    summary_text,
)

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``fit`` options (the shared ones, see :mod:`mlob_pp.cli.options`) to `parser`."""
    parser.add_argument(
        "csv", nargs="?", default=None, metavar="CSV", help="CSV file (same as --data CSV)"
    )
    add_common_arguments(
        parser,
        out_help="also write the table to this file: .csv gives the estimate table (estimate, "
        "std_error, ci_lower, ci_upper, z, p_value), any other suffix the printed summary "
        "(default: print only)",
    )
    parser.epilog = (
        "examples: mlob-pp fit   (bundled HSB data);  mlob-pp fit --dataset passnyc;  "
        "mlob-pp fit --data my.csv --formula 'y ~ x + c' --group school --se bootstrap "
        "--out table.csv"
    )


def _out_path(out: str | None) -> Path | None:
    if out is None:
        return None
    path = Path(out)
    if path.is_dir():
        raise UsageError(f"--out {out!r} is a directory; give a file name such as table.csv")
    if path.parent != Path() and path.parent.exists() and not path.parent.is_dir():
        raise UsageError(f"--out {out!r}: {str(path.parent)!r} is a file, not a directory")
    return path


def _table(res) -> object:
    for name in ("to_frame", "summary_frame"):
        method = getattr(res, name, None)
        if callable(method):
            return method()
    raise TypeError("the MLOB result has no table")  # pragma: no cover


def _fit(args: argparse.Namespace) -> int:
    if args.csv is not None:
        if args.data is not None or args.dataset is not None:
            raise UsageError("give the CSV file once: as CSV or --data, and not with --dataset")
        args.data = args.csv
    check_common(args)
    out = _out_path(args.out)
    data, label, formula, group = load_data(args)
    res, notes = fit_mlob(args, data, formula, group)
    print(f"# data: {label}; {len(data)} rows", file=sys.stderr)
    for line in balancing_lines(res, args, data, formula, group):
        print(f"# {line}", file=sys.stderr)
    for note in notes:
        print(f"# warning: {note}", file=sys.stderr)
    text = summary_text(res)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".csv":
            _table(res).to_csv(out)
        else:
            out.write_text(text + "\n")
        print(f"# wrote {out}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    """Fit and print R's summary layout; return the exit status (2 for a user error)."""
    return run_guarded("fit", _fit, args)
