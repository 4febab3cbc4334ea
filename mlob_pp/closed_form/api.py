"""``mlob()``: the formula front end of the closed-form MLOB estimator.

It parses the formula, balances the groups as R MLOB does (seeded; optionally averaged over many
random balancings), sorts rows by group, runs the batched core
(:func:`mlob_pp.closed_form.core.mlob_batch`) and assembles both of R's tables.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.closed_form.balance import check_plan, draw_balance, plan_balance
from mlob_pp.closed_form.core import BatchResult, _warn_flags, mlob_batch
from mlob_pp.formula.parse import ModelFrame, parse_formula
from mlob_pp.closed_form.result import MLOBResult
from mlob_pp.rrandom import RRandom
from mlob_pp.validate import (
    as_generator,
    check_bool,
    check_choice,
    check_fraction,
    check_int,
    check_positive,
    check_probability,
    check_random_state,
)

__all__ = ["mlob"]

_REL_TOL = 1e-12


def mlob(
    formula: str,
    data: pd.DataFrame,
    group: str,
    *,
    balancing_limit: float = 0.2,
    conf_level: float = 0.95,
    jackknife: bool = False,
    punish_coeff: float = 2.0,
    random_state: int | np.random.Generator | RRandom | None = None,
    mode: str = "r",
    n_balance: int = 1,
    missing: str = "raise",
    se: str = "analytic",
    n_boot: int = 2000,
) -> MLOBResult:
    """Fit the optimally regularised Bayesian estimator of the between-group effect beta_b.

    A port of ``MultiLevelOptimalBayes::mlob()`` (R package 0.0.2.0) that reproduces its
    numbers on balanced, group-sorted data and fixes its known problems (see the README
    section "Where mlob_pp differs from R MLOB").

    Parameters
    ----------
    formula : str
        ``"y ~ x + c1 + c2"``: outcome, target regressor x (first right-hand term, numeric;
        its between-group effect is ``beta_b``) and level-1 covariates (``gamma_<term>``).
        Interactions, transformations and categorical covariates work as in R.
    data : pandas.DataFrame
        One row per level-1 unit; rows need not be sorted by group.
    group : str
        Name of the grouping column.
    balancing_limit : float, default 0.2
        Largest share of rows, and of groups, that balancing may delete (R's
        ``balancing.limit``).
    conf_level : float, default 0.95
        Confidence level of the intervals. R's ``conf.level`` is the significance level:
        R's ``conf.level = 0.05`` is ``conf_level = 0.95`` here.
    jackknife : bool, default False
        Replace the SEs of beta_b and of the gammas by R's randomised delete-one-per-group
        jackknife (r = min(n, 50) replicates, scale (n - 1)/n); needs groups of >= 3 rows.
    punish_coeff : float, default 2.0
        Cost multiplier for rows lost by dropping whole groups in balancing.
    random_state : int, numpy.random.Generator, RRandom or None
        Source of the balancing deletions and jackknife draws. ``RRandom(seed)`` reproduces
        R's ``set.seed(seed)`` runs exactly.
    mode : {"r", "stable"}, default "r"
        ``"r"`` reproduces R's numbers (including its fragile branches, with a warning when
        they decide the result); ``"stable"`` uses scale-free thresholds and the
        moment-consistent criterion without poles (recommended for J <= 5).
    n_balance : int, default 1
        Number of independent random balancings. With more than one, each balanced data set
        is fitted and the fits are combined by Rubin's rules (estimate = mean; variance =
        mean within variance + (1 + 1/m) between variance), so that results on unbalanced data
        do not hinge on one random deletion. Ignored for balanced data.
    missing : {"raise", "drop"}, default "raise"
        Missing values raise a ``ValueError`` naming the column, or are dropped with a
        warning saying how many rows.
    se : {"analytic", "jackknife", "bootstrap"}, default "analytic"
        Standard errors and intervals of the regularized table. ``"analytic"`` is R's
        ratio-of-Gammas SE with Wald intervals (far too small in simulations, see
        ``docs/bootstrap.md``); ``"jackknife"`` is R's randomised jackknife
        (``jackknife=True`` is R's spelling of it); ``"bootstrap"`` is a parametric bootstrap
        from the fitted latent covariate model with ``n_boot`` refits and test-inversion
        intervals (:func:`mlob_pp.closed_form.bootstrap.parametric_bootstrap`), the calibrated choice. The
        ML (``ml_moments``) table keeps its analytic SE.
    n_boot : int, default 2000
        Number of bootstrap refits (``se="bootstrap"`` only).

    Returns
    -------
    MLOBResult
        ``coef``, ``se``, ``summary_frame("mlob" | "ml")``, R-style ``print``/``summary()``.

    Raises
    ------
    TypeError
        Wrong argument types, non-numeric outcome or target.
    ValueError
        Bad values (see the error catalogue in the README): unknown columns, empty data,
        missing or infinite values, fewer than 2 groups, groups of size 1, no between- or
        within-group variation, collinear covariates, balancing over the limit.

    See Also
    --------
    mlob_pp.mlob_batch : the batched numeric core.
    mlob_pp.fit_ml : true maximum likelihood of the latent covariate model.

    References
    ----------
    Dashuk, V., Hecht, M., Lüdtke, O., Robitzsch, A., & Zitzmann, S. (2025). R package
    MultiLevelOptimalBayes, version 0.0.2.0.
    Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B.
    (2008). The multilevel latent covariate model. Psychological Methods, 13(3), 203-229.
    https://doi.org/10.1037/a0012869

    Examples
    --------
    >>> import mlob_pp
    >>> df = mlob_pp.datasets.load("hsb")
    >>> res = mlob_pp.mlob("mAch ~ ses + sector", df, "school", balancing_limit=0.5,
    ...                    random_state=1)  # doctest: +SKIP
    >>> res.coef["beta_b"]  # doctest: +SKIP
    """
    balancing_limit = check_fraction(balancing_limit, "balancing_limit")
    conf_level = check_probability(
        conf_level, "conf_level",
        hint=" (a confidence level such as 0.95; R's conf.level = 0.05 is conf_level = 0.95)",
    )
    jackknife = check_bool(jackknife, "jackknife")
    se = check_choice(se, "se", ("analytic", "jackknife", "bootstrap"))
    if jackknife and se == "bootstrap":
        raise ValueError(
            "`jackknife=True` (R's spelling of se='jackknife') conflicts with se='bootstrap'; "
            "pass only one of them"
        )
    if jackknife:
        se = "jackknife"
    jackknife = se == "jackknife"
    n_boot = check_int(n_boot, "n_boot", minimum=1)
    punish_coeff = check_positive(punish_coeff, "punish_coeff")
    mode = check_choice(mode, "mode", ("r", "stable"))
    n_balance = check_int(n_balance, "n_balance", minimum=1)
    check_random_state(random_state)  # the generator itself is made only when needed
    rng = _LazyGenerator(random_state)

    mf = parse_formula(formula, data, group, missing=missing)
    plan = plan_balance(mf.group_sizes, punish_coeff)
    recorded: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                res, jk, plan, kept_sets, J, n, m, boots = _fit(
                    mf, plan, rng, balancing_limit, n_balance, jackknife, conf_level, mode,
                    formula, group, se, n_boot,
                )
            finally:
                recorded.extend(caught)
    finally:
        for w in recorded:  # re-emit, pointing at the caller (also before an error, as R)
            warnings.warn(w.message, w.category, stacklevel=3)

    terms, est, std, est_ml, std_ml = _combine(res, jk, mf.covariate_names)
    ci = p_values = None
    if boots:
        std, ci, p_values = _combine_bootstrap(est, boots, conf_level)
    settings = {
        "formula": formula,
        "group": group,
        "balancing_limit": balancing_limit,
        "conf_level": conf_level,
        "jackknife": jackknife,
        "punish_coeff": punish_coeff,
        "random_state": _seed_repr(random_state),
        "mode": mode,
        "n_balance": n_balance,
        "missing": missing,
        "se": se,
        "n_boot": n_boot,
    }
    internals = {k: (v[0] if isinstance(v, np.ndarray) and v.shape[:1] == (m,) and m == 1 else v)
                 for k, v in res.internals.items()}
    internals.update(w_opt=res.w_opt if m > 1 else float(res.w_opt[0]),
                     tau02_opt=res.tau02_opt if m > 1 else float(res.tau02_opt[0]),
                     grid_index=res.grid_index if m > 1 else int(res.grid_index[0]))
    return MLOBResult(
        terms=terms,
        estimates=est,
        std_errors=std,
        estimates_ml=est_ml,
        std_errors_ml=std_ml,
        conf_level=conf_level,
        formula=formula,
        group=group,
        response=mf.response,
        target=mf.target,
        covariate_names=mf.covariate_names,
        n_obs=int(J * n),
        n_groups=int(J),
        group_size=int(n),
        n_obs_input=mf.n_obs,
        balancing={
            "target_group_size": plan.target_size,
            "rows_deleted": plan.rows_deleted,
            "groups_deleted": plan.groups_deleted,
            "share_rows_deleted": plan.share_rows,
            "n_balance": m,
            "kept_rows": mf.rows[kept_sets[0]],
        },
        se_method=se,
        interval_method=boots[0].interval if boots else "wald",
        ci_override=ci,
        p_override=p_values,
        mode=mode,
        settings=settings,
        call=_call_string(formula, group, settings),
        warnings=tuple(str(w.message) for w in recorded),
        internals=internals,
    )


def _fit(mf, plan, rng, balancing_limit, n_balance, jackknife, conf_level, mode, formula, group,
         se="analytic", n_boot=2000):
    check_plan(plan, balancing_limit)
    if plan.target_size < 2:
        raise ValueError(
            f"groups of size 1: balancing would leave groups of {plan.target_size} row, "
            f"but every group needs at least 2 rows (group column {group!r}); "
            "remove singleton groups or use another grouping"
        )
    m = 1 if plan.balanced else n_balance
    kept_sets = [_kept_rows(mf, plan, rng) for _ in range(m)]
    Y, X, C = _stack(mf, kept_sets, plan)
    J, n = X.shape[1:]
    if jackknife and n < 3:
        raise ValueError(
            f"`jackknife=True` needs groups of at least 3 rows (each replicate deletes one "
            f"row per group); got group size {n}"
        )
    for i in range(m):
        _check_variation(mf, Y[i], X[i])
    res = mlob_batch(Y, X, C if C.shape[-1] else None, conf_level=conf_level, mode=mode,
                     warn=False)
    if np.asarray(res.internals["collinear"]).any():
        raise ValueError(
            "collinear covariates: after residualising on the target's within and between "
            f"parts the covariates {list(mf.covariate_names)} are linearly dependent "
            f"(formula {formula!r}); drop duplicated or derived covariates"
        )
    _warn_flags(res, m)
    jk = _jackknife(res, Y, X, C, rng.get(), conf_level, mode) if jackknife else None
    boots = []
    if se == "bootstrap":
        from mlob_pp.closed_form.bootstrap import parametric_bootstrap

        generator = rng.get()
        for i in range(m):
            boots.append(parametric_bootstrap(
                Y[i], X[i], C[i] if C.shape[-1] else None, n_boot=n_boot,
                conf_level=conf_level, mode=mode, random_state=generator,
            ))
    return res, jk, plan, kept_sets, J, n, m, boots


def _combine_bootstrap(est: np.ndarray, boots: list, conf_level: float):
    """SEs, intervals and p-values from one or several (pooled) bootstrap fits."""
    from mlob_pp.closed_form.bootstrap import inversion_interval
    from mlob_pp.closed_form.core import wald

    m = len(boots)
    se_rows = np.array([[b.se_beta_b, *np.atleast_1d(b.se_gamma)] for b in boots], float)
    est_rows = np.array([[b.estimate, *np.atleast_1d(b.gamma)] for b in boots], float)
    if m == 1:
        b = boots[0]
        std = se_rows[0]
        lo = np.concatenate([[b.ci_lower], np.atleast_1d(b.ci_lower_gamma)])
        hi = np.concatenate([[b.ci_upper], np.atleast_1d(b.ci_upper_gamma)])
        _, p, _, _ = wald(est, std, conf_level)
        p[0] = b.p_value
        return std, np.column_stack([lo, hi]), p
    within = np.mean(se_rows**2, axis=0)
    between = np.var(est_rows, axis=0, ddof=1)
    std = np.sqrt(within + (1 + 1 / m) * between)
    _, p, lo, hi = wald(est, std, conf_level)
    if all(b.roots is not None for b in boots):
        roots = np.concatenate([b.roots for b in boots])
        lo[0], hi[0] = (float(v) for v in inversion_interval(roots, conf_level))
        finite = roots[np.isfinite(roots) | np.isinf(roots)]
        p[0] = float(min(1.0, 2 * min(np.mean(finite <= 0), np.mean(finite >= 0))))
    return std, np.column_stack([lo, hi]), p


class _LazyGenerator:
    """Create the random generator on first use (seeding from OS entropy costs ~50 us)."""

    def __init__(self, random_state: Any) -> None:
        self.random_state = random_state
        self._rng: Any = None

    def get(self) -> Any:
        if self._rng is None:
            self._rng = as_generator(self.random_state)
        return self._rng


def _seed_repr(random_state: Any) -> Any:
    if random_state is None or isinstance(random_state, numbers.Integral):
        return random_state
    return repr(random_state)


def _call_string(formula: str, group: str, settings: dict[str, Any]) -> str:
    defaults = {"balancing_limit": 0.2, "conf_level": 0.95, "jackknife": False,
                "punish_coeff": 2.0, "random_state": None, "mode": "r", "n_balance": 1,
                "missing": "raise", "se": "analytic", "n_boot": 2000}
    extra = [f"{k}={settings[k]!r}" for k, d in defaults.items() if settings[k] != d]
    return ", ".join([f"mlob({formula!r}, data", f"group={group!r}", *extra]) + ")"


def _kept_rows(mf: ModelFrame, plan, rng) -> np.ndarray:
    kept = np.arange(mf.n_obs) if plan.balanced else draw_balance(mf.group_codes, plan,
                                                                  rng.get())
    # groups are groups: stable sort by group label (R uses row chunks; identical when sorted)
    return kept[np.argsort(mf.group_codes[kept], kind="stable")]


def _stack(mf: ModelFrame, kept_sets: list[np.ndarray], plan) -> tuple[np.ndarray, ...]:
    J = int(plan.groups_kept.shape[0])
    n = plan.target_size
    idx = np.stack(kept_sets)
    Y = mf.y[idx].reshape(len(kept_sets), J, n)
    X = mf.x[idx].reshape(len(kept_sets), J, n)
    C = mf.covariates[idx].reshape(len(kept_sets), J, n, mf.covariates.shape[1])
    return Y, X, C


def _check_variation(mf: ModelFrame, y: np.ndarray, x: np.ndarray) -> None:
    """Errors for data without between- or within-group variation (scale-free checks)."""
    n = x.shape[1]
    total_x = np.sum((x - x.mean()) ** 2)
    within_x = np.sum((x - x.mean(axis=1, keepdims=True)) ** 2)
    between_x = n * np.sum((x.mean(axis=1) - x.mean()) ** 2)
    total_y = np.sum((y - y.mean()) ** 2)
    if total_y <= 0:
        raise ValueError(f"the outcome {mf.response!r} has no variation (all values equal)")
    if total_x <= 0 or between_x <= _REL_TOL * total_x:
        raise ValueError(
            "The provided data does not include between-group variation for the given model: "
            f"the group means of {mf.target!r} are all equal (group column {mf.group_name!r}). "
            "Consider using a single-level model."
        )
    if within_x <= _REL_TOL * total_x:
        raise ValueError(
            "The provided data does not include within-group variation for the given model: "
            f"{mf.target!r} is constant within every group (group column {mf.group_name!r}). "
            "Consider using a simpler model."
        )


def _jackknife(res: BatchResult, Y, X, C, rng, conf_level: float, mode: str):
    """R's randomised delete-one-per-group jackknife for each balanced data set."""
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


def _rubin(est: np.ndarray, se: np.ndarray) -> tuple[float, float]:
    m = est.shape[0]
    if m == 1:
        return float(est[0]), float(se[0])
    within = np.mean(se**2)
    between = np.var(est, ddof=1)
    return float(np.mean(est)), float(np.sqrt(within + (1 + 1 / m) * between))


def _combine(res: BatchResult, jk, covariate_names: tuple[str, ...]):
    terms = ("beta_b", *(f"gamma_{c}" for c in covariate_names))
    se_beta = res.se_beta_b if jk is None else jk[0]
    se_gamma = res.se_gamma if jk is None else jk[1]
    est = [_rubin(res.beta_b, se_beta)]
    est_ml = [_rubin(res.beta_b_ml, res.se_beta_b_ml)]
    for j in range(len(covariate_names)):
        g = _rubin(res.gamma[:, j], se_gamma[:, j])
        est.append(g)
        est_ml.append(g)
    a = np.array(est, dtype=float).reshape(-1, 2)
    b = np.array(est_ml, dtype=float).reshape(-1, 2)
    return terms, a[:, 0], a[:, 1], b[:, 0], b[:, 1]
