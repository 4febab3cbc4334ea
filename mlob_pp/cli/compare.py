"""``mlob-pp compare``: MLOB, ML and MCMC fits of one data set, side by side.

Fits the closed-form MLOB estimator (:func:`mlob_pp.mlob`, with R MLOB's "ML" moment ratio as
``ml_moments``), true maximum likelihood of the latent covariate model
(:func:`mlob_pp.fit_ml`) and PyMC MCMC (:func:`mlob_pp.fit_mcmc`); converts them to the common
format (:mod:`mlob_pp.comparisons.convert`); prints the side-by-side table
(:func:`mlob_pp.comparisons.compare`) and writes to ``--out``:

* ``results.nc`` — every estimator's DataTree in one netCDF file (read it back with
  :func:`mlob_pp.comparisons.load`, which returns ``{name: DataTree}``);
* ``compare.csv`` — the table;
* ``forest.png`` — the forest plot (:func:`mlob_pp.comparisons.plot_compare`).

With no arguments it runs on the bundled HSB data, ``mAch ~ ses + minrty + sx`` with group
``school``. MLOB needs equal group sizes, so it deletes rows at random to balance the groups
(HSB's schools have 14 to 67 students: about 42 % of the rows go, more than R's default limit of
20 %); the default ``--balancing-limit 0.5`` admits that, and ``--n-balance 20`` averages the
estimates over 20 random balancings. ML and MCMC use all rows. Progress goes to stderr, the
table to stdout.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
import warnings
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run", "DEFAULT_MODELS"]

#: Default (formula, group) of the bundled data sets.
DEFAULT_MODELS: dict[str, tuple[str, str]] = {
    "hsb": ("mAch ~ ses + minrty + sx", "school"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``mlob-pp compare`` to `parser`."""
    src = parser.add_argument_group("data and model")
    which = src.add_mutually_exclusive_group()
    which.add_argument("--data", metavar="CSV", help="CSV file with one row per student")
    which.add_argument(
        "--dataset",
        metavar="NAME",
        help="bundled data set: hsb, saeb or passnyc (default: hsb when --data is not given)",
    )
    src.add_argument(
        "--formula",
        help="outcome ~ target + covariates (default for hsb: 'mAch ~ ses + minrty + sx')",
    )
    src.add_argument("--group", help="group (school) column (default for hsb: school)")
    src.add_argument(
        "--covariates",
        choices=("shared", "level_specific"),
        default="shared",
        help="ML and MCMC: one slope gamma per covariate (shared, as MLOB) or within and between "
        "slopes gamma_w, gamma_b (level_specific, as lavaan) (default shared)",
    )
    mlob = parser.add_argument_group("MLOB")
    mlob.add_argument(
        "--balancing-limit",
        type=float,
        metavar="L",
        default=0.5,
        help="largest share of rows/groups balancing may delete (default 0.5; R's default 0.2 "
        "stops on HSB)",
    )
    mlob.add_argument(
        "--n-balance",
        type=int,
        metavar="N",
        default=20,
        help="average MLOB over this many random balancings (default 20)",
    )
    mcmc = parser.add_argument_group("MCMC")
    mcmc.add_argument(
        "--draws", type=int, default=500, metavar="N", help="draws per chain (default 500)"
    )
    mcmc.add_argument(
        "--tune", type=int, default=500, metavar="N", help="tuning steps per chain (default 500)"
    )
    mcmc.add_argument("--chains", type=int, default=2, metavar="N", help="chains (default 2)")
    mcmc.add_argument("--no-mcmc", action="store_true", help="skip MCMC")
    mcmc.add_argument("--no-ml", action="store_true", help="skip true ML")
    out = parser.add_argument_group("output")
    out.add_argument(
        "--out", default="mlob_pp_out", metavar="DIR", help="output directory (default mlob_pp_out)"
    )
    out.add_argument(
        "--format",
        choices=("nc", "zarr"),
        default="nc",
        help="results file: netCDF (h5netcdf) or zarr (default nc)",
    )
    out.add_argument(
        "--conf-level", type=float, default=0.95, metavar="P", help="interval level (default 0.95)"
    )
    out.add_argument("--seed", type=int, default=1, metavar="INT", help="random seed (default 1)")
    out.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    parser.epilog = (
        "examples: mlob-pp compare   (bundled HSB data, about a minute);  "
        "mlob-pp compare --data my.csv --formula 'y ~ x + c' --group school --out results"
    )


class _UsageError(Exception):
    """A user error: printed as one line, exit status 2."""


def _progress(args: argparse.Namespace, message: str, end: str = "\n") -> None:
    if not args.quiet:
        print(message, file=sys.stderr, end=end, flush=True)


