r"""Numeric core of the variability analysis: two-level linear mixed models, checked.

Model (two levels, group :math:`j = 1..J`, unit :math:`i = 1..n_j`):

.. math::

    y_j = X_j \beta + Z_j u_j + \varepsilon_j, \qquad
    u_j \sim N(0, G), \qquad \varepsilon_j \sim N(0, \sigma^2 I_{n_j}),

so :math:`V_j = Z_j G Z_j' + \sigma^2 I`. The one-way random-effects ANOVA is
:math:`X_j = Z_j = 1` (:math:`G = \tau_{00}`), the random-intercept contextual model has
:math:`Z_j = 1` and the random-slope model :math:`Z_j = [1, x^w_j]` (Raudenbush & Bryk 2002,
chapters 2-5).

Engines (:func:`fit_mixed`, argument ``engine``):

* ``"sufficient"`` (default for random-intercept models): the likelihood depends on the data
  only through per-group sums and cross-products (:mod:`mlob_pp.variability.sufficient`); the
  REML/ML criterion is minimised over the one variance ratio :math:`\tau^2/\sigma^2` with
  :math:`\beta` and :math:`\sigma^2` profiled out. One pass over the rows, then work in
  :math:`O(J p^2)` per evaluation: 10^6 rows in seconds. Equal to the statsmodels engine to
  1e-6 (tests on HSB and simulated data).
* ``"statsmodels"`` (random slopes, or on request): statsmodels' MixedLM. Its default (BFGS from
  a unit variance ratio) can stop at a wrong point and still report convergence, and L-BFGS can
  collapse the between variance to 0 with an infinite log-likelihood (both seen on a balanced
  160 x 70 design). Random-intercept models: **Powell** from statsmodels' default start, then a
  BFGS polish from Powell's optimum (kept only if the log-likelihood does not drop). Random
  slopes: first the sufficient-statistics criterion is minimised over the Cholesky factor of
  :math:`G/\sigma^2` (lme4's parametrisation, bounded L-BFGS-B from two starts); statsmodels'
  BFGS then starts there (Powell from the default start if that fails). If that optimum is on
  the boundary (singular G), or statsmodels fails or ends lower, the lme4-style optimum is kept
  (statsmodels' gradient search crawled along the boundary: Nelder-Mead ran its 5,000 iterations,
  70-90 s on 200 rows). Every run's log-likelihood is recorded in ``optimizer``.

Every engine works on standardised data (outcome and predictors centred and scaled, mapped back
exactly), so results are equivariant under shifting and rescaling the outcome or a predictor.
Fixed-effect standard errors are the GLS ones, :math:`(\sum_j X_j' V_j^{-1} X_j)^{-1}` at the
estimated variance components, as in lme4 and HLM. Variance-component standard errors (all
models, random slopes included) come from the observed information of the variance parameters
(the Hessian of the log-likelihood with :math:`\beta` profiled out, central differences with
Richardson extrapolation). Random effects (empirical-Bayes / BLUP)
:math:`\hat u_j = G Z_j' V_j^{-1}(y_j - X_j\hat\beta)` come with the comparative covariance
:math:`G - G Z_j' P_j Z_j G` and the cross-covariance with :math:`\hat\beta` (Henderson 1975),
all from the same per-group statistics.

References
----------
Raudenbush, S. W., & Bryk, A. S. (2002). *Hierarchical Linear Models: Applications and Data
Analysis Methods* (2nd ed.). Sage.
Henderson, C. R. (1975). Best linear unbiased estimation and prediction under a selection model.
*Biometrics*, 31(2), 423-447. https://doi.org/10.2307/2529430
Bates, D., Mächler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models
using lme4. *Journal of Statistical Software*, 67(1). https://doi.org/10.18637/jss.v067.i01
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from mlob_pp.validate import check_choice
from mlob_pp.variability.sufficient import (
    MixedStats,
    Standardiser,
    fit_random_intercept,
    mixed_stats,
    profiled_deviance,
    profiled_sigma2,
    variance_information,
)
from mlob_pp.warnings import SingularFitWarning

__all__ = [
    "MixedFit",
    "SingularFitWarning",
    "fit_mixed",
    "loglik_random_intercept",
    "balanced_anova",
    "ENGINES",
]

#: engines of :func:`fit_mixed`
ENGINES: tuple[str, ...] = ("auto", "sufficient", "statsmodels")

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
        Whether G is singular (a variance on the boundary 0, or a correlation of +-1).
    n_obs, n_fe : int
        Rows and fixed effects.
    cov_var : ndarray, shape (k, k)
        Asymptotic covariance of the variance parameters (lower triangle of G row by row, then
        sigma2) from the observed information; NaN on the boundary.
    optimizer : dict
        Engine, method kept, and the log-likelihood of every optimizer run.
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

    @property
    def variance_se(self) -> np.ndarray:
        """Standard errors of the variance parameters (order of :attr:`cov_var`)."""
        return np.sqrt(np.diag(self.cov_var))


def fit_mixed(
    y: np.ndarray,
    X: np.ndarray,
    codes: np.ndarray,
    Z: np.ndarray | None = None,
    *,
    reml: bool = True,
    n_groups: int | None = None,
    engine: str = "auto",
) -> MixedFit:
    """Fit a two-level linear mixed model (REML or ML) and check the optimum.

    Parameters
    ----------
    y : ndarray, shape (N,)
        Outcome.
    X : ndarray, shape (N, p)
        Fixed-effects design (with the intercept column first).
    codes : ndarray of int, shape (N,)
        Group index 0..J-1 of every row.
    Z : ndarray, shape (N, q), optional
        Random-effects design; default a column of ones (random intercept).
    reml : bool
        REML (default) or ML.
    n_groups : int, optional
        J (default ``codes.max() + 1``).
    engine : {"auto", "sufficient", "statsmodels"}
        ``"auto"``: sufficient statistics for random-intercept models, statsmodels otherwise
        (see the module docstring).

    Returns
    -------
    MixedFit

    Raises
    ------
    ValueError
        If `engine` is unknown, or "sufficient" is asked for a random-slope model.
    FloatingPointError
        If no optimizer reaches a finite log-likelihood.
    """
    engine = check_choice(engine, "engine", ENGINES)
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    codes = np.asarray(codes, dtype=np.intp)
    J = int(codes.max()) + 1 if n_groups is None else int(n_groups)
    Z = np.ones((y.shape[0], 1)) if Z is None else np.asarray(Z, dtype=float)
    intercept_only = Z.shape[1] == 1 and bool(np.all(Z == 1.0))
    if engine == "auto":
        engine = "sufficient" if intercept_only else "statsmodels"
    if engine == "sufficient" and not intercept_only:
        raise ValueError(
            "`engine` 'sufficient' fits random-intercept models only; got a random-effects "
            f"design with {Z.shape[1]} columns (use engine='statsmodels' or 'auto')"
        )
    std = Standardiser.from_data(y, X, Z)
    ys, Xs, Zs = std.apply(y, X, Z)
    stats = mixed_stats(ys, Xs, Zs, codes, J)
    if engine == "sufficient":
        r = fit_random_intercept(stats, reml=reml)
        G_std = np.array([[r["tau2"]]])
        sigma2_std, llf_std = r["sigma2"], r["llf"]
        optimizer = {"engine": "sufficient", "method": "brent", "boundary": r["boundary"],
                     "evaluations": r["evaluations"], "runs": {"brent": {"llf": np.nan}}}
    else:
        G_std, sigma2_std, llf_std, optimizer = _fit_statsmodels(
            ys, Xs, Zs, codes, stats, reml=reml, start_from_stats=not intercept_only)
    llf = std.loglik(llf_std, stats.n_obs, stats.n_fe, reml)
    for run in optimizer["runs"].values():  # report log-likelihoods on the data's scale
        run["llf"] = std.loglik(run["llf"], stats.n_obs, stats.n_fe, reml)
    if engine == "sufficient":
        optimizer["runs"]["brent"]["llf"] = llf
    eig_min = float(np.linalg.eigvalsh(G_std).min())
    singular = eig_min <= _SINGULAR_TOL * sigma2_std
    if singular:  # snap the boundary to 0 as lme4 does (variance ratio below 1e-6)
        w, v = np.linalg.eigh(G_std)
        w[w <= _SINGULAR_TOL * sigma2_std] = 0.0
        G_std = (v * w) @ v.T
    fe_s, cov_fe_s, re_s, re_cov_s, re_fe_s = _gls(stats, G_std, sigma2_std)
    q_std = G_std.shape[0]
    k = q_std * (q_std + 1) // 2 + 1
    cov_var_s = (np.full((k, k), np.nan) if singular
                 else variance_information(stats, G_std, sigma2_std, reml=reml))
    q = G_std.shape[0]
    rows, cols = np.tril_indices(q)
    s = np.diag(std.S)
    d = std.scale**2 * np.append(s[rows] * s[cols], 1.0)
    S = std.S
    return MixedFit(
        fe=std.beta(fe_s),
        cov_fe=std.cov_beta(cov_fe_s),
        cov_re=std.G(G_std),
        sigma2=float(std.scale**2 * sigma2_std),
        llf=float(llf),
        reml=reml,
        re=std.scale * re_s @ S.T,
        re_cov=std.scale**2 * np.einsum("ab,jbc,dc->jad", S, re_cov_s, S),
        re_fe_cov=std.scale**2 * np.einsum("ab,jbc,dc->jad", std.T, re_fe_s, S),
        singular=bool(singular),
        n_obs=stats.n_obs,
        n_fe=stats.n_fe,
        cov_var=cov_var_s * np.outer(d, d),
        optimizer=optimizer,
    )


def _gls(stats: MixedStats, G: np.ndarray, sigma2: float):
    """GLS beta and its covariance, BLUPs and their covariances, from the statistics."""
    q = G.shape[0]
    Gam = G / sigma2
    w, v = np.linalg.eigh(Gam)
    L = v * np.sqrt(np.maximum(w, 0.0))
    M = np.eye(q) + np.einsum("ba,jbc,cd->jad", L, stats.ztz, L)
    K = np.einsum("ab,jbc,dc->jad", L, np.linalg.inv(M), L)  # L M^-1 L' per group
    # sigma2 Z'V^-1 W = Z'W - Z'Z K Z'W for W in (X, Z, y)
    zk = np.einsum("jab,jbc->jac", stats.ztz, K)
    zvx = stats.ztx - np.einsum("jab,jbk->jak", zk, stats.ztx)
    zvz = stats.ztz - np.einsum("jab,jbc->jac", zk, stats.ztz)
    zvy = stats.zty - np.einsum("jab,jb->ja", zk, stats.zty)
    A = stats.xtx - np.einsum("jak,jab,jbl->kl", stats.ztx, K, stats.ztx)
    b = stats.xty - np.einsum("jak,jab,jb->k", stats.ztx, K, stats.zty)
    beta = np.linalg.solve(A, b)
    cov_fe = sigma2 * np.linalg.inv(A)
    cov_fe = 0.5 * (cov_fe + cov_fe.T)
    resid = zvy - np.einsum("jak,k->ja", zvx, beta)  # sigma2 Z'V^-1 (y - X beta)
    re = np.einsum("ab,jb->ja", Gam, resid)
    # Z'PZ = Z'V^-1Z - Z'V^-1X cov_fe X'V^-1Z (sigma2 scalings collected)
    ztpz = (zvz / sigma2
            - np.einsum("jak,kl,jbl->jab", zvx, cov_fe, zvx) / sigma2**2)
    re_cov = G - np.einsum("ab,jbc,cd->jad", G, ztpz, G)
    re_fe_cov = -np.einsum("kl,jal,ab->jkb", cov_fe, zvx, G) / sigma2
    return beta, cov_fe, re, re_cov, re_fe_cov


def _run(model, reml: bool, method: str, start=None):
    """Fit with one statsmodels optimizer, recording (not raising) its warnings."""
    kwargs: dict = {"maxiter": 5000}
    if method in ("powell", "nm"):
        kwargs["ftol"] = 1e-10
    else:
        kwargs["gtol"] = 1e-10
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = model.fit(reml=reml, method=method, start_params=start, **kwargs)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
            return None, [f"{type(exc).__name__}: {exc}"]
    return res, [str(w.message) for w in caught]


def _fit_statsmodels(y, X, Z, codes, stats, *, reml, start_from_stats):
    """Fit MixedLM on standardised data with Powell (also started from our optimum)."""
    from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMParams

    model = MixedLM(y, X, groups=codes, exog_re=Z)
    starts: dict[str, tuple] = {"powell": ("powell", None)}
    runs: dict[str, dict] = {}
    own = None
    if start_from_stats:  # random slopes: BFGS from lme4-style optimum; Powell if that fails
        G0, dev0 = _optimise_cholesky(stats, reml=reml)
        starts = {"bfgs_from_cholesky": ("bfgs", MixedLMParams.from_components(
            fe_params=np.zeros(X.shape[1]), cov_re=G0)), **starts}
        w, v = np.linalg.eigh(G0)
        s2 = profiled_sigma2(stats, v * np.sqrt(np.maximum(w, 0.0)), reml=reml)
        own = (s2 * G0, s2, -0.5 * dev0)
        runs["lbfgsb_sufficient"] = {"llf": own[2], "converged": True, "messages": []}
        if np.linalg.eigvalsh(G0).min() <= _SINGULAR_TOL:
            # boundary optimum (singular G): statsmodels' gradient search crawls along the
            # boundary (70-90 s on 200 rows before) without improving it; lme4 stops here too
            return own[0], own[1], own[2], {"engine": "statsmodels",
                                            "method": "lbfgsb_sufficient (boundary)",
                                            "runs": runs, "llf_spread": 0.0}
    best = None
    for label, (method, start) in starts.items():
        if best is not None:
            break
        res, msgs = _run(model, reml, method, start=start)
        llf = float(res.llf) if res is not None else float("nan")
        runs[label] = {"llf": llf, "converged": bool(res is not None and res.converged),
                       "messages": msgs}
        if res is not None and np.isfinite(llf) and (best is None or llf > best[1].llf):
            best = (label, res)
    if best is None and own is not None and np.isfinite(own[2]):
        # statsmodels failed (seen with many singleton groups): keep the lme4-style optimum
        return own[0], own[1], own[2], {"engine": "statsmodels", "method": "lbfgsb_sufficient",
                                        "runs": runs, "llf_spread": np.nan}
    if best is None:
        raise FloatingPointError(
            "no optimizer reached a finite log-likelihood "
            f"({', '.join(f'{m}: {r['llf']}' for m, r in runs.items())})"
        )
    if best[0] == "powell":
        # polish with BFGS from there (Powell stops ~1e-7 short in flat directions); kept only
        # if the log-likelihood does not decrease
        res_b, msgs = _run(model, reml, "bfgs", start=best[1].params_object)
        llf_b = float(res_b.llf) if res_b is not None else float("nan")
        runs["bfgs_polish"] = {"llf": llf_b, "messages": msgs,
                               "converged": bool(res_b is not None and res_b.converged)}
        if res_b is not None and np.isfinite(llf_b) and llf_b >= best[1].llf:
            best = ("bfgs_polish", res_b)
    kept, res = best
    llfs = [r["llf"] for r in runs.values() if np.isfinite(r["llf"])]
    optimizer = {"engine": "statsmodels", "method": kept, "runs": runs,
                 "llf_spread": float(max(llfs) - min(llfs))}
    if own is not None and own[2] > float(res.llf) + 1e-9 * max(1.0, abs(own[2])):
        optimizer["method"] = "lbfgsb_sufficient"  # statsmodels ended lower: keep ours
        return own[0], own[1], own[2], optimizer
    G = np.atleast_2d(np.asarray(res.cov_re, dtype=float))
    return 0.5 * (G + G.T), float(res.scale), float(res.llf), optimizer


def _optimise_cholesky(stats: MixedStats, *, reml: bool) -> tuple[np.ndarray, float]:
    """Minimise the profiled criterion over the Cholesky factor of G / sigma2 (lme4's way)."""
    from scipy.optimize import minimize

    q = stats.n_re
    rows, cols = np.tril_indices(q)
    diag = rows == cols

    def dev(theta: np.ndarray) -> float:
        L = np.zeros((q, q))
        L[rows, cols] = theta
        value = profiled_deviance(stats, L, reml=reml)
        return value if np.isfinite(value) else 1e300

    bounds = [(0.0, None) if d else (None, None) for d in diag]
    best = None
    for scale in (1.0, 0.1):
        start = np.where(diag, scale, 0.0)
        res = minimize(dev, start, method="L-BFGS-B", bounds=bounds,
                       options={"ftol": 1e-14, "gtol": 1e-10, "maxiter": 2000})
        if best is None or res.fun < best.fun:
            best = res
    L = np.zeros((q, q))
    L[rows, cols] = best.x
    return L @ L.T, float(best.fun)


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


class FitCriteria:
    """Sizes and likelihood-based criteria of a result holding a :class:`MixedFit` as ``fit``.

    The result also provides ``group_sizes`` (rows per group, a pandas Series).
    """

    fit: MixedFit

    @property
    def n_obs(self) -> int:
        """Number of rows used (students)."""
        return int(self.group_sizes.sum())

    @property
    def n_groups(self) -> int:
        """Number of groups (schools)."""
        return int(self.group_sizes.shape[0])

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
