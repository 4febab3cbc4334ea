"""Draws from an estimator's normal sampling distribution (only on request).

They are stored in a group named ``normal_approximation`` (dims ``chain``, ``draw``), never in
``posterior``: a point estimate with a standard error is not a posterior.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from mlob_pp.comparisons.labels import labels_to_dataset
from mlob_pp.seeds import as_generator, check_random_seed, seed_attr

__all__ = ["normal_approximation"]


def _normal_draws(
    estimate: pd.Series,
    std_error: pd.Series,
    vcov: pd.DataFrame | None,
    *,
    chains: int,
    draws: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Draw from N(estimate, vcov) (correlated where `vcov` covers labels, else independent)."""
    n = chains * draws
    out: dict[str, np.ndarray] = {}
    covered: list[str] = []
    if vcov is not None:
        covered = [
            lab
            for lab in estimate.index
            if lab in vcov.index and lab in vcov.columns and np.isfinite(estimate[lab])
        ]
        cov = vcov.loc[covered, covered].to_numpy(dtype=float) if covered else None
        if cov is not None and not np.all(np.isfinite(cov)):
            covered, cov = [], None
        if covered and cov is not None:
            cov = (cov + cov.T) / 2
            evals, evecs = np.linalg.eigh(cov)
            root = evecs * np.sqrt(np.clip(evals, 0.0, None))
            z = rng.standard_normal((n, len(covered)))
            sample = estimate[covered].to_numpy(dtype=float) + z @ root.T
            for i, lab in enumerate(covered):
                out[lab] = sample[:, i]
    for lab in estimate.index:
        if lab in out:
            continue
        if (
            lab == "beta_c"
            and "beta_b" in out
            and "beta_w" in out
            and "beta_b" in covered
            and "beta_w" in covered
        ):
            out[lab] = out["beta_b"] - out["beta_w"]  # derived: keeps the correlation
            continue
        se = float(std_error.get(lab, np.nan))
        out[lab] = float(estimate[lab]) + se * rng.standard_normal(n)
    return {lab: v.reshape(chains, draws) for lab, v in out.items()}


def normal_approximation(
    frame: pd.DataFrame,
    vcov: pd.DataFrame | None,
    *,
    chains: int,
    draws: int,
    random_seed: Any,
    terms: Sequence[str] | None,
) -> xr.Dataset:
    """Return draws from N(estimate, vcov) as the ``normal_approximation`` group."""
    check_random_seed(random_seed, r_allowed=False)
    rng = as_generator(random_seed)
    sample = _normal_draws(
        frame["estimate"], frame["std_error"], vcov, chains=chains, draws=draws, rng=rng
    )
    extra = {"chain": np.arange(chains), "draw": np.arange(draws)}
    group = labels_to_dataset(sample, terms=terms, extra_dims=extra)
    group.attrs["description"] = (
        "draws from the estimator's normal sampling distribution N(estimate, vcov); not a posterior"
    )
    group.attrs["draws_random_seed"] = seed_attr(random_seed)
    return group
