"""R MLOB's randomised delete-one-per-group jackknife (``se="jackknife"``)."""

from __future__ import annotations

import numpy as np

from mlob_pp.closed_form.core import mlob_batch
from mlob_pp.rrandom import RRandom

__all__ = ["jackknife_se"]


def jackknife_se(Y, X, C, rng, conf_level: float, mode: str):
    """R's randomised delete-one-per-group jackknife SEs for each balanced data set.

    ``r = min(n, 50)`` replicates each delete one random row per group (``RRandom`` reproduces
    R's ``sample(n, J, replace = TRUE)``); SE = sqrt((n - 1)/n * sum of squared deviations).

    Parameters
    ----------
    Y, X : ndarray (m, J, n)
    C : ndarray (m, J, n, k)
    rng : numpy.random.Generator or RRandom

    Returns
    -------
    se_beta : ndarray (m,)
    se_gamma : ndarray (m, k)
    """
    m, J, n = X.shape
    r = min(n, 50)
    k = C.shape[-1]
    se_beta = np.empty(m)
    se_gamma = np.empty((m, k))
    for i in range(m):
        drops = np.empty((r, J), dtype=np.intp)
        for rep in range(r):
            if isinstance(rng, RRandom):
                drops[rep] = rng.sample_replace(n, J)
            else:
                drops[rep] = rng.integers(0, n, size=J)
        keep = np.ones((r, J, n), dtype=bool)
        keep[np.arange(r)[:, None], np.arange(J)[None, :], drops] = False
        Yr = np.broadcast_to(Y[i], (r, J, n))[keep].reshape(r, J, n - 1)
        Xr = np.broadcast_to(X[i], (r, J, n))[keep].reshape(r, J, n - 1)
        Cr = None
        if k:
            Cr = np.broadcast_to(C[i], (r, J, n, k))[keep].reshape(r, J, n - 1, k)
        rep_res = mlob_batch(Yr, Xr, Cr, conf_level=conf_level, mode=mode, warn=False)
        scale = (n - 1) / n
        se_beta[i] = np.sqrt(scale * np.sum((rep_res.beta_b - rep_res.beta_b.mean()) ** 2))
        if k:
            dev = rep_res.gamma - rep_res.gamma.mean(axis=0)
            se_gamma[i] = np.sqrt(scale * np.sum(dev**2, axis=0))
    return se_beta, se_gamma
