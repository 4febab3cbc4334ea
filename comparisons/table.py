"""Side-by-side table of several estimators in the common format: :func:`compare`.

Point estimators (closed-form MLOB, ``ml_moments``, ML, the variability models) are read from
their ``estimate`` group exactly as the estimator reported them; MCMC results are summarised
from their ``posterior`` (mean, SD, equal-tailed interval, R-hat and bulk/tail ESS; Vehtari et
al. 2021). :func:`mlob_pp.comparisons.plot_compare` draws the very same numbers.

References
----------
Vehtari, A., Gelman, A., Simpson, D., Carpenter, B., & Bürkner, P.-C. (2021). Rank-normalization,
folding, and localization: An improved R-hat for assessing convergence of MCMC. *Bayesian
Analysis*, 16(2), 667-718. https://doi.org/10.1214/20-BA1221
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from mlob_pp.common_format import ESTIMATE_GROUP, estimate_frame, has_posterior
from mlob_pp.comparisons.labels import DISPLAY_ORDER, element_labels, split_label
from mlob_pp.tables import wald
from mlob_pp.validate import check_probability

__all__ = ["compare", "summarize", "COLUMNS", "as_named", "check_var_names"]

#: Columns of the table returned by :func:`compare`.
COLUMNS: tuple[str, ...] = (
    "estimate",
    "std_error",
    "ci_lower",
    "ci_upper",
    "interval",
    "r_hat",
    "ess_bulk",
    "ess_tail",
)
_PARAMETER_DIMS = {"chain", "draw", "term", "term_w", "term_b"}


# ------------------------------------------------------------------------------- inputs


def as_named(results: Any, name: str = "results") -> dict[str, xr.DataTree]:
    """Return ``{estimator name: DataTree}`` from a dict, a list or a single DataTree."""
    if isinstance(results, xr.DataTree):
        results = [results]
    if isinstance(results, Mapping):
        items = [(str(k), v) for k, v in results.items()]
    elif isinstance(results, Sequence) and not isinstance(results, str):
        items = []
        seen: dict[str, int] = {}
        for i, dt in enumerate(results):
            base = str(getattr(dt, "attrs", {}).get("estimator", f"result{i}"))
            seen[base] = seen.get(base, 0) + 1
            items.append((base if seen[base] == 1 else f"{base}_{seen[base]}", dt))
    else:
        raise TypeError(
            f"`{name}` must be a dict {{name: DataTree}}, a list of DataTrees or a DataTree; "
            f"got {type(results).__name__}"
        )
    if not items:
        raise ValueError(f"`{name}` must hold at least one result; got an empty collection")
    for key, dt in items:
        if not isinstance(dt, xr.DataTree):
            raise TypeError(
                f"`{name}[{key!r}]` must be an xarray.DataTree in the common format (use "
                f"from_mlob, from_ml, from_pymc or result.to_datatree()); got {type(dt).__name__}"
            )
        if not has_posterior(dt) and ESTIMATE_GROUP not in dt.children:
            raise ValueError(
                f"`{name}[{key!r}]` has neither a 'posterior' nor an 'estimate' group; "
                f"got groups {sorted(dt.children)}"
            )
    return dict(items)


def check_var_names(var_names: Any) -> list[str] | None:
    """Return `var_names` as a list (None stays None)."""
    if var_names is None:
        return None
    if isinstance(var_names, str):
        return [var_names]
    if isinstance(var_names, Sequence) and all(isinstance(v, str) for v in var_names):
        return list(var_names)
    raise TypeError(f"`var_names` must be a string or a list of strings; got {var_names!r}")


def _variables(dt: xr.DataTree) -> list[str]:
    """Parameter variables of one result, in its own order."""
    if has_posterior(dt):
        return [
            str(name)
            for name, da in dt["posterior"].data_vars.items()
            if set(da.dims) <= _PARAMETER_DIMS or name in DISPLAY_ORDER
        ]
    labels = dt[ESTIMATE_GROUP]["term"].values.tolist()
    return list(dict.fromkeys(split_label(str(lab), None)[0] for lab in labels))


def _default_names(named: Mapping[str, xr.DataTree]) -> list[str]:
    present: dict[str, None] = {}
    for dt in named.values():
        present.update(dict.fromkeys(_variables(dt)))
    return [v for v in DISPLAY_ORDER if v in present] + [
        v for v in present if v not in DISPLAY_ORDER
    ]


# ------------------------------------------------------------------------------- summaries


def _point_rows(dt: xr.DataTree, names: Sequence[str], conf_level: float, key: str) -> list:
    frame = estimate_frame(dt)
    attrs = frame.attrs
    own = float(attrs.get("conf_level", 0.95))
    method = str(attrs.get("interval_method", "wald"))
    if not np.isclose(own, conf_level):
        if method != "wald":
            raise ValueError(
                f"`conf_level` {conf_level} differs from the level of {key!r} ({own}), whose "
                f"intervals are {method!r}, not Wald, and cannot be recomputed; refit at "
                f"conf_level={conf_level} or compare at {own}"
            )
        _, _, lo, hi = wald(frame["estimate"], frame["std_error"], conf_level)
        frame = frame.assign(ci_lower=lo, ci_upper=hi)
    rows = []
    for label, row in frame.iterrows():
        var = split_label(str(label), None)[0]
        if var not in names:
            continue
        rows.append(
            (
                str(label),
                {
                    "estimate": float(row["estimate"]),
                    "std_error": float(row["std_error"]),
                    "ci_lower": float(row["ci_lower"]),
                    "ci_upper": float(row["ci_upper"]),
                    "interval": method,
                    "_variable": var,
                },
            )
        )
    return rows


def _posterior_rows(dt: xr.DataTree, names: Sequence[str], conf_level: float) -> list:
    import arviz_stats as azs

    post = dt["posterior"].to_dataset()
    present = [v for v in names if v in post.data_vars]
    if not present:
        return []
    post = post[present]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too few chains/draws: NaN diagnostics
        stats = {
            "estimate": post.mean(("chain", "draw")),
            "std_error": post.std(("chain", "draw"), ddof=1),
            "r_hat": azs.rhat(post),
            "ess_bulk": azs.ess(post, method="bulk"),
            "ess_tail": azs.ess(post, method="tail"),
        }
        eti = post.azstats.eti(prob=conf_level)
    rows = []
    for var in present:
        for label, sel in element_labels(stats["estimate"][var]):
            row: dict[str, Any] = {k: float(v[var].sel(sel)) for k, v in stats.items()}
            bounds = eti[var].sel(sel)
            row["ci_lower"] = float(bounds.sel(ci_bound="lower"))
            row["ci_upper"] = float(bounds.sel(ci_bound="upper"))
            row.update(interval="eti", _variable=var)
            rows.append((label, row))
    return rows


def summarize(
    dt: xr.DataTree, var_names: Sequence[str], conf_level: float, key: str = "result"
) -> pd.DataFrame:
    """Summarise one common-format result as a table indexed by parameter label.

    Point estimates come from the ``estimate`` group as stored (Wald intervals are recomputed
    when `conf_level` differs from the stored level; other interval kinds cannot be, and raise
    ValueError); MCMC results from the ``posterior`` (mean, SD, equal-tailed interval,
    diagnostics).
    """
    if has_posterior(dt):
        rows = _posterior_rows(dt, var_names, conf_level)
    else:
        rows = _point_rows(dt, var_names, conf_level, key)
    table = pd.DataFrame([r for _, r in rows], index=[lab for lab, _ in rows])
    return table.reindex(columns=[*COLUMNS, "_variable"])


def compare(
    results: Mapping[str, xr.DataTree] | Sequence[xr.DataTree],
    var_names: str | Sequence[str] | None = None,
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Put the estimates of several estimators side by side in one table.

    Parameters
    ----------
    results : dict of {str: DataTree} or list of DataTree
        Common-format results (:func:`~mlob_pp.comparisons.from_mlob`,
        :func:`~mlob_pp.comparisons.from_ml`, :func:`~mlob_pp.comparisons.from_pymc`,
        ``result.to_datatree()``). Dict keys name the estimators; for a list, each result's
        ``attrs["estimator"]`` is used.
    var_names : str or list of str, optional
        Variables to show (``"beta_b"``, ``"gamma"``, ``"tau2"``, ...). Default: every
        parameter that at least one result has, in model order (group effects of MCMC results
        are left out unless named).
    conf_level : float, default 0.95
        Level of the intervals. Point estimates keep their own intervals at their own level;
        Wald intervals are recomputed at another level (other interval kinds raise
        ValueError). MCMC results get equal-tailed posterior intervals.

    Returns
    -------
    pandas.DataFrame
        MultiIndex ``(parameter, estimator)``, parameters labelled as in the estimators' tables
        (``beta_b``, ``gamma_ses``, ...) in model order; columns ``estimate, std_error,
        ci_lower, ci_upper, interval, r_hat, ess_bulk, ess_tail``. For MCMC, ``estimate`` is the
        posterior mean, ``std_error`` the posterior SD and ``interval`` is ``"eti"``; for point
        estimators ``interval`` names how the interval was made (``"wald"``,
        ``"bootstrap_inversion"``, ...) and the diagnostics are NaN. ``df.attrs["conf_level"]``
        records the level. An estimator without a parameter has no row for it.

    Raises
    ------
    TypeError
        If `results` or `var_names` have the wrong type.
    ValueError
        If `results` is empty, a `var_names` entry is in no result, or `conf_level` is not in
        (0, 1) or cannot be honoured.

    See Also
    --------
    plot_compare

    Examples
    --------
    >>> from mlob_pp.comparisons import compare
    >>> table = compare({"mlob": dt_mlob, "ml": dt_ml, "mcmc": dt_mcmc})  # doctest: +SKIP
    >>> table.xs("beta_b", level="parameter")  # doctest: +SKIP
    """
    named = as_named(results)
    conf_level = check_probability(conf_level, "conf_level")
    names = check_var_names(var_names)
    available = _default_names(named)
    if names is None:
        names = available
    else:
        known = set(available)
        for dt in named.values():
            if has_posterior(dt):
                known |= {str(v) for v in dt["posterior"].data_vars}  # group effects too
        missing = [v for v in names if v not in known]
        if missing:
            raise ValueError(
                f"`var_names` entries {missing} are in none of the results; available: {available}"
            )
    frames = []
    for key, dt in named.items():
        table = summarize(dt, names, conf_level, key)
        table.index = pd.MultiIndex.from_arrays(
            [table.index, [key] * len(table)], names=["parameter", "estimator"]
        )
        frames.append(table)
    out = pd.concat(frames)
    variables = out.pop("_variable")
    first: dict[str, tuple[int, int]] = {}
    for (label, _), var in variables.items():
        first.setdefault(label, (names.index(var), len(first)))
    order = sorted(first, key=first.__getitem__)
    out = out.reindex(
        pd.MultiIndex.from_tuples(
            [(p, e) for p in order for e in named if (p, e) in out.index],
            names=["parameter", "estimator"],
        )
    )
    out["interval"] = out["interval"].astype(object)
    out.attrs["conf_level"] = conf_level
    return out
