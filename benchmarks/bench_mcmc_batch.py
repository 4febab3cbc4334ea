"""Benchmark of ``mlob_pp.mcmc_batch`` against one ``fit_mcmc`` call per data set.

``python benchmarks/bench_mcmc_batch.py [--batch 64] [--n 20] [--fast]``

For J = 5, 10, 20, 40, 50 groups of n (one covariate, ICC_X = 0.2, beta_b = 0.8,
beta_w = 0.3), B data sets are simulated and sampled with ``mcmc_batch`` (4 chains x
(500 warm-up + 500 draws), reruns included); the cost per data set is the wall time divided
by B, *excluding* the one-off JAX compile (printed separately: the log density depends on the
data only through summary numbers, so one compile serves every cell).  Beside it: one warm
``fit_mcmc`` call (PyMC + nutpie, compiled model reused, same draws) on the first data set
of the cell, and the ratio.  Also reported: the share of data sets rerun, not converged after
the reruns, and with divergences.

Timings depend on the load of the machine (2 cores shared with other work while this was
written): the load average is printed and stored with the results, and so is the CPU time of
this process per data set.  ``mcmc_batch`` runs on one core, so its CPU time is what an
otherwise idle core would take; ``fit_mcmc`` runs its chains in threads on all cores (its CPU
time sums them).

Measured on 2026-11-30, 21:46 UTC, nothing else running (load average 0.9), defaults
(``results/mcmc_batch.csv``): ``mcmc_batch`` 42-90 ms wall and 47-95 ms CPU per data set
for J = 50 down to J = 5, against 0.16-0.23 s wall and 0.21-0.28 CPU-s for one warm
``fit_mcmc`` call; ratios 2-6 (wall and CPU).  Under load 13.6 the same script had measured
ratios of 3-11 in wall time, because ``fit_mcmc``'s threads suffered more from the load.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np

import mlob_pp
from mlob_pp.simulate import simulate_arrays

TRUTH = {"beta_b": 0.8, "beta_w": 0.3, "tau2_x": 0.25, "sigma2_x": 1.0, "tau2": 0.2,
         "sigma2": 1.0}


def simulate(B: int, J: int, n: int, seed: int):
    rng = np.random.default_rng(seed)
    return simulate_arrays((B,), J, n, rng, gamma=[0.3], phi_w=[0.3], phi_b=[0.3], **TRUTH)[:3]


def time_fit_mcmc(y, x, c, draws, tune):
    """(wall, CPU) seconds of one warm fit_mcmc call (compiled by a first call on other data)."""
    import pandas as pd

    J, n = y.shape[1:]

    def frame(b):
        return pd.DataFrame({"y": y[b].ravel(), "x": x[b].ravel(), "c1": c[b, ..., 0].ravel(),
                             "g": np.repeat(np.arange(J), n)})

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlob_pp.fit_mcmc("y ~ x + c1", frame(1), "g", draws=draws, tune=tune, chains=4,
                         random_seed=1)
        t0, c0 = time.perf_counter(), time.process_time()
        mlob_pp.fit_mcmc("y ~ x + c1", frame(0), "g", draws=draws, tune=tune, chains=4,
                         random_seed=2)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="data sets per cell")
    parser.add_argument("--n", type=int, default=20, help="group size")
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--groups", type=int, nargs="+", default=[5, 10, 20, 40, 50])
    parser.add_argument("--no-pymc", action="store_true", help="skip the fit_mcmc column")
    parser.add_argument("--fast", action="store_true", help="B = 16, draws = tune = 300")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "mcmc_batch.csv"))
    args = parser.parse_args()
    if args.fast:
        args.batch, args.draws, args.tune = 16, 300, 300
    opts = {"draws": args.draws, "tune": args.tune, "chains": 4}
    y, x, c = simulate(2, 10, args.n, 0)
    t0 = time.perf_counter()
    mlob_pp.mcmc_batch(y, x, c, random_seed=0, **opts)
    compile_s = time.perf_counter() - t0
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"one-off compile + 2 fits: {compile_s:.1f} s; {args.batch} data sets per cell, "
          f"n = {args.n}, 4 chains x ({args.tune} + {args.draws})")
    print(f"{'J':>3} {'ms/set':>7} {'cpu ms':>7} {'rerun':>6} {'not conv':>8} {'diverg':>6} "
          f"{'fit_mcmc s':>10} {'cpu s':>6} {'ratio':>6} {'cpu ratio':>9}")
    rows = []
    for J in args.groups:
        y, x, c = simulate(args.batch, J, args.n, J)
        t0, c0 = time.perf_counter(), time.process_time()
        res = mlob_pp.mcmc_batch(y, x, c, random_seed=J, **opts)
        per_set = (time.perf_counter() - t0) / args.batch
        cpu_set = (time.process_time() - c0) / args.batch
        single, single_cpu = ((float("nan"),) * 2 if args.no_pymc
                              else time_fit_mcmc(y, x, c, args.draws, args.tune))
        row = {
            "J": J, "n": args.n, "B": args.batch, "ms_per_data_set": 1000 * per_set,
            "cpu_ms_per_data_set": 1000 * cpu_set,
            "share_rerun": float(np.mean(res.n_reruns > 0)),
            "share_not_converged": float(np.mean(~res.converged)),
            "share_divergent": float(np.mean(res.n_divergent > 0)),
            "fit_mcmc_s": single, "fit_mcmc_cpu_s": single_cpu, "ratio": single / per_set,
            "cpu_ratio": single_cpu / cpu_set,
            "load_average": os.getloadavg()[0],
        }
        rows.append(row)
        print(f"{J:>3} {row['ms_per_data_set']:>7.0f} {row['cpu_ms_per_data_set']:>7.0f} "
              f"{row['share_rerun']:>6.0%} {row['share_not_converged']:>8.0%} "
              f"{row['share_divergent']:>6.0%} {single:>10.2f} {single_cpu:>6.2f} "
              f"{row['ratio']:>6.0f} {row['cpu_ratio']:>9.0f}", flush=True)
    import pandas as pd

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).assign(compile_s=compile_s).to_csv(args.out, index=False)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
