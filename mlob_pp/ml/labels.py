r"""Public parameters of the shared-slope model as functions of its moments (and their Jacobian).

The shared-slope latent covariate model is just-identified in the moments of
:math:`z = (Y - C^\top\gamma, X)`: the covariate slopes :math:`\gamma`, the mean :math:`\mu` of
z and the within and between covariances :math:`S = \Sigma_W` and :math:`\Sigma_B` map one to one
to the structural parameters (:math:`\beta_w = S_{01}/S_{11}`, :math:`\sigma^2 = S_{00} -
S_{01}^2/S_{11}`, :math:`\beta_b = \Sigma_{B,01}/\Sigma_{B,11}`, ...). Both :func:`mlob_pp.fit_ml`
and :func:`mlob_pp.ml_batch` maximise the likelihood in these moment coordinates, which stay well
conditioned when a between variance is near or below zero, and take the standard errors of the
structural parameters by the delta method with :func:`shared_labels`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["shared_labels", "VARIANCE_LABELS"]

#: labels of the variance parameters (a value at or below zero is a boundary estimate)
VARIANCE_LABELS = ("tau2_x", "sigma2_x", "tau2", "sigma2")


def shared_labels(gamma: np.ndarray, mu: np.ndarray, s: np.ndarray, sb: np.ndarray):
    """Return labels, estimates (B, L) and their gradients (B, L, d) in the moments.

    Parameters
    ----------
    gamma : ndarray (B, k)
    mu : ndarray (B, 2)
    s, sb : ndarray (B, 2, 2)
        Within and between covariance of ``z``.

    Returns
    -------
    names : list of str
        ``beta_b, beta_w, beta_c, gamma_0 ... gamma_{k-1}, alpha, mu_x, tau2_x, sigma2_x,
        icc_x, tau2, sigma2``.
    est : ndarray (B, L)
    jac : ndarray (B, L, d)
        Gradient in the coordinates ``(gamma, mu, S00, S01, S11, B00, B01, B11)``, d = k + 8.
    """
    n_b, k = gamma.shape
    s0, s1, s2 = s[:, 0, 0], s[:, 0, 1], s[:, 1, 1]
    b0, b1, b2 = sb[:, 0, 0], sb[:, 0, 1], sb[:, 1, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        bw, bb = s1 / s2, b1 / b2
        est = {
            "beta_b": bb, "beta_w": bw, "beta_c": bb - bw,
            **{f"gamma_{j}": gamma[:, j] for j in range(k)},
            "alpha": mu[:, 0] - bb * mu[:, 1], "mu_x": mu[:, 1], "tau2_x": b2,
            "sigma2_x": s2, "icc_x": b2 / (b2 + s2), "tau2": b0 - b1**2 / b2,
            "sigma2": s0 - s1**2 / s2,
        }
        pm, ps, pb = k, k + 2, k + 5
        jac = {name: np.zeros((n_b, k + 8)) for name in est}
        jac["beta_w"][:, ps + 1] = 1.0 / s2
        jac["beta_w"][:, ps + 2] = -s1 / s2**2
        jac["beta_b"][:, pb + 1] = 1.0 / b2
        jac["beta_b"][:, pb + 2] = -b1 / b2**2
        jac["beta_c"] = jac["beta_b"] - jac["beta_w"]
        for j in range(k):
            jac[f"gamma_{j}"][:, j] = 1.0
        jac["alpha"][:, pm] = 1.0
        jac["alpha"][:, pm + 1] = -bb
        jac["alpha"] -= mu[:, 1, None] * jac["beta_b"]
        jac["mu_x"][:, pm + 1] = 1.0
        jac["tau2_x"][:, pb + 2] = 1.0
        jac["sigma2_x"][:, ps + 2] = 1.0
        tot = b2 + s2
        jac["icc_x"] = (s2 / tot**2)[:, None] * jac["tau2_x"] - (b2 / tot**2)[:, None] * jac[
            "sigma2_x"]
        jac["tau2"][:, pb] = 1.0
        jac["tau2"][:, pb + 1] = -2.0 * b1 / b2
        jac["tau2"][:, pb + 2] = b1**2 / b2**2
        jac["sigma2"][:, ps] = 1.0
        jac["sigma2"][:, ps + 1] = -2.0 * s1 / s2
        jac["sigma2"][:, ps + 2] = s1**2 / s2**2
    names = list(est)
    return (names, np.stack([est[n] for n in names], axis=1),
            np.stack([jac[n] for n in names], axis=1))
