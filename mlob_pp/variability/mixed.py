r"""Numeric core of the variability analysis: a linear mixed model fitted by statsmodels.

Model (two levels, group :math:`j = 1..J`, unit :math:`i = 1..n_j`):

.. math::

    y_j = X_j \beta + Z_j u_j + \varepsilon_j, \qquad
    u_j \sim N(0, G), \qquad \varepsilon_j \sim N(0, \sigma^2 I_{n_j}),

so :math:`V_j = Z_j G Z_j' + \sigma^2 I`. The one-way random-effects ANOVA is
:math:`X_j = Z_j = 1` (:math:`G = \tau_{00}`), the random-intercept contextual model has
:math:`Z_j = 1` and the random-slope model :math:`Z_j = [1, x^w_j]` (Raudenbush & Bryk 2002,
chapters 2-5).

The likelihood is maximised by :class:`statsmodels.regression.mixed_linear_model.MixedLM` (REML
or ML); nothing here is a general mixed-model fitter. What this module adds is a deliberate
optimizer choice and a check of the answer:

* statsmodels' default (BFGS from a unit variance ratio) can stop at a wrong point and still
  report convergence, and L-BFGS can collapse the between variance to 0 with an infinite
  log-likelihood (both seen on a balanced 160 x 70 design). The derivative-free Powell and
  Nelder-Mead searches were exact there. We therefore run **Powell** and
  **Nelder-Mead** (``ftol = 1e-10``; independently for random-intercept models, restarted from
  Powell's optimum with random slopes) and keep the fit with the larger *finite*
  log-likelihood; both log-likelihoods, their spread and the gradient norm at the optimum are
  recorded in ``optimizer``. The converged flags are recorded but never trusted on their own.
* Fixed-effect standard errors are the GLS ones, :math:`(\sum_j X_j' V_j^{-1} X_j)^{-1}` at the
  estimated variance components, as in lme4 and HLM (statsmodels' observed-Hessian SEs differ
  from lme4 by up to 0.5 % on HSB).
* Random effects (empirical-Bayes / BLUP) :math:`\hat u_j = G Z_j' V_j^{-1}(y_j - X_j\hat\beta)`
  with the comparative covariance :math:`G - G Z_j' P_j Z_j G`, which also accounts for the
  uncertainty of :math:`\hat\beta`, and the cross-covariance with :math:`\hat\beta`
  (Henderson 1975), so that intervals of group-specific coefficients such as the EB school mean
  :math:`\hat\gamma_{00} + \hat u_{0j}` are exact.

References
----------
Raudenbush, S. W., & Bryk, A. S. (2002). *Hierarchical Linear Models* (2nd ed.). Sage.
Henderson, C. R. (1975). Best linear unbiased estimation and prediction under a selection model.
*Biometrics*, 31(2), 423-447. https://doi.org/10.2307/2529430
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from mlob_pp.warnings import SingularFitWarning

__all__ = [
    "MixedFit",
    "SingularFitWarning",
    "fit_mixed",
    "loglik_random_intercept",
    "balanced_anova",
    "variance_cov_random_intercept",
    "OPTIMIZERS",
]

#: optimizers tried, in order (see the module docstring for why)
OPTIMIZERS: tuple[str, ...] = ("powell", "nm")

_SINGULAR_TOL = 1e-6  # smallest eigenvalue of G / sigma2 below this = singular (as lme4)


@dataclass(frozen=True)
class MixedFit:
    """Result of :func:`fit_mixed` (arrays in the order of the design columns and groups).

    Attributes
    ----------
    fe : ndarray, shape (p,)
        Fixed effects.
    cov_fe : ndarray, shape (p, p)
        GLS covariance of the fixed effects.
    cov_re : ndarray, shape (q, q)
        Between-group covariance matrix G.
    sigma2 : float
        Within-group (residual) variance.
    llf : float
        Log-likelihood (REML or ML; the same constants as lme4).
    reml : bool
        Whether REML was used.
    re : ndarray, shape (J, q)
        Empirical-Bayes predictions of the random effects.
    re_cov : ndarray, shape (J, q, q)
        Comparative covariance of the predictions, Var(u_hat_j - u_j).
    re_fe_cov : ndarray, shape (J, p, q)
        Cov(beta_hat - beta, u_hat_j - u_j) = -(X'V^-1X)^-1 X_j'V_j^-1 Z_j G, so that the error
        of a group-specific coefficient x'beta_hat + z'u_hat_j can be computed.
    singular : bool
        Whether G is singular (a variance on the boundary 0).
    cov_var : ndarray, shape (2, 2)
        Asymptotic covariance of (tau2, sigma2) from the observed information (random-intercept
        models; NaN with random slopes or on the boundary).
    optimizer : dict
        Method kept, log-likelihood and converged flag of every optimizer that was run.
    cov_vc : ndarray or None
        statsmodels' observed-information covariance of the variance parameters
        (lower triangle of G, then sigma2 is not included), if available.
    """

    fe: np.ndarray
    cov_fe: np.ndarray
    cov_re: np.ndarray
    sigma2: float
    llf: float
    reml: bool
    re: np.ndarray
    re_cov: np.ndarray
    re_fe_cov: np.ndarray
    singular: bool
    n_obs: int
    n_fe: int
    cov_var: np.ndarray = field(default_factory=lambda: np.full((2, 2), np.nan))
    optimizer: dict = field(default_factory=dict)

    @property
    def n_params(self) -> int:
        """Number of estimated parameters (fixed effects, G's lower triangle, sigma2)."""
        q = self.cov_re.shape[0]
        return self.n_fe + q * (q + 1) // 2 + 1

    @property
    def deviance(self) -> float:
        """-2 log-likelihood (the REML criterion under REML, as HLM and lme4 print it)."""
        return -2.0 * self.llf

    @property
    def aic(self) -> float:
        """Akaike information criterion, ``-2 llf + 2 k`` (lme4's convention, also for REML)."""
        return self.deviance + 2.0 * self.n_params

    @property
    def bic(self) -> float:
        """Bayesian information criterion, ``-2 llf + k log(N)`` (lme4's convention)."""
        return self.deviance + np.log(self.n_obs) * self.n_params


def _split(values: np.ndarray, codes: np.ndarray, n_groups: int) -> list[np.ndarray]:
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=n_groups))[:-1]
    return np.split(values[order], bounds)


