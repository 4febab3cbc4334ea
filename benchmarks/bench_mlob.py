"""Benchmark of the closed-form MLOB estimator (run on demand, not in CI).

    .venv/bin/python benchmarks/bench_mlob.py [--quick]

Reports absolute times on this machine and ratios against two baselines:
* R MLOB 0.0.2.0's recorded CPU seconds (../shared/reference/README.md: 8.8 CPU-s for
  J = 40, n = 30; 304 CPU-s for 4,293 HSB rows), and
* the naive Python path: formulaic's model matrix on every call and the numpy grid search
  (MLOB_PP_NO_NUMBA=1), i.e. the same closed forms without the fast paths.
Targets (issue 2): mlob() at J = 40, n = 30 with one covariate < 1 ms; 10^6 rows < 0.5 s;
100,000 data sets of J = 20, n = 15 through the batched core < 30 s; time and memory linear in
the rows.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd

R_CPU_S = {"J40n30": 8.8, "hsb4293": 304.0}


def simulate(rng, J, n, k=1):
    u = rng.normal(0, 0.5, (J, 1))
    x = u + rng.normal(size=(J, n))
    c = 0.4 * x + rng.normal(size=(J, n))
    y = 0.5 * u + 0.2 * (x - u) + 0.3 * c + rng.normal(size=(J, n))
    return pd.DataFrame({"y": y.ravel(), "x": x.ravel(), "c": c.ravel(),
                         "g": np.repeat(np.arange(J), n)})


def timeit(fn, repeat=7, number=1):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t) / number)
    return float(np.median(times))


def naive_fit(formula, df, group):
    """Same closed forms, without the fast paths (model matrix every call, numpy grid)."""
    from formulaic import model_matrix

    import mlob_pp
    from mlob_pp.closed_form.core import mlob_batch

    mm = model_matrix(formula, df)
    J = df[group].nunique()
    n = len(df) // J
    order = np.argsort(df[group].to_numpy(), kind="stable")
    y = mm.lhs.to_numpy()[order, 0].reshape(1, J, n)
    X = mm.rhs.to_numpy()[order]
    mlob_batch(y, X[:, 1].reshape(1, J, n), X[:, 2:].reshape(1, J, n, -1))
    return mlob_pp


def load() -> str:
    """Machine load while benchmarking (1, 5, 15 min load averages and the core count)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} cores"


def fit_only() -> None:
    """Only the headline figure: mlob() at J = 40, n = 30, one covariate (both spellings)."""
    import mlob_pp

    warnings.simplefilter("ignore")
    df = simulate(np.random.default_rng(1), 40, 30)
    print(load())
    for label, call in (("group='g'", lambda: mlob_pp.mlob("y ~ x + c", df, "g")),
                        ("(1 | g)", lambda: mlob_pp.mlob("y ~ x + c + (1 | g)", df))):
        times, cpu = [], []
        call()
        for _ in range(9):
            t, c = time.perf_counter(), time.process_time()
            for _ in range(200):
                call()
            times.append((time.perf_counter() - t) / 200)
            cpu.append((time.process_time() - c) / 200)
        print(f"mlob() J=40 n=30 k=1 [{label}]: wall median {np.median(times) * 1e3:.3f} ms "
              f"(best {min(times) * 1e3:.3f}, worst {max(times) * 1e3:.3f}); CPU median "
              f"{np.median(cpu) * 1e3:.3f} ms (best {min(cpu) * 1e3:.3f}) "
              "(9 runs of 200 calls; target < 1 ms, aim 0.4 ms)")
    print(load())


def main(quick: bool = False) -> None:
    import mlob_pp
    from mlob_pp.closed_form import grid as grid_kernel
    from mlob_pp.closed_form.core import mlob_batch

    warnings.simplefilter("ignore")
    rng = np.random.default_rng(1)
    print(f"numba grid kernel: {grid_kernel.AVAILABLE}; {load()}")

    df = simulate(rng, 40, 30)
    t_fit = timeit(lambda: mlob_pp.mlob("y ~ x + c", df, "g"), repeat=9, number=50)
    print(f"mlob() J=40 n=30 k=1: {t_fit * 1e3:.3f} ms  (target < 1 ms; R MLOB "
          f"{R_CPU_S['J40n30']} CPU-s -> x{R_CPU_S['J40n30'] / t_fit:,.0f})")
    code = ("import sys; sys.path.insert(0, 'benchmarks'); import numpy as np, warnings, time;"
            "warnings.simplefilter('ignore'); from bench_mlob import simulate, naive_fit, timeit;"
            "df = simulate(np.random.default_rng(1), 40, 30);"
            "print(timeit(lambda: naive_fit('y ~ x + c', df, 'g'), repeat=5, number=10))")
    env = dict(os.environ, MLOB_PP_NO_NUMBA="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if out.returncode == 0:
        t_naive = float(out.stdout.strip().splitlines()[-1])
        print(f"naive path (model matrix per call, numpy grid): {t_naive * 1e3:.3f} ms "
              f"-> fast path x{t_naive / t_fit:.1f}")
    else:
        print("naive path failed:", out.stderr[-500:])

    hsb = mlob_pp.datasets.load("hsb")
    t_hsb = timeit(lambda: mlob_pp.mlob("mAch ~ ses + minrty + sx", hsb, "school",
                                        balancing_limit=0.5, random_seed=1), repeat=5)
    print(f"mlob() HSB (7,185 rows, balanced to 4,293): {t_hsb * 1e3:.2f} ms (R MLOB "
          f"{R_CPU_S['hsb4293']} CPU-s and 6.7 GB -> x{R_CPU_S['hsb4293'] / t_hsb:,.0f})")

    print("scaling in the rows (J = rows / 100, n = 100, one covariate):")
    for rows in ([10_000, 100_000, 1_000_000] if not quick else [10_000, 100_000]):
        big = simulate(rng, rows // 100, 100)
        tracemalloc.start()
        t = timeit(lambda: mlob_pp.mlob("y ~ x + c", big, "g"), repeat=3)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"  {rows:>9,} rows: {t * 1e3:8.1f} ms, {t / rows * 1e9:6.1f} ns/row, "
              f"peak {peak / 2**20:7.1f} MiB")

    B = 10_000 if quick else 100_000
    J, n = 20, 15
    u = rng.normal(0, 0.5, (B, J, 1))
    x = u + rng.normal(size=(B, J, n))
    c = (0.4 * x + rng.normal(size=(B, J, n)))[..., None]
    y = 0.5 * u + 0.2 * (x - u) + 0.3 * c[..., 0] + rng.normal(size=(B, J, n))
    t = time.perf_counter()
    chunk = 10_000
    for s in range(0, B, chunk):
        mlob_batch(y[s:s + chunk], x[s:s + chunk], c[s:s + chunk], warn=False)
    t = time.perf_counter() - t
    print(f"batched core: {B:,} data sets of J=20, n=15 in {t:.2f} s "
          f"({B / t:,.0f} fits/s; target < 30 s for 100,000)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--fit-only", action="store_true",
                        help="only time mlob() at J = 40, n = 30 (the issue-10 target)")
    args = parser.parse_args()
    if args.fit_only:
        fit_only()
    else:
        main(args.quick)