def _load_data(args: argparse.Namespace) -> tuple[Any, str, str, str]:
    """Return (data frame, label, formula, group) from the command-line options."""
    import pandas as pd

    from mlob_pp import datasets

    if args.data is not None:
        path = Path(args.data)
        if not path.is_file():
            raise _UsageError(f"--data: no such file: {str(path)!r}")
        try:
            data = pd.read_csv(path)
        except Exception as exc:  # pandas raises several types
            raise _UsageError(f"--data: cannot read {str(path)!r} as CSV ({exc})") from exc
        label, defaults = path.name, None
    else:
        name = (args.dataset or "hsb").lower()
        if name not in datasets.available():
            raise _UsageError(
                f"--dataset must be one of {', '.join(datasets.available())}; got {args.dataset!r}"
            )
        data = datasets.load(name)
        label, defaults = name, DEFAULT_MODELS.get(name)
    formula = args.formula or (defaults[0] if defaults else None)
    group = args.group or (defaults[1] if defaults else None)
    if formula is None or group is None:
        missing = " and ".join(
            opt for opt, v in (("--formula", formula), ("--group", group)) if v is None
        )
        raise _UsageError(f"{missing} required for {label} (defaults exist only for hsb)")
    if group not in data.columns:
        raise _UsageError(
            f"--group {group!r} is not a column of {label}; columns: {', '.join(data.columns)}"
        )
    return data, label, formula, group


def _check_args(args: argparse.Namespace) -> None:
    for opt, value, minimum in (
        ("--draws", args.draws, 1),
        ("--tune", args.tune, 0),
        ("--chains", args.chains, 1),
        ("--n-balance", args.n_balance, 1),
    ):
        if value < minimum:
            raise _UsageError(f"{opt} must be an integer >= {minimum}; got {value}")
    if not 0.0 < args.conf_level < 1.0:
        raise _UsageError(f"--conf-level must be strictly between 0 and 1; got {args.conf_level}")
    if not 0.0 <= args.balancing_limit <= 1.0:
        raise _UsageError(f"--balancing-limit must be in [0, 1]; got {args.balancing_limit}")


def _deleted_groups(res: Any, data: Any, group: str) -> list[str]:
    """Labels of the groups that balancing dropped entirely (same in every balancing)."""
    kept = res.balancing.get("kept_rows")
    if kept is None:
        return []
    labels = data[group].astype(str)
    kept_labels = set(labels.iloc[list(kept)])
    return [g for g in dict.fromkeys(labels) if g not in kept_labels]


def _balancing_report(res: Any, data: Any, group: str) -> list[str]:
    bal = dict(getattr(res, "balancing", {}) or {})
    sizes = data[group].value_counts()
    n_input = getattr(res, "n_obs_input", len(data))
    if not bal.get("rows_deleted"):
        return [f"  balancing: groups already balanced ({int(sizes.iloc[0])} rows each)"]
    dropped = _deleted_groups(res, data, group)
    shown = ", ".join(dropped[:20]) + (" ..." if len(dropped) > 20 else "")
    share = 100 * bal["rows_deleted"] / n_input
    n_dropped = int(bal.get("groups_deleted", len(dropped)))
    lines = [
        f"  balancing: group sizes {int(sizes.min())}-{int(sizes.max())}; MLOB needs equal "
        f"sizes, target {bal.get('target_group_size')} rows per group",
        f"  deleted {bal['rows_deleted']} of {n_input} rows ({share:.1f}%): "
        + (
            f"{n_dropped} whole group{'s' if n_dropped > 1 else ''} smaller than the target"
            + (f" ({group} {shown})" if dropped else "")
            + ", and the surplus rows of larger groups drawn at random"
            if n_dropped
            else "the surplus rows of groups larger than the target, drawn at random"
        ),
        f"  MLOB averaged over {bal.get('n_balance', 1)} random balancings; "
        f"it used {res.n_obs} rows in {res.n_groups} groups (ML and MCMC use all {n_input})",
    ]
    return lines


def _fit_mlob(args, data, formula, group):
    import mlob_pp

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = mlob_pp.mlob(
            formula,
            data,
            group,
            balancing_limit=args.balancing_limit,
            conf_level=args.conf_level,
            random_state=args.seed,
            n_balance=args.n_balance,
        )
    notes = [str(w.message) for w in caught]
    return res, notes


def _fit_mcmc(args, data, formula, group):
    import mlob_pp

    kwargs: dict[str, Any] = dict(
        draws=args.draws, tune=args.tune, chains=args.chains, random_seed=args.seed
    )
    params = inspect.signature(mlob_pp.fit_mcmc).parameters
    for name in ("progress_bar", "progressbar"):
        if name in params:
            kwargs[name] = not args.quiet
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mc = mlob_pp.fit_mcmc(formula, data, group, covariates=args.covariates, **kwargs)
    return mc, [str(w.message) for w in caught]


