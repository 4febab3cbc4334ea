"""Benchmark of the true ML fit (mlob_pp.fit_ml) against lavaan's recorded timings.

Run: ``python benchmarks/bench_ml.py [--repeat 5]``. Prints the median wall time of one fit
(warm: imports and formula cache done) for

* simulated balanced data, J = 40 groups of n = 30 (``Y ~ X + C``), the shape of the reference
  set S12, against lavaan's two-level ``sem()`` on S12;
* HSB (``mAch ~ ses + minrty + sx``, group ``school``, 7185 pupils in 160 schools), against
  lavaan on ``hsb82`` (same data, 0/1 dummies);
* the reference sets themselves with ``fixed_x="lavaan"`` (lavaan's exact specification).

The baseline is the median elapsed time lavaan 0.6-14 needed in the reference runs
(``outputs/competitors/<ID>.json``, ``timing.median_s``; R on the same shared 2-core machine
under load, so the lavaan times are inflated, see the reference README). Ratio = lavaan / ours.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import mlob_pp
from mlob_pp.ml.fit import fit_ml

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("MLOB_PP_SHARED", ROOT.parent / "shared")) / "reference"


def _lavaan_time(set_id: str, level1_only: bool = False) -> float | None:
    path = REFERENCE / "outputs" / "competitors"
    path = path / "lavaan_l2X" / f"{set_id}.json" if level1_only else path / f"{set_id}.json"
    if not path.exists():
        return None
    ref = json.loads(path.read_text())
    if level1_only:
        return float(ref["elapsed_s"])
    return float(ref["lavaan"]["timing"]["median_s"])


def _time(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def _simulate(n_groups: int, n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(n_groups), n)
    u = rng.normal(0, np.sqrt(0.2), n_groups)[codes]
    e = rng.normal(0, np.sqrt(0.8), codes.shape[0])
    x = u + e
    c = 0.4 * x + rng.normal(0, 0.9, codes.shape[0])
    y = 0.5 * u + 0.3 * e + 0.3 * c + rng.normal(0, 0.3, n_groups)[codes]
    y += rng.normal(0, 0.8, codes.shape[0])
    return pd.DataFrame({"Y": y, "X": x, "C": c, "group": codes})


def _row(label: str, seconds: float, baseline: float | None) -> str:
    base = f"{baseline:8.3f}" if baseline is not None else "       -"
    ratio = f"{baseline / seconds:8.1f}x" if baseline is not None else "        -"
    return f"{label:58s} {seconds:9.4f} {base} {ratio}"


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore", mlob_pp.validate.MLOBWarning)

    print(f"{'fit':58s} {'ours s':>9s} {'lavaan s':>8s} {'ratio':>9s}")
    sim = _simulate(40, 30)
    s12 = _lavaan_time("S12")
    for form in ("shared", "level_specific"):
        t = _time(lambda f=form: fit_ml("Y ~ X + C", sim, "group", covariates=f), args.repeat)
        print(_row(f"simulated J=40 n=30, covariates={form}", t, s12))

    hsb = mlob_pp.datasets.load("hsb")
    lav_hsb = _lavaan_time("hsb82")
    for form in ("shared", "level_specific"):
        t = _time(
            lambda f=form: fit_ml("mAch ~ ses + minrty + sx", hsb, "school", covariates=f),
            args.repeat,
        )
        print(_row(f"HSB J=160 N=7185, covariates={form}", t, lav_hsb))

    for set_id, level1_only in (("S12", False), ("S12", True), ("hsb82", False),
                                ("hsb82", True)):
        meta = json.loads((REFERENCE / "data" / f"{set_id}.json").read_text())
        df = pd.read_csv(REFERENCE / "data" / meta.get("csv", f"{set_id}.csv"))
        t = _time(
            lambda m=meta, d=df, b=not level1_only: fit_ml(
                m["formula"], d, m["group"], covariates="level_specific",
                between_covariates=b, fixed_x="lavaan"),
            args.repeat,
        )
        what = "level 2: Y ~ X" if level1_only else "level 2: Y ~ X + C..."
        print(_row(f"{set_id} lavaan spec ({what})", t, _lavaan_time(set_id, level1_only)))


if __name__ == "__main__":
    main()