def _run(model, reml: bool, method: str, start=None):
    """Fit with one optimizer, recording (not raising) statsmodels' warnings."""
    kwargs: dict = {"maxiter": 5000}
    if method in ("powell", "nm"):
        kwargs["ftol"] = 1e-10
    else:
        kwargs["gtol"] = 1e-9
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = model.fit(reml=reml, method=method, start_params=start, **kwargs)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
            return None, [f"{type(exc).__name__}: {exc}"]
    return res, [str(w.message) for w in caught]


def fit_mixed(
    y: np.ndarray,
    X: np.ndarray,
    codes: np.ndarray,
    Z: np.ndarray | None = None,
    *,
    reml: bool = True,
    n_groups: int | None = None,
) -> MixedFit:
    """Fit a two-level linear mixed model with statsmodels' MixedLM and check the optimum.

    Parameters
    ----------
    y : ndarray, shape (N,)
        Outcome.
    X : ndarray, shape (N, p)
        Fixed-effects design (with the intercept column).
    codes : ndarray of int, shape (N,)
        Group index 0..J-1 of every row.
    Z : ndarray, shape (N, q), optional
        Random-effects design; default a column of ones (random intercept).
    reml : bool
        REML (default) or ML.
    n_groups : int, optional
        J (default ``codes.max() + 1``).

    Returns
    -------
    MixedFit

    Raises
    ------
    FloatingPointError
        If no optimizer reaches a finite log-likelihood.
    """
    from statsmodels.regression.mixed_linear_model import MixedLM

    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    codes = np.asarray(codes, dtype=np.intp)
    J = int(codes.max()) + 1 if n_groups is None else int(n_groups)
    if Z is None:
        Z = np.ones((y.shape[0], 1))
    Z = np.asarray(Z, dtype=float)
    model = MixedLM(y, X, groups=codes, exog_re=Z)

    runs: dict[str, dict] = {}
    best = None
    for k, method in enumerate(OPTIMIZERS):
        # random intercept: every optimizer starts from statsmodels' default (independent
        # searches); with random slopes (slower, several variance parameters) the second
        # search restarts from the first one's optimum and confirms or improves it
        start = best[1].params_object if (k > 0 and Z.shape[1] > 1 and best) else None
        res, msgs = _run(model, reml, method, start=start)
        llf = float(res.llf) if res is not None else float("nan")
        runs[method] = {
            "llf": llf,
            "converged": bool(res.converged) if res is not None else False,
            "messages": msgs,
        }
        if res is not None and np.isfinite(llf) and (best is None or llf > best[1].llf):
            best = (method, res)
    if best is None:
        raise FloatingPointError(
            "no optimizer reached a finite log-likelihood "
            f"({', '.join(f'{m}: {r['llf']}' for m, r in runs.items())})"
        )
    kept, res = best
    llfs = [r["llf"] for r in runs.values() if np.isfinite(r["llf"])]
    try:  # gradient of the profiled log-likelihood at the optimum (a check, not a criterion)
        grad = model.score(res.params_object, profile_fe=True)
        grad_norm = float(np.sqrt(np.sum(np.asarray(grad) ** 2)))
    except Exception:  # pragma: no cover - statsmodels internals
        grad_norm = float("nan")
    optimizer = {
        "method": kept,
        "runs": runs,
        "llf_spread": float(max(llfs) - min(llfs)),
        "grad_norm": grad_norm,
    }

    G = np.atleast_2d(np.asarray(res.cov_re, dtype=float))
    sigma2 = float(res.scale)
    fe = np.asarray(res.fe_params, dtype=float)
    eig_min = float(np.linalg.eigvalsh(G).min()) if G.size else 0.0
    singular = eig_min <= _SINGULAR_TOL * sigma2
    if singular:  # snap the boundary to 0 as lme4 does (variance ratio below 1e-6)
        w, v = np.linalg.eigh(G)
        w[w <= _SINGULAR_TOL * sigma2] = 0.0
        G = (v * w) @ v.T
    cov_fe, re, re_cov, re_fe_cov = _gls(y, X, Z, codes, J, fe, G, sigma2)
    if Z.shape[1] == 1 and np.all(Z == 1.0):
        cov_var = variance_cov_random_intercept(y, X, codes, G[0, 0], sigma2, reml=reml)
    else:
        cov_var = np.full((2, 2), np.nan)
    return MixedFit(
        fe=fe,
        cov_fe=cov_fe,
        cov_re=G,
        sigma2=sigma2,
        llf=float(res.llf),
        reml=reml,
        re=re,
        re_cov=re_cov,
        re_fe_cov=re_fe_cov,
        singular=singular,
        n_obs=int(y.shape[0]),
        n_fe=int(X.shape[1]),
        cov_var=cov_var,
        optimizer=optimizer,
    )


