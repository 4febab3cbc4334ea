"""Benchmark: the full SS-MELSM fit on Saeb (ivd's documented model, 4 chains).

Prints compile and sampling wall times, bulk ESS per second of the slowest-mixing quantity
(over the model parameters and all 160 per-draw inclusion probabilities, whose means are the
PIPs), and the time until every PIP and parameter has bulk ESS >= 400, estimated from prefixes
of the chains (time = compile + sampling time x (tune + n) / (tune + draws) for the first n
retained draws per chain that reach the goal). With ``--verify`` a second fit with that many
draws (and the same tune) checks the estimate directly.

Baseline: the issue's target of 3 minutes (wall, 2 cores) for the whole fit; ratios < 1 are
better than the target. ivd itself (nimble, R) reports no runtimes.

Usage: ``python benchmarks/bench_melsm.py [--draws 1000] [--tune 1000] [--seed 2026]
[--verify]``
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

TARGET_SECONDS = 180.0
GOAL_ESS = 400.0


def min_bulk_ess(fit, n: int | None = None) -> tuple[float, str]:
    from arviz_stats.base import array_stats

    from mlob_pp.melsm.fit import _summary_draws

    draws = _summary_draws(fit.idata, "all")
    labels = list(draws)
    arr = np.stack([draws[k] for k in labels], axis=-1)
    if n is not None:
        arr = arr[:, :n]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ess = array_stats.ess(arr, chain_axis=0, draw_axis=1, method="bulk")
    ess = np.where(np.isfinite(ess), ess, np.inf)  # constant rows (e.g. PIP exactly 1)
    k = int(np.argmin(ess))
    return float(ess[k]), labels[k]


def run(draws: int, tune: int, seed: int):
    import mlob_pp

    df = mlob_pp.prepare_saeb()
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = mlob_pp.fit_melsm(
            df,
            "math_proficiency ~ student_ses * school_ses + (1 | school_id)",
            "~ student_ses * school_ses + (1 | school_id)",
            draws=draws,
            tune=tune,
            chains=4,
            random_seed=seed,
        )
    wall = time.perf_counter() - t
    notes = [str(w.message)[:120] for w in caught if "melsm" in str(w.filename)]
    return fit, wall, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--verify", action="store_true")
    args = parser.parse_args()

    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()}")
    fit, wall, notes = run(args.draws, args.tune, args.seed)
    comp, samp = fit.timing["compile"], fit.timing["sampling"]
    ess, label = min_bulk_ess(fit)
    print(f"full fit: 4 chains x ({args.tune} tune + {args.draws} draws)")
    print(
        f"  wall {wall:7.1f} s  (compile {comp:.1f} s, sampling {samp:.1f} s, "
        f"post-processing {wall - comp - samp:.1f} s)  ratio to 3-min target "
        f"{wall / TARGET_SECONDS:.2f}"
    )
    print(
        f"  min bulk ESS {ess:.0f} ({label}); ESS/s (sampling) {ess / samp:.1f}; "
        f"ESS/s (wall) {ess / wall:.1f}"
    )
    print(f"  warnings: {notes or 'none'}")
    print(f"  PIP > 0.75: {fit.flagged().round(3).to_dict()}")

    reached = None
    for n in range(50, args.draws + 1, 25):
        if min_bulk_ess(fit, n)[0] >= GOAL_ESS:
            reached = n
            break
    if reached is None:
        print(f"  bulk ESS >= {GOAL_ESS:.0f} not reached within {args.draws} draws")
        return
    est = comp + samp * (args.tune + reached) / (args.tune + args.draws)
    est_short = comp + samp * (300 + reached) / (args.tune + args.draws)
    print(
        f"  every PIP and parameter reaches bulk ESS >= {GOAL_ESS:.0f} after {reached} "
        f"draws/chain: ~{est:.0f} s with tune={args.tune} (ratio {est / TARGET_SECONDS:.2f}); "
        f"~{est_short:.0f} s with tune=300"
    )
    if args.verify:
        fit2, wall2, notes2 = run(reached + 50, 300, args.seed + 1)
        ess2, label2 = min_bulk_ess(fit2)
        print(
            f"verify: 4 chains x (300 tune + {reached + 50} draws): wall {wall2:.1f} s "
            f"(ratio {wall2 / TARGET_SECONDS:.2f}), min bulk ESS {ess2:.0f} ({label2}), "
            f"warnings: {notes2 or 'none'}"
        )


if __name__ == "__main__":
    main()
