"""Plots of a simulation study (:func:`mlob_pp.comparisons.run_study`).

* :func:`plot_metric`: a measure of the point estimates (RMSE, relative bias, ...) against a
  design factor, in panels by two other factors, one line per estimator;
* :func:`plot_intervals`: the intervals side by side, one row per interval measure (coverage,
  coverage among bounded intervals, share unbounded, median width), so that no coverage figure
  comes without the share of unbounded intervals and the width (issue 11.4);
* :func:`plot_rmse_ratio`: the RMSE ratio of two named estimators per cell.

Error bars are +/- 2 Monte Carlo SEs. Factors not on an axis are averaged (their MCSEs combine
as ``sqrt(sum mcse^2) / k``, the cells being independent) or fixed with ``select``. Each figure
carries a full caption (wrapped to the figure's width, never cut) saying what is averaged, what
the bars are and how many replications each cell has. Panels share their y axis only when
their ranges are alike. matplotlib is imported inside the functions.

References
----------
Morris, T. P., White, I. R., & Crowther, M. J. (2019). Using simulation studies to evaluate
statistical methods. Statistics in Medicine, 38(11), 2074-2102.
https://doi.org/10.1002/sim.8086
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_metric", "plot_rmse", "plot_coverage", "plot_relative_bias", "plot_intervals",
           "plot_rmse_ratio", "save_plots", "reduce_metric", "ESTIMATOR_LABELS",
           "INTERVAL_LABELS"]

_LABELS = {
    "rmse": "RMSE of beta_b",
    "coverage": "coverage",
    "coverage_bounded": "coverage, bounded intervals",
    "share_unbounded": "share unbounded",
    "median_width": "median width",
    "relative_bias": "relative bias of beta_b",
    "se_ratio": "mean SE / empirical SD",
    "bias": "bias of beta_b",
    "mse": "MSE of beta_b",
    "empirical_se": "empirical SD of beta_b",
    "mean_se": "mean SE",
}
#: legend labels of the built-in estimators
ESTIMATOR_LABELS = {
    "mlob": "MLOB (regularized)",
    "ml_moments": "ML moments (R MLOB's 'ML')",
    "ml": "ML (latent covariate model)",
    "mcmc": "MCMC (posterior mean)",
}
#: legend labels of the built-in intervals
INTERVAL_LABELS = {
    "mlob_analytic": "MLOB, analytic SE",
    "mlob_bootstrap": "MLOB, bootstrap inversion",
    "ml_moments_analytic": "ML moments, analytic SE",
    "ml_wald": "ML, Wald",
    "ml_profile": "ML, profile likelihood",
    "mcmc_credible": "MCMC, equal-tailed credible",
}
_COLORS = {"mlob": "C0", "ml_moments": "C1", "ml": "C2", "mcmc": "C3",
           "mlob_analytic": "C0", "mlob_bootstrap": "C9", "ml_moments_analytic": "C1",
           "ml_wald": "C2", "ml_profile": "C8", "mcmc_credible": "C3"}
_STYLES = {"mlob_bootstrap": "--", "ml_profile": "--"}


def _factors(ds: Any) -> list[str]:
    return [d for d in ds["value"].dims if d not in ("estimator", "metric")]


def reduce_metric(
    ds: Any, metric: str, keep: Sequence[str], select: Mapping[str, Any] | None = None,
    *, variable: str = "value",
) -> tuple[Any, Any]:
    """Return (value, mcse) of `metric`, averaged over the factors not in `keep`.

    Parameters
    ----------
    ds : xarray.Dataset
        Result of :func:`~mlob_pp.comparisons.run_study`.
    metric : str
        A name of the ``metric`` coordinate (or of ``interval_metric`` with
        ``variable="interval_value"``).
    keep : sequence of str
        Dimensions to keep (``estimator`` and ``interval`` are always kept).
    select : mapping, optional
        Factor levels to select (``ds.sel(**select)``) before averaging.
    variable : {"value", "interval_value"}
        Measures of the estimators or of the intervals.
    """
    mdim = "metric" if variable == "value" else "interval_metric"
    mcse_var = "mcse" if variable == "value" else "interval_mcse"
    if metric not in ds[mdim].values:
        raise ValueError(
            f"`metric` must be one of {', '.join(map(str, ds[mdim].values))}; got {metric!r}"
        )
    sub = ds[[variable, mcse_var]].sel({mdim: metric})
    if select:
        bad = set(select) - set(_factors(ds))
        if bad:
            raise ValueError(f"`select` names unknown dimensions {sorted(bad)}")
        sub = sub.sel(**dict(select))
    value, mcse = sub[variable], sub[mcse_var]
    dims = [d for d in value.dims if d not in (*keep, "estimator", "interval")]
    if dims:
        k = value.notnull().sum(dims)
        return value.mean(dims), np.sqrt((mcse**2).sum(dims, min_count=1)) / k
    return value, mcse


def _check_axes(ds: Any, dims: Sequence[str]) -> None:
    for d in dims:
        if d not in _factors(ds):
            raise ValueError(f"`{d}` is not a factor of this study; factors: "
                             f"{', '.join(_factors(ds))}")


def _share_y(value: Any, panel_dims: Sequence[str], log: bool) -> bool:
    """Share the y axis only when the common range is at most twice a panel's own."""
    dims = [d for d in panel_dims if d in value.dims]
    if not dims:
        return True
    v = value.where(np.isfinite(value))
    if log:
        v = np.log10(v.where(v > 0))
    other = [d for d in v.dims if d not in dims]
    span = (v.max(other) - v.min(other)).values.ravel()
    span = span[np.isfinite(span)]
    total = float(v.max() - v.min()) if span.size else np.nan
    if span.size < 2 or not np.isfinite(total) or total <= 0:
        return True
    # shared only if the common range is at most twice a typical panel's own range
    return bool(total <= 2.0 * float(np.median(span)))


