"""``mlob-pp compare``: MLOB, ML and MCMC fits of one data set, side by side.

Fits the closed-form MLOB estimator (:func:`mlob_pp.mlob`, with R MLOB's "ML" moment ratio as
``ml_moments``), true maximum likelihood of the latent covariate model (:func:`mlob_pp.fit_ml`)
and PyMC MCMC (:func:`mlob_pp.fit_mcmc`); converts them to the common format; prints the
side-by-side table (:func:`mlob_pp.comparisons.compare`) and writes to ``--out``:

* ``results.nc`` — every estimator's DataTree in one compressed netCDF file (read it back with
  :func:`mlob_pp.comparisons.load`, which returns ``{name: DataTree}``); the pointwise
  log-likelihood of MCMC (for LOO) only with ``--loglik``;
* ``compare.csv`` — the table;
* ``forest.png`` — the forest plot of the same numbers (:func:`mlob_pp.comparisons.plot_compare`).

The data, model and MLOB options and their defaults are those of ``mlob-pp fit``. With no
arguments it runs on the bundled HSB data, ``mAch ~ ses + minrty + sx`` by ``school``: MLOB
needs equal group sizes and deletes rows at random (about 42 % of HSB's rows), averaged over 20
random balancings; ML and MCMC use all rows. An estimator that fails is reported and the others
are still shown and written. Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import mlob_pp
from mlob_pp.cli.options import (
    DEFAULT_MODELS,
    UsageError,
    add_common_arguments,
    balancing_lines,
    check_common,
    fit_mlob,
    load_data,
    run_guarded,
)

__all__ = ["add_arguments", "run", "DEFAULT_MODELS"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``mlob-pp compare`` to `parser`."""
    add_common_arguments(
        parser,
        out_help="output directory for results.nc, compare.csv and forest.png "
        "(default mlob_pp_out)",
        out_default="mlob_pp_out",
    )
    est = parser.add_argument_group("ML and MCMC")
    est.add_argument(
        "--covariates",
        choices=("shared", "level_specific"),
        default="shared",
        help="ML and MCMC: one slope per covariate (shared, as MLOB) or within and between "
        "slopes gamma_w, gamma_b (level_specific, as lavaan) (default shared)",
    )
    est.add_argument("--no-ml", action="store_true", help="skip true ML")
    est.add_argument("--no-mcmc", action="store_true", help="skip MCMC")
    est.add_argument(
        "--draws", type=int, default=500, metavar="N", help="MCMC draws per chain (default 500)"
    )
    est.add_argument(
        "--tune", type=int, default=500, metavar="N", help="MCMC tuning steps (default 500)"
    )
    est.add_argument("--chains", type=int, default=2, metavar="N", help="MCMC chains (default 2)")
    est.add_argument(
        "--loglik",
        action="store_true",
        help="store MCMC's pointwise log-likelihood in results.nc (needed for az.loo; by far "
        "the largest part of the file) (default: not stored)",
    )
    out = parser.add_argument_group("output format")
    out.add_argument(
        "--format",
        choices=("nc", "zarr"),
        default="nc",
        help="results file: netCDF (h5netcdf, compressed) or zarr (default nc)",
    )
    out.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    parser.epilog = (
        "examples: mlob-pp compare   (bundled HSB data, about a minute);  "
        "mlob-pp compare --data my.csv --formula 'y ~ x + c' --group school --out results"
    )


