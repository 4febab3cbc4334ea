r"""Structural parametrisations of the two-level latent covariate model for :mod:`mlob_pp.ml.fit`.

Raw data vector per unit: :math:`x_{ij} = (Y_{ij}, X_{ij}, C_{ij1}, \dots, C_{ijk})`.

**Shared covariate slopes** (MLOB talk eqs. 5-6; Lüdtke et al. 2008), conditional on :math:`C`:

.. math::

    X_{ij} = \mu_X + u_j + e_{ij}, \quad
    Y_{ij} = \alpha + \beta_b (\mu_X + u_j) + \beta_w e_{ij} + C_{ij}^\top\gamma
             + \delta_j + \varepsilon_{ij},

with :math:`u_j \sim N(0, \tau^2_X)`, :math:`e_{ij} \sim N(0, \sigma^2_X)`,
:math:`\delta_j \sim N(0, \tau^2)`, :math:`\varepsilon_{ij} \sim N(0, \sigma^2)`. The modelled
vector is :math:`z = (Y - C^\top\gamma, X)`.

**Level-specific slopes** (the two-level SEM of lavaan and Mplus): every variable
:math:`v \in (X, C_1, \dots, C_k)` splits into a latent group part and a within part,
:math:`v_{ij} = v^B_j + v^W_{ij}`, with free means and free covariance matrices
:math:`\Phi_B`, :math:`\Phi_W` of those parts, and

.. math::

    Y^W_{ij} = \beta_w X^W_{ij} + C^{W\top}_{ij}\gamma_w + \varepsilon_{ij}, \quad
    Y^B_j = \alpha + \beta_b X^B_j + C^{B\top}_j\gamma_b + \delta_j .

With ``between_covariates=False`` the covariates are within-only variables (lavaan's model with
``level: 2  Y ~ X``): they have no between part (:math:`\Phi_B` covers X only) and no
:math:`\gamma_b`; their means are level-1 intercepts.

References
----------
Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B. (2008).
The multilevel latent covariate model. *Psychological Methods*, 13(3), 203-229.
https://doi.org/10.1037/a0012869
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlob_pp.ml.likelihood import Moments, SuffStats

__all__ = ["Spec", "shared_spec", "level_specific_spec", "moment_start", "moment_shared_spec",
           "moment_shared_start", "start_values"]


@dataclass(frozen=True)
class Spec:
    """A parametrisation: names, the moment map and the roles of the parameters."""

    names: tuple[str, ...]
    implied: object  # Callable[[ndarray], Moments]
    variances: dict = field(default_factory=dict)  # label -> index of a variance parameter
    exogenous: tuple[int, ...] = ()  # moments of X (and C): fixed under fixed_x
    q: int = 2  # dimension of the modelled vector


def _vech_index(m: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(m) for b in range(a, m)]


def _sym(values: np.ndarray, m: int) -> np.ndarray:
    out = np.zeros((m, m))
    for v, (a, b) in zip(values, _vech_index(m), strict=True):
        out[a, b] = out[b, a] = v
    return out


def shared_spec(cov_names: tuple[str, ...]) -> Spec:
    """Shared-slope model with parameters ``beta_b, beta_w, gamma_<term>, alpha, mu_x, ...``.

    The order is ``beta_b, beta_w, gamma..., alpha, mu_x, tau2_x, sigma2_x, tau2, sigma2``.
    """
    k = len(cov_names)
    names = (
        "beta_b",
        "beta_w",
        *(f"gamma_{c}" for c in cov_names),
        "alpha",
        "mu_x",
        "tau2_x",
        "sigma2_x",
        "tau2",
        "sigma2",
    )

    def implied(t: np.ndarray) -> Moments:
        bb, bw = t[0], t[1]
        gam = t[2 : 2 + k]
        alpha, mu_x, t2x, s2x, t2, s2 = t[2 + k :]
        a = np.zeros((2, 2 + k))
        a[0, 0] = 1.0
        a[1, 1] = 1.0
        a[0, 2:] = -gam
        mu = np.array([alpha + bb * mu_x, mu_x])
        sw = np.array([[bw * bw * s2x + s2, bw * s2x], [bw * s2x, s2x]])
        sb = np.array([[bb * bb * t2x + t2, bb * t2x], [bb * t2x, t2x]])
        return Moments(a, mu, sw, sb)

    idx = {n: i for i, n in enumerate(names)}
    return Spec(
        names=names,
        implied=implied,
        variances={n: idx[n] for n in ("tau2_x", "sigma2_x", "tau2", "sigma2")},
        exogenous=(idx["mu_x"], idx["tau2_x"], idx["sigma2_x"]),
        q=2,
    )


def level_specific_spec(cov_names: tuple[str, ...], between_covariates: bool = True) -> Spec:
    """Level-specific (two-level SEM) model; see the module docstring for the parameters."""
    k = len(cov_names)
    xc = ("x", *cov_names)
    m_w = k + 1
    m_b = k + 1 if between_covariates else 1
    names: list[str] = ["beta_w", *(f"gamma_w_{c}" for c in cov_names), "sigma2"]
    names += [f"phi_w[{xc[a]},{xc[b]}]" for a, b in _vech_index(m_w)]
    names += ["alpha", "beta_b"]
    if between_covariates:
        names += [f"gamma_b_{c}" for c in cov_names]
    names += ["tau2", "mu_x", *(f"mu_{c}" for c in cov_names)]
    names += [f"phi_b[{xc[a]},{xc[b]}]" for a, b in _vech_index(m_b)]
    n_vw = len(_vech_index(m_w))
    n_vb = len(_vech_index(m_b))
    q = k + 2

    def implied(t: np.ndarray) -> Moments:
        pos = 0
        bw = t[pos : pos + m_w]
        pos += m_w
        s2 = t[pos]
        pos += 1
        phi_w = _sym(t[pos : pos + n_vw], m_w)
        pos += n_vw
        alpha = t[pos]
        bb = t[pos + 1 : pos + 1 + m_b]
        pos += 1 + m_b
        t2 = t[pos]
        pos += 1
        mu_xc = t[pos : pos + m_w]
        pos += m_w
        phi_b = _sym(t[pos : pos + n_vb], m_b)
        sw = np.empty((q, q))
        sw[1:, 1:] = phi_w
        sw[1:, 0] = sw[0, 1:] = phi_w @ bw
        sw[0, 0] = bw @ phi_w @ bw + s2
        sb = np.zeros((q, q))
        sb[1 : 1 + m_b, 1 : 1 + m_b] = phi_b
        sb[1 : 1 + m_b, 0] = sb[0, 1 : 1 + m_b] = phi_b @ bb
        sb[0, 0] = bb @ phi_b @ bb + t2
        mu = np.concatenate([[alpha + bb @ mu_xc[:m_b]], mu_xc])
        return Moments(np.eye(q), mu, sw, sb)

    idx = {n: i for i, n in enumerate(names)}
    exo = [i for i, n in enumerate(names) if n.startswith(("phi_", "mu_"))]
    variances = {"sigma2": idx["sigma2"], "tau2": idx["tau2"]}
    variances.update({n: idx[n] for n in names if n.startswith("phi_") and _is_diag(n)})
    return Spec(
        names=tuple(names), implied=implied, variances=variances, exogenous=tuple(exo), q=q
    )


def _is_diag(name: str) -> bool:
    inner = name[name.index("[") + 1 : -1].split(",")
    return inner[0] == inner[1]


def moment_start(stats: SuffStats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ANOVA moment estimates ``(mean, Sigma_W, Sigma_B)`` of the raw vector (Sigma_B made PD)."""
    n_obs, n_groups = stats.n_obs, stats.n_groups
    sw = stats.within / max(n_obs - n_groups, 1)
    mean = stats.mean_sum.sum(axis=0) / n_groups
    cov_means = stats.mean_outer.sum(axis=0) / n_groups - np.outer(mean, mean)
    n_harm = n_groups / np.sum(stats.counts / stats.sizes)
    sb = cov_means - sw / n_harm
    vals, vecs = np.linalg.eigh((sb + sb.T) / 2)
    floor = 0.05 * np.maximum(np.diag(sw).min(), 1e-12) / n_harm
    sb = (vecs * np.maximum(vals, floor)) @ vecs.T
    return mean, sw, sb


