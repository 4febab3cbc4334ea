"""Benchmark and calibration study of the parametric bootstrap (mlob_pp.closed_form.bootstrap).

Usage::

    python benchmarks/bench_bootstrap.py speed                 # timing, J = 40, n = 30
    python benchmarks/bench_bootstrap.py coverage --reps 500 --n-boot 100 \
        --out benchmarks/results/bootstrap_coverage.csv       # the talk's 540 cells

``speed`` prints wall and CPU times of ``parametric_bootstrap`` with 2,000 refits against the
baseline of refitting the same data sets with :func:`mlob_pp.closed_form.core.mlob_batch`.
``coverage`` simulates each cell of the MLOB talk's design (:func:`talk_design`) ``--reps``
times, bootstraps every replication and appends one row per cell and interval method to a CSV
(cells already present are skipped, so the run can be resumed). Each cell draws from
``SeedSequence(seed, spawn_key=cell_key(cell))``: rows do not depend on the order or chunking.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from mlob_pp.closed_form.bootstrap import (
    bootstrap_batch,
    bootstrap_interval,
    inversion_interval,
    parametric_bootstrap,
)
from mlob_pp.closed_form.core import mlob_batch
from mlob_pp.comparisons.study.design import cell_key, simulate_batch, talk_design

FIELDS = ["icc_x", "J", "n", "beta_b", "beta_w", "gamma", "center", "method", "coverage",
          "miss_low", "miss_high", "infinite", "mean_width", "median_width", "se_ratio", "mean_se",
          "sd_estimate", "bias", "mad", "n_reps", "n_boot", "n_failed", "seconds",
          "coverage_bounded", "median_width_bounded"]
#: columns added in 0.2 (issue 11): older CSVs lack them (read with ``restval``)
BOUNDED_FIELDS = ("coverage_bounded", "median_width_bounded")


def speed(args) -> None:
    params = dict(icc_x=0.1, J=40, n=30, beta_b=0.5, beta_w=0.2, gamma=0.3, rho_c=0.4,
                  tau2=0.1, sigma2=0.6)
    rng = np.random.default_rng(1)
    y, x, c = simulate_batch(params, 1, rng)
    parametric_bootstrap(y[0], x[0], c[0], n_boot=200, random_seed=0)  # compile / warm up
    print(f"parametric_bootstrap, J = 40, n = 30, k = 1, n_boot = {args.n_boot} "
          f"(best and median of {args.repeat}; load average {os.getloadavg()[0]:.1f})")
    for interval in ("percentile", "inversion"):
        for n_jobs in (1, 2):
            wall, cpu = [], []
            for r in range(args.repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                parametric_bootstrap(y[0], x[0], c[0], n_boot=args.n_boot, random_seed=r,
                                     n_jobs=n_jobs, interval=interval)
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            print(f"  interval={interval!r:12} n_jobs={n_jobs}: wall {min(wall):.3f} s "
                  f"(median {np.median(wall):.3f}), cpu {min(cpu):.3f} s")
    # baseline: the same refits through the numpy core
    from mlob_pp.closed_form.bootstrap import fit_generating_model, refit, simulate_bootstrap

    model = fit_generating_model(y[0], x[0], c[0])

    def best(f, repeat=max(3, args.repeat)):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
        return min(times)

    yb, xb, cb = simulate_bootstrap(model, args.n_boot, rng)
    t_sim = best(lambda: simulate_bootstrap(model, args.n_boot, rng))
    t_fast = best(lambda: refit(yb, xb, cb))
    t_core = best(lambda: mlob_batch(yb, xb, cb, warn=False))
    print(f"  pieces (best of {max(3, args.repeat)}, one call on all {args.n_boot} data sets): "
          f"simulate {t_sim:.3f} s, refit {t_fast:.3f} s, mlob_batch {t_core:.3f} s")


def _methods(res: dict, truth: float, conf: float) -> dict[str, tuple]:
    """Per method: estimates (R,), SEs (R,), lower, upper."""
    out = {}
    z = 1.959963984540054 if conf == 0.95 else None
    est, se = res["beta_b"], res["se_beta_b"]
    out["mlob_analytic"] = (est, se, est - z * se, est + z * se)
    d = res["draws_beta_b"]
    sd = np.nanstd(d, axis=1, ddof=1)
    for m in ("percentile", "bc", "basic"):
        lo, hi = bootstrap_interval(d, est, conf, m)
        out[f"mlob_boot_{m}"] = (est, sd, lo, hi)
    lo, hi = inversion_interval(res["roots"], conf)
    out["mlob_boot_inversion"] = (est, sd, lo, hi)
    est_ml, se_ml = res["beta_b_ml"], res["se_beta_b_ml"]
    out["ml_analytic"] = (est_ml, se_ml, est_ml - z * se_ml, est_ml + z * se_ml)
    dm = res["draws_beta_b_ml"]
    sdm = np.nanstd(dm, axis=1, ddof=1)
    for m in ("percentile", "bc"):
        lo, hi = bootstrap_interval(dm, est_ml, conf, m)
        out[f"ml_boot_{m}"] = (est_ml, sdm, lo, hi)
    return out


def run_cell(cell: dict, reps: int, n_boot: int, center: str, seed: int) -> list[dict]:
    try:  # one thread per worker process: the workers already use the cores
        import numba

        numba.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    t0 = time.perf_counter()
    ss = np.random.SeedSequence(seed, spawn_key=cell_key(cell))
    data_seed, boot_seed = ss.spawn(2)
    y, x, c = simulate_batch(cell, reps, np.random.default_rng(data_seed))
    res = bootstrap_batch(y, x, c, n_boot=n_boot, center=center,
                          random_seed=np.random.default_rng(boot_seed))
    truth = float(cell["beta_b"])
    rows = []
    n_failed = int(np.sum(~np.isfinite(res["draws_beta_b"])))
    seconds = time.perf_counter() - t0
    for method, (est, se, lo, hi) in _methods(res, truth, 0.95).items():
        ok = np.isfinite(lo) & np.isfinite(hi)
        cover = (lo <= truth) & (truth <= hi)  # infinite bounds cover; NaN bounds do not
        width = np.where(np.isnan(lo) | np.isnan(hi), np.inf, hi - lo)
        sd_est = float(np.nanstd(np.where(np.isfinite(est), est, np.nan), ddof=1))
        se_f = np.where(np.isfinite(se), se, np.nan)
        rows.append({
            **{k: cell[k] for k in ("icc_x", "J", "n", "beta_b", "beta_w", "gamma")},
            "center": center, "method": method, "coverage": float(cover.mean()),
            "miss_low": float(np.mean(hi < truth)),
            "miss_high": float(np.mean(lo > truth)),
            "infinite": float(np.mean(~ok)),
            "mean_width": float(np.mean(hi - lo)) if ok.all() else np.inf,
            "median_width": float(np.median(width)),
            "se_ratio": float(np.nanmean(se_f) / sd_est) if sd_est > 0 else np.nan,
            "mean_se": float(np.nanmean(se_f)), "sd_estimate": sd_est,
            "bias": float(np.nanmean(est) - truth),
            "mad": float(np.nanmedian(np.abs(est - truth))),
            "n_reps": reps, "n_boot": n_boot, "n_failed": n_failed, "seconds": seconds,
            # among intervals with both bounds finite (an unbounded interval covers trivially)
            "coverage_bounded": float(cover[ok].mean()) if ok.any() else np.nan,
            "median_width_bounded": float(np.median((hi - lo)[ok])) if ok.any() else np.nan,
        })
    return rows


def _key(row) -> tuple:
    return (float(row["icc_x"]), int(row["J"]), int(row["n"]), float(row["beta_b"]),
            float(row["beta_w"]), str(row["center"]))


def coverage(args) -> None:
    overrides = {}
    for item in args.cells or []:
        name, values = item.split("=")
        conv = int if name in ("J", "n") else float
        overrides[name] = tuple(conv(v) for v in values.split(","))
    design = talk_design(**overrides)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        with out.open() as fh:
            done = {_key(r) for r in csv.DictReader(fh)}
    todo = []
    for cell in design.cells():
        for center in args.center:
            if _key({**cell, "center": center}) not in done:
                todo.append((cell, center))
    if args.order == "size":  # biggest first: the workers finish together
        todo.sort(key=lambda t: -t[0]["J"] * t[0]["n"])
    else:  # random order: a run stopped early leaves a random subset of the design
        order = np.random.default_rng(args.seed).permutation(len(todo))
        todo = [todo[i] for i in order]
    print(f"{len(todo)} cell x center runs to do ({len(done)} done) -> {out}", flush=True)
    new = not out.exists()
    with out.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS, restval="")
        if new:
            writer.writeheader()
        t0 = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            futures = [pool.submit(run_cell, cell, args.reps, args.n_boot, center, args.seed)
                       for cell, center in todo]
            for i, fut in enumerate(futures):
                for row in fut.result():
                    writer.writerow(row)
                fh.flush()
                if (i + 1) % 10 == 0 or i + 1 == len(futures):
                    print(f"  {i + 1}/{len(futures)} in {time.perf_counter() - t0:.0f} s",
                          flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("speed")
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=5)
    p = sub.add_parser("coverage")
    p.add_argument("--reps", type=int, default=500)
    p.add_argument("--n-boot", type=int, default=100)
    p.add_argument("--center", nargs="+", default=["mlob"])
    p.add_argument("--cells", nargs="*", help="design overrides, e.g. J=5,10 icc_x=0.05")
    p.add_argument("--seed", type=int, default=20251121)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--order", choices=("size", "shuffle"), default="size")
    p.add_argument("--out", default="benchmarks/results/bootstrap_coverage.csv")
    args = parser.parse_args(argv)
    {"speed": speed, "coverage": coverage}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