def _format_table(table: Any) -> str:
    fmt3 = "{:.3f}".format
    formatters = {
        "estimate": fmt3,
        "std_error": fmt3,
        "ci_lower": fmt3,
        "ci_upper": fmt3,
        "r_hat": fmt3,
        "ess_bulk": "{:.0f}".format,
        "ess_tail": "{:.0f}".format,
    }
    return table.to_string(formatters=formatters, na_rep="")


def run(args: argparse.Namespace) -> int:
    """Run ``mlob-pp compare``; return the exit status (0 success, 2 usage error, 1 failure)."""
    try:
        return _run(args)
    except _UsageError as exc:
        print(f"mlob-pp compare: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    _check_args(args)
    data, label, formula, group = _load_data(args)
    out = Path(args.out)
    steps = 1 + (not args.no_ml) + (not args.no_mcmc)
    _progress(
        args, f"mlob-pp compare: {formula!r}, group {group!r}, data {label} ({len(data)} rows)"
    )

    from mlob_pp.comparisons import compare, from_ml, from_mlob, from_pymc, plot_compare, save

    results: dict[str, Any] = {}
    shape = {"chains": args.chains, "draws": args.draws}
    step = 1

    def begin(text: str) -> float:
        _progress(args, f"[{step}/{steps}] {text} ...")
        return time.perf_counter()

    t0 = begin(
        f"MLOB closed form (balancing limit {args.balancing_limit:g}, "
        f"{args.n_balance} random balancings)"
    )
    try:
        res, notes = _fit_mlob(args, data, formula, group)
    except (ValueError, TypeError, KeyError) as exc:
        raise _UsageError(f"MLOB: {exc}") from exc
    for line in _balancing_report(res, data, group):
        _progress(args, line)
    for note in notes:
        if not note.startswith(("Your data is unbalanced", "You changed the balancing")):
            _progress(args, f"  note: {note}")
    results["mlob"] = from_mlob(res, estimator="mlob", random_seed=args.seed, **shape)
    results["ml_moments"] = from_mlob(
        res, estimator="ml_moments", random_seed=args.seed + 1, **shape
    )
    _progress(args, f"  done in {time.perf_counter() - t0:.1f} s")
    step += 1

    if not args.no_ml:
        import mlob_pp

        t0 = begin("true ML of the latent covariate model (all rows)")
        try:
            ml = mlob_pp.fit_ml(formula, data, group, covariates=args.covariates)
        except (ValueError, TypeError, KeyError) as exc:
            raise _UsageError(f"ML: {exc}") from exc
        if not getattr(ml, "converged", True):
            _progress(args, "  note: the ML optimiser did not report convergence")
        results["ml"] = from_ml(ml, random_seed=args.seed + 2, conf_level=args.conf_level, **shape)
        _progress(args, f"  done in {time.perf_counter() - t0:.1f} s")
        step += 1

    if not args.no_mcmc:
        t0 = begin(
            f"MCMC with PyMC ({args.chains} chains x {args.draws} draws, {args.tune} tuning; "
            "all rows)"
        )
        try:
            mc, notes = _fit_mcmc(args, data, formula, group)
        except (ValueError, TypeError, KeyError) as exc:
            raise _UsageError(f"MCMC: {exc}") from exc
        for note in dict.fromkeys(notes):
            _progress(args, f"  note: {note}")
        results["mcmc"] = from_pymc(mc)
        _progress(args, f"  done in {time.perf_counter() - t0:.1f} s")

    table = compare(results, conf_level=args.conf_level)
    level = f"{100 * args.conf_level:g}%"
    note = "; std_error = posterior SD for mcmc" if "mcmc" in results else ""
    print(f"\n{formula}  (group {group}, data {label}); {level} intervals{note}\n")
    print(_format_table(table))

    out.mkdir(parents=True, exist_ok=True)
    results_path = save(results, out / f"results.{args.format}")
    table.to_csv(out / "compare.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices of absent terms
        fig = plot_compare(
            results,
            conf_level=args.conf_level,
            path=out / "forest.png",
            title=f"{formula} (group {group}, {label})",
        )
    import matplotlib.pyplot as plt

    plt.close(fig)
    print(
        f"\nwrote {results_path} (load with mlob_pp.comparisons.load), {out / 'compare.csv'}, "
        f"{out / 'forest.png'}"
    )
    _progress(args, f"total {time.perf_counter() - start:.1f} s")
    return 0