def _regress(cov: np.ndarray) -> tuple[np.ndarray, float]:
    """Slopes of variable 0 on the others and the residual variance, from a covariance."""
    phi = cov[1:, 1:]
    b = np.linalg.solve(phi, cov[1:, 0])
    return b, float(cov[0, 0] - b @ cov[1:, 0])


def start_values(spec_kind: str, stats: SuffStats, k: int, between_covariates: bool) -> np.ndarray:
    """Start values of the structural parameters from the ANOVA moments."""
    mean, sw, sb = moment_start(stats)
    bw, s2 = _regress(sw)
    s2 = max(s2, 1e-3 * sw[0, 0])
    if spec_kind == "shared":
        gam = bw[1:]
        a = np.zeros((2, 2 + k))
        a[0, 0] = a[1, 1] = 1.0
        a[0, 2:] = -gam
        sw2, sb2, mean2 = a @ sw @ a.T, a @ sb @ a.T, a @ mean
        bw2, s2b = _regress(sw2)
        bb2, t2 = _regress(sb2)
        t2 = max(t2, 1e-3 * sw2[0, 0])
        alpha = mean2[0] - bb2[0] * mean2[1]
        return np.array(
            [bb2[0], bw2[0], *gam, alpha, mean2[1], sb2[1, 1], sw2[1, 1], t2, max(s2b, 1e-9)]
        )
    m_w = k + 1
    m_b = m_w if between_covariates else 1
    sbb = sb[: m_b + 1, : m_b + 1]
    bb, t2 = _regress(sbb)
    t2 = max(t2, 1e-3 * sb[0, 0] + 1e-12)
    alpha = mean[0] - bb @ mean[1 : 1 + m_b]
    vw = [sw[1 + a, 1 + b] for a, b in _vech_index(m_w)]
    vb = [sbb[1 + a, 1 + b] for a, b in _vech_index(m_b)]
    return np.array([*bw, s2, *vw, alpha, *bb, t2, *mean[1:], *vb])