def _gls(y, X, Z, codes, J, fe, G, sigma2):
    """GLS covariance of beta, BLUPs and their comparative covariance, group by group."""
    p, q = X.shape[1], Z.shape[1]
    ys, Xs, Zs = (_split(a, codes, J) for a in (y, X, Z))
    xtvx = np.zeros((p, p))
    parts = []
    for yj, Xj, Zj in zip(ys, Xs, Zs, strict=True):
        Vj = Zj @ G @ Zj.T + sigma2 * np.eye(yj.shape[0])
        c = np.linalg.cholesky(Vj)
        vx = np.linalg.solve(c.T, np.linalg.solve(c, np.column_stack([Xj, Zj, yj])))
        xtvx += Xj.T @ vx[:, :p]
        parts.append((Xj, Zj, yj, vx))
    cov_fe = np.linalg.inv(xtvx)
    cov_fe = 0.5 * (cov_fe + cov_fe.T)
    re = np.zeros((J, q))
    re_cov = np.zeros((J, q, q))
    re_fe_cov = np.zeros((J, p, q))
    for j, (Xj, Zj, yj, vx) in enumerate(parts):
        vix, viz, viy = vx[:, :p], vx[:, p : p + q], vx[:, p + q]
        resid_w = viy - vix @ fe  # V^-1 (y - X beta)
        re[j] = G @ Zj.T @ resid_w
        # Z' P Z with P = V^-1 - V^-1 X (X'V^-1X)^-1 X' V^-1
        ztpz = Zj.T @ viz - (Zj.T @ vix) @ cov_fe @ (vix.T @ Zj)
        re_cov[j] = G - G @ ztpz @ G
        re_fe_cov[j] = -cov_fe @ (vix.T @ Zj) @ G
    return cov_fe, re, re_cov, re_fe_cov