def _caption(ds: Any, keep: Sequence[str], select: Mapping[str, Any] | None, extra: str,
             level: bool = False) -> str:
    rest = [d for d in _factors(ds) if d not in keep and not (select and d in select)]
    avg = [d for d in rest if ds.sizes[d] > 1]
    fixed = {**dict(select or {}), **{d: ds[d].values[0] for d in rest if ds.sizes[d] == 1}}
    parts = []
    if fixed:
        parts.append("cells with " + ", ".join(f"{k} = {v:g}" for k, v in fixed.items()))
    if avg:
        parts.append(f"averaged over {', '.join(avg)} (mean over cells)")
    parts.append("error bars: +/- 2 Monte Carlo SE (on log axes cut at a tenth of the value)")
    parts.append(f"{ds.attrs.get('replications', '?')} replications per cell")
    if level and ds.attrs.get("conf_level") is not None:
        parts.append(f"nominal level {float(ds.attrs['conf_level']):g} (dotted line)")
    text = "; ".join(parts) + "."
    return f"{extra} {text[0].upper()}{text[1:]}".strip()


def _finish(fig: Any, axes: Any, caption: str, legend_cols: int) -> None:
    """Legend above the panels, wrapped caption below them, space reserved for both."""
    handles, labels = [], []
    for ax in np.ravel(axes):
        for h, lb in zip(*ax.get_legend_handles_labels(), strict=True):
            if lb not in labels:
                handles.append(h)
                labels.append(lb)
    width_in, height_in = fig.get_size_inches()
    chars = max(40, int(width_in * 72 / 4.6))  # about 4.6 points per character at size 8
    lines = textwrap.wrap(caption, chars)
    cap_in = 0.16 * len(lines) + 0.1
    ncol = max(1, min(legend_cols, len(labels)))
    leg_rows = int(np.ceil(len(labels) / ncol)) if labels else 0
    leg_in = 0.2 * leg_rows + 0.1
    fig.set_size_inches(width_in, height_in + cap_in + leg_in)
    total = height_in + cap_in + leg_in
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=8, va="bottom", ha="left")
    if labels:
        fig.legend(handles, labels, loc="upper center", ncol=ncol, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, cap_in / total, 1, 1 - leg_in / total))


def _draw(ax: Any, xs, value, mcse, name: str, label: str, log: bool = False) -> None:
    v, s = np.asarray(value, float), np.asarray(mcse, float)
    v = np.where(np.isfinite(v), v, np.nan)
    err = 2 * np.where(np.isfinite(s), s, 0.0)
    # on a log axis a bar reaching 0 would stretch the axis: stop it at a tenth of the value
    lower = np.minimum(err, 0.9 * np.abs(v)) if log else err
    ax.errorbar(xs, v, yerr=np.vstack([np.nan_to_num(lower), err]), marker="o", ms=3, lw=1.2,
                capsize=2, color=_COLORS.get(name), ls=_STYLES.get(name, "-"), label=label)


