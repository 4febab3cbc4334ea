"""``mlob-pp simulate``: run a simulation study and save it to netCDF.

Examples
--------
``mlob-pp simulate --design talk --replications 5000 --seed 1 --out results.nc``

``mlob-pp simulate --set J=5,10 --set n=5 --replications 200 --estimators mlob,ml_moments,ml
--ml-replications 50 --scheduler local --checkpoint ckpt/ --out small.nc --plots figs/``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mlob_pp.cli.options import UsageError, run_guarded
from mlob_pp.comparisons.study.design import PARAMETERS, TALK_FACTORS


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _parse_set(items: list[str]) -> dict[str, Any]:
    """``NAME=V1,V2`` -> {NAME: (V1, V2)}; one value of a non-factor parameter fixes it."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or name not in PARAMETERS or not values:
            raise ValueError(
                f"--set expects NAME=V1[,V2,...] with NAME one of {', '.join(PARAMETERS)}; "
                f"got {item!r}"
            )
        try:
            vals = tuple(_number(v) for v in values.split(","))
        except ValueError:
            raise ValueError(f"--set {name}: values must be numbers; got {values!r}") from None
        out[name] = vals if (len(vals) > 1 or name in TALK_FACTORS) else vals[0]
    return out


def _parse_cells(items: list[str] | None) -> dict[str, list[Any]] | None:
    if not items:
        return None
    cells: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not values:
            raise ValueError(f"cell filters look like J=5,10; got {item!r}")
        cells[name.strip()] = [_number(v) for v in values.split(",")]
    return cells


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``mlob-pp simulate`` to `parser`."""
    parser.add_argument(
        "--design",
        default="talk",
        help="'talk' (540 cells, default) or a JSON file with a Design "
        "(Design.to_json()) or with overrides of the talk's design",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=V1[,V2]",
        help="change a design parameter, e.g. --set J=5,10 --set rho_c=0.2 (repeatable)",
    )
    parser.add_argument(
        "--replications", type=int, default=5000, help="replications per cell (default 5000)"
    )
    parser.add_argument(
        "--estimators",
        default="mlob,ml_moments",
        help="comma-separated: mlob, ml_moments, ml, mcmc (default mlob,ml_moments)",
    )
    parser.add_argument("--seed", type=int, default=None, help="root random seed")
    parser.add_argument("--out", required=True, help="output netCDF file")
    parser.add_argument(
        "--checkpoint", default=None, help="checkpoint directory; rerun the same command to resume"
    )
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=1000,
        help="replications per task and checkpoint file (default 1000)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        help="'local' (Dask LocalCluster) or a scheduler address tcp://host:port; default: serial",
    )
    parser.add_argument(
        "--n-workers",
        type=int,
        default=None,
        help="workers of the local cluster (default: number of CPUs)",
    )
    parser.add_argument(
        "--conf-level",
        type=float,
        default=0.95,
        help="nominal level of the intervals (default 0.95)",
    )
    parser.add_argument(
        "--mode",
        choices=("r", "stable"),
        default="r",
        help="mode of the closed-form estimator (default r)",
    )
    for arm in ("ml", "mcmc"):
        parser.add_argument(
            f"--{arm}-replications",
            type=int,
            default=None,
            help=f"run the {arm} arm on only the first N replications of each cell "
                 "(default: every replication)",
        )
        parser.add_argument(
            f"--{arm}-cells",
            nargs="*",
            metavar="FACTOR=V1[,V2]",
            help=f"restrict the {arm} arm to these cells, e.g. J=5,10 n=5",
        )
    parser.add_argument("--mcmc-draws", type=int, default=500,
                        help="MCMC draws per chain in the mcmc arm (default 500)")
    parser.add_argument("--mcmc-tune", type=int, default=500,
                        help="MCMC tuning steps in the mcmc arm (default 500)")
    parser.add_argument("--mcmc-chains", type=int, default=4,
                        help="MCMC chains in the mcmc arm (default 4)")
    parser.add_argument("--n-boot", type=int, default=0,
                        help="parametric-bootstrap refits per data set for MLOB's bootstrap "
                             "interval (default 0: no bootstrap arm)")
    parser.add_argument(
        "--keep-replications", action="store_true", help="also store per-replication estimates"
    )
    parser.add_argument(
        "--plots",
        default=None,
        metavar="DIR",
        help="write RMSE, coverage and relative-bias plots (PNG) to DIR",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check_out(out: str) -> None:
    path = Path(out)
    if path.is_dir():
        raise UsageError(f"--out {out!r} is a directory; give a file name such as results.nc")
    if path.parent != Path() and path.parent.exists() and not path.parent.is_dir():
        raise UsageError(f"--out {out!r}: {str(path.parent)!r} is a file, not a directory")


def run(args: argparse.Namespace) -> int:
    """Run ``mlob-pp simulate``; return the exit status (2 for a user error)."""
    return run_guarded("simulate", _run, args)


def _run(args: argparse.Namespace) -> int:
    """Run the study, save it (and its plots)."""
    from mlob_pp.comparisons.study.design import Design, talk_design
    from mlob_pp.comparisons.study.runner import run_study, save_study

    _check_out(args.out)
    overrides = _parse_set(args.set)
    if args.design == "talk":
        design: Any = talk_design(**overrides)
    else:
        obj = json.loads(Path(args.design).read_text())
        if "factors" in obj:
            design = Design.from_json(json.dumps(obj))
            if overrides:
                raise ValueError("--set works with --design talk only")
        else:
            design = talk_design(**{**obj, **overrides})
    estimators = [e.strip() for e in args.estimators.split(",") if e.strip()]
    subsets: dict[str, Any] = {}
    for arm in ("ml", "mcmc"):
        reps, cells = getattr(args, f"{arm}_replications"), getattr(args, f"{arm}_cells")
        if arm in estimators and (reps is not None or cells):
            subset: dict[str, Any] = {}
            if reps is not None:
                subset["replications"] = reps
            if cells:
                subset["cells"] = _parse_cells(cells)
            subsets[arm] = subset
    ds = run_study(
        design,
        replications=args.replications,
        estimators=estimators,
        random_seed=args.seed,
        scheduler=args.scheduler,
        checkpoint=args.checkpoint,
        subsets=subsets or None,
        chunk_size=args.chunk_size,
        conf_level=args.conf_level,
        mode=args.mode,
        n_boot=args.n_boot,
        mcmc_kwargs={"draws": args.mcmc_draws, "tune": args.mcmc_tune,
                     "chains": args.mcmc_chains} if "mcmc" in estimators else None,
        n_workers=args.n_workers,
        keep_replications=args.keep_replications,
        progress=not args.no_progress,
    )
    path = save_study(ds, args.out)
    print(f"wrote {path} ({ds.attrs['wall_seconds']:.1f} s, seed {ds.attrs['random_seed']})")
    if args.plots:
        from mlob_pp.comparisons.study.plots import save_plots

        for p in save_plots(ds, args.plots):
            print(f"wrote {p}")
    return 0
