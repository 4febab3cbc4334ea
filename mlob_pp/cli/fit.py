"""``mlob-pp fit``: a closed-form MLOB fit of a CSV file or a bundled data set.

With no arguments it repeats the MLOB talk's application on the bundled PASSNYC data:
``math ~ ENI + ELA + ENI:ELA`` grouped by ``District``, balancing limit 0.35, seed 2025.
"""

from __future__ import annotations

import argparse
import sys
import warnings

DEFAULT_FORMULA = "math ~ ENI + ELA + ENI:ELA"
DEFAULT_GROUP = "District"
DEFAULT_SEED = 2025


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``fit`` options to `parser`."""
    parser.add_argument("data", nargs="?", help="CSV file (default: the bundled PASSNYC data)")
    parser.add_argument("--dataset", help="bundled data set instead of a CSV: hsb, saeb, passnyc")
    parser.add_argument(
        "--formula", help=f"model formula (default with PASSNYC: {DEFAULT_FORMULA!r})"
    )
    parser.add_argument("--group", help="grouping column (default with PASSNYC: District)")
    parser.add_argument("--balancing-limit", type=float, default=None,
                        help="largest share of rows/groups balancing may delete "
                             "(default 0.2; 0.35 for the PASSNYC default run)")
    parser.add_argument("--conf-level", type=float, default=0.95,
                        help="confidence level of the intervals (default 0.95)")
    parser.add_argument("--jackknife", action="store_true", help="jackknife SEs as in R")
    parser.add_argument("--punish-coeff", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"seed of the balancing deletions (default {DEFAULT_SEED})")
    parser.add_argument("--r-seed", type=int, default=None,
                        help="reproduce R's set.seed(R_SEED) draws instead of --seed")
    parser.add_argument("--mode", choices=("r", "stable"), default="r")
    parser.add_argument("--n-balance", type=int, default=1,
                        help="average over this many random balancings (Rubin's rules)")
    parser.add_argument("--missing", choices=("raise", "drop"), default="raise")


def run(args: argparse.Namespace) -> int:
    """Fit and print R's summary layout; return the exit status."""
    import pandas as pd

    import mlob_pp

    try:
        if args.data and args.dataset:
            raise ValueError("give either a CSV file or --dataset, not both")
        if args.data:
            data = pd.read_csv(args.data)
            source = args.data
        else:
            name = args.dataset or "passnyc"
            data = mlob_pp.datasets.load(name)
            source = f"bundled data set {name!r}"
        default_run = not args.data and (args.dataset in (None, "passnyc"))
        formula = args.formula or (DEFAULT_FORMULA if default_run else None)
        group = args.group or (DEFAULT_GROUP if default_run else None)
        if formula is None or group is None:
            raise ValueError("--formula and --group are required for this data")
        limit = args.balancing_limit
        if limit is None:
            limit = 0.35 if default_run and args.formula is None else 0.2
        random_state = mlob_pp.RRandom(args.r_seed) if args.r_seed is not None else args.seed
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = mlob_pp.mlob(
                formula, data, group, balancing_limit=limit, conf_level=args.conf_level,
                jackknife=args.jackknife, punish_coeff=args.punish_coeff,
                random_state=random_state, mode=args.mode, n_balance=args.n_balance,
                missing=args.missing,
            )
    except (ValueError, TypeError, OSError) as exc:
        print(f"mlob-pp fit: error: {exc}", file=sys.stderr)
        return 2
    print(f"# data: {source}; {len(data)} rows", file=sys.stderr)
    for w in caught:
        print(f"# warning ({w.category.__name__}): {w.message}", file=sys.stderr)
    res.summary()
    return 0
