"""Vectorised NUTS (blackjax) over many data sets of the latent covariate model.

Every (data set, chain) pair is one *lane*: its own window adaptation (Stan's schedule:
step size by dual averaging, diagonal or dense mass matrix from the warm-up draws), then
``draws`` NUTS transitions, all lanes advanced together by ``jax.vmap`` inside one compiled
function.  A vmapped NUTS step costs as much as the deepest tree among its lanes, so callers
keep batches small and group data sets of similar difficulty (:func:`difficulty`).

JAX and blackjax are imported lazily (``[mcmc]`` extra).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from mlob_pp.mcmc.density import SLOPE_SD, import_jax, make_logdensity, n_parameters
from mlob_pp.optional import require

__all__ = [
    "import_blackjax", "compiled_warmup", "compiled_sampling", "initial_positions", "difficulty",
]


def import_blackjax() -> Any:
    """Import blackjax, or raise an ImportError naming the ``[mcmc]`` extra."""
    import_jax()
    return require("blackjax", "mcmc", "mcmc_batch")


@lru_cache(maxsize=16)
def compiled_warmup(k: int, tune: int, dense: bool, max_doublings: int,
                    target_accept: float = 0.8, slope_sd: float = SLOPE_SD) -> Any:
    """Jitted ``warmup(keys, init, within, between, mbar, J, n)`` over lanes (cached).

    Returns ``(state, step_size (L,), inverse_mass (L, d) or (L, d, d))``.
    """
    jax = import_jax()
    blackjax = import_blackjax()
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    logdensity = make_logdensity(k, slope_sd)

    def one_lane(key, init, within, between, mbar, J, n):
        def target(theta):
            return logdensity(theta, within, between, mbar, J, n)

        warmup = blackjax.window_adaptation(
            blackjax.nuts, target, is_mass_matrix_diagonal=not dense,
            adaptation_info_fn=get_filter_adapt_info_fn(),
            target_acceptance_rate=target_accept, max_num_doublings=max_doublings,
        )
        (state, params), _ = warmup.run(key, init, num_steps=tune)
        return state, params["step_size"], params["inverse_mass_matrix"]

    return jax.jit(jax.vmap(one_lane, in_axes=(0, 0, 0, 0, 0, None, None)))


@lru_cache(maxsize=16)
def compiled_sampling(k: int, draws: int, max_doublings: int,
                      slope_sd: float = SLOPE_SD) -> Any:
    """Jitted ``sample(keys, state, step_size, inverse_mass, within, between, mbar, J, n)``.

    Continues each lane's chain from ``state`` for ``draws`` NUTS transitions with fixed
    adapted parameters; returns ``(state, positions (L, draws, d), divergent (L,),
    mean_steps (L,))``.  Calling it again on the returned state extends the chains.
    """
    jax = import_jax()
    blackjax = import_blackjax()
    jnp = jax.numpy
    logdensity = make_logdensity(k, slope_sd)

    def one_lane(key, state, step_size, inverse_mass, within, between, mbar, J, n):
        def target(theta):
            return logdensity(theta, within, between, mbar, J, n)

        kernel = blackjax.nuts(target, step_size=step_size, inverse_mass_matrix=inverse_mass,
                               max_num_doublings=max_doublings)

        def step(carry, step_key):
            new_state, info = kernel.step(step_key, carry)
            return new_state, (new_state.position, info.is_divergent,
                               info.num_integration_steps)

        last, (pos, div, steps) = jax.lax.scan(step, state, jax.random.split(key, draws))
        return last, pos, jnp.sum(div), jnp.mean(steps)

    return jax.jit(jax.vmap(one_lane, in_axes=(0, 0, 0, 0, 0, 0, 0, None, None)))


def initial_positions(rng: np.random.Generator, lanes: int, k: int) -> np.ndarray:
    """Stan-style random inits: uniform(-2, 2) on the unconstrained scale, shrunk to (-1, 1)."""
    return rng.uniform(-1.0, 1.0, size=(lanes, n_parameters(k)))


def difficulty(stats: dict[str, np.ndarray]) -> np.ndarray:
    """Cheap proxy of how hard a data set is to sample (larger = harder).

    The reliability of the group means of X, ``lambda = tau2_x / (tau2_x + sigma2_x / n)``
    from moment estimates: when it is near 0 the between slope is weakly identified and
    NUTS needs deep trees.  Returns ``-lambda`` (so sorting ascending puts easy sets first).
    """
    J, n = stats["J"], stats["n"]
    s2x = stats["within"][:, 1, 1] / (J * (n - 1))
    msb = stats["between"][:, 1, 1] / max(J - 1.0, 1.0)
    t2x = np.maximum(msb - s2x / n, 0.0)
    return -(t2x / (t2x + s2x / n))
