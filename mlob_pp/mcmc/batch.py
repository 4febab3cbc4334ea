"""Full MCMC of the latent covariate model for many balanced data sets at once.

:func:`mcmc_batch` samples the posterior of the model of
:func:`mlob_pp.models.latent_covariate.build_model` (shared covariate form, priors on the
standardised scale, group effects integrated out) for every data set of arrays shaped
(B, J, n): one log density from summary numbers per data set
(:mod:`mlob_pp.mcmc.density`, equal to the PyMC model's), NUTS vectorised over data sets and
chains with per-chain window adaptation (:mod:`mlob_pp.mcmc.nuts`), data sets sorted by a
difficulty proxy and sampled in small batches, and data sets that miss R-hat(beta_b) <= 1.01
or bulk ESS(beta_b) >= 400 continued to twice as long chains (up to ``max_reruns`` times).

Needs the ``[mcmc]`` extra (JAX and blackjax), imported on first call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlob_pp.mcmc.density import SLOPE_SD, batch_statistics, priors
from mlob_pp.mcmc.nuts import compiled_sampling, compiled_warmup, difficulty, initial_positions
from mlob_pp.seeds import is_seed_sequence, per_item_generators, seed_attr
from mlob_pp.validate import check_bool, check_int, check_positive, check_probability

__all__ = ["mcmc_batch", "MCMCBatchResult", "RHAT_MAX", "ESS_MIN"]

#: Convergence rule: a data set is rerun when R-hat(beta_b) exceeds this ...
RHAT_MAX = 1.01
#: ... or its bulk ESS(beta_b) is below this.
ESS_MIN = 400.0

#: Parameters summarised on the data's scale.
SUMMARISED = ("beta_b", "beta_w", "beta_c", "tau2", "sigma2", "tau2_x", "sigma2_x")


@dataclass
class MCMCBatchResult:
    """Posterior summaries of :func:`mcmc_batch`, one entry per data set (arrays (B,)).

    Attributes
    ----------
    beta_b, se_beta_b, ci_lower, ci_upper : ndarray (B,)
        Posterior mean, posterior SD and equal-tailed credible interval of beta_b.
    rhat, ess_bulk, ess_tail : ndarray (B,)
        Rank-normalised split R-hat and bulk / tail ESS of beta_b (final run).
    n_divergent : ndarray of int (B,)
        Divergent transitions after warm-up (final run, all chains).
    n_reruns : ndarray of int (B,)
        How many times each data set was rerun with longer chains.
    converged : ndarray of bool (B,)
        Whether the final run meets R-hat <= 1.01 and ESS(beta_b) >= 400.
    estimates, std_errors : dict of str to ndarray (B,)
        Posterior means and SDs of beta_b, beta_w, beta_c, tau2, sigma2, tau2_x, sigma2_x.
    draws : dict of str to ndarray (B, chains, draws), optional
        Draws on the data's scale (``return_draws=True``; final run, so the number of draws
        is that of the longest run and shorter runs are padded with NaN).
    attrs : dict
        Priors, settings, seed, timing and rerun counts.
    """

    beta_b: np.ndarray
    se_beta_b: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    rhat: np.ndarray
    ess_bulk: np.ndarray
    ess_tail: np.ndarray
    n_divergent: np.ndarray
    n_reruns: np.ndarray
    converged: np.ndarray
    estimates: dict[str, np.ndarray]
    std_errors: dict[str, np.ndarray]
    draws: dict[str, np.ndarray] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rerun(self) -> int:
        """Number of data sets rerun at least once."""
        return int(np.sum(self.n_reruns > 0))

    def __repr__(self) -> str:
        return (f"MCMCBatchResult(B={self.beta_b.shape[0]}, reruns={self.n_rerun}, "
                f"not converged={int(np.sum(~self.converged))}, "
                f"seconds={self.attrs.get('seconds', float('nan')):.2f})")


def _check_arrays(y: Any, x: Any, covariates: Any) -> tuple[np.ndarray, ...]:
    """Validate shapes and values; return float arrays."""
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    if y.ndim != 3:
        raise ValueError(f"`y` must be an array shaped (B, J, n); got shape {y.shape}")
    if x.shape != y.shape:
        raise ValueError(f"`x` must have the shape of `y` {y.shape}; got {x.shape}")
    B, J, n = y.shape
    if B < 1 or J < 3 or n < 2:
        raise ValueError(
            f"`y` needs B >= 1 data sets of J >= 3 groups of n >= 2; got (B, J, n) = {y.shape}")
    if covariates is not None:
        covariates = np.asarray(covariates, dtype=float)
        if covariates.ndim == 3:
            covariates = covariates[..., None]
        if covariates.shape[:3] != y.shape or covariates.ndim != 4:
            raise ValueError(
                f"`covariates` must be shaped (B, J, n, k) with (B, J, n) = {y.shape}; "
                f"got {covariates.shape}")
        if covariates.shape[-1] == 0:
            covariates = None
    for name, arr in (("y", y), ("x", x), ("covariates", covariates)):
        if arr is not None and not np.all(np.isfinite(arr)):
            bad = np.unique(np.nonzero(~np.isfinite(arr))[0])
            raise ValueError(f"`{name}` has NaN or infinite values in data sets {bad[:10]}")
    return y, x, covariates


def _check_variation(y: np.ndarray, x: np.ndarray, covariates: np.ndarray | None) -> None:
    """Raise when a column has no variation, or X none within groups, in some data set.

    "No variation" is relative to the data's scale: SD <= 1e-10 x (|mean| + SD).
    """
    cols = [("y", y), ("x", x)]
    if covariates is not None:
        cols += [(f"covariates[..., {i}]", covariates[..., i]) for i in range(covariates.shape[-1])]
    for name, arr in cols:
        sd = arr.std(axis=(1, 2))
        dead = np.nonzero(sd <= 1e-10 * (np.abs(arr.mean(axis=(1, 2))) + sd))[0]
        if dead.size:
            raise ValueError(f"`{name}` is constant in data sets {dead[:10]}: no variation")
    within = (x - x.mean(axis=2, keepdims=True)).std(axis=(1, 2))
    dead = np.nonzero(within <= 1e-10 * x.std(axis=(1, 2)))[0]
    if dead.size:
        raise ValueError(
            f"`x` is constant within groups in data sets {dead[:10]}: the within slope "
            "is not identified")


def _to_data_scale(pos: np.ndarray, scale: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Unconstrained draws (..., d) -> parameters on the data's scale (scale: (..., q))."""
    sy, sx = scale[..., 0:1], scale[..., 1:2]
    out = {
        "beta_b": pos[..., 2] * (sy / sx)[..., 0],
        "beta_w": pos[..., 3] * (sy / sx)[..., 0],
        "tau2": np.exp(2 * pos[..., 4 + k]) * sy[..., 0] ** 2,
        "sigma2": np.exp(2 * pos[..., 5 + k]) * sy[..., 0] ** 2,
        "tau2_x": np.exp(2 * pos[..., 6 + k]) * sx[..., 0] ** 2,
        "sigma2_x": np.exp(2 * pos[..., 7 + k]) * sx[..., 0] ** 2,
    }
    out["beta_c"] = out["beta_b"] - out["beta_w"]
    return out


