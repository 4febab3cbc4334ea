"""Benchmark of the simulation-study runner on the MLOB talk's design.

Runs the full design (540 cells x 5000 replications, closed-form estimators MLOB + transformed
ML) and prints the wall time, replications per second and how the workers' time splits between
data generation and estimation; then a baseline: the same replications fitted one data set at a
time with the formula front end ``mlob_pp.mlob`` (the loop a user would write), on a sample.

    python benchmarks/bench_study.py                     # full design, Dask local cluster
    python benchmarks/bench_study.py --scheduler serial  # in this process
    python benchmarks/bench_study.py --replications 500  # a tenth of the work
    python benchmarks/bench_study.py --four-way --set J=5,10 --replications 100 \
        --checkpoint ckpt/ --out four_way.nc              # every arm on every replication

Target (issue): full design in under 10 minutes on this 2-core machine (~4,500 replications/s).

Measured on 2026-11-21 (2 cores shared with other jobs; 2 Dask workers, chunk 1000):

* load average about 3.7: 231.7 s wall, 11,654 replications/s. Worker CPU: data generation
  98 s (34 %), estimation 194 s (66 %). CPU time / 2 cores = 146 s.
* load average about 10: 845.6 s wall (3,193 replications/s) with the same CPU time (326 s).
* baseline, one data set at a time: ``mlob_pp.mlob`` on a DataFrame 107-125 replications/s
  (7 hours for the design); ``mlob_batch`` with B = 1 about 800-2,000 replications/s.
* Both full runs gave identical results.

Measured on 2026-11-30 (2 cores shared with 8 other jobs, load average 4-16; outputs and logs in
``benchmarks/results/``):

* closed form, full design x 5,000, serial, one process:
  ``--four-way --estimators mlob,ml_moments --n-boot 0 --replications 5000 --seed 20240601``:
  1,754 s wall (CPU: generation 54 s, estimation 149 s); so far 232-1,754 s wall for the same
  work, depending on load and workers.
* closed form + ML, full design x 100 (``--estimators mlob,ml_moments,ml --n-boot 0
  --replications 100 --seed 20240601``): 933 s wall; CPU per data set 0.04 ms (closed form),
  1.09 ms (``ml_batch`` with its profile-likelihood interval; 0.5-1.1 ms median by J).
* all four arms, 16 + 16 cells (ICC_X 0.1, 0.3 and 0.05, 0.5; J 5, 10, 20, 40; n 5, 15;
  beta_b 0.5; beta_w 0.2) x 100, ``--n-boot 200``, MCMC 4 x (500 + 500), chunk 50, seed
  20261130: 1,715 s and 551 s wall; CPU per data set (median over cells by J): MCMC 100-152 ms
  (goal 60 ms: not met), MLOB bootstrap 15-22 ms, ML 1.1-2.5 ms, closed form 0.02-0.05 ms.

Measured on 2026-11-30, 17:06-18:16 UTC, nothing else running (load average 1.6 at the start):

* the reference benchmark, all four arms on every replication of the 540 cells x 100,
  ``--four-way --replications 100 --chunk-size 100 --n-boot 200 --seed 20261130`` with
  ``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"``: 4,191 s
  wall on 2 Dask workers (``results/four_way_full.log``). CPU: MCMC 112 min (82 %; 124 ms
  per data set on average, 56-296 ms by cell, reruns included, target_accept 0.95), MLOB
  bootstrap 23 min (17 %), ML 0.7 min, closed form 0.2 min. So the MCMC arm took about 57 of
  the 70 minutes (goal: under 60 min; 60 ms per data set: not met, 64 ms wall on 2 cores).
  That run had slopes ``Normal(0, 5)`` in the MCMC arm (``results/four_way_full_slope_sd5.*``).

Measured on 2026-11-30, 20:34-21:31 UTC, nothing else running (load average 0.7 at the start),
same command, the MCMC arm now with slopes ``Normal(0, 2.5)`` (``prior_slope_sd``, the study
default): 3,408 s wall (``results/four_way_full.log``). CPU: MCMC 86.5 min (78 %; 96 ms per
data set on average, 57-225 ms by cell; 3,807 data sets rerun, 16 not converged, 9,784 with
divergent transitions), MLOB bootstrap 23 min. So the MCMC arm took about 44.5 of the 57
minutes, 49 ms of wall time per data set on the 2 cores (goals: 60 min, 60 ms).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np


def baseline_rate(n_cells: int, reps: int, seed: int) -> tuple[float, float]:
    """Replications per second of a per-data-set loop: DataFrame + mlob_pp.mlob, and mlob_batch
    with B = 1, on `reps` replications of `n_cells` cells spread over the design."""
    import mlob_pp
    from mlob_pp.comparisons.study.design import (
        frame_from_arrays,
        simulate_replications,
        talk_design,
    )
    from mlob_pp.validate import MLOBWarning

    cells = list(talk_design().cells())
    pick = np.linspace(0, len(cells) - 1, n_cells).round().astype(int)
    t_front = t_batch1 = 0.0
    n = 0
    for ci in pick:
        y, x, c = simulate_replications(cells[ci], 0, reps, random_seed=seed)
        for r in range(reps):
            df = frame_from_arrays(y[r], x[r], c[r])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MLOBWarning)
                t0 = time.perf_counter()
                mlob_pp.mlob("Y ~ X + C", df, "group")
                t1 = time.perf_counter()
                mlob_pp.mlob_batch(y[r : r + 1], x[r : r + 1], c[r : r + 1], warn=False)
                t2 = time.perf_counter()
            t_front += t1 - t0
            t_batch1 += t2 - t1
            n += 1
    return n / t_front, n / t_batch1


def _set(items: list[str]) -> dict:
    out = {}
    for item in items:
        name, _, values = item.partition("=")
        vals = tuple(float(v) if "." in v else int(v) for v in values.split(","))
        out[name] = vals
    return out


def four_way(args: argparse.Namespace) -> None:
    """The reference benchmark (issue 13.4): every requested arm on every replication."""
    from mlob_pp.comparisons.study.runner import run_study, save_study

    design = _set(args.set) or "talk"
    estimators = args.estimators.split(",")
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}")
    print(f"design: {design}; replications {args.replications}; estimators {estimators}; "
          f"n_boot {args.n_boot}; mcmc {args.mcmc_draws}/{args.mcmc_tune}/{args.mcmc_chains}")
    t0 = time.perf_counter()
    scheduler = None if args.scheduler == "serial" else args.scheduler
    print(f"scheduler: {scheduler or 'serial'}, workers: {args.n_workers}")
    ds = run_study(design, replications=args.replications, estimators=estimators,
                   random_seed=args.seed, checkpoint=args.checkpoint,
                   scheduler=scheduler, n_workers=args.n_workers,
                   chunk_size=args.chunk_size, n_boot=args.n_boot,
                   mcmc_kwargs={"draws": args.mcmc_draws, "tune": args.mcmc_tune,
                                "chains": args.mcmc_chains} if "mcmc" in estimators else None)
    wall = time.perf_counter() - t0
    print(f"wall time {wall:.1f} s; load average at the end {os.getloadavg()[0]:.2f}")
    factors = [d for d in ds["seconds"].dims if d != "phase"]
    n = ds["counts"].sel(count="n_replications")
    for ph in ds["phase"].values:
        if ph == "generate":
            continue
        est = "mlob" if ph == "mlob_bootstrap" else ph
        reps = n.sel(estimator=est)
        per = ds["cpu_seconds"].sel(phase=ph).sum([f for f in factors if f != "J"]) \
            / reps.sum([f for f in factors if f != "J"])
        row = ", ".join(f"J={int(j)}: {1e3 * float(v):.2f}" for j, v in zip(
            per["J"].values, per.values, strict=True))
        print(f"CPU ms per data set, {ph:15s}: {row}")
    if args.out:
        save_study(ds, args.out)
        print(f"saved {args.out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--four-way", action="store_true",
                    help="reference benchmark: all requested arms on every replication")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=V1,V2",
                    help="(--four-way) factor levels, e.g. --set J=5,10 (default: talk design)")
    ap.add_argument("--estimators", default="mlob,ml_moments,ml,mcmc")
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--mcmc-draws", type=int, default=500)
    ap.add_argument("--mcmc-tune", type=int, default=500)
    ap.add_argument("--mcmc-chains", type=int, default=4)
    ap.add_argument("--replications", type=int, default=5000)
    ap.add_argument("--scheduler", default="local", help="'local' (2 workers) or 'serial'")
    ap.add_argument("--n-workers", type=int, default=2)
    ap.add_argument("--chunk-size", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--checkpoint", default=None, help="checkpoint directory (optional)")
    ap.add_argument("--out", default=None, help="save the Dataset to this netCDF file")
    ap.add_argument("--baseline-cells", type=int, default=12)
    ap.add_argument("--baseline-reps", type=int, default=20)
    args = ap.parse_args()
    if args.four_way:
        four_way(args)
        return

    from mlob_pp.comparisons.study.runner import run_study, save_study

    scheduler = None if args.scheduler == "serial" else args.scheduler
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}")
    t0 = time.perf_counter()
    ds = run_study("talk", replications=args.replications, random_seed=args.seed,
                   scheduler=scheduler, n_workers=args.n_workers, chunk_size=args.chunk_size,
                   checkpoint=args.checkpoint)
    wall = time.perf_counter() - t0
    total = int(ds["counts"].sel(estimator="mlob", count="n_replications").sum())
    sec = ds["seconds"].sum([d for d in ds["seconds"].dims if d != "phase"])
    cpu = ds["cpu_seconds"].sum([d for d in ds["seconds"].dims if d != "phase"])
    gen = float(sec.sel(phase="generate"))
    est = float(sec.sel(phase=["mlob", "ml_moments"]).sum())
    busy = gen + est
    cgen = float(cpu.sel(phase="generate"))
    cest = float(cpu.sel(phase=["mlob", "ml_moments"]).sum())
    load = os.getloadavg()
    print(f"\nfull design: {dict(ds.sizes)}")
    print(f"replications fitted            : {total:,} ({ds.attrs['scheduler']})")
    print(f"wall time                      : {wall:8.1f} s   (target < 600 s)")
    print(f"replications per second        : {total / wall:8.0f}   (target > 4,500)")
    print(f"load average at the end        : {load[0]:.1f} (1 min), {load[2]:.1f} (15 min) "
          f"on {os.cpu_count()} cores")
    print(f"worker wall time, generation   : {gen:8.1f} s  ({100 * gen / busy:4.1f} %)")
    print(f"worker wall time, estimation   : {est:8.1f} s  ({100 * est / busy:4.1f} %)")
    print(f"worker CPU time, generation    : {cgen:8.1f} s  ({100 * cgen / (cgen + cest):4.1f} %)")
    print(f"worker CPU time, estimation    : {cest:8.1f} s  ({100 * cest / (cgen + cest):4.1f} %)")
    ideal = (cgen + cest) / (os.cpu_count() or 1)
    print(f"CPU time / cores (an unloaded machine's wall time, ideally): {ideal:8.1f} s "
          f"= {total / ideal:8.0f} replications/s")
    by_size = ds["seconds"].sum(["icc_x", "beta_b", "beta_w"])
    print("worker seconds per (J, n) cell group [generate / estimate]:")
    for J in ds["J"].values:
        row = []
        for n in ds["n"].values:
            s = by_size.sel(J=J, n=n)
            row.append(f"n={n:2d}: {float(s.sel(phase='generate')):5.1f} / "
                       f"{float(s.sel(phase=['mlob', 'ml_moments']).sum()):5.1f}")
        print(f"  J={J:2d}  " + "   ".join(row))
    if args.out:
        save_study(ds, args.out)
        print(f"saved {args.out}")

    front, batch1 = baseline_rate(args.baseline_cells, args.baseline_reps, args.seed)
    print("\nbaseline (one data set at a time, single process):")
    print(f"  mlob_pp.mlob on a DataFrame  : {front:8.0f} replications/s  "
          f"-> study is {total / wall / front:6.1f} x faster")
    print(f"  mlob_batch with B = 1        : {batch1:8.0f} replications/s  "
          f"-> study is {total / wall / batch1:6.1f} x faster")
    print(f"  full design at the baseline rate would take {total / front / 60:6.1f} min "
          f"(DataFrame loop), {total / batch1 / 60:6.1f} min (B = 1)")


if __name__ == "__main__":
    main()
