"""Options, data loading and error handling shared by ``mlob-pp fit`` and ``mlob-pp compare``.

Both subcommands take the same data, model and MLOB options with the same defaults
(:func:`add_common_arguments`), so ``mlob-pp fit`` shows exactly the MLOB rows that
``mlob-pp compare`` lines up against ML and MCMC. A user error (missing file, unknown column,
bad formula, ``--out`` pointing at the wrong kind of path ...) is one line on stderr and exit
status 2, never a traceback (:func:`run_guarded`).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlob_pp

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULTS",
    "UsageError",
    "add_common_arguments",
    "balancing_lines",
    "check_common",
    "fit_mlob",
    "load_data",
    "mlob_kwargs",
    "run_guarded",
    "summary_text",
]

#: Default (formula, group) of the bundled data sets.
DEFAULT_MODELS: dict[str, tuple[str, str]] = {
    "hsb": ("mAch ~ ses + minrty + sx", "school"),
    "passnyc": ("math ~ ENI + ELA + ENI:ELA", "District"),
}
#: Shared defaults of the MLOB options (one place for fit and compare).
DEFAULTS: dict[str, Any] = {
    "dataset": "hsb",
    "mode": "r",
    "se": "analytic",
    "n_boot": 1000,
    "n_balance": 20,
    "balancing_limit": 0.5,
    "seed": 2025,
    "conf_level": 0.95,
    "missing": "raise",
}


class UsageError(Exception):
    """A user error: printed as one line on stderr, exit status 2."""


def add_common_arguments(parser: argparse.ArgumentParser, *, out_help: str, out_default=None):
    """Add the data, model and MLOB options shared by ``fit`` and ``compare`` to `parser`.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    out_help : str
        Help text of ``--out`` (a file for ``fit``, a directory for ``compare``).
    out_default : str, optional
        Default of ``--out``.
    """
    d = DEFAULTS
    src = parser.add_argument_group("data and model")
    which = src.add_mutually_exclusive_group()
    which.add_argument("--data", metavar="CSV", help="CSV file with one row per individual")
    which.add_argument(
        "--dataset",
        metavar="NAME",
        help="bundled data set: hsb, passnyc or saeb (default: hsb when --data is not given)",
    )
    models = "; ".join(f"{k}: {f!r}" for k, (f, _) in DEFAULT_MODELS.items())
    src.add_argument("--formula", help=f"outcome ~ target + covariates (defaults: {models})")
    groups = ", ".join(f"{k}: {g}" for k, (_, g) in DEFAULT_MODELS.items())
    src.add_argument("--group", help=f"group (cluster) column (defaults: {groups})")
    src.add_argument(
        "--missing",
        choices=("raise", "drop"),
        default=d["missing"],
        help="rows with missing values in the model's columns: stop with an error (raise) or "
        f"drop them with a warning (default {d['missing']})",
    )
    mlob = parser.add_argument_group("closed-form MLOB")
    mlob.add_argument(
        "--mode",
        choices=("r", "stable"),
        default=d["mode"],
        help="'r' reproduces R MultiLevelOptimalBayes; 'stable' uses scale-free thresholds "
        f"(recommended for few groups) (default {d['mode']})",
    )
    mlob.add_argument(
        "--se",
        choices=("analytic", "jackknife", "bootstrap"),
        default=d["se"],
        help="standard errors and intervals of the regularised estimate: R's analytic SE with "
        "Wald intervals (too narrow in simulations), R's jackknife, or a parametric bootstrap "
        "with test-inversion intervals (better calibrated; slower; unbounded when "
        f"between-group information is weak) (default {d['se']})",
    )
    mlob.add_argument(
        "--n-boot",
        type=int,
        metavar="N",
        default=d["n_boot"],
        help=f"bootstrap refits per balancing with --se bootstrap (default {d['n_boot']})",
    )
    mlob.add_argument(
        "--n-balance",
        type=int,
        metavar="N",
        default=d["n_balance"],
        help="MLOB needs equal group sizes and deletes rows at random to get them; average over "
        f"N random balancings (Rubin's rules) so the answer does not hinge on one deletion "
        f"(default {d['n_balance']}; ignored when the groups are balanced)",
    )
    mlob.add_argument(
        "--balancing-limit",
        type=float,
        metavar="L",
        default=d["balancing_limit"],
        help="largest share of rows or groups balancing may delete (R's default 0.2 stops on "
        f"HSB) (default {d['balancing_limit']})",
    )
    run = parser.add_argument_group("run and output")
    run.add_argument(
        "--conf-level",
        type=float,
        metavar="P",
        default=d["conf_level"],
        help=f"level of the intervals (default {d['conf_level']})",
    )
    run.add_argument(
        "--seed",
        type=int,
        metavar="INT",
        default=d["seed"],
        help=f"random seed of balancing, bootstrap and sampling (default {d['seed']})",
    )
    run.add_argument("--out", default=out_default, metavar="PATH", help=out_help)


def check_common(args: argparse.Namespace) -> None:
    """Check the shared options' values; raise UsageError naming the option."""
    for opt, value, minimum in (("--n-balance", args.n_balance, 1), ("--n-boot", args.n_boot, 2)):
        if value < minimum:
            raise UsageError(f"{opt} must be an integer >= {minimum}; got {value}")
    if not 0.0 < args.conf_level < 1.0:
        raise UsageError(f"--conf-level must be strictly between 0 and 1; got {args.conf_level}")
    if not 0.0 <= args.balancing_limit <= 1.0:
        raise UsageError(f"--balancing-limit must be in [0, 1]; got {args.balancing_limit}")
    if args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer; got {args.seed}")


