"""From per-chunk, per-replication arrays to the study's :class:`xarray.Dataset`."""

from __future__ import annotations

import json
import platform
from typing import Any

import numpy as np

from mlob_pp import __version__
from mlob_pp.comparisons.study.arms import interval_kinds
from mlob_pp.comparisons.study.checkpoint import now
from mlob_pp.comparisons.study.design import Design, implied_icc_y
from mlob_pp.comparisons.study.metrics import (
    COUNTS,
    INTERVAL_METRICS,
    METRICS,
    failure_counts,
    interval_performance,
    performance,
)

__all__ = ["assemble", "study_attrs", "interval_labels"]

_DESCRIPTIONS = {
    "value": "quality measure of the estimator of beta_b (its own interval for coverage, "
    "share_unbounded, median_width, coverage_bounded)",
    "mcse": "Monte Carlo standard error of value (Morris et al. 2019)",
    "n_used": "replications used by the measure",
    "interval_value": "coverage, share of unbounded intervals, median width (unbounded = inf) "
    "and coverage among bounded intervals, per interval",
    "interval_mcse": "Monte Carlo standard error of interval_value",
    "interval_n_used": "intervals used by the measure",
    "counts": "failure and flag counts over the replications fitted",
    "truth": "true beta_b",
    "icc_y": "ICC of Y implied by the data-generating process",
    "seconds": "wall seconds spent generating data and per estimator arm",
    "cpu_seconds": "CPU seconds of the process (all its threads)",
}


def interval_labels(estimators, n_boot: int) -> list[tuple[str, str, str]]:
    """``(label, estimator, kind)`` of every interval, e.g. ``("ml_profile", "ml", "profile")``."""
    return [
        (f"{name}_{kind}", name, kind)
        for name, fn in estimators
        for kind in interval_kinds(name, fn is None, n_boot)
    ]


def _bounds(cat: dict[str, np.ndarray], kind: str, primary: bool):
    if primary:
        return cat["ci_lower"], cat["ci_upper"]
    return cat[f"lo::{kind}"], cat[f"hi::{kind}"]


def _cell_chunks(results: dict, ncell: int) -> dict[int, list[dict[str, Any]]]:
    by_cell: dict[int, list[dict[str, Any]]] = {ci: [] for ci in range(ncell)}
    for (cell, _start), res in results.items():
        by_cell[cell].append(res)
    return {ci: sorted(ch, key=lambda r: r["start"]) for ci, ch in by_cell.items()}