def _style_axes(ax: Any, xs: Any, log: bool) -> None:
    """Ticks at the design's levels; plain numbers on a log axis."""
    from matplotlib.ticker import (
        FormatStrFormatter,
        LogFormatterSciNotation,
        LogLocator,
        NullFormatter,
    )

    xs = np.asarray(xs)
    if xs.dtype.kind in "iuf" and xs.size <= 8:
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{v:g}" for v in xs])
    if log:
        ax.set_yscale("log")
        lo, hi = ax.dataLim.y0, ax.dataLim.y1
        if lo > 0 and np.isfinite(hi / lo) and hi / lo <= 1e3:
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        else:  # many decades: powers of ten only
            ax.yaxis.set_major_locator(LogLocator(base=10, numticks=6))
            ax.yaxis.set_major_formatter(LogFormatterSciNotation())
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(labelsize=7)


def _clip_row(axes: Any, values: np.ndarray, spread: float = 30.0) -> None:
    """Keep a log-scale row readable: values beyond `spread` x the median are marked off scale.

    One huge value (the moment ratio's interval at J = 5 is 1e9 wide) would otherwise squeeze
    every other line against the bottom of the panel.
    """
    from matplotlib.ticker import FormatStrFormatter, LogLocator

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return
    lo, top = float(v.min()) / 1.5, float(np.median(v)) * spread
    if float(v.max()) <= top:
        return
    for ax in np.atleast_1d(axes):
        ax.set_ylim(lo, top)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    np.atleast_1d(axes)[0].annotate(
        f"off scale above {top:.3g} (max {float(v.max()):.3g})", xy=(0.02, 0.97),
        xycoords="axes fraction", va="top", fontsize=6, color="0.3",
    )


def _reference(ds: Any, metric: str) -> float | None:
    if metric in ("coverage", "coverage_bounded"):
        return float(ds.attrs.get("conf_level", 0.95))
    if metric in ("bias", "relative_bias"):
        return 0.0
    if metric == "se_ratio":
        return 1.0
    return None


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
    sharey: bool | None = None,
    figsize: tuple[float, float] | None = None,
):
    """Plot a measure of the estimators against a design factor, in panels by two others.

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
        Logarithmic y axis (default: True for rmse, mse and median_width).
    reference : float, optional
        Horizontal reference line (default: nominal level for coverage, 0 for biases, 1 for
        se_ratio).
    sharey : bool, optional
        Share the y axis between panels (default: only when their ranges are alike).
    figsize : (float, float), optional
        Size of the panels' area in inches (legend and caption are added).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from mlob_pp.comparisons.study.runner import run_study
    >>> ds = run_study({"J": (5, 10), "n": (5,), "icc_x": (0.1,)}, replications=50,
    ...                random_seed=1, progress=False)
    >>> fig = plot_metric(ds, "rmse")
    """
    import matplotlib.pyplot as plt

    keep = [d for d in (x, row, col) if d is not None]
    _check_axes(ds, keep)
    value, mcse = reduce_metric(ds, metric, keep, select)
    names = list(ds["estimator"].values) if estimators is None else list(estimators)
    names = [e for e in names if bool(np.isfinite(value.sel(estimator=e)).any())]
    logy = metric in ("rmse", "mse", "median_width") if logy is None else logy
    reference = _reference(ds, metric) if reference is None else reference
    rows = list(value[row].values) if row else [None]
    cols = list(value[col].values) if col else [None]
    if sharey is None:
        sharey = _share_y(value.sel(estimator=names), [d for d in (row, col) if d], logy)
    fig, axes = plt.subplots(len(rows), len(cols), squeeze=False, sharex=True, sharey=sharey,
                             figsize=figsize or (2.6 * len(cols) + 1.0, 2.0 * len(rows) + 0.4))
    xs = value[x].values
    for i, rv in enumerate(rows):
        for j, cv in enumerate(cols):
            ax = axes[i, j]
            sel = {k: v for k, v in ((row, rv), (col, cv)) if k is not None}
            for e in names:
                _draw(ax, xs, value.sel(estimator=e, **sel).transpose(x).values,
                      mcse.sel(estimator=e, **sel).transpose(x).values, e,
                      ESTIMATOR_LABELS.get(e, e), logy)
            if reference is not None:
                ax.axhline(reference, color="0.5", lw=0.8, ls=":")
            _style_axes(ax, xs, logy)
            ax.set_title(", ".join(f"{k} = {v:g}" for k, v in sel.items()), fontsize=8)
            if i == len(rows) - 1:
                ax.set_xlabel(x)
            if j == 0:
                ax.set_ylabel(_LABELS.get(metric, metric), fontsize=8)
    name = _LABELS.get(metric, metric)
    extra = f"{name[0].upper()}{name[1:]} of each estimator."
    if metric.startswith("coverage"):
        extra = (f"{name[0].upper()}{name[1:]} of each estimator's own interval; unbounded "
                 "intervals cover trivially: see plot_intervals for their share and widths.")
    _finish(fig, axes, _caption(ds, keep, select, extra, metric.startswith("coverage")),
            legend_cols=4)
    return fig