def _read_csv(path: Path) -> Any:
    import pandas as pd

    if not path.exists():
        raise UsageError(f"--data: no such file: {str(path)!r}")
    if not path.is_file():
        raise UsageError(f"--data: {str(path)!r} is not a file")
    try:
        data = pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - pandas raises many types for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"--data: cannot read {str(path)!r} as CSV ({first})") from None
    if data.empty:
        raise UsageError(f"--data: {str(path)!r} has no rows")
    return data


def load_data(args: argparse.Namespace) -> tuple[Any, str, str, str]:
    """Return (data frame, label, formula, group) from the command-line options.

    The formula is evaluated once here (:func:`mlob_pp.formula.parse.parse_formula`), so a bad
    formula or an unknown column is reported before any estimator runs.
    """
    from mlob_pp import datasets
    from mlob_pp.formula.parse import parse_formula

    if args.data is not None:
        path = Path(args.data)
        data, label, defaults = _read_csv(path), path.name, None
    else:
        name = (args.dataset or DEFAULTS["dataset"]).lower()
        if name not in datasets.available():
            raise UsageError(
                f"--dataset must be one of {', '.join(datasets.available())}; got {args.dataset!r}"
            )
        data, label, defaults = datasets.load(name), name, DEFAULT_MODELS.get(name)
    formula = args.formula or (defaults[0] if defaults else None)
    group = args.group or (defaults[1] if defaults else None)
    if formula is None or group is None:
        missing = " and ".join(
            opt for opt, v in (("--formula", formula), ("--group", group)) if v is None
        )
        known = ", ".join(DEFAULT_MODELS)
        raise UsageError(f"{missing} required for {label} (defaults exist for {known})")
    if group not in data.columns:
        columns = ", ".join(map(str, data.columns))
        raise UsageError(f"--group {group!r} is not a column of {label}; columns: {columns}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the estimators warn (e.g. dropped rows) themselves
            parse_formula(formula, data, group, missing=args.missing)
    except (ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"--formula {formula!r} on {label}: {_one_line(exc)}") from None
    return data, label, formula, group


def mlob_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`mlob_pp.mlob` from the shared options."""
    kwargs: dict[str, Any] = {
        "balancing_limit": args.balancing_limit,
        "conf_level": args.conf_level,
        "mode": args.mode,
        "se": args.se,
        "n_balance": args.n_balance,
        "missing": args.missing,
    }
    if args.se == "bootstrap":
        kwargs["n_boot"] = args.n_boot
    params = inspect.signature(mlob_pp.mlob).parameters
    kwargs["random_seed" if "random_seed" in params else "random_state"] = args.seed
    return kwargs


def fit_mlob(args: argparse.Namespace, data: Any, formula: str, group: str):
    """Fit MLOB with the shared options; return (result, warning messages)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = mlob_pp.mlob(formula, data, group, **mlob_kwargs(args))
    notes = [str(w.message) for w in caught]
    # R's two balancing messages are said (with the spread) by balancing_lines()
    skip = ("Your data is unbalanced", "You changed the balancing")
    return res, [n for n in dict.fromkeys(notes) if not n.startswith(skip)]


def _per_balancing(res: Any, args, data, formula, group) -> Any:
    """beta_b of every random balancing (from the result, else by refitting each one)."""
    import numpy as np

    bal = dict(getattr(res, "balancing", None) or {})
    values = bal.get("beta_b_per_balancing")
    if values is not None:
        return np.asarray(values, dtype=float)
    m = int(bal.get("n_balance", 1))
    seeds = np.random.SeedSequence(args.seed).spawn(m)
    kwargs = {**mlob_kwargs(args), "n_balance": 1, "se": "analytic"}
    kwargs.pop("n_boot", None)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in seeds:
            key = "random_seed" if "random_seed" in kwargs else "random_state"
            kwargs[key] = np.random.default_rng(seed)
            out.append(float(mlob_pp.mlob(formula, data, group, **kwargs).coef["beta_b"]))
    return np.asarray(out)


def balancing_lines(res: Any, args, data: Any, formula: str, group: str) -> list[str]:
    """Say what balancing deleted and how much beta_b moves across random balancings."""
    bal = dict(getattr(res, "balancing", None) or {})
    n_input = int(getattr(res, "n_obs_input", len(data)))
    if not bal.get("rows_deleted"):
        return ["balancing: the groups are already balanced; no rows deleted"]
    share = 100 * bal["rows_deleted"] / max(n_input, 1)
    lines = [
        f"balancing: MLOB needs equal group sizes; it deleted {bal['rows_deleted']} of "
        f"{n_input} rows ({share:.1f}%, {bal.get('groups_deleted', 0)} whole groups) at random "
        f"and used {res.n_obs} rows in {res.n_groups} groups of {bal.get('target_group_size')}",
    ]
    per = _per_balancing(res, args, data, formula, group)
    if per.size > 1:
        lines.append(
            f"balancing: beta_b over {per.size} random balancings ranges {per.min():.3f} to "
            f"{per.max():.3f} (SD {per.std(ddof=1):.3f}); the table averages them "
            "(Rubin's rules; the SE includes this spread)"
        )
    else:
        lines.append(
            "balancing: one random balancing: another seed deletes other rows and gives another "
            "estimate; use --n-balance 20 to average over balancings"
        )
    return lines


def summary_text(res: Any) -> str:
    """Return the printed summary, whether ``summary()`` prints or returns a Summary."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        out = res.summary()
    return str(out) if out is not None else buffer.getvalue().rstrip("\n")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def run_guarded(command: str, func: Callable[[argparse.Namespace], int], args) -> int:
    """Run ``func(args)``; user errors become one line on stderr and exit status 2."""
    try:
        return int(func(args) or 0)
    except UsageError as exc:
        print(f"mlob-pp {command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, KeyError, OSError) as exc:
        # raised by the estimators on bad input (bad option values, data they cannot fit)
        kind = "" if isinstance(exc, ValueError | OSError) else f"{type(exc).__name__}: "
        print(f"mlob-pp {command}: error: {kind}{_one_line(exc)}", file=sys.stderr)
        return 2