def assemble(
    design: Design,
    cells,
    replications: int,
    estimators,
    results,
    n_boot: int,
    keep_replications: bool,
):
    """Compute every measure per cell from all its replications in order; build the Dataset."""
    import xarray as xr

    names = [n for n, _ in estimators]
    labels = interval_labels(estimators, n_boot)
    E, M, C, K, L = len(names), len(METRICS), len(COUNTS), len(labels), len(INTERVAL_METRICS)
    ncell = len(cells)
    arr = {
        "value": np.full((ncell, E, M), np.nan),
        "mcse": np.full((ncell, E, M), np.nan),
        "n_used": np.zeros((ncell, E, M), dtype=np.int64),
        "counts": np.zeros((ncell, E, C), dtype=np.int64),
        "interval_value": np.full((ncell, K, L), np.nan),
        "interval_mcse": np.full((ncell, K, L), np.nan),
        "interval_n_used": np.zeros((ncell, K, L), dtype=np.int64),
    }
    phases = ["generate", *names] + (["mlob_bootstrap"] if n_boot and "mlob" in names else [])
    seconds = np.zeros((ncell, len(phases)))
    cpu_seconds = np.zeros((ncell, len(phases)))
    truth = np.array([float(c["beta_b"]) for c in cells])
    per_rep = (
        {
            f: np.full((ncell, E, replications), np.nan)
            for f in ("estimate", "se", "ci_lower", "ci_upper")
        }
        if keep_replications
        else {}
    )
    per_int = (
        {f: np.full((ncell, K, replications), np.nan) for f in ("interval_lower", "interval_upper")}
        if keep_replications
        else {}
    )
    primary: dict[str, str] = {}
    for _label, name, kind in labels:
        primary.setdefault(name, kind)
    for ci, chunks in _cell_chunks(results, ncell).items():
        for p, ph in enumerate(phases):
            seconds[ci, p] = sum(ch["seconds"].get(ph, 0.0) for ch in chunks)
            cpu_seconds[ci, p] = sum(ch["seconds"].get(f"cpu:{ph}", np.nan) for ch in chunks)
        cat = {
            name: {
                key: np.concatenate([ch["results"][name][key] for ch in chunks])
                for key in chunks[0]["results"][name]
            }
            for name in names
        }
        for e, name in enumerate(names):
            r = cat[name]
            ran = r["ran"]
            v = performance(
                r["estimate"][ran], r["se"][ran], r["ci_lower"][ran], r["ci_upper"][ran], truth[ci]
            )
            arr["value"][ci, e], arr["mcse"][ci, e], arr["n_used"][ci, e] = v
            arr["counts"][ci, e] = failure_counts(r)
            for f in per_rep:
                per_rep[f][ci, e] = r[f]
        for k, (_label, name, kind) in enumerate(labels):
            r = cat[name]
            use = r["ran"] & ~r["error"]
            lo, hi = _bounds(r, kind, primary[name] == kind)
            v = interval_performance(lo[use], hi[use], truth[ci])
            arr["interval_value"][ci, k], arr["interval_mcse"][ci, k] = v[0], v[1]
            arr["interval_n_used"][ci, k] = v[2]
            if per_int:
                per_int["interval_lower"][ci, k], per_int["interval_upper"][ci, k] = lo, hi
    shape = design.shape
    fdims = list(design.factors)
    coords: dict[str, Any] = {k: list(v) for k, v in design.factors.items()}
    coords.update(
        estimator=names,
        metric=list(METRICS),
        count=list(COUNTS),
        phase=phases,
        interval=[lb[0] for lb in labels],
        interval_metric=list(INTERVAL_METRICS),
    )
    coords["interval_estimator"] = ("interval", [lb[1] for lb in labels])
    coords["interval_kind"] = ("interval", [lb[2] for lb in labels])
    tail = {
        "value": ("estimator", "metric"),
        "mcse": ("estimator", "metric"),
        "n_used": ("estimator", "metric"),
        "counts": ("estimator", "count"),
        "interval_value": ("interval", "interval_metric"),
        "interval_mcse": ("interval", "interval_metric"),
        "interval_n_used": ("interval", "interval_metric"),
    }
    data_vars: dict[str, Any] = {
        key: ([*fdims, *dims], arr[key].reshape(*shape, *arr[key].shape[1:]))
        for key, dims in tail.items()
    }
    data_vars["truth"] = (fdims, truth.reshape(shape))
    data_vars["icc_y"] = (fdims, np.array([implied_icc_y(c) for c in cells]).reshape(shape))
    data_vars["seconds"] = ([*fdims, "phase"], seconds.reshape(*shape, len(phases)))
    data_vars["cpu_seconds"] = ([*fdims, "phase"], cpu_seconds.reshape(*shape, len(phases)))
    if keep_replications:
        coords["replication"] = np.arange(replications)
        for f, a in per_rep.items():
            data_vars[f] = ([*fdims, "estimator", "replication"], a.reshape(*shape, E, -1))
        for f, a in per_int.items():
            data_vars[f] = ([*fdims, "interval", "replication"], a.reshape(*shape, K, -1))
    ds = xr.Dataset(data_vars, coords=coords)
    for key, text in _DESCRIPTIONS.items():
        ds[key].attrs["description"] = text
    return ds


def study_attrs(
    config: dict[str, Any], design: Design, scheduler: str, wall: float
) -> dict[str, Any]:
    """Provenance and settings of a study (netCDF-safe attribute values)."""
    import xarray as xr

    attrs: dict[str, Any] = {
        "title": "simulation study of estimators of the between-group slope beta_b",
        "created_at": now(),
        "created_by": f"mlob_pp {__version__}",
        "inference_library": "mlob_pp.comparisons.run_study",
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "xarray_version": xr.__version__,
        "design_name": design.name,
        "design": design.to_json(),
        "replications": config["replications"],
        "random_seed": str(config["random_seed"]),
        "seed_block": config["seed_block"],
        "chunk_size": config["chunk_size"],
        "conf_level": config["conf_level"],
        "mode": config["mode"],
        "n_boot": config["n_boot"],
        "estimators": json.dumps(config["estimators"]),
        "subsets": json.dumps(config["subsets"]),
        "mcmc_kwargs": json.dumps(config["mcmc_kwargs"]),
        "scheduler": scheduler,
        "wall_seconds": float(wall),
        "dgp": (
            "X_ij = mu_b_j + e_ij, mu_b_j ~ N(0, icc_x), e_ij ~ N(0, 1 - icc_x); "
            "C_ij = rho_c X_ij + N(0, 1 - rho_c^2); Y_ij = beta_w (X_ij - mu_b_j) + "
            "beta_b mu_b_j + gamma C_ij + delta_j + eps_ij, delta_j ~ N(0, tau2), "
            "eps_ij ~ N(0, sigma2)"
        ),
        "references": (
            "Morris, White & Crowther (2019), doi:10.1002/sim.8086 (metrics and MCSEs); "
            "Luedtke et al. (2008), doi:10.1037/a0012869 (latent covariate model)"
        ),
    }
    for key, val in design.fixed.items():
        attrs[f"param_{key}"] = val
    return attrs
