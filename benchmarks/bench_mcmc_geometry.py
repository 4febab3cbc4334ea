"""Why the MCMC arm is slow and divergent in weakly identified cells: sampler settings and
parametrizations measured side by side.

``python benchmarks/bench_mcmc_geometry.py [--reps 48] [--variants ...] [--fast]``

With slopes ``Normal(0, 5)``, the four-arm study's MCMC arm (``mcmc_batch`` with
``target_accept=0.95``) cost about three times as much per data set, and had divergent
transitions in most data sets, in cells where the between slope is weakly identified (few
groups, low ICC of X).  This script measures, in
three such cells and two easy ones (talk design, ``beta_b = 0.5``, ``beta_w = 0.2``, ``gamma =
0.3``; one seed per replication, so every variant sees the same data and seeds), the cost per
data set (CPU of this process, JAX compile excluded), the share of data sets with divergent
transitions, the mean number of divergences, reruns, non-converged data sets, the coverage
of the 95 % credible interval, the median posterior SD and the RMSE of the posterior mean of
beta_b, for:

* ``prior_5``: the study's settings before 0.2.0's change of prior (diagonal mass matrix,
  batches of 8 data sets, target acceptance 0.95, slopes ``Normal(0, 5)`` on the standardised
  scale as in ``fit_mcmc``); the variants below change one thing each against it;
* ``study``: the study's MCMC arm now, slopes ``Normal(0, 2.5)`` (``prior_slope_sd=2.5``);
* ``accept_0.8``: target acceptance 0.8 (``mcmc_batch``'s default);
* ``dense``: a dense mass matrix;
* ``batch_2``, ``batch_16``: 2 or 16 data sets per vectorised batch;
* ``scaled_1``, ``scaled_0.5``: an *experimental* parametrization, not shipped: sample
  ``w = (beta_b - beta_w) * tau_x ** lam`` (``lam = 1`` or ``0.5``) instead of ``beta_b``,
  the quantity the data identify when ``tau_x`` is small.  The script swaps it in by
  patching the sampler's log density and back-transform for the duration of the variant
  (``beta_b = beta_w + w * exp(-lam * log tau_x)``, log-Jacobian ``-lam * log tau_x``).

With ``--where`` it also runs plain blackjax NUTS (same log density and settings, one data
set at a time) on a few data sets of the hardest cell and prints where the divergent
transitions are: the mean of each unconstrained parameter over the divergent transitions
against its mean and 5-95 % range over all draws.

What it measured is in ``results/mcmc_geometry.csv`` and the CHANGELOG (0.2.0).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path

import numpy as np

import mlob_pp
from mlob_pp.comparisons.study.design import TALK_FIXED, simulate_replications

CELLS = [(0.05, 5, 5), (0.05, 20, 5), (0.1, 10, 5), (0.3, 20, 15), (0.5, 40, 30)]
TRUTH = {"beta_b": 0.5, "beta_w": 0.2}
VARIANTS = {
    "prior_5": {},
    "study": {"prior_slope_sd": 2.5},
    "accept_0.8": {"target_accept": 0.8},
    "dense": {"dense_mass": True},
    "batch_2": {"batch_size": 2},
    "batch_16": {"batch_size": 16},
    "scaled_1": {"lam": 1.0},
    "scaled_0.5": {"lam": 0.5},
}


@contextlib.contextmanager
def scaled_between_slope(lam: float):
    """Temporarily sample ``w = (beta_b - beta_w) * tau_x**lam`` in place of ``beta_b``."""
    import jax.numpy as jnp

    from mlob_pp.mcmc import batch, density, nuts

    make, to_scale = nuts.make_logdensity, batch._to_data_scale

    def make_scaled(k, slope_sd=density.SLOPE_SD):
        f = density.make_logdensity(k, slope_sd)

        def logdensity(theta, within, between, mbar, J, n):
            u = theta[6 + k]
            beta_b = theta[3] + theta[2] * jnp.exp(-lam * u)
            return f(theta.at[2].set(beta_b), within, between, mbar, J, n) - lam * u

        return logdensity

    def to_scale_scaled(pos, scale, k):
        pos = pos.copy()
        pos[..., 2] = pos[..., 3] + pos[..., 2] * np.exp(-lam * pos[..., 6 + k])
        return to_scale(pos, scale, k)

    nuts.compiled_warmup.cache_clear()
    nuts.compiled_sampling.cache_clear()
    nuts.make_logdensity, batch._to_data_scale = make_scaled, to_scale_scaled
    try:
        yield
    finally:
        nuts.make_logdensity, batch._to_data_scale = make, to_scale
        nuts.compiled_warmup.cache_clear()
        nuts.compiled_sampling.cache_clear()


def run_variant(name: str, reps: int, draws: int, tune: int) -> list[dict]:
    opts = {"target_accept": 0.95, "prior_slope_sd": 5.0, "draws": draws, "tune": tune,
            **VARIANTS[name]}
    lam = opts.pop("lam", None)
    context = scaled_between_slope(lam) if lam is not None else contextlib.nullcontext()
    rows = []
    with context:
        for icc, J, n in CELLS:
            params = dict(icc_x=icc, J=J, n=n, **TRUTH, **TALK_FIXED)
            y, x, c = simulate_replications(params, 0, reps, random_seed=7)
            size = opts.get("batch_size", 8)
            mlob_pp.mcmc_batch(y[:size], x[:size], c[:size], random_seed=1, **opts)  # compile
            c0 = time.process_time()
            res = mlob_pp.mcmc_batch(y, x, c, random_seed=list(range(reps)), **opts)
            cpu = (time.process_time() - c0) / reps
            row = {
                "variant": name, "prior_slope_sd": opts["prior_slope_sd"], "icc_x": icc,
                "J": J, "n": n, "reps": reps,
                "cpu_ms_per_data_set": 1000 * cpu,
                "share_divergent": float(np.mean(res.n_divergent > 0)),
                "mean_divergent": float(res.n_divergent.mean()),
                "share_rerun": float(np.mean(res.n_reruns > 0)),
                "n_not_converged": int(np.sum(~res.converged)),
                "coverage": float(np.mean((res.ci_lower <= TRUTH["beta_b"])
                                          & (res.ci_upper >= TRUTH["beta_b"]))),
                "median_posterior_sd": float(np.median(res.se_beta_b)),
                "rmse": float(np.sqrt(np.mean((res.beta_b - TRUTH["beta_b"]) ** 2))),
                "load_average": os.getloadavg()[0],
            }
            rows.append(row)
            print(f"{name:>11} icc_x={icc:<4} J={J:<2} n={n:<2} {row['cpu_ms_per_data_set']:6.0f} "
                  f"ms  divergent {row['share_divergent']:4.0%} (mean "
                  f"{row['mean_divergent']:5.1f})  rerun {row['share_rerun']:4.0%}  "
                  f"not conv {row['n_not_converged']}  coverage {row['coverage']:.2f}  "
                  f"median SD {row['median_posterior_sd']:.2f}  RMSE {row['rmse']:.2f}",
                  flush=True)
    return rows


def divergence_locations(sets: int, draws: int, tune: int) -> None:
    """Print where divergent transitions fall, in the cell (ICC_X 0.05, J 5, n 15)."""
    import blackjax
    import jax

    from mlob_pp.mcmc.density import (
        batch_statistics,
        import_jax,
        make_logdensity,
        parameter_names,
    )

    import_jax()
    params = dict(icc_x=0.05, J=5, n=15, **TRUTH, **TALK_FIXED)
    y, x, c = simulate_replications(params, 0, sets, random_seed=7)
    st = batch_statistics(y, x, c)
    f = make_logdensity(1)
    rng = np.random.default_rng(3)
    positions, divergent = [], []
    for b in range(sets):
        def target(theta, b=b):
            return f(theta, st["within"][b], st["between"][b], st["mbar"][b], st["J"], st["n"])

        for chain in range(4):
            key = jax.random.PRNGKey(10 * b + chain)
            warmup = blackjax.window_adaptation(blackjax.nuts, target,
                                                target_acceptance_rate=0.95)
            (state, tuned), _ = warmup.run(key, rng.uniform(-1, 1, 9), num_steps=tune)
            kernel = blackjax.nuts(target, **tuned)

            def step(s, k, kernel=kernel):
                new, info = kernel.step(k, s)
                return new, (new.position, info.is_divergent)

            _, (pos, div) = jax.lax.scan(step, state, jax.random.split(key, draws))
            positions.append(np.asarray(pos))
            divergent.append(np.asarray(div))
    pos, div = np.concatenate(positions), np.concatenate(divergent)
    print(f"cell ICC_X 0.05, J 5, n 15: {div.sum()} divergent of {div.size} transitions "
          f"({sets} data sets x 4 chains)")
    print(f"{'parameter':>14} {'mean':>7} {'5%':>7} {'95%':>7} {'mean at divergences':>20}")
    for j, name in enumerate(parameter_names(1)):
        q05, q95 = np.quantile(pos[:, j], [0.05, 0.95])
        print(f"{name:>14} {pos[:, j].mean():7.2f} {q05:7.2f} {q95:7.2f} "
              f"{pos[div, j].mean():20.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=48, help="data sets per cell")
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--fast", action="store_true", help="8 data sets, draws = tune = 200")
    parser.add_argument("--where", type=int, default=0, metavar="SETS",
                        help="also locate the divergences on SETS data sets (0: skip)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "mcmc_geometry.csv"))
    args = parser.parse_args()
    if args.fast:
        args.reps, args.draws, args.tune = 8, 200, 200
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.reps} data "
          f"sets per cell, 4 chains x ({args.tune} + {args.draws})")
    if args.where:
        divergence_locations(args.where, args.draws, args.tune)
    rows = [row for name in args.variants
            for row in run_variant(name, args.reps, args.draws, args.tune)]
    import pandas as pd

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out, index=False)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