def loglik_random_intercept(
    y: np.ndarray,
    X: np.ndarray,
    codes: np.ndarray,
    tau2: float,
    sigma2: float,
    *,
    reml: bool = True,
) -> float:
    r"""Evaluate the (REML) log-likelihood of a random-intercept model in closed form.

    Independent of statsmodels (compound-symmetry inverse and determinant per group), used to
    check the optimum: :math:`V_j^{-1} = (I - \frac{\tau^2}{\sigma^2 + n_j\tau^2} 11')/\sigma^2`,
    :math:`\log|V_j| = (n_j - 1)\log\sigma^2 + \log(\sigma^2 + n_j\tau^2)`; the fixed effects
    are profiled (GLS). Constants as in lme4 (REML: :math:`(N - p)\log 2\pi` and
    :math:`\log|X'V^{-1}X|`).

    Parameters
    ----------
    y, X, codes : ndarray
        Outcome, fixed design and group index (0..J-1).
    tau2, sigma2 : float
        Between and within variance.
    reml : bool
        REML (default) or ML log-likelihood.

    Returns
    -------
    float
    """
    codes = np.asarray(codes, dtype=np.intp)
    J = int(codes.max()) + 1
    n = np.bincount(codes, minlength=J).astype(float)
    lam = tau2 / (sigma2 + n * tau2)
    sum_x = np.zeros((J, X.shape[1]))
    np.add.at(sum_x, codes, X)
    sum_y = np.bincount(codes, weights=y, minlength=J)
    xtvx = (X.T @ X - (sum_x.T * lam) @ sum_x) / sigma2
    xtvy = (X.T @ y - (sum_x.T * lam) @ sum_y) / sigma2
    beta = np.linalg.solve(xtvx, xtvy)
    r = y - X @ beta
    sum_r = np.bincount(codes, weights=r, minlength=J)
    quad = (r @ r - np.sum(lam * sum_r**2)) / sigma2
    logdet = np.sum((n - 1) * np.log(sigma2) + np.log(sigma2 + n * tau2))
    N, p = y.shape[0], X.shape[1]
    if reml:
        return float(
            -0.5 * ((N - p) * np.log(2 * np.pi) + logdet + np.linalg.slogdet(xtvx)[1] + quad)
        )
    return float(-0.5 * (N * np.log(2 * np.pi) + logdet + quad))