def plot_intervals(
    ds: Any,
    *,
    intervals: Sequence[str] | None = None,
    metrics: Sequence[str] = ("coverage", "coverage_bounded", "share_unbounded", "median_width"),
    x: str = "J",
    col: str | None = "icc_x",
    select: Mapping[str, Any] | None = None,
    figsize: tuple[float, float] | None = None,
):
    """Intervals side by side: one row per interval measure, columns by a design factor.

    Rows (default): coverage, coverage among bounded intervals, share of unbounded intervals,
    median width (log scale; a cell where over half the intervals are unbounded has an infinite
    median, so the mean over cells is not drawn there). Each row has its own y scale.

    Parameters
    ----------
    ds : xarray.Dataset
        Result of :func:`~mlob_pp.comparisons.run_study`.
    intervals : sequence of str, optional
        Labels of the ``interval`` coordinate (default: all with a finite coverage).
    metrics : sequence of str
        Rows, names of the ``interval_metric`` coordinate.
    x, col : str
        Factor on the x axis and of the columns.
    select : mapping, optional
        Fix other factors instead of averaging over them.
    figsize : (float, float), optional
        Size of the panels' area in inches.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    keep = [d for d in (x, col) if d is not None]
    _check_axes(ds, keep)
    cov, _ = reduce_metric(ds, "coverage", keep, select, variable="interval_value")
    names = list(ds["interval"].values) if intervals is None else list(intervals)
    names = [k for k in names if bool(np.isfinite(cov.sel(interval=k)).any())]
    cols = list(ds[col].values) if col else [None]
    fig, axes = plt.subplots(len(metrics), len(cols), squeeze=False, sharex=True, sharey="row",
                             figsize=figsize or (2.6 * len(cols) + 1.0, 1.8 * len(metrics) + 0.4))
    for i, metric in enumerate(metrics):
        value, mcse = reduce_metric(ds, metric, keep, select, variable="interval_value")
        for j, cv in enumerate(cols):
            ax = axes[i, j]
            sel = {col: cv} if col else {}
            for k in names:
                _draw(ax, value[x].values, value.sel(interval=k, **sel).transpose(x).values,
                      mcse.sel(interval=k, **sel).transpose(x).values, k,
                      INTERVAL_LABELS.get(k, k), metric == "median_width")
            ref = _reference(ds, metric)
            if ref is not None:
                ax.axhline(ref, color="0.5", lw=0.8, ls=":")
            _style_axes(ax, value[x].values, metric == "median_width")
            if i == 0:
                ax.set_title(", ".join(f"{k} = {v:g}" for k, v in sel.items()), fontsize=8)
            if i == len(metrics) - 1:
                ax.set_xlabel(x)
            if j == 0:
                ax.set_ylabel(_LABELS.get(metric, metric), fontsize=8)
        if metric == "median_width":
            _clip_row(axes[i], value.sel(interval=names).values)
    extra = ("Intervals for beta_b. An unbounded interval covers trivially; coverage among "
             "bounded intervals leaves them out; median width counts unbounded intervals as "
             "infinitely wide (a cell where more than half are unbounded has no finite median "
             "and a mean over such cells is not drawn).")
    _finish(fig, axes, _caption(ds, keep, select, extra, True), legend_cols=3)
    return fig


def plot_rmse_ratio(
    ds: Any,
    numerator: str = "mlob",
    denominator: str = "ml_moments",
    *,
    x: str = "J",
    row: str | None = "icc_x",
    col: str | None = "n",
    select: Mapping[str, Any] | None = None,
    figsize: tuple[float, float] | None = None,
):
    """RMSE of `numerator` over RMSE of `denominator` (log scale; below 1: numerator better).

    The label names both estimators (``"RMSE ratio mlob / ml_moments"``); error bars combine
    both Monte Carlo SEs by the delta method (ignoring their correlation, hence conservative
    when the estimators are fitted to the same data).
    """
    import matplotlib.pyplot as plt

    for name in (numerator, denominator):
        if name not in ds["estimator"].values:
            raise ValueError(f"estimator {name!r} is not in this study; estimators: "
                             f"{', '.join(map(str, ds['estimator'].values))}")
    keep = [d for d in (x, row, col) if d is not None]
    _check_axes(ds, keep)
    value, mcse = reduce_metric(ds, "rmse", keep, select)
    a, b = value.sel(estimator=numerator), value.sel(estimator=denominator)
    ratio = a / b
    err = ratio * np.sqrt((mcse.sel(estimator=numerator) / a) ** 2
                          + (mcse.sel(estimator=denominator) / b) ** 2)
    rows = list(value[row].values) if row else [None]
    cols = list(value[col].values) if col else [None]
    fig, axes = plt.subplots(len(rows), len(cols), squeeze=False, sharex=True,
                             sharey=_share_y(ratio, [d for d in (row, col) if d], True),
                             figsize=figsize or (2.6 * len(cols) + 1.0, 2.0 * len(rows) + 0.4))
    label = f"RMSE ratio {numerator} / {denominator}"
    for i, rv in enumerate(rows):
        for j, cv in enumerate(cols):
            ax = axes[i, j]
            sel = {k: v for k, v in ((row, rv), (col, cv)) if k is not None}
            _draw(ax, ratio[x].values, ratio.sel(**sel).transpose(x).values,
                  err.sel(**sel).transpose(x).values, numerator, label, True)
            ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
            _style_axes(ax, ratio[x].values, True)
            ax.set_title(", ".join(f"{k} = {v:g}" for k, v in sel.items()), fontsize=8)
            if i == len(rows) - 1:
                ax.set_xlabel(x)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    extra = (f"RMSE of {ESTIMATOR_LABELS.get(numerator, numerator)} divided by RMSE of "
             f"{ESTIMATOR_LABELS.get(denominator, denominator)}; below 1 the first is better.")
    _finish(fig, axes, _caption(ds, keep, select, extra), legend_cols=1)
    return fig


def plot_rmse(ds: Any, **kwargs: Any):
    """RMSE against J in panels by ICC_X and n (see :func:`plot_metric`)."""
    return plot_metric(ds, "rmse", **kwargs)


def plot_coverage(ds: Any, **kwargs: Any):
    """Coverage of each estimator's own interval against J (see :func:`plot_metric`)."""
    return plot_metric(ds, "coverage", **kwargs)


def plot_relative_bias(ds: Any, **kwargs: Any):
    """Relative bias against J (see :func:`plot_metric`)."""
    return plot_metric(ds, "relative_bias", **kwargs)


def save_plots(ds: Any, directory: str | os.PathLike, *, dpi: int = 120) -> list[Path]:
    """Write ``rmse.png``, ``relative_bias.png``, ``intervals.png`` to `directory`.

    ``intervals.png`` (:func:`plot_intervals`) shows coverage together with the share of
    unbounded intervals and the median width; the estimator-only ``coverage.png`` of earlier
    versions is not written, since a coverage figure without those would mislead.
    """
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    figures = {"rmse": lambda: plot_metric(ds, "rmse"),
               "relative_bias": lambda: plot_metric(ds, "relative_bias"),
               "intervals": lambda: plot_intervals(ds)}
    for name, make in figures.items():
        fig = make()
        path = directory / f"{name}.png"
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        paths.append(path)
    return paths