class _Chains:
    """Per-data-set chain states, adapted parameters and draws across sampling rounds."""

    def __init__(self, stats: dict[str, Any], k: int, *, chains: int, tune: int, draws: int,
                 batch_size: int, dense: bool, max_doublings: int, target_accept: float,
                 slope_sd: float, streams: list[np.random.Generator]):
        self.stats, self.k, self.chains, self.streams = stats, k, chains, streams
        self.batch_size = batch_size
        self.warmup = compiled_warmup(k, tune, dense, max_doublings, target_accept, slope_sd)
        self.sample = compiled_sampling(k, draws, max_doublings, slope_sd)
        self.state: dict[int, Any] = {}
        self.tuned: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.draws: dict[int, list[np.ndarray]] = {}
        self.div: dict[int, int] = {}

    def _batches(self, idx: np.ndarray):
        """Yield (data set ids, lane -> data set map) in padded batches of equal lane count."""
        size = self.batch_size
        for start in range(0, idx.size, size):
            part = idx[start : start + size]
            pad = np.concatenate([part, np.repeat(part[-1:], size - part.size)])
            yield part, np.repeat(pad, self.chains)

    def _lane_stats(self, lanes: np.ndarray) -> tuple:
        st = self.stats
        return (st["within"][lanes], st["between"][lanes], st["mbar"][lanes], st["J"], st["n"])

    def _per_set(self, part: np.ndarray, draw: Any) -> np.ndarray:
        """Lane array from each data set's own stream; padding lanes copy the last set's.

        Padding draws nothing, so a data set's random numbers depend only on its own stream.
        """
        blocks = [draw(self.streams[i]) for i in part.tolist()]
        blocks += [blocks[-1]] * (self.batch_size - part.size)
        return np.concatenate(blocks)

    def _keys(self, part: np.ndarray) -> np.ndarray:
        c = self.chains
        return self._per_set(part, lambda g: g.integers(0, 2**32, size=(c, 2), dtype=np.uint32))

    def _store(self, part: np.ndarray, state: Any, pos: Any, div: Any) -> None:
        import jax

        c = self.chains
        pos = np.asarray(pos)
        div = np.asarray(div)
        for slot, i in enumerate(part.tolist()):
            lanes = slice(slot * c, (slot + 1) * c)
            self.state[i] = jax.tree_util.tree_map(lambda a, s=lanes: np.asarray(a)[s], state)
            self.draws.setdefault(i, []).append(pos[lanes])
            self.div[i] = self.div.get(i, 0) + int(div[lanes].sum())

    def start(self, idx: np.ndarray) -> None:
        """Warm up and sample data sets `idx` (in the given order)."""
        c = self.chains
        for part, lanes in self._batches(idx):
            init = self._per_set(part, lambda g: initial_positions(g, c, self.k))
            stats = self._lane_stats(lanes)
            state, step, imm = self.warmup(self._keys(part), init, *stats)
            step, imm = np.asarray(step), np.asarray(imm)
            for slot, i in enumerate(part.tolist()):
                self.tuned[i] = (step[slot * c : (slot + 1) * c], imm[slot * c : (slot + 1) * c])
            state, pos, div, _ = self.sample(self._keys(part), state, step, imm, *stats)
            self._store(part, state, pos, div)

    def extend(self, idx: np.ndarray, times: int) -> None:
        """Continue the chains of data sets `idx` by ``times`` x draws transitions."""
        import jax

        for part, lanes in self._batches(idx):
            pad = lanes[:: self.chains]
            stats = self._lane_stats(lanes)
            state = jax.tree_util.tree_map(
                lambda *a: np.concatenate(a), *[self.state[i] for i in pad])
            step = np.concatenate([self.tuned[i][0] for i in pad])
            imm = np.concatenate([self.tuned[i][1] for i in pad])
            for _ in range(times):
                state, pos, div, _ = self.sample(self._keys(part), state, step, imm, *stats)
                self._store(part, state, pos, div)

    def positions(self, i: int) -> np.ndarray:
        """All draws of data set `i`, shape (chains, draws so far, d)."""
        return np.concatenate(self.draws[i], axis=1)