def balanced_anova(y: np.ndarray, codes: np.ndarray) -> dict[str, float]:
    r"""Closed-form REML and ML estimates of the one-way random-effects ANOVA (balanced data).

    With :math:`J` groups of :math:`n`, :math:`MSB = n\sum_j(\bar y_j - \bar y)^2/(J-1)` and
    :math:`MSW = \sum_{ij}(y_{ij} - \bar y_j)^2/(J(n-1))`: REML gives
    :math:`\hat\sigma^2 = MSW`, :math:`\hat\tau^2 = (MSB - MSW)/n`; ML gives
    :math:`\hat\sigma^2 = MSW`, :math:`\hat\tau^2 = ((1 - 1/J) MSB - MSW)/n` (when positive;
    Searle, Casella & McCulloch 1992, section 4.7). The grand mean is :math:`\bar y` in both.

    Parameters
    ----------
    y : ndarray, shape (N,)
        Outcome.
    codes : ndarray of int, shape (N,)
        Group index; every group must have the same size.

    Returns
    -------
    dict
        ``grand_mean, msb, msw, tau2_reml, sigma2_reml, tau2_ml, sigma2_ml, grand_mean_se_reml,
        grand_mean_se_ml``.

    Raises
    ------
    ValueError
        If the groups are not of equal size.

    References
    ----------
    Searle, S. R., Casella, G., & McCulloch, C. E. (1992). *Variance Components*. Wiley.
    https://doi.org/10.1002/9780470316856
    """
    codes = np.asarray(codes, dtype=np.intp)
    sizes = np.bincount(codes)
    if sizes.min() != sizes.max():
        raise ValueError(
            f"balanced_anova needs groups of equal size; got sizes {sizes.min()}..{sizes.max()}"
        )
    J, n = sizes.shape[0], int(sizes[0])
    means = np.bincount(codes, weights=y) / n
    gm = float(np.mean(y))
    msb = float(n * np.sum((means - gm) ** 2) / (J - 1))
    msw = float(np.sum((y - means[codes]) ** 2) / (J * (n - 1)))
    tau_reml = max((msb - msw) / n, 0.0)
    tau_ml = max(((1 - 1 / J) * msb - msw) / n, 0.0)
    return {
        "grand_mean": gm,
        "msb": msb,
        "msw": msw,
        "tau2_reml": tau_reml,
        "sigma2_reml": msw,
        "tau2_ml": tau_ml,
        "sigma2_ml": msw,
        "grand_mean_se_reml": float(np.sqrt((tau_reml + msw / n) / J)),
        "grand_mean_se_ml": float(np.sqrt((tau_ml + msw / n) / J)),
    }


def variance_cov_random_intercept(
    y: np.ndarray,
    X: np.ndarray,
    codes: np.ndarray,
    tau2: float,
    sigma2: float,
    *,
    reml: bool = True,
) -> np.ndarray:
    r"""Asymptotic covariance of (tau2, sigma2) of a random-intercept model.

    The inverse of the observed information, :math:`-H^{-1}`, with :math:`H` the Hessian of
    the (REML or profiled ML) log-likelihood :func:`loglik_random_intercept` in
    :math:`(\tau^2, \sigma^2)`, by central differences (relative step 1e-4).

    Parameters
    ----------
    y, X, codes : ndarray
        Outcome, fixed design and group index.
    tau2, sigma2 : float
        The estimates.
    reml : bool
        REML (default) or ML.

    Returns
    -------
    ndarray, shape (2, 2)
        NaN if ``tau2`` is on the boundary 0 or the Hessian is not negative definite.
    """
    theta = np.array([tau2, sigma2], dtype=float)
    if not (theta > 0).all():
        return np.full((2, 2), np.nan)
    h = 1e-4 * theta

    def f(t: np.ndarray) -> float:
        return loglik_random_intercept(y, X, codes, t[0], t[1], reml=reml)

    H = np.zeros((2, 2))
    for a in range(2):
        for b in range(a, 2):
            ea, eb = np.eye(2)[a] * h[a], np.eye(2)[b] * h[b]
            H[a, b] = H[b, a] = (
                f(theta + ea + eb) - f(theta + ea - eb) - f(theta - ea + eb) + f(theta - ea - eb)
            ) / (4 * h[a] * h[b])
    if not np.all(np.linalg.eigvalsh(H) < 0):
        return np.full((2, 2), np.nan)
    return np.linalg.inv(-H)


class FitCriteria:
    """Likelihood-based criteria of a result holding a :class:`MixedFit` as ``self.fit``."""

    fit: MixedFit

    @property
    def llf(self) -> float:
        """Log-likelihood (REML or ML)."""
        return self.fit.llf

    @property
    def deviance(self) -> float:
        """-2 log-likelihood (HLM's deviance; under REML the REML criterion)."""
        return self.fit.deviance

    @property
    def aic(self) -> float:
        """AIC (lme4 convention)."""
        return self.fit.aic

    @property
    def bic(self) -> float:
        """BIC (lme4 convention)."""
        return self.fit.bic