def moment_shared_spec(cov_names: tuple[str, ...]) -> Spec:
    """Shared-slope model in its moment coordinates (the parametrisation :func:`fit_ml` fits).

    Parameters, in order: ``gamma_<term>`` (k), the mean of ``z = (Y - C'gamma, X)`` (``m_z,
    m_x``), its within covariance ``S[z,z], S[z,x], S[x,x]`` and between covariance ``B[z,z],
    B[z,x], B[x,x]``. The model is just-identified in these, and they stay well conditioned
    where a between variance is near zero (where ``beta_b = B[z,x]/B[x,x]`` is not); the
    structural parameters follow by :func:`mlob_pp.ml.labels.shared_labels`.
    """
    k = len(cov_names)
    names = (*(f"gamma_{c}" for c in cov_names), "m_z", "m_x", "S[z,z]", "S[z,x]", "S[x,x]",
             "B[z,z]", "B[z,x]", "B[x,x]")

    def implied(t: np.ndarray) -> Moments:
        a = np.zeros((2, 2 + k))
        a[0, 0] = a[1, 1] = 1.0
        a[0, 2:] = -t[:k]
        return Moments(a, t[k : k + 2].copy(), _sym(t[k + 2 : k + 5], 2), _sym(t[k + 5 :], 2))

    return Spec(names=names, implied=implied, variances={},
                exogenous=(k + 1, k + 4, k + 7), q=2)


def moment_shared_start(stats: SuffStats, k: int) -> np.ndarray:
    """Start values in the coordinates of :func:`moment_shared_spec` (ANOVA moments of z).

    The between covariance is the ANOVA estimate itself (it may be indefinite, as the ML
    estimate may) unless a group-size class would then have a covariance that is not positive
    definite; then it is the positive definite version of :func:`moment_start`.
    """
    mean, sw, sb = moment_start(stats)
    n_groups = stats.n_groups
    cov_means = stats.mean_outer.sum(axis=0) / n_groups - np.outer(mean, mean)
    n_harm = n_groups / np.sum(stats.counts / stats.sizes)
    sb_raw = cov_means - sw / n_harm
    gam = _regress(sw)[0][1:]
    a = np.zeros((2, 2 + k))
    a[0, 0] = a[1, 1] = 1.0
    a[0, 2:] = -gam
    s = a @ sw @ a.T
    b = a @ sb_raw @ a.T
    v = s[None] + stats.sizes[:, None, None] * b[None]
    if not np.all(np.linalg.eigvalsh(v) > 0):
        b = a @ sb @ a.T
    m = a @ mean
    return np.array([*gam, *m, s[0, 0], s[0, 1], s[1, 1], b[0, 0], b[0, 1], b[1, 1]])
