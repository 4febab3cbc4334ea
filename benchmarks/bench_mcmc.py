"""Benchmark of the MCMC fit of the latent covariate model (``python benchmarks/bench_mcmc.py``).

Data simulated from the model with J = 40 groups of n = 30 (one covariate).  Reported:

* ``fit_mcmc`` cold (compile + sampling, separately) and warm (a new data set of the same
  structure: the compiled model is reused, no compile);
* effective sample size of ``beta_b`` (bulk) per second of sampling; target: sampling under
  10 s for ESS >= 1000 on beta_b;
* baseline: the textbook PyMC model with the group effects as parameters (non-centred latent
  group means ``mu_xj = mu_x + tau_x z_j`` and random intercepts ``delta_j``, normal likelihood
  of all N outcomes and predictors), sampled with nutpie on the same data: the ratio shows what
  integrating the group effects out buys;
* the level-specific form on HSB (J = 160, N = 7185).

Timings depend on the load of the machine (2 cores shared with other work): the load average
is printed with the results.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

import mlob_pp
from mlob_pp.mcmc.fit import clear_compiled_models, fit_mcmc
from mlob_pp.models import latent_covariate as lc


def ess_beta_b(idata, name="beta_b"):
    from arviz_stats.base import array_stats

    arr = np.asarray(idata["posterior"][name])
    return float(array_stats.ess(arr, chain_axis=0, draw_axis=1, method="bulk"))


def naive_model(data):
    """Group effects as parameters (non-centred), likelihood over all rows."""
    pm = lc.import_pymc()

    from mlob_pp.formula.parse import parse_formula

    mf = parse_formula("y ~ x + c1", data, "g")
    g = mf.group_codes
    sy, sx = mf.y.std(), mf.x.std()
    coords = {"group": mf.group_labels, "obs": np.arange(mf.n_obs)}
    with pm.Model(coords=coords) as model:
        alpha = pm.Normal("alpha", mf.y.mean(), 2.5 * sy)
        mu_x = pm.Normal("mu_x", mf.x.mean(), 2.5 * sx)
        beta_b = pm.Normal("beta_b", 0, 5 * sy / sx)
        beta_w = pm.Normal("beta_w", 0, 5 * sy / sx)
        gamma = pm.Normal("gamma", 0, 5 * sy / mf.covariates[:, 0].std())
        tau_x = pm.HalfNormal("tau_x", sx)
        sigma_x = pm.HalfNormal("sigma_x", sx)
        tau = pm.HalfNormal("tau", sy)
        sigma = pm.HalfNormal("sigma", sy)
        z = pm.Normal("z", 0, 1, dims="group")
        d = pm.Normal("d", 0, 1, dims="group")
        mu_xj = mu_x + tau_x * z
        pm.Normal("x", mu_xj[g], sigma_x, observed=mf.x, dims="obs")
        mean = (alpha + beta_b * mu_xj[g] + beta_w * (mf.x - mu_xj[g])
                + gamma * mf.covariates[:, 0] + tau * d[g])
        pm.Normal("y", mean, sigma, observed=mf.y, dims="obs")
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--no-hsb", action="store_true")
    args = parser.parse_args()
    kw = {"draws": args.draws, "tune": args.tune, "chains": args.chains}
    warnings.simplefilter("ignore", DeprecationWarning)
    print(f"load average at start: {os.getloadavg()}")
    print(f"settings: {args.chains} chains x {args.draws} draws (tune {args.tune})\n")

    data, _ = lc.simulate(40, 30, random_seed=1)
    data2, _ = lc.simulate(40, 30, random_seed=2)
    clear_compiled_models()
    t0 = time.perf_counter()
    mc = fit_mcmc("y ~ x + c1", data, "g", random_seed=1, **kw)
    cold_total = time.perf_counter() - t0
    ess = ess_beta_b(mc.idata)
    print("fit_mcmc, shared slopes, J = 40, n = 30 (cold: compiles)")
    print(f"  compile {mc.compile_time:6.2f} s   sampling {mc.sampling_time:6.2f} s   "
          f"total wall {cold_total:6.2f} s (incl. model build, post-processing)")
    print(f"  ESS bulk beta_b {ess:7.0f}   ESS/s (sampling) {ess / mc.sampling_time:9.0f}   "
          f"target (<10 s for ESS >= 1000): "
          f"{'met' if ess >= 1000 and mc.sampling_time < 10 else 'NOT met'}")
    t0 = time.perf_counter()
    mc2 = fit_mcmc("y ~ x + c1", data2, "g", random_seed=2, **kw)
    warm_total = time.perf_counter() - t0
    ess2 = ess_beta_b(mc2.idata)
    print("fit_mcmc, new data of the same structure (warm: compiled model reused)")
    print(f"  compile {mc2.compile_time:6.2f} s   sampling {mc2.sampling_time:6.2f} s   "
          f"total wall {warm_total:6.2f} s")
    print(f"  ESS bulk beta_b {ess2:7.0f}   ESS/s (sampling) {ess2 / mc2.sampling_time:9.0f}")

    if not args.no_baseline:
        import nutpie

        model = naive_model(data)
        t0 = time.perf_counter()
        compiled = nutpie.compile_pymc_model(model)
        t_comp = time.perf_counter() - t0
        t0 = time.perf_counter()
        raw = nutpie.sample(compiled, seed=1, progress_bar=False, **kw)
        t_samp = time.perf_counter() - t0
        ess_n = ess_beta_b(raw)
        n_div = int(np.asarray(raw["sample_stats"]["diverging"]).sum())
        print("baseline: group effects as parameters (non-centred), nutpie")
        print(f"  compile {t_comp:6.2f} s   sampling {t_samp:6.2f} s   divergences {n_div}")
        print(f"  ESS bulk beta_b {ess_n:7.0f}   ESS/s (sampling) {ess_n / t_samp:9.0f}")
        print(f"  ratio marginalised / baseline: sampling time {mc.sampling_time / t_samp:.3f}, "
              f"ESS/s {(ess / mc.sampling_time) / (ess_n / t_samp):.1f}x")

    if not args.no_hsb:
        hsb = mlob_pp.datasets.load("hsb")
        t0 = time.perf_counter()
        mc3 = fit_mcmc("mAch ~ ses + minrty + sx", hsb, "school", covariates="level_specific",
                       random_seed=1, log_likelihood=False, **kw)
        total = time.perf_counter() - t0
        ess3 = ess_beta_b(mc3.idata)
        print("fit_mcmc, level-specific slopes, HSB (J = 160, N = 7185)")
        print(f"  compile {mc3.compile_time:6.2f} s   sampling {mc3.sampling_time:6.2f} s   "
              f"total wall {total:6.2f} s")
        print(f"  ESS bulk beta_b {ess3:7.0f}   ESS/s (sampling) {ess3 / mc3.sampling_time:9.0f}")
        print(f"  beta_b = {mc3.coef['beta_b']:.3f} (posterior SD {mc3.se['beta_b']:.3f}); "
              "lavaan 5.430 (SE 0.419)")
    print(f"\nload average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
