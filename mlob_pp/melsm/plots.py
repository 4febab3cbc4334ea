"""Plots of an SS-MELSM fit: PIP by rank, funnel (PIP vs within-group SD), PIP vs outcome.

The three plot types of the R package ivd (``plot(fit, type = "pip" | "funnel" |
"outcome")``) as matplotlib figures. Groups with PIP >= `pip_level` are drawn in blue and
labelled; the others grey. Unlike ivd, the labelled points are not jittered, so the figures
are reproducible. matplotlib is imported inside the functions.

References
----------
Rodriguez, J. E., Williams, D. R., & Rast, P. (2024). Who is and is not "average"? Random
effects selection with spike-and-slab priors. Psychological Methods.
https://doi.org/10.1037/met0000535
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlob_pp.validate import check_bool, check_probability

__all__ = ["plot_pip", "plot_funnel", "plot_outcome"]

_BLUE = "#0265a5"


def _variable(fit: Any, variable: str | None) -> str:
    effects = [str(v) for v in fit.idata["inclusion"]["scale_effect"].values]
    if variable is None:
        if len(effects) > 1:
            raise ValueError(
                f"`variable` must name the scale random effect to plot, one of {effects}; got None"
            )
        return effects[0]
    if variable not in effects:
        raise ValueError(f"`variable` must be one of {effects}; got {variable!r}")
    return variable


def _setup(fit: Any, ax: Any, variable: str | None, pip_level: float, label_points: bool):
    import matplotlib.pyplot as plt

    check_probability(pip_level, "pip_level")
    check_bool(label_points, "label_points")
    var = _variable(fit, variable)
    inc = fit.idata["inclusion"].to_dataset().sel(scale_effect=var)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    else:
        fig = ax.figure
    return fig, ax, var, inc


def _scatter(
    ax: Any,
    x: np.ndarray,
    pip: np.ndarray,
    groups: np.ndarray,
    pip_level: float,
    label_points: bool,
    colors: Any = None,
    **scatter_kwargs: Any,
) -> Any:
    hi = pip >= pip_level
    if colors is None:
        ax.scatter(x[~hi], pip[~hi], color="grey", alpha=0.5, s=18, **scatter_kwargs)
        ax.scatter(x[hi], pip[hi], color=_BLUE, s=30, edgecolor="k", linewidth=0.4)
        mappable = None
    else:
        mappable = ax.scatter(
            x,
            pip,
            c=colors,
            s=np.where(hi, 34, 18),
            edgecolor=np.where(hi, "k", "0.6"),
            linewidth=0.5,
            **scatter_kwargs,
        )
    if label_points:
        for k in np.flatnonzero(hi):
            ax.annotate(
                str(groups[k]),
                (x[k], pip[k]),
                xytext=(3, 3),
                textcoords="offset points",
                fontsize=8,
                color=_BLUE,
            )
    ax.axhline(pip_level, linestyle=":", color="k", linewidth=1)
    ax.set_ylabel("Posterior inclusion probability")
    ax.set_ylim(-0.02, 1.05)
    return mappable


def plot_pip(
    fit: Any,
    *,
    variable: str | None = None,
    pip_level: float = 0.75,
    label_points: bool = True,
    ax: Any = None,
) -> Any:
    """PIP of every group against the rank of its PIP.

    Parameters
    ----------
    fit : MELSMResult
    variable : str, optional
        Scale random effect (required when the scale part has several).
    pip_level : float, default 0.75
        Threshold (BF10 = 3 at pi = 0.5); groups at or above are highlighted and labelled.
    label_points : bool, default True
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax, var, inc = _setup(fit, ax, variable, pip_level, label_points)
    pip = inc["pip"].values
    order = np.argsort(np.argsort(pip, kind="stable"), kind="stable") + 1
    _scatter(ax, order.astype(float), pip, inc["group"].values, pip_level, label_points)
    ax.set_xlabel("Ordered index")
    ax.set_title(f"Scale effect: {var}")
    return fig


def plot_funnel(
    fit: Any,
    *,
    variable: str | None = None,
    pip_level: float = 0.75,
    label_points: bool = True,
    ax: Any = None,
) -> Any:
    """PIP against the within-group SD ``exp(E[zeta_1] + E[delta_j b_j])`` (a funnel/V shape).

    The SD is ivd's plug-in at covariates 0 (the scale intercept plus the group's posterior
    mean scale effect, which includes the indicator, so low-PIP groups sit near
    ``exp(E[zeta_1])``). Parameters as :func:`plot_pip`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax, var, inc = _setup(fit, ax, variable, pip_level, label_points)
    _scatter(
        ax, inc["within_sd"].values, inc["pip"].values, inc["group"].values, pip_level, label_points
    )
    ax.set_xlabel("Within-cluster SD")
    ax.set_title(f"Scale effect: {var}")
    return fig


def plot_outcome(
    fit: Any,
    *,
    variable: str | None = None,
    pip_level: float = 0.75,
    label_points: bool = True,
    ax: Any = None,
) -> Any:
    """PIP against the cluster mean of the outcome, coloured by the within-group SD.

    The cluster mean is the group average of the posterior mean of mu_i (covariates
    included); colours go from blue (consistent) through white (median SD) to red (variable).
    Parameters as :func:`plot_pip`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.colors import TwoSlopeNorm

    fig, ax, var, inc = _setup(fit, ax, variable, pip_level, label_points)
    sd = inc["within_sd"].values
    lo, mid, hi = float(sd.min()), float(np.median(sd)), float(sd.max())
    norm = TwoSlopeNorm(vcenter=mid, vmin=min(lo, mid - 1e-9), vmax=max(hi, mid + 1e-9))
    mappable = _scatter(
        ax,
        inc["cluster_mean"].values,
        inc["pip"].values,
        inc["group"].values,
        pip_level,
        label_points,
        colors=sd,
        cmap="RdBu_r",
        norm=norm,
    )
    fig.colorbar(mappable, ax=ax, label="Within-cluster SD")
    ax.set_xlabel("Cluster mean")
    ax.set_title(f"Scale effect: {var}")
    return fig
