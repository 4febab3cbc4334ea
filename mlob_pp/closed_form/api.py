"""``mlob()``: the formula front end of the closed-form MLOB estimator.

Steps: check the arguments (:func:`_options`), parse the formula and check the design
(:func:`check_design`: variation of y and x, level-1 covariates, full rank of x and the
covariates), plan and draw the balancing (:mod:`~mlob_pp.closed_form.balance`), fit every
balanced data set at once (:func:`~mlob_pp.closed_form.core.mlob_batch`), add jackknife or
bootstrap SEs, pool the balancings (:mod:`~mlob_pp.closed_form.pooling`) and assemble the
:class:`~mlob_pp.closed_form.result.MLOBResult`.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlob_pp.closed_form.balance import BalancePlan, check_plan, draw_balance, plan_balance
from mlob_pp.closed_form.bootstrap import check_n_boot, parametric_bootstrap
from mlob_pp.closed_form.core import BatchResult, check_batch_design, fit_arrays, warn_flags
from mlob_pp.closed_form.jackknife import jackknife_se
from mlob_pp.closed_form.pooling import combine_balancings, combine_bootstrap
from mlob_pp.closed_form.result import MLOBResult
from mlob_pp.design import RTOL, check_full_rank, has_variation
from mlob_pp.formula.groups import resolve_group
from mlob_pp.formula.parse import ModelFrame, parse_formula
from mlob_pp.rrandom import RRandom
from mlob_pp.seeds import as_generator, check_random_seed, seed_attr
from mlob_pp.validate import (
    check_bool,
    check_choice,
    check_fraction,
    check_int,
    check_positive,
    check_probability,
    reject_unknown,
    renamed_argument,
)

__all__ = ["mlob", "check_design"]

_DEFAULTS = {"balancing_limit": 0.2, "conf_level": 0.95, "jackknife": False,
             "punish_coeff": 2.0, "random_seed": None, "mode": "r", "n_balance": 1,
             "missing": "raise", "se": "analytic", "n_boot": 2000}


def mlob(
    formula: str,
    data: pd.DataFrame,
    group: str | None = None,
    *,
    balancing_limit: float = 0.2,
    conf_level: float = 0.95,
    jackknife: bool = False,
    punish_coeff: float = 2.0,
    random_seed: Any = None,
    mode: str = "r",
    n_balance: int = 1,
    missing: str = "raise",
    se: str = "analytic",
    n_boot: int = 2000,
    **deprecated: Any,
) -> MLOBResult:
    """Fit the optimally regularised Bayesian estimator of the between-group effect beta_b.

    A port of ``MultiLevelOptimalBayes::mlob()`` (R package 0.0.2.0) that reproduces its
    numbers on balanced, group-sorted data and fixes its known problems (see the user guide,
    "Differences from R MLOB and ivd", ``docs/guide/differences_r.md``).

    Parameters
    ----------
    formula : str
        ``"y ~ x + c1 + c2"``: outcome, target regressor x (first right-hand term, numeric;
        its between-group effect is ``beta_b``) and level-1 covariates (``gamma_<term>``).
        Interactions, transformations and categorical covariates work as in R. Covariates must
        be level-1 (vary within groups): a covariate constant within every group (a level-2
        variable such as a school characteristic or the group mean of x) is an error, because
        the closed-form adjustment cannot separate it from beta_b (use
        :func:`mlob_pp.fit_mcmc` with level-2 covariates); a covariate that is a linear function
        of x (or of other covariates) is an error.
    data : pandas.DataFrame
        One row per level-1 unit; rows need not be sorted by group.
    group : str, optional
        Name of the grouping column; may instead be written in the formula lme4-style,
        ``"y ~ x + c + (1 | school)"`` (both spellings give identical results).
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
    random_seed : None, int, numpy.random.Generator, numpy.random.SeedSequence or RRandom
        Source of the balancing deletions, jackknife and bootstrap draws. ``RRandom(seed)``
        reproduces R's ``set.seed(seed)`` runs exactly (the bootstrap then draws a numpy seed
        from it). ``random_state`` is the deprecated spelling (DeprecationWarning).
    mode : {"r", "stable"}, default "r"
        ``"r"`` reproduces R's numbers (including its fragile branches, with a warning when
        they decide the result); ``"stable"`` uses scale-free thresholds and the
        moment-consistent criterion without poles (recommended for J <= 5).
    n_balance : int, default 1
        Number of independent random balancings. With more than one, each balanced data set
        is fitted and the fits are combined by Rubin's rules (estimate = mean; variance =
        mean within variance + (1 + 1/m) between variance), so that results on unbalanced data
        do not hinge on one random deletion; the summary shows the spread of beta_b across the
        balancings. Ignored for balanced data.
    missing : {"raise", "drop"}, default "raise"
        Missing values raise a ``ValueError`` naming the column, or are dropped with a
        warning saying how many rows.
    se : {"analytic", "jackknife", "bootstrap"}, default "analytic"
        Standard errors and intervals of the regularized table. ``"analytic"`` is R's
        ratio-of-Gammas SE with Wald intervals (far too small in simulations, see
        ``docs/bootstrap.md``); ``"jackknife"`` is R's randomised jackknife
        (``jackknife=True`` is R's spelling of it); ``"bootstrap"`` is a parametric bootstrap
        from the fitted latent covariate model with ``n_boot`` refits and test-inversion
        intervals (:func:`mlob_pp.closed_form.bootstrap.parametric_bootstrap`), the calibrated
        choice. The ML (``ml_moments``) table keeps its analytic SE.
    n_boot : int, default 2000
        Number of bootstrap refits (``se="bootstrap"`` only); at least ``10 / (1 -
        conf_level)`` (200 for 95 %).

    Returns
    -------
    MLOBResult
        ``params``, ``bse``, ``conf_int()``, ``to_frame("mlob" | "ml_moments")``,
        ``to_datatree()``, ``summary()``; ``print(result)`` in R's layout.

    Raises
    ------
    TypeError
        Wrong argument types, non-numeric outcome or target.
    ValueError
        Bad values (error catalogue: docs/guide/differences_r.md): unknown columns, empty data,
        missing or infinite values, fewer than 2 groups, groups of size 1, no between- or
        within-group variation, covariates collinear with x or with each other, level-2
        covariates, balancing over the limit, too few bootstrap refits.

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
    >>> res = mlob_pp.mlob("mAch ~ ses + minrty + (1 | school)", df, balancing_limit=0.5,
    ...                    random_seed=1)  # doctest: +SKIP
    >>> res.params["beta_b"]  # doctest: +SKIP
    """
    random_seed = renamed_argument("mlob", deprecated, "random_state", "random_seed",
                                   random_seed)
    reject_unknown("mlob", deprecated)
    opts = _options(balancing_limit, conf_level, jackknife, punish_coeff, random_seed, mode,
                    n_balance, missing, se, n_boot)
    formula_fixed, group = resolve_group(formula, group)
    mf = parse_formula(formula_fixed, data, group, missing=missing)
    plan = plan_balance(mf.group_sizes, opts.punish_coeff)
    with _reemit_warnings() as recorded:
        fit = _fit(mf, plan, opts)
    return _result(mf, plan, fit, opts, formula_fixed, group, recorded)


@dataclass(frozen=True)
class _Options:
    balancing_limit: float
    conf_level: float
    punish_coeff: float
    random_seed: Any
    mode: str
    n_balance: int
    missing: str
    se: str
    n_boot: int

    @property
    def jackknife(self) -> bool:
        return self.se == "jackknife"

    def settings(self, formula: str, group: str) -> dict[str, Any]:
        return {"formula": formula, "group": group, "balancing_limit": self.balancing_limit,
                "conf_level": self.conf_level, "jackknife": self.jackknife,
                "punish_coeff": self.punish_coeff, "random_seed": seed_attr(self.random_seed),
                "mode": self.mode, "n_balance": self.n_balance, "missing": self.missing,
                "se": self.se, "n_boot": self.n_boot}


def _options(balancing_limit, conf_level, jackknife, punish_coeff, random_seed, mode, n_balance,
             missing, se, n_boot) -> _Options:
    """Check every argument (before any work) and resolve ``jackknife`` into ``se``."""
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
    n_boot = (check_n_boot(n_boot, conf_level) if se == "bootstrap"
              else check_int(n_boot, "n_boot", minimum=1))
    check_random_seed(random_seed)  # the generator itself is made only when needed
    if missing not in ("raise", "drop"):
        raise ValueError(f"`missing` must be 'raise' or 'drop'; got {missing!r}")
    return _Options(
        balancing_limit=balancing_limit, conf_level=conf_level,
        punish_coeff=check_positive(punish_coeff, "punish_coeff"), random_seed=random_seed,
        mode=check_choice(mode, "mode", ("r", "stable")),
        n_balance=check_int(n_balance, "n_balance", minimum=1), missing=missing, se=se,
        n_boot=n_boot,
    )


def check_design(mf: ModelFrame) -> None:
    """Errors for designs MLOB cannot estimate (decided relative to the data's scale).

    The outcome must vary; the group means of x must differ and x must vary within groups;
    every covariate must vary within groups (level-1: a level-2 covariate would be absorbed
    into beta_b by the closed-form adjustment); x and the covariates must be of full rank
    (:func:`mlob_pp.design.check_full_rank`, consulted whenever a cheap Gram screen finds the
    columns anywhere near dependent). Variation is judged by the rules of
    :func:`mlob_pp.design.has_variation` and :func:`mlob_pp.design.constant_within_groups`
    (relative tolerance :data:`mlob_pp.design.RTOL`), vectorised over the columns and applied
    to centred values (so a shift such as 1e9 cannot turn the rounding of group means into
    apparent within-group variation).
    """
    J = int(mf.group_labels.shape[0])
    codes = mf.group_codes
    raw = np.vstack([mf.y, mf.x, mf.covariates.T])  # one row per column: y, x, covariates
    scale = np.max(np.abs(raw), axis=1, keepdims=True)
    scale[~(scale > 0)] = 1.0
    raw = raw / scale  # as has_variation: relative to the largest value
    centre = raw.mean(axis=1, keepdims=True)
    centred = raw - centre
    total2 = np.einsum("ij,ij->i", centred, centred)
    # has_variation(y): centred norm above RTOL times the norm (sum of squares: centred + mean)
    size2 = total2 + raw.shape[1] * centre[:, 0] ** 2
    if not total2[0] > RTOL * RTOL * size2[0]:
        raise ValueError(f"the outcome {mf.response!r} has no variation (all values equal)")
    rows, total2 = centred[1:], total2[1:]
    counts = np.bincount(codes, minlength=J)
    means = np.stack([np.bincount(codes, weights=r, minlength=J) for r in rows]) / counts
    if not has_variation(means[0] + centre[1, 0]):  # relative to the size of x itself
        raise ValueError(
            "The provided data does not include between-group variation for the given model: "
            f"the group means of {mf.target!r} are all equal (group column {mf.group_name!r}). "
            "Consider using a single-level model."
        )
    # constant_within_groups for every column at once (same rule: within-deviation norm at
    # most RTOL times the centred norm)
    dev = rows - means[:, codes]
    within2 = np.einsum("ij,ij->i", dev, dev)
    level2 = within2 <= (RTOL * RTOL) * np.maximum(total2, np.finfo(float).tiny)
    if level2[0]:
        raise ValueError(
            "The provided data does not include within-group variation for the given model: "
            f"{mf.target!r} is constant within every group (group column {mf.group_name!r}). "
            "Consider using a simpler model."
        )
    for j, name in enumerate(mf.covariate_names):
        if level2[j + 1]:
            raise ValueError(
                f"`formula`: covariate {name!r} is constant within every group (a level-2 "
                f"variable, such as a group characteristic or the group mean of "
                f"{mf.target!r}); MLOB's covariates must vary within groups, and a level-2 "
                "covariate would change beta_b without being modelled. Drop it, or use "
                "mlob_pp.fit_mcmc, which models level-2 covariates"
            )
    if rows.shape[0] > 1 and _near_dependent(rows, total2):
        check_full_rank(np.column_stack([mf.x, mf.covariates]),
                        [mf.target, *mf.covariate_names], argument="formula")


def _near_dependent(rows: np.ndarray, norms2: np.ndarray) -> bool:
    """Cheap screen: the correlation matrix's eigenvalue ratio is below 1e-8.

    ``check_full_rank`` calls columns dependent when their singular-value ratio is below 1e-9,
    i.e. a Gram eigenvalue ratio below 1e-18; anything within 1e-8 is handed to it.
    """
    if not np.all(norms2 > 0):
        return True
    if rows.shape[0] == 2:  # eigenvalues of [[1, r], [r, 1]]: 1 -+ |r|
        r = abs(float(rows[0] @ rows[1])) / math.sqrt(float(norms2[0] * norms2[1]))
        return (1.0 - r) < 1e-8 * (1.0 + r)
    d = np.sqrt(norms2)
    eig = np.linalg.eigvalsh((rows @ rows.T) / np.outer(d, d))
    return bool(eig[0] < 1e-8 * eig[-1])


@contextlib.contextmanager
def _reemit_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Collect the fit's warnings and re-emit them at the caller (also before an error)."""
    recorded: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield recorded
            finally:
                recorded.extend(caught)
    finally:
        for w in recorded:
            warnings.warn(w.message, w.category, stacklevel=4)


@dataclass
class _Fit:
    res: BatchResult
    jk: tuple[np.ndarray, np.ndarray] | None
    kept_sets: list[np.ndarray]
    J: int
    n: int
    boots: list


class _LazyGenerator:
    """Create the random generator on first use (seeding from OS entropy costs ~50 us)."""

    def __init__(self, random_seed: Any) -> None:
        self.random_seed = random_seed
        self._rng: Any = None

    def get(self) -> Any:
        if self._rng is None:
            self._rng = as_generator(self.random_seed)
        return self._rng


def _fit(mf: ModelFrame, plan: BalancePlan, opts: _Options) -> _Fit:
    """Balance, fit every balanced data set, and add jackknife or bootstrap SEs."""
    check_plan(plan, opts.balancing_limit)
    if plan.target_size < 2:
        raise ValueError(
            f"groups of size 1: balancing would leave groups of {plan.target_size} row, "
            f"but every group needs at least 2 rows (group column {mf.group_name!r}); "
            "remove singleton groups or use another grouping"
        )
    check_design(mf)
    rng = _LazyGenerator(opts.random_seed)
    m = 1 if plan.balanced else opts.n_balance
    kept_sets = [_kept_rows(mf, plan, rng) for _ in range(m)]
    Y, X, C = _stack(mf, kept_sets, plan)
    J, n = X.shape[1:]
    if opts.jackknife and n < 3:
        raise ValueError(
            f"`jackknife=True` needs groups of at least 3 rows (each replicate deletes one "
            f"row per group); got group size {n}"
        )
    if not plan.balanced:  # deletions may remove the variation the full data had
        check_batch_design(Y, X)
    res = fit_arrays(Y, X, C, conf_level=opts.conf_level, mode=opts.mode)
    if np.asarray(res.internals["collinear"]).any():
        raise ValueError(
            "collinear covariates: after residualising on the target's within and between "
            f"parts the covariates {list(mf.covariate_names)} are linearly dependent "
            f"(formula {mf.formula!r}); drop duplicated or derived covariates"
        )
    warn_flags(res, m)
    jk = (jackknife_se(Y, X, C, rng.get(), opts.conf_level, opts.mode) if opts.jackknife
          else None)
    boots = []
    if opts.se == "bootstrap":
        seed = _bootstrap_seed(rng.get())
        for i in range(m):
            boots.append(parametric_bootstrap(
                Y[i], X[i], C[i] if C.shape[-1] else None, n_boot=opts.n_boot,
                conf_level=opts.conf_level, mode=opts.mode, random_seed=seed,
                covariate_names=tuple(mf.covariate_names),
            ))
    return _Fit(res=res, jk=jk, kept_sets=kept_sets, J=J, n=n, boots=boots)


def _bootstrap_seed(generator: Any) -> Any:
    """Return the bootstrap's seed: the numpy generator, or a numpy seed drawn from RRandom."""
    if isinstance(generator, RRandom):
        return np.random.SeedSequence(int(generator.unif_rand() * 2**53))
    return generator


def _result(mf: ModelFrame, plan: BalancePlan, fit: _Fit, opts: _Options, formula: str,
            group: str, recorded: list) -> MLOBResult:
    res, m = fit.res, len(fit.kept_sets)
    terms, est, std, est_ml, std_ml = combine_balancings(res, fit.jk, mf.covariate_names)
    ci = p_values = None
    if fit.boots:
        std, ci, p_values = combine_bootstrap(est, fit.boots, opts.conf_level)
    settings = opts.settings(formula, group)
    internals = {k: (v[0] if isinstance(v, np.ndarray) and v.shape[:1] == (m,) and m == 1 else v)
                 for k, v in res.internals.items()}
    internals.update(w_opt=res.w_opt if m > 1 else float(res.w_opt[0]),
                     tau02_opt=res.tau02_opt if m > 1 else float(res.tau02_opt[0]),
                     grid_index=res.grid_index if m > 1 else int(res.grid_index[0]))
    balancing = {
        "target_group_size": plan.target_size, "rows_deleted": plan.rows_deleted,
        "groups_deleted": plan.groups_deleted, "share_rows_deleted": plan.share_rows,
        "n_balance": m, "kept_rows": mf.rows[fit.kept_sets[0]],
    }
    if not plan.balanced:
        balancing["beta_b_per_balancing"] = np.array(res.beta_b, float)
        index = pd.RangeIndex(m, name="balancing")
        balancing["estimates"] = pd.DataFrame(
            np.column_stack([res.beta_b, res.gamma]), index=index, columns=list(terms))
        balancing["estimates_ml"] = pd.DataFrame(
            np.column_stack([res.beta_b_ml, res.gamma]), index=index, columns=list(terms))
    return MLOBResult(
        terms=terms, estimates=est, std_errors=std, estimates_ml=est_ml, std_errors_ml=std_ml,
        conf_level=opts.conf_level, formula=formula, group=group, response=mf.response,
        target=mf.target, covariate_names=mf.covariate_names, n_obs=int(fit.J * fit.n),
        n_groups=int(fit.J), group_size=int(fit.n), n_obs_input=mf.n_obs, balancing=balancing,
        se_method=opts.se, interval_method=fit.boots[0].interval if fit.boots else "wald",
        ci_override=ci, p_override=p_values, mode=opts.mode, settings=settings,
        call=_call_string(formula, group, settings),
        warnings=tuple(str(w.message) for w in recorded), bootstrap=tuple(fit.boots),
        internals=internals,
    )


def _call_string(formula: str, group: str, settings: dict[str, Any]) -> str:
    extra = [f"{k}={settings[k]!r}" for k, d in _DEFAULTS.items()
             if settings[k] != d and not (k == "random_seed" and settings[k] == "none")]
    return ", ".join([f"mlob({formula!r}, data", f"group={group!r}", *extra]) + ")"


def _kept_rows(mf: ModelFrame, plan: BalancePlan, rng: _LazyGenerator) -> np.ndarray:
    kept = np.arange(mf.n_obs) if plan.balanced else draw_balance(mf.group_codes, plan,
                                                                  rng.get())
    # groups are groups: stable sort by group label (R uses row chunks; identical when sorted)
    return kept[np.argsort(mf.group_codes[kept], kind="stable")]


def _stack(mf: ModelFrame, kept_sets: list[np.ndarray], plan: BalancePlan):
    J = int(plan.groups_kept.shape[0])
    n = plan.target_size
    idx = np.stack(kept_sets)
    Y = mf.y[idx].reshape(len(kept_sets), J, n)
    X = mf.x[idx].reshape(len(kept_sets), J, n)
    C = mf.covariates[idx].reshape(len(kept_sets), J, n, mf.covariates.shape[1])
    return Y, X, C
