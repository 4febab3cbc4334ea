"""Benchmark of the batched true ML fit (mlob_pp.ml_batch) against one fit_ml call per data set.

Run: ``python benchmarks/bench_ml_batch.py [--batch 2000] [--repeat 3] [--n 5 15 30]``.

Data sets are drawn from the MLOB talk's design (:mod:`mlob_pp.comparisons.study.design`, one
covariate, ICC_X = 0.1, beta_b = 0.5, beta_w = 0.2) for J = 5, 10, 20, 40. For each cell it
prints the wall and CPU (process) time per data set of ``ml_batch`` on a batch of B data sets
(estimates, SEs, Wald and profile-likelihood intervals; median of the repeats, warm), the share
of data sets at the boundary and with an unbounded profile interval, the number of failed fits
or profile searches, and the time of one
``fit_ml`` call on one of those data sets (median over 5). The last line projects the ML arm of
the full design (540 cells x 5,000 replications) from the mean CPU cost per data set over the
measured cells; the goal (issue 13) is under 15 minutes on the 2-core machine, i.e. about
0.33 ms per data set. The load average is printed because the machine is shared; under load the
wall time exceeds the CPU time. Set ``OPENBLAS_NUM_THREADS=1`` to keep BLAS threads from
spinning on the tiny per-data-set matrices.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np

import mlob_pp
from mlob_pp.comparisons.study.design import TALK_FIXED, frame_from_arrays, simulate_replications
from mlob_pp.warnings import MLOBWarning


def _cell(j: int, n: int) -> dict:
    return {"icc_x": 0.1, "J": j, "n": n, "beta_b": 0.5, "beta_w": 0.2, **TALK_FIXED}


def _time(fn, repeat: int) -> tuple[float, float]:
    """Median wall and CPU (process) time of `fn` after one warm-up call."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        tic, tic_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - tic)
        cpu.append(time.process_time() - tic_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    """Print the per-data-set cost of ml_batch and of fit_ml at J = 5, 10, 20, 40."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--n", type=int, nargs="+", default=[5, 15, 30])
    args = parser.parse_args()
    warnings.simplefilter("ignore", MLOBWarning)
    print(f"load average before: {os.getloadavg()}; B = {args.batch}")
    print(f"{'J':>3} {'n':>3} {'batch ms/set':>12} {'(cpu)':>7} {'fit_ml ms':>10} {'(cpu)':>7} "
          f"{'ratio':>7} {'boundary':>8} {'unbounded':>9} {'failed':>6}")
    per_set = []
    for n in args.n:
        for j in (5, 10, 20, 40):
            y, x, c = simulate_replications(_cell(j, n), 0, args.batch, random_seed=1)
            res = mlob_pp.ml_batch(y, x, c)
            t_batch, c_batch = _time(lambda y=y, x=x, c=c: mlob_pp.ml_batch(y, x, c),
                                     args.repeat)
            df = frame_from_arrays(y[0], x[0], c[0])
            t_fit, c_fit = _time(lambda df=df: mlob_pp.fit_ml("Y ~ X + C", df, "group"), 5)
            ms, ms_cpu = 1e3 * t_batch / args.batch, 1e3 * c_batch / args.batch
            per_set.append(ms_cpu)
            unb = np.mean(np.isinf(res.profile_lower) | np.isinf(res.profile_upper))
            failed = int(np.sum(np.isnan(res.profile_lower) | np.isnan(res.profile_upper)
                                | ~res.converged))
            print(f"{j:>3} {n:>3} {ms:>12.3f} {ms_cpu:>7.3f} {1e3 * t_fit:>10.1f} "
                  f"{1e3 * c_fit:>7.1f} {c_fit * 1e3 / ms_cpu:>7.0f} "
                  f"{res.boundary.mean():>8.2f} {unb:>9.2f} {failed:>6}")
    mean_ms = float(np.mean(per_set))
    print(f"projected ML arm, 540 cells x 5,000 data sets: {mean_ms * 2.7e6 / 6e4:.1f} min of "
          f"CPU (mean {mean_ms:.3f} ms CPU per data set over the cells above; goal < 15 min; "
          "wall time equals CPU time only on an idle machine, ratio = fit_ml CPU / batch CPU)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
