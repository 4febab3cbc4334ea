"""Benchmark of the variability models: national scale, engines, optimizers.

Run ``python benchmarks/bench_variability.py [--rows 1000000] [--skip-statsmodels]``. Prints

1. **National scale** (issue 15): null and random-intercept contextual models on simulated data
   with 10,000 schools of 50-150 students (about 10^6 rows): wall time of the whole call (checks,
   formula, fit, SEs, EB means), the peak of Python allocations (``tracemalloc``) and the
   process's peak resident memory. Sufficient-statistics engine (the default).
2. **Engines side by side** on data sizes statsmodels' MixedLM can handle (HSB, 7,185 rows, and
   a 200 x 100 simulated design): seconds of each engine and the largest relative difference of
   estimates and SEs.
3. **Random slopes**: the 200-row case where ML took 70-90 s before (statsmodels Nelder-Mead on a
   near-singular G) and the HSB intercepts-and-slopes-as-outcomes model, REML and ML.
4. **Optimizers** of statsmodels alone on a balanced 160 x 70 one-way design (closed-form
   answers): the reason the statsmodels engine runs Powell + BFGS and checks the result.

Times are wall-clock on a machine shared with other jobs (2 cores, load average printed), so
they are upper bounds; the memory figures do not depend on load.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd
from statsmodels.regression.mixed_linear_model import MixedLM

import mlob_pp
from mlob_pp.variability import contextual_model, null_model
from mlob_pp.variability.mixed import balanced_anova


def national(n_schools: int = 10_000, seed: int = 1, target_rows: int | None = None):
    """Return a simulated national assessment (schools of 50-150 students)."""
    rng = np.random.default_rng(seed)
    lo, hi = 50, 151
    if target_rows is not None:  # keep sizes 50-150, adjust the number of schools
        n_schools = max(int(target_rows / 100), 10)
    sizes = rng.integers(lo, hi, n_schools)
    g = np.repeat(np.arange(n_schools), sizes)
    x = rng.normal(size=n_schools)[g] + rng.normal(size=g.size)
    y = 500 + 20 * x + rng.normal(0, 30, n_schools)[g] + rng.normal(0, 80, g.size)
    return pd.DataFrame({"score": y, "ses": x, "school": g})


def _measure(call, *, memory: bool = False):
    """Return (result, seconds, peak MiB of Python allocations or NaN).

    With `memory` the call is run twice: once timed, once under ``tracemalloc`` (which slows
    Python allocations several-fold, so it never times).
    """
    t = time.perf_counter()
    res = call()
    sec = time.perf_counter() - t
    if not memory:
        return res, sec, float("nan")
    tracemalloc.start()
    call()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return res, sec, peak / 2**20


def section_national(rows: int) -> None:
    """Print times and memory of the national-scale fits."""
    df = national(target_rows=rows)
    print(f"\n1. National scale: {df.shape[0]:,} students in {df['school'].nunique():,} schools "
          f"(data frame {df.memory_usage(deep=True).sum() / 2**20:.0f} MiB)")
    calls = {
        "null_model REML": lambda: null_model("score ~ 1", df, "school"),
        "null_model ML": lambda: null_model("score ~ 1", df, "school", method="ml"),
        "contextual_model REML": lambda: contextual_model("score ~ ses", df, "school"),
        "contextual_model ML": lambda: contextual_model("score ~ ses", df, "school", method="ml"),
    }
    rows_out = []
    for label, call in calls.items():
        res, sec, peak = _measure(call, memory=True)
        rows_out.append({"model": label, "seconds": sec, "peak_alloc_MiB": peak,
                         "tau2": res.tau2, "sigma2": res.sigma2,
                         "tau2_se": res.bse["tau2"]})
    print(pd.DataFrame(rows_out).set_index("model").to_string(float_format="%.4g"))
    print(f"process peak resident memory so far: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB "
          "(includes numpy, pandas, statsmodels, scipy and the data)")


def _rel(a: pd.Series, b: pd.Series) -> float:
    a, b = a.to_numpy(float), b.to_numpy(float)
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.max(np.abs(a[ok] - b[ok]) / np.maximum(np.abs(b[ok]), 1e-300)))


def section_engines() -> None:
    """Print the sufficient-statistics engine against statsmodels."""
    hsb = mlob_pp.datasets.load("hsb")
    sim = national(n_schools=200, seed=3)
    cases = [
        ("HSB null REML", lambda e: null_model("mAch ~ 1", hsb, "school", engine=e)),
        ("HSB contextual ML", lambda e: contextual_model("mAch ~ ses", hsb, "school",
                                                         method="ml", engine=e)),
        (f"sim {sim.shape[0]} rows contextual REML",
         lambda e: contextual_model("score ~ ses", sim, "school", engine=e)),
    ]
    print("\n2. Engines on data statsmodels can handle (max relative difference over the "
          "whole to_frame() table)")
    out = []
    for label, call in cases:
        fast, t_fast, _ = _measure(lambda c=call: c("sufficient"))
        slow, t_slow, _ = _measure(lambda c=call: c("statsmodels"))
        f, s = fast.to_frame(), slow.to_frame()
        out.append({"case": label, "sufficient_s": t_fast, "statsmodels_s": t_slow,
                    "speed_up": t_slow / t_fast, "max_rel_diff_estimate": _rel(f["estimate"],
                                                                               s["estimate"]),
                    "max_rel_diff_se": _rel(f["std_error"], s["std_error"])})
    print(pd.DataFrame(out).set_index("case").to_string(float_format="%.3g"))


def section_slopes() -> None:
    """Print random-slope timings (statsmodels engine started at the lme4-style optimum)."""
    rng = np.random.default_rng(0)
    J, n = 40, 5
    g = np.repeat(np.arange(J), n)
    x = rng.normal(size=J * n) + rng.normal(size=J)[g]
    y = 1 + 0.5 * x + rng.normal(size=J)[g] * 0.3 + rng.normal(size=J * n)
    small = pd.DataFrame({"y": y, "x": x, "g": g})
    hsb = mlob_pp.datasets.load("hsb")
    hsb = hsb.assign(catholic=(hsb["sector"] == "Catholic").astype(float))
    print("\n3. Random slopes (before: 70-90 s for the 200-row ML case, NaN variance SEs)")
    out = []
    for label, data, formula, extra in [
        ("200 rows, near-singular G", small, "y ~ x", {}),
        ("HSB slopes-as-outcomes", hsb, "mAch ~ ses + catholic",
         {"slope_predictors": ["meanses", "catholic"]}),
    ]:
        for method in ("reml", "ml"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res, sec, _ = _measure(lambda d=data, f=formula, e=extra, m=method:
                                       contextual_model(f, d, "g" if "g" in d else "school",
                                                        random_slope=True, method=m, **e))
            se = res.bse
            out.append({"case": label, "method": method, "seconds": sec,
                        "singular": res.fit.singular, "tau2_se": se["tau2"],
                        "slope_var_se": se.iloc[-3]})
    print(pd.DataFrame(out).set_index(["case", "method"]).to_string(float_format="%.4g"))


def _single(y, codes, reml, method):
    model = MixedLM(y, np.ones((y.size, 1)), groups=codes)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.fit(reml=reml, method=method)
    return float(res.cov_re[0, 0]), float(res.llf), bool(res.converged), time.perf_counter() - t


def section_optimizers() -> None:
    """Print statsmodels' optimizers alone against the closed form (balanced 160 x 70)."""
    rng = np.random.default_rng(1)
    J, n = 160, 70
    codes = np.repeat(np.arange(J), n)
    y = 10 + rng.normal(0, 3, J)[codes] + rng.normal(0, 6, J * n)
    df = pd.DataFrame({"y": y, "g": codes})
    ref = balanced_anova(y, codes)
    print("\n4. statsmodels optimizers alone, balanced 160 x 70 (closed-form tau2 known)")
    for reml, key in [(True, "reml"), (False, "ml")]:
        rows = []
        for label in ("default", "lbfgs", "powell", "nm"):
            tau, llf, conv, sec = _single(y, codes, reml, None if label == "default" else label)
            rows.append({"optimizer": label, "rel_error_tau2": tau / ref["tau2_" + key] - 1,
                         "loglik": llf, "converged_flag": conv, "seconds": sec})
        for engine in ("statsmodels", "sufficient"):
            res, sec, _ = _measure(lambda e=engine, m=key: null_model("y ~ 1", df, "g",
                                                                      method=m, engine=e))
            rows.append({"optimizer": f"null_model engine={engine}",
                         "rel_error_tau2": res.tau2 / ref["tau2_" + key] - 1, "loglik": res.llf,
                         "converged_flag": True, "seconds": sec})
        print(f"  {key.upper()}")
        print(pd.DataFrame(rows).set_index("optimizer").to_string(float_format="%.6g"))


def main() -> None:
    """Run the benchmark sections."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-statsmodels", action="store_true",
                        help="only the national-scale section")
    args = parser.parse_args()
    pd.set_option("display.width", 160)
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    section_national(args.rows)
    if not args.skip_statsmodels:
        section_engines()
        section_slopes()
        section_optimizers()
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
