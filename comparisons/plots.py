"""Forest plot of several estimators (:func:`plot_compare`) and posterior shape matching.

The plot draws exactly the numbers of :func:`mlob_pp.comparisons.compare`: for each parameter
and estimator a dot at the estimate (posterior mean for MCMC) and a line over the interval at
``conf_level`` (the estimator's own interval: Wald, bootstrap, ...; equal-tailed for MCMC).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from mlob_pp.comparisons.labels import split_label
from mlob_pp.comparisons.table import as_named, check_var_names, compare
from mlob_pp.seeds import as_generator, check_random_seed
from mlob_pp.validate import check_probability

__all__ = ["plot_compare", "match_sample_shape", "COEFFICIENTS"]

#: Variables drawn by :func:`plot_compare` by default (the regression coefficients).
COEFFICIENTS: tuple[str, ...] = ("beta_b", "beta_w", "beta_c", "gamma", "gamma_w", "gamma_b")

_INTERVAL_WORDS = {
    "wald": "Wald",
    "eti": "equal-tailed posterior",
    "bootstrap_inversion": "bootstrap test-inversion",
    "bootstrap_percentile": "bootstrap percentile",
    "profile": "profile-likelihood",
}


def _positions(table: pd.DataFrame, estimators: list[str]) -> dict[tuple[str, str], float]:
    """Return the y position of every (parameter, estimator) row: parameters top to bottom."""
    params = list(dict.fromkeys(table.index.get_level_values("parameter")))
    k = len(estimators)
    step = 0.7 / max(k - 1, 1) if k > 1 else 0.0
    out = {}
    for i, p in enumerate(params):
        centre = len(params) - 1 - i
        for j, e in enumerate(estimators):
            out[(p, e)] = centre + (k - 1) / 2 * step - j * step
    return out


def _x_limits(table: pd.DataFrame) -> tuple[float, float]:
    values = table[["estimate", "ci_lower", "ci_upper"]].to_numpy(dtype=float).ravel()
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    lo, hi = min(lo, 0.0), max(hi, 0.0)  # the zero line is always in view
    pad = 0.06 * (hi - lo if hi > lo else 1.0)
    return lo - pad, hi + pad


def _legends(fig: Any, table: pd.DataFrame, colours: dict, conf_level: float, unbounded: bool):
    """Estimators above the axes, what dots, lines and arrows mean below: never over data."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=c, marker="o", linewidth=2, label=name) for name, c in colours.items()
    ]
    fig.legend(
        handles=handles,
        loc="outside upper center",
        ncols=min(len(handles), 5),
        frameon=False,
        handlelength=1.6,
    )
    point = "dot: estimate" + (
        " (posterior mean for MCMC)" if (table["interval"] == "eti").any() else ""
    )
    kinds = [_INTERVAL_WORDS.get(k, str(k)) for k in dict.fromkeys(table["interval"].dropna())]
    keys = [
        Line2D([], [], color="0.3", marker="o", linestyle="none", label=point),
        Line2D(
            [],
            [],
            color="0.3",
            linewidth=2,
            label=f"line: {100 * conf_level:g}% interval ({', '.join(kinds)})",
        ),
    ]
    if unbounded:
        keys.append(
            Line2D([], [], color="0.3", marker=">", linestyle="none", label="arrow: unbounded")
        )
    fig.legend(
        handles=keys,
        loc="outside lower center",
        ncols=1,
        frameon=False,
        handlelength=1.6,
        fontsize="small",
    )


def _draw_rows(ax: Any, table: pd.DataFrame, ypos: dict, colours: dict, limits) -> bool:
    """Draw every (parameter, estimator) row; return whether an interval is unbounded."""
    lo_lim, hi_lim = limits
    unbounded = False
    for (param, est), row in table.iterrows():
        y, colour = ypos[(param, est)], colours[est]
        lo, hi = float(row["ci_lower"]), float(row["ci_upper"])
        shown_lo = lo if np.isfinite(lo) else lo_lim
        shown_hi = hi if np.isfinite(hi) else hi_lim
        if not (np.isnan(lo) or np.isnan(hi)):
            ax.plot(
                [shown_lo, shown_hi],
                [y, y],
                color=colour,
                linewidth=2,
                solid_capstyle="butt",
                gid=f"{param}|{est}|interval",
            )
        for bound, edge, marker in ((lo, lo_lim, "<"), (hi, hi_lim, ">")):
            if np.isinf(bound):
                unbounded = True
                ax.plot(
                    [edge],
                    [y],
                    marker=marker,
                    color=colour,
                    markersize=7,
                    gid=f"{param}|{est}|unbounded",
                )
        if np.isfinite(row["estimate"]):
            ax.plot(
                [row["estimate"]],
                [y],
                "o",
                color=colour,
                markersize=6,
                markeredgecolor="white",
                markeredgewidth=0.6,
                gid=f"{param}|{est}|estimate",
            )
    return unbounded