def _diagnose(beta_b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank-normalised R-hat, bulk and tail ESS of draws shaped (B, chains, draws)."""
    from arviz_stats.base import array_stats

    rhat = np.asarray(array_stats.rhat(beta_b, chain_axis=-2, draw_axis=-1, method="rank"))
    bulk = np.asarray(array_stats.ess(beta_b, chain_axis=-2, draw_axis=-1, method="bulk"))
    tail = np.asarray(array_stats.ess(beta_b, chain_axis=-2, draw_axis=-1, method="tail",
                                      prob=0.05))
    return rhat, bulk, tail


def mcmc_batch(
    y: Any,
    x: Any,
    covariates: Any = None,
    *,
    draws: int = 500,
    tune: int = 500,
    chains: int = 4,
    random_seed: Any = None,
    conf_level: float = 0.95,
    max_reruns: int = 2,
    batch_size: int = 8,
    dense_mass: bool = False,
    max_doublings: int = 8,
    target_accept: float = 0.8,
    prior_slope_sd: float = SLOPE_SD,
    standardize: bool = True,
    return_draws: bool = False,
) -> MCMCBatchResult:
    """Sample the latent covariate model's posterior for every data set of a batch.

    Parameters
    ----------
    y, x : array_like, shape (B, J, n)
        Outcome and predictor of B balanced data sets (J groups of n).
    covariates : array_like, shape (B, J, n, k), optional
        Level-1 covariates (shared slope at both levels).
    draws, tune, chains : int
        Draws after warm-up, warm-up iterations and chains per data set.
    random_seed : None, int, numpy Generator, SeedSequence, or sequence of B of these
        Seed (see :mod:`mlob_pp.seeds`).  Every data set has its own random stream (initial
        values and NUTS keys): data set ``i`` gets child ``i`` of the seed's
        :class:`~numpy.random.SeedSequence`, or, for a sequence, the stream of
        ``random_seed[i]``.  So with a sequence of per-data-set seeds a data set's draws do not
        depend on which other data sets share the call, in what order, or how many reruns
        they need (at a fixed ``batch_size``, which fixes the compiled lane count).
    conf_level : float, default 0.95
        Probability of the equal-tailed credible interval.
    max_reruns : int, default 2
        Rounds of reruns for data sets that miss R-hat(beta_b) <= 1.01 or bulk
        ESS(beta_b) >= 400: each round continues their chains (same adaptation) until they
        are twice as long as before.
    batch_size : int, default 8
        Data sets sampled together (``batch_size * chains`` vectorised lanes); data sets are
        sorted by a difficulty proxy first, so a batch mixes few easy with hard ones.
    dense_mass : bool, default False
        Adapt a dense instead of a diagonal mass matrix.
    max_doublings : int, default 8
        Maximum NUTS tree depth (at most 2**max_doublings - 1 leapfrog steps).
    target_accept : float, default 0.8
        Target acceptance rate of the step-size adaptation.
    prior_slope_sd : float, default 5
        SD of the ``Normal(0, prior_slope_sd)`` priors of the slopes ``beta_b``, ``beta_w`` and
        ``gamma`` on the standardised scale.  The default is the prior of
        :func:`mlob_pp.fit_mcmc`.  The simulation study uses 2.5.  In cells with few groups and a
        low ICC of X the posterior of ``beta_b`` is then narrower, and sampling cheaper and
        with fewer divergent transitions (``benchmarks/bench_mcmc_geometry.py``).
    standardize : bool, default True
        Standardise each data set by its grand means and SDs before sampling (the priors are
        stated on that scale, as in :func:`mlob_pp.fit_mcmc`).  ``False`` samples the model
        with the same priors on the data's own scale (used by simulation-based calibration).
    return_draws : bool, default False
        Keep the draws on the data's scale in ``result.draws``.

    Returns
    -------
    MCMCBatchResult

    Examples
    --------
    >>> import numpy as np
    >>> from mlob_pp.simulate import simulate_arrays
    >>> y, x, c, _ = simulate_arrays((4,), 20, 10, np.random.default_rng(1),
    ...                              beta_b=0.8, beta_w=0.3)
    >>> res = mcmc_batch(y, x, random_seed=1)  # doctest: +SKIP
    >>> res.beta_b.shape  # doctest: +SKIP
    (4,)
    """
    t0 = time.perf_counter()
    draws = check_int(draws, "draws", minimum=20)
    tune = check_int(tune, "tune", minimum=20)
    chains = check_int(chains, "chains", minimum=2)
    max_reruns = check_int(max_reruns, "max_reruns", minimum=0)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    max_doublings = check_int(max_doublings, "max_doublings", minimum=1)
    conf_level = check_probability(conf_level, "conf_level")
    target_accept = check_probability(target_accept, "target_accept")
    prior_slope_sd = check_positive(prior_slope_sd, "prior_slope_sd")
    check_bool(dense_mass, "dense_mass")
    check_bool(standardize, "standardize")
    check_bool(return_draws, "return_draws")
    y, x, covariates = _check_arrays(y, x, covariates)
    k = 0 if covariates is None else covariates.shape[-1]
    _check_variation(y, x, covariates)
    stats = batch_statistics(y, x, covariates, standardize=standardize)

    streams = per_item_generators(random_seed, y.shape[0], "data set")
    order = np.argsort(difficulty(stats), kind="stable")
    runner = _Chains(stats, k, chains=chains, tune=tune, draws=draws, batch_size=batch_size,
                     dense=bool(dense_mass), max_doublings=max_doublings,
                     target_accept=target_accept, slope_sd=prior_slope_sd, streams=streams)
    runner.start(order)
    n_reruns = np.zeros(y.shape[0], dtype=int)
    rerun_counts: list[int] = []
    todo = order
    for attempt in range(max_reruns + 1):
        sub = np.stack([runner.positions(i) for i in todo])
        params = _to_data_scale(sub, stats["scale"][todo][:, None, None, :], k)
        rhat, bulk, _ = _diagnose(params["beta_b"])
        todo = todo[~((rhat <= RHAT_MAX) & (bulk >= ESS_MIN))]
        if attempt == max_reruns or not todo.size:
            break
        rerun_counts.append(int(todo.size))
        n_reruns[todo] += 1
        runner.extend(todo, 2**attempt)  # chains twice as long as before
    final = {"pos": {i: runner.positions(i) for i in order.tolist()}, "div": runner.div}
    return _summarise(final, stats, k, n_reruns, rerun_counts, conf_level, return_draws, {
        "draws": draws, "tune": tune, "chains": chains, "max_reruns": max_reruns,
        "batch_size": batch_size, "dense_mass": bool(dense_mass),
        "max_doublings": max_doublings, "target_accept": target_accept,
        "prior_slope_sd": prior_slope_sd, "standardize": bool(standardize),
        "conf_level": conf_level,
        "random_seed": ("one per data set" if is_seed_sequence(random_seed)
                        else seed_attr(random_seed)),
        "seconds_start": t0,
    })


def _summarise(final: dict[str, dict], stats: dict[str, Any], k: int, n_reruns: np.ndarray,
               rerun_counts: list[int], conf_level: float, return_draws: bool,
               settings: dict[str, Any]) -> MCMCBatchResult:
    """Posterior summaries per data set (chains may differ in length)."""
    n_sets = n_reruns.size
    est = {name: np.empty(n_sets) for name in SUMMARISED}
    sd = {name: np.empty(n_sets) for name in SUMMARISED}
    lo, hi = np.empty(n_sets), np.empty(n_sets)
    rhat, bulk, tail = np.empty(n_sets), np.empty(n_sets), np.empty(n_sets)
    longest = max(p.shape[1] for p in final["pos"].values())
    chains = settings["chains"]
    kept = {name: np.full((n_sets, chains, longest), np.nan) for name in SUMMARISED}
    alpha = 0.5 * (1.0 - conf_level)
    for length in sorted({p.shape[1] for p in final["pos"].values()}):
        ids = np.array([i for i, p in final["pos"].items() if p.shape[1] == length])
        sub = np.stack([final["pos"][i] for i in ids])
        params = _to_data_scale(sub, stats["scale"][ids][:, None, None, :], k)
        for name in SUMMARISED:
            est[name][ids] = params[name].mean(axis=(1, 2))
            sd[name][ids] = params[name].std(axis=(1, 2), ddof=1)
            if return_draws:
                kept[name][ids, :, :length] = params[name]
        flat = params["beta_b"].reshape(ids.size, -1)
        lo[ids], hi[ids] = np.quantile(flat, [alpha, 1.0 - alpha], axis=1)
        rhat[ids], bulk[ids], tail[ids] = _diagnose(params["beta_b"])
    div = np.array([final["div"][i] for i in range(n_sets)], dtype=int)
    t0 = settings.pop("seconds_start")
    seconds = time.perf_counter() - t0
    attrs = {
        "estimator": "mcmc", "inference_library": "blackjax", "model": "latent covariate "
        "model, shared covariate form, group effects integrated out, balanced data",
        "priors": priors(settings["prior_slope_sd"]),
        "prior_scale": "standardised data" if settings["standardize"] else "data's own scale",
        "settings": settings, "rhat_max": RHAT_MAX, "ess_min": ESS_MIN,
        "reruns_per_round": rerun_counts, "seconds": seconds,
        "seconds_per_data_set": seconds / n_sets,
    }
    converged = (rhat <= RHAT_MAX) & (bulk >= ESS_MIN)
    return MCMCBatchResult(
        beta_b=est["beta_b"], se_beta_b=sd["beta_b"], ci_lower=lo, ci_upper=hi, rhat=rhat,
        ess_bulk=bulk, ess_tail=tail, n_divergent=div, n_reruns=n_reruns, converged=converged,
        estimates=est, std_errors=sd, draws=kept if return_draws else None, attrs=attrs)