def _progress(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def _check_args(args: argparse.Namespace) -> Path:
    check_common(args)
    for opt, value, minimum in (
        ("--draws", args.draws, 1),
        ("--tune", args.tune, 0),
        ("--chains", args.chains, 1),
    ):
        if value < minimum:
            raise UsageError(f"{opt} must be an integer >= {minimum}; got {value}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out!r} is a file; give a directory for the outputs")
    existing = next((p for p in out.absolute().parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise UsageError(f"--out {args.out!r}: {str(existing)!r} is a file, not a directory")
    return out


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _fit_ml(args, data, formula, group):
    from mlob_pp.comparisons import from_ml

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ml = mlob_pp.fit_ml(
            formula,
            data,
            group,
            covariates=args.covariates,
            conf_level=args.conf_level,
            missing=args.missing,
        )
    notes = [str(w.message) for w in caught]
    if not getattr(ml, "converged", True):
        notes.append("the ML optimiser did not report convergence")
    return {"ml": from_ml(ml)}, notes


def _fit_mcmc(args, data, formula, group):
    from mlob_pp.comparisons import from_pymc

    kwargs: dict[str, Any] = dict(
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        random_seed=args.seed,
        conf_level=args.conf_level,
        covariates=args.covariates,
        missing=args.missing,
    )
    params = inspect.signature(mlob_pp.fit_mcmc).parameters
    for name in ("progress", "progress_bar", "progressbar"):
        if name in params:
            kwargs[name] = not args.quiet
            break
    if "log_likelihood" in params:
        kwargs["log_likelihood"] = bool(args.loglik)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mc = mlob_pp.fit_mcmc(formula, data, group, **kwargs)
    tree = from_pymc(mc, log_likelihood=bool(args.loglik))
    return {"mcmc": tree}, list(dict.fromkeys(str(w.message) for w in caught))


def _fit_all(args, data, formula, group) -> tuple[dict[str, Any], dict[str, str]]:
    """Fit every estimator asked for; return (results, failures) — a failure stops no other."""
    from mlob_pp.comparisons import from_mlob

    def mlob_step(args, data, formula, group):
        res, notes = fit_mlob(args, data, formula, group)
        for line in balancing_lines(res, args, data, formula, group):
            _progress(args, f"  {line}")
        return {
            "mlob": from_mlob(res, estimator="mlob"),
            "ml_moments": from_mlob(res, estimator="ml_moments"),
        }, notes

    steps = [
        (
            "mlob",
            f"MLOB closed form (--se {args.se}, {args.n_balance} random balancings)",
            mlob_step,
        ),
    ]
    if not args.no_ml:
        steps.append(("ml", "true ML of the latent covariate model (all rows)", _fit_ml))
    if not args.no_mcmc:
        steps.append(
            (
                "mcmc",
                f"MCMC with PyMC ({args.chains} chains x {args.draws} draws, {args.tune} tuning; "
                "all rows)",
                _fit_mcmc,
            )
        )
    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    for i, (name, text, step) in enumerate(steps, start=1):
        _progress(args, f"[{i}/{len(steps)}] {text} ...")
        t0 = time.perf_counter()
        try:
            out, notes = step(args, data, formula, group)
        except Exception as exc:  # noqa: BLE001 - reported; the other estimators go on
            failures[name] = _one_line(exc)
            print(f"  {name} FAILED: {failures[name]}", file=sys.stderr, flush=True)
            continue
        results.update(out)
        for note in notes:
            _progress(args, f"  note: {note}")
        _progress(args, f"  done in {time.perf_counter() - t0:.1f} s")
    return results, failures


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


def _write(args, out: Path, results, table, title: str) -> list[Path]:
    import matplotlib.pyplot as plt

    from mlob_pp.comparisons import plot_compare, save

    out.mkdir(parents=True, exist_ok=True)
    written = [save(results, out / f"results.{args.format}")]
    table.to_csv(out / "compare.csv")
    written.append(out / "compare.csv")
    try:
        fig = plot_compare(
            results, conf_level=args.conf_level, path=out / "forest.png", title=title
        )
    except ValueError as exc:  # nothing to plot (e.g. no coefficient rows)
        _progress(args, f"  no forest plot: {exc}")
    else:
        plt.close(fig)
        written.append(out / "forest.png")
    return written


def _run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    out = _check_args(args)
    data, label, formula, group = load_data(args)
    _progress(
        args, f"mlob-pp compare: {formula!r}, group {group!r}, data {label} ({len(data)} rows)"
    )
    results, failures = _fit_all(args, data, formula, group)
    if not results:
        first = next(iter(failures.values()))
        raise UsageError(f"every estimator failed; the first said: {first}")

    from mlob_pp.comparisons import compare

    table = compare(results, conf_level=args.conf_level)
    level = f"{100 * args.conf_level:g}%"
    note = "; mcmc: posterior mean, SD and equal-tailed interval" if "mcmc" in results else ""
    print(f"\n{formula}  (group {group}, data {label}); {level} intervals{note}\n")
    print(_format_table(table))
    for name, reason in failures.items():
        print(f"\n{name}: FAILED ({reason}); the other estimators are shown and written")
    written = _write(args, out, results, table, f"{formula} (group {group}, {label})")
    print(f"\nwrote {', '.join(map(str, written))} (load results with mlob_pp.comparisons.load)")
    _progress(args, f"total {time.perf_counter() - start:.1f} s")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``mlob-pp compare``; return the exit status (0 success, 2 user error)."""
    return run_guarded("compare", _run, args)