def plot_compare(
    results: Mapping[str, xr.DataTree] | Sequence[xr.DataTree],
    var_names: str | Sequence[str] | None = None,
    *,
    conf_level: float = 0.95,
    path: str | PathLike[str] | None = None,
    title: str | None = None,
    table: pd.DataFrame | None = None,
) -> Any:
    """Draw a forest plot of several estimators, one colour per estimator.

    Every dot and line is a number of :func:`~mlob_pp.comparisons.compare`: the estimate
    (posterior mean for MCMC) and the interval at `conf_level` (the estimator's own interval;
    equal-tailed for MCMC), so plot and table agree to the printed digits. A dashed line marks
    zero; the legends (outside the axes, so they never cover data) name the estimators (above)
    and say what dots and lines are (below); an unbounded interval ends in an arrow at the edge.

    Parameters
    ----------
    results : dict of {str: DataTree} or list of DataTree
        Common-format results; keys (or ``attrs["estimator"]``) label the legend.
    var_names : str or list of str, optional
        Variables to plot. Default: the regression coefficients present (``beta_b``,
        ``beta_w``, ``beta_c``, ``gamma``...); variance parameters are on another scale.
    conf_level : float, default 0.95
        Level of the intervals.
    path : path-like, optional
        Write the figure there (PNG, PDF, SVG... by suffix).
    title : str, optional
        Figure title.
    table : pandas.DataFrame, optional
        A table :func:`compare` already made of these results (saves recomputing it).

    Returns
    -------
    matplotlib.figure.Figure
        The figure; ``fig.compare_table`` is the table it shows.

    Raises
    ------
    ValueError
        If `var_names` are in none of the results or there is nothing to plot.
    """
    import matplotlib.pyplot as plt

    conf_level = check_probability(conf_level, "conf_level")
    named = as_named(results)
    names = check_var_names(var_names)
    if table is None:
        if names is None:
            full = compare(named, conf_level=conf_level)
            names = [v for v in COEFFICIENTS if _has_variable(full, v)]
            if not names:
                raise ValueError(
                    "no regression coefficients to plot; pass `var_names` (available: "
                    f"{sorted(set(full.index.get_level_values('parameter')))})"
                )
        table = compare(named, var_names=names, conf_level=conf_level)
    estimators = list(dict.fromkeys(table.index.get_level_values("estimator")))
    colours = {e: plt.get_cmap("tab10")(i % 10) for i, e in enumerate(estimators)}
    ypos = _positions(table, estimators)
    params = list(dict.fromkeys(table.index.get_level_values("parameter")))
    lo_lim, hi_lim = _x_limits(table)
    height = 1.0 + 0.32 * len(table) + 0.25 * len(params)
    fig, ax = plt.subplots(figsize=(8.0, max(2.6, height)), layout="constrained")
    ax.axvline(0.0, color="0.45", linestyle="--", linewidth=0.9, zorder=0)
    unbounded = _draw_rows(ax, table, ypos, colours, (lo_lim, hi_lim))
    ax.set_xlim(lo_lim, hi_lim)
    ax.set_yticks([len(params) - 1 - i for i in range(len(params))], params)
    ax.set_ylim(-0.6, len(params) - 0.4)
    for i in range(len(params) - 1):
        ax.axhline(i + 0.5, color="0.9", linewidth=0.8, zorder=0)
    ax.set_xlabel(f"estimate and {100 * conf_level:g}% interval")
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    _legends(fig, table, colours, conf_level, unbounded)
    if title:
        ax.set_title(title, loc="left", fontsize=10)
    fig.compare_table = table
    if path is not None:
        fig.savefig(Path(path), dpi=120, bbox_inches="tight")
    return fig


def _has_variable(table: pd.DataFrame, var: str) -> bool:
    labels = table.index.get_level_values("parameter")
    return any(split_label(str(lab), None)[0] == var for lab in labels)


def match_sample_shape(
    results: Mapping[str, xr.DataTree] | Sequence[xr.DataTree],
    *,
    chains: int | None = None,
    draws: int | None = None,
    random_seed: int | np.random.Generator | None = 0,
) -> dict[str, xr.DataTree]:
    """Give every MCMC result's posterior the same (chain, draw) shape.

    ArviZ pads results whose sample shapes differ with NaN, and its plots then draw nothing for
    them. Results already of the target shape (and point estimates, which have no posterior)
    are returned unchanged; the others get a posterior resampled (without replacement when there
    are enough draws, with replacement otherwise) to ``(chains, draws)``, which keeps each
    draw's joint values and so the correlations between parameters.

    Parameters
    ----------
    results : dict of {str: DataTree} or list of DataTree
        Common-format results.
    chains, draws : int, optional
        Target shape. Default: the shape of the first result with a posterior.
    random_seed : int, Generator or None, default 0
        Seed of the resampling.

    Returns
    -------
    dict of {str: DataTree}
        Shallow copies with only the ``posterior`` group replaced where needed
        (``posterior.attrs["resampled_from"]`` records the original shape).
    """
    named = as_named(results)
    with_post = {k: dt for k, dt in named.items() if "posterior" in dt.children}
    if not with_post:
        raise ValueError("`results` must have at least one result with a 'posterior' group")
    ref = next(iter(with_post.values()))["posterior"]
    chains = int(ref.sizes["chain"]) if chains is None else chains
    draws = int(ref.sizes["draw"]) if draws is None else draws
    check_random_seed(random_seed, r_allowed=False)
    rng = as_generator(random_seed)
    out: dict[str, xr.DataTree] = {}
    for key, dt in named.items():
        if key not in with_post:
            out[key] = dt
            continue
        post = dt["posterior"].to_dataset().transpose("chain", "draw", ...)
        c, d = int(post.sizes["chain"]), int(post.sizes["draw"])
        if (c, d) == (chains, draws):
            out[key] = dt
            continue
        n, m = c * d, chains * draws
        idx = rng.choice(n, size=m, replace=m > n)
        new = xr.Dataset(
            {
                name: (
                    da.dims,
                    da.values.reshape(n, *da.shape[2:])[idx].reshape(chains, draws, *da.shape[2:]),
                    da.attrs,
                )
                for name, da in post.data_vars.items()
            },
            coords={
                **{k: v for k, v in post.coords.items() if not {"chain", "draw"} & set(v.dims)},
                "chain": np.arange(chains),
                "draw": np.arange(draws),
            },
            attrs={**post.attrs, "resampled_from": f"chain={c}, draw={d}"},
        )
        copy = dt.copy(deep=False)
        copy["posterior"] = xr.DataTree(new)
        out[key] = copy
    return out
