"""Benchmark: the full SS-MELSM fit (ivd's documented Saeb model, 4 chains), Saeb or national scale.

Prints compile and sampling wall times, the process CPU time (the machine is shared: CPU seconds
say what the fit costs, wall seconds what it took under the load shown), peak memory (max RSS),
bulk ESS per second of the slowest-mixing quantity (over the model parameters and every
per-draw inclusion probability, whose means are the PIPs), whether every PIP and parameter has
bulk ESS >= 400 and R-hat <= 1.01, and the time until bulk ESS >= 400 is reached, estimated from
prefixes of the chains (time = compile + sampling time x (tune + n) / (tune + draws) for the
first n retained draws per chain that reach the goal).

``--schools N`` fits data from :func:`mlob_pp.datasets.simulate_saeb` (N schools, about 71
students each) instead of the bundled Saeb data and also reports the recovery of the planted
unusual schools by the PIP > 0.75 rule (sensitivity and false-discovery rate).

Targets (issue 15): at 1,600 schools (~110,000 students) the whole fit under 10 minutes and
4 GB on this 2-core machine. ivd itself (nimble, R) reports no runtimes; on 160 schools it
needed about 1,670 CPU-seconds and 12.7 GB for a minimum ESS of 52 (issue 15).

Usage: ``python benchmarks/bench_melsm.py [--schools 1600] [--draws 1000] [--tune 1000]
[--chains 4] [--seed 2026] [--verify]``
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import warnings

import numpy as np

TARGET_SECONDS = 600.0
TARGET_GB = 4.0
GOAL_ESS = 400.0
LOCATION = "math_proficiency ~ student_ses * school_ses + (1 | school_id)"
SCALE = "~ student_ses * school_ses"


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads: nutpie runs chains in threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def max_rss_gb() -> float:
    """Peak resident memory of this process in GB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def ess_rhat(fit, n: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Bulk ESS and R-hat of every parameter and per-draw inclusion probability."""
    from arviz_stats.base import array_stats

    from mlob_pp.melsm.result import summary_draws

    draws = summary_draws(fit.idata, "all")
    labels = list(draws)
    arr = np.stack([draws[k] for k in labels], axis=-1)
    if n is not None:
        arr = arr[:, :n]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ess = array_stats.ess(arr, chain_axis=0, draw_axis=1, method="bulk")
        rhat = array_stats.rhat(arr, chain_axis=0, draw_axis=1)
    ess = np.where(np.isfinite(ess), ess, np.inf)  # constant rows (e.g. PIP exactly 1)
    rhat = np.where(np.isfinite(rhat), rhat, 1.0)
    return ess, rhat, labels


def load_data(schools: int | None, seed: int):
    import mlob_pp

    if schools is None:
        return mlob_pp.prepare_saeb(), None
    raw = mlob_pp.simulate_saeb(schools, random_seed=seed)
    return mlob_pp.prepare_saeb(raw), raw.attrs["unusual_schools"]


def run(df, draws: int, tune: int, chains: int, seed: int):
    import mlob_pp

    t, c = time.perf_counter(), cpu_seconds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = mlob_pp.fit_melsm(LOCATION, df, scale=SCALE, draws=draws, tune=tune,
                                chains=chains, random_seed=seed)
    wall, cpu = time.perf_counter() - t, cpu_seconds() - c
    notes = [str(w.message)[:140] for w in caught if "melsm" in str(w.filename)]
    return fit, wall, cpu, notes


def report(fit, wall, cpu, notes, truth, args) -> None:
    comp, samp = fit.timing["compile"], fit.timing["sampling"]
    ess, rhat, labels = ess_rhat(fit)
    k = int(np.argmin(ess))
    print(f"full fit: {args.chains} chains x ({args.tune} tune + {args.draws} draws), "
          f"{fit.n_groups} schools, {fit.n_obs} students")
    print(f"  wall {wall:7.1f} s (compile {comp:.1f} s, sampling {samp:.1f} s, post-processing "
          f"{wall - comp - samp:.1f} s); CPU {cpu:.0f} s; ratio to the 10-min target "
          f"{wall / TARGET_SECONDS:.2f}; peak memory {max_rss_gb():.2f} GB "
          f"(target {TARGET_GB:.0f} GB); load average now {os.getloadavg()[0]:.1f}")
    print(f"  min bulk ESS {ess[k]:.0f} ({labels[k]}); max R-hat {rhat.max():.4f} "
          f"({labels[int(np.argmax(rhat))]}); goal (ESS >= {GOAL_ESS:.0f}, R-hat <= 1.01) "
          f"{'met' if ess.min() >= GOAL_ESS and rhat.max() <= 1.01 else 'NOT met'}; "
          f"ESS/s (wall) {ess[k] / wall:.2f}")
    print(f"  warnings: {notes or 'none'}")
    if truth is not None:
        rec = fit.recovery(truth)
        print(f"  recovery of planted schools (PIP > 0.75): {rec['flagged']:.0f} flagged, "
              f"{rec['planted']:.0f} planted; sensitivity {rec['sensitivity']:.3f}, "
              f"false-discovery rate {rec['fdr']:.3f}")
    else:
        print(f"  PIP > 0.75: {fit.flagged().round(3).to_dict()}")
    reached = None
    for n in range(50, args.draws + 1, 25):
        if ess_rhat(fit, n)[0].min() >= GOAL_ESS:
            reached = n
            break
    if reached is None:
        print(f"  bulk ESS >= {GOAL_ESS:.0f} not reached within {args.draws} draws")
        return
    est = comp + samp * (args.tune + reached) / (args.tune + args.draws)
    print(f"  every PIP and parameter reaches bulk ESS >= {GOAL_ESS:.0f} after {reached} "
          f"draws/chain: ~{est:.0f} s with tune={args.tune} (ratio {est / TARGET_SECONDS:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schools", type=int, default=None)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--verify", action="store_true")
    args = parser.parse_args()

    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()}")
    df, truth = load_data(args.schools, args.seed)
    fit, wall, cpu, notes = run(df, args.draws, args.tune, args.chains, args.seed)
    report(fit, wall, cpu, notes, truth, args)
    if args.verify:
        fit2, wall2, cpu2, notes2 = run(df, args.draws, args.tune, args.chains, args.seed + 1)
        report(fit2, wall2, cpu2, notes2, truth, args)


if __name__ == "__main__":
    main()
