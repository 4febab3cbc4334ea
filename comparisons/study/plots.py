"""Plots of a simulation study (:func:`mlob_pp.comparisons.run_study`): metric against J.

One panel per combination of two design factors (default: rows ``icc_x``, columns ``n``), one
line per estimator, error bars of +/- 2 Monte Carlo SEs. Factors not on an axis are averaged
(their MCSEs combine as ``sqrt(sum mcse^2) / k``, the cells being independent) or fixed with
``select``. matplotlib is imported inside the functions.

References
----------
Morris, T. P., White, I. R., & Crowther, M. J. (2019). Using simulation studies to evaluate
statistical methods. Statistics in Medicine, 38(11), 2074-2102.
https://doi.org/10.1002/sim.8086
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "plot_metric",
    "plot_rmse",
    "plot_coverage",
    "plot_relative_bias",
    "save_plots",
    "reduce_metric",
]

_LABELS = {
    "rmse": "RMSE of beta_b",
    "coverage": "coverage of nominal intervals",
    "relative_bias": "relative bias of beta_b",
    "se_ratio": "mean SE / empirical SD",
    "bias": "bias of beta_b",
    "mse": "MSE of beta_b",
    "empirical_se": "empirical SD of beta_b",
    "mean_se": "mean SE",
}
_COLORS = {"mlob": "C0", "ml_moments": "C1", "ml": "C2", "mcmc": "C3"}


def reduce_metric(
    ds: Any, metric: str, keep: Sequence[str], select: Mapping[str, Any] | None = None
) -> tuple[Any, Any]:
    """Return (value, mcse) of `metric`, averaged over the factors not in `keep`.

    Parameters
    ----------
    ds : xarray.Dataset
        Result of :func:`~mlob_pp.comparisons.run_study`.
    metric : str
        A name of the ``metric`` coordinate.
    keep : sequence of str
        Dimensions to keep (``estimator`` is always kept).
    select : mapping, optional
        Factor levels to select (``ds.sel(**select)``) before averaging.
    """
    if metric not in ds["metric"].values:
        raise ValueError(
            f"`metric` must be one of {', '.join(map(str, ds['metric'].values))}; got {metric!r}"
        )
    sub = ds.sel(metric=metric)
    if select:
        bad = set(select) - set(ds["value"].dims)
        if bad:
            raise ValueError(f"`select` names unknown dimensions {sorted(bad)}")
        sub = sub.sel(**{k: v for k, v in select.items()})
    dims = [d for d in sub["value"].dims if d not in (*keep, "estimator")]
    value = sub["value"]
    mcse = sub["mcse"]
    if dims:
        k = value.notnull().sum(dims)
        mean = value.mean(dims)
        mc = np.sqrt((mcse**2).sum(dims, min_count=1)) / k
        return mean, mc
    return value, mcse


def plot_metric(
    ds: Any,
    metric: str = "rmse",
    *,
    estimators: Sequence[str] | None = None,
    x: str = "J",
    row: str | None = "icc_x",
    col: str | None = "n",
    select: Mapping[str, Any] | None = None,
    logy: bool | None = None,
    reference: float | None = None,
    figsize: tuple[float, float] | None = None,
):
    """Plot a metric against a design factor, in panels by two other factors.

    Parameters
    ----------
    ds : xarray.Dataset
        Result of :func:`~mlob_pp.comparisons.run_study`.
    metric : str, default "rmse"
        Name in the ``metric`` coordinate.
    estimators : sequence of str, optional
        Estimators to draw (default: all that have a finite value).
    x, row, col : str
        Factor on the x axis and factors of the panel rows and columns (``None``: one row or
        column).
    select : mapping, optional
        Fix other factors (e.g. ``{"beta_b": 0.5}``) instead of averaging over them.
    logy : bool, optional
        Logarithmic y axis (default: True for rmse and mse).
    reference : float, optional
        Horizontal reference line (default: nominal level for coverage, 0 for biases, 1 for
        se_ratio).
    figsize : (float, float), optional
        Figure size in inches.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import mlob_pp.comparisons.study.runner as st
    >>> ds = st.run_study({"J": (5, 10), "n": (5,), "icc_x": (0.1,)}, replications=50,
    ...                   random_seed=1, progress=False)
    >>> fig = plot_metric(ds, "rmse")
    """
    import matplotlib.pyplot as plt

    keep = [d for d in (x, row, col) if d is not None]
    for d in keep:
        if d not in ds["value"].dims:
            raise ValueError(
                f"`{d}` is not a factor of this study; factors: "
                f"{', '.join(d for d in ds['value'].dims if d not in ('estimator', 'metric'))}"
            )
    value, mcse = reduce_metric(ds, metric, keep, select)
    names = list(ds["estimator"].values) if estimators is None else list(estimators)
    names = [e for e in names if bool(np.isfinite(value.sel(estimator=e)).any())]
    rows = list(value[row].values) if row else [None]
    cols = list(value[col].values) if col else [None]
    if logy is None:
        logy = metric in ("rmse", "mse")
    if reference is None:
        if metric == "coverage":
            reference = float(ds.attrs.get("conf_level", 0.95))
        elif metric in ("bias", "relative_bias"):
            reference = 0.0
        elif metric == "se_ratio":
            reference = 1.0
    fig, axes = plt.subplots(
        len(rows),
        len(cols),
        squeeze=False,
        sharex=True,
        sharey=True,
        figsize=figsize or (2.6 * len(cols) + 1.0, 2.0 * len(rows) + 0.8),
    )
    xs = value[x].values
    for i, rv in enumerate(rows):
        for j, cv in enumerate(cols):
            ax = axes[i, j]
            sel = {k: v for k, v in ((row, rv), (col, cv)) if k is not None}
            for e in names:
                v = value.sel(estimator=e, **sel).transpose(x).values
                s = mcse.sel(estimator=e, **sel).transpose(x).values
                ax.errorbar(
                    xs,
                    v,
                    yerr=2 * s,
                    marker="o",
                    ms=3,
                    lw=1.2,
                    capsize=2,
                    color=_COLORS.get(e),
                    label=e,
                )
            if reference is not None:
                ax.axhline(reference, color="0.5", lw=0.8, ls="--")
            if logy:
                ax.set_yscale("log")
            title = ", ".join(f"{k}={v:g}" for k, v in sel.items())
            ax.set_title(title, fontsize=8)
            ax.tick_params(labelsize=7)
            if i == len(rows) - 1:
                ax.set_xlabel(x)
            if j == 0:
                ax.set_ylabel(_LABELS.get(metric, metric), fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="upper center", ncol=max(1, len(labels)), fontsize=8, frameon=False
    )
    avg = [
        d
        for d in ds["value"].dims
        if d not in (*keep, "estimator", "metric") and not (select and d in select)
    ]
    note = f"averaged over {', '.join(avg)}; " if avg else ""
    fig.text(
        0.01,
        0.005,
        f"{note}error bars: +/- 2 Monte Carlo SE "
        f"({ds.attrs.get('replications', '?')} replications per cell)",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.02, 1, 0.95))
    return fig


def plot_rmse(ds: Any, **kwargs: Any):
    """RMSE against J in panels by ICC_X and n (see :func:`plot_metric`)."""
    return plot_metric(ds, "rmse", **kwargs)


def plot_coverage(ds: Any, **kwargs: Any):
    """Coverage of the nominal intervals against J (see :func:`plot_metric`)."""
    return plot_metric(ds, "coverage", **kwargs)


def plot_relative_bias(ds: Any, **kwargs: Any):
    """Relative bias against J (see :func:`plot_metric`)."""
    return plot_metric(ds, "relative_bias", **kwargs)


def save_plots(ds: Any, directory: str | os.PathLike, *, dpi: int = 120) -> list[Path]:
    """Write ``rmse.png``, ``coverage.png``, ``relative_bias.png`` to `directory`."""
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for metric in ("rmse", "coverage", "relative_bias"):
        fig = plot_metric(ds, metric)
        path = directory / f"{metric}.png"
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        paths.append(path)
    return paths
