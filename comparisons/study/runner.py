r"""Simulation studies: closed-form MLOB versus ML versus MCMC over a factorial design.

For every cell of a design (:mod:`mlob_pp.comparisons.study.design`) and replication
``r = 0..R-1`` a data set is drawn from the latent covariate model (Lüdtke et al. 2008)::

    X_ij = mu_b_j + e_ij;   Y_ij = beta_w (X_ij - mu_b_j) + beta_b mu_b_j + gamma C_ij
                                   + delta_j + eps_ij

and every requested estimator arm (:mod:`mlob_pp.comparisons.study.arms`: ``mlob``,
``ml_moments``, ``ml``, ``mcmc`` or a user function) is fitted to **every** replication of every
cell, in batches (one call per chunk of replications), unless ``subsets`` asks for less. The
measures (:mod:`mlob_pp.comparisons.study.metrics`) are computed per cell from all its
replications in order: point measures (RMSE, bias, ...) per estimator, and coverage, share of
unbounded intervals, median width and coverage among bounded intervals for every interval
(MLOB analytic and bootstrap, moment-ratio analytic, ML Wald and profile, MCMC credible), each
with its Monte Carlo SE.

Seeding and chunking: the data of replication r of a cell depend only on the root seed, the
cell's parameters and r (:func:`mlob_pp.comparisons.study.design.simulate_replications`); the
bootstrap and the MCMC chains of replication r are seeded from the same three
(:func:`~.arms.arm_seed`; :func:`mlob_pp.mcmc_batch` takes one seed per data set). So every
arm's results are identical whatever the ``chunk_size``, with or without Dask, and after being
resumed from a checkpoint (:mod:`mlob_pp.comparisons.study.checkpoint`); for the MCMC arm this
holds at a fixed ``batch_size`` of :func:`mlob_pp.mcmc_batch` (tested).

References
----------
.. [1] Morris, T. P., White, I. R., & Crowther, M. J. (2019). Using simulation studies to
   evaluate statistical methods. Statistics in Medicine, 38(11), 2074-2102.
   https://doi.org/10.1002/sim.8086
.. [2] Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B.
   (2008). The multilevel latent covariate model. Psychological Methods, 13(3), 203-229.
   https://doi.org/10.1037/a0012869
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlob_pp.comparisons.study import arms
from mlob_pp.comparisons.study import checkpoint as ckpt
from mlob_pp.comparisons.study.arms import ESTIMATORS, interval_kinds
from mlob_pp.comparisons.study.assemble import assemble, study_attrs
from mlob_pp.comparisons.study.design import cell_key, simulate_replications
from mlob_pp.comparisons.study.metrics import COUNTS, FLAGS, METRICS, performance
from mlob_pp.comparisons.study.options import Settings, check_settings, study_config
from mlob_pp.comparisons.study.scheduler import execute

__all__ = [
    "ESTIMATORS",
    "METRICS",
    "COUNTS",
    "ChunkInfo",
    "run_study",
    "performance",
    "save_study",
    "load_study",
]

_BOOLS = ("ran", "error", "nonconverged", "warning", *FLAGS)


@dataclass(frozen=True)
class ChunkInfo:
    """What ``callback`` receives after each finished chunk."""

    cell: int
    start: int
    stop: int
    done: int
    total: int


@dataclass(frozen=True)
class _Task:
    cell: int
    params: dict[str, Any]
    start: int
    stop: int
    random_seed: int
    seed_block: int
    estimators: tuple[tuple[str, Callable | None], ...]
    arm_stop: dict[str, int]  # replications < arm_stop[name] are fitted
    conf_level: float
    mode: str
    n_boot: int
    mcmc: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# one chunk of work (runs in this process or on a Dask worker)


def required_keys(name: str, builtin: bool, n_boot: int) -> tuple[str, ...]:
    """Per-replication arrays an estimator's chunk holds."""
    kinds = interval_kinds(name, builtin, n_boot)
    extra = tuple(f"{side}::{k}" for k in kinds[1:] for side in ("lo", "hi"))
    diag = arms.DIAGNOSTICS if (builtin and name == "mcmc") else ()
    return (*arms.FIELDS, *extra, *diag, *_BOOLS)


def _empty(B: int, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {k: np.zeros(B, dtype=bool) if k in _BOOLS else np.full(B, np.nan) for k in keys}


def _fill(dst: dict[str, np.ndarray], m: int, src: Mapping[str, Any], conf_level: float) -> None:
    """Copy an arm's output for the first `m` rows of a chunk into `dst`."""
    rows = slice(0, m)
    est = np.asarray(src["estimate"], dtype=float).reshape(m)
    se = np.asarray(src["se"], dtype=float).reshape(m)
    if "ci_lower" in src and "ci_upper" in src:
        lo = np.asarray(src["ci_lower"], dtype=float).reshape(m)
        hi = np.asarray(src["ci_upper"], dtype=float).reshape(m)
    else:
        lo, hi = arms.wald_bounds(est, se, conf_level)
    dst["estimate"][rows], dst["se"][rows] = est, se
    dst["ci_lower"][rows], dst["ci_upper"][rows] = lo, hi
    for key in dst:
        if ("::" in key or key in arms.DIAGNOSTICS) and key in src:
            dst[key][rows] = np.asarray(src[key], dtype=float).reshape(m)
    dst["ran"][rows] = True
    if "converged" in src:
        dst["nonconverged"][rows] = ~np.asarray(src["converged"], dtype=bool).reshape(m)
    for key in ("error", "warning", *FLAGS):
        if key in src:
            dst[key][rows] |= np.asarray(src[key], dtype=bool).reshape(m)
    err = dst["error"][rows]  # an errored fit has no numbers
    for key in dst:
        if key not in _BOOLS:
            dst[key][rows] = np.where(err, np.nan, dst[key][rows])


def _keep_first(dst: dict[str, np.ndarray], m: int) -> None:
    """Forget rows from `m` on (an arm asked for on a subset of the replications)."""
    m = max(m, 0)
    for key, arr in dst.items():
        arr[m:] = False if key in _BOOLS else np.nan


def _timed(seconds: dict[str, float], phase: str, fn: Callable, *args, **kwargs) -> Any:
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        return fn(*args, **kwargs)
    finally:
        seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - t0
        seconds[f"cpu:{phase}"] = seconds.get(f"cpu:{phase}", 0.0) + time.process_time() - c0


def _closed_form(task: _Task, y, x, c, names: list[str]) -> dict[str, Any]:
    try:
        return arms.closed_form_estimators(y, x, c, conf_level=task.conf_level, mode=task.mode)
    except Exception:  # noqa: BLE001 - retry row by row, counting failures
        return {
            n: arms.call_plugin(arms.ClosedFormOne(n, task.mode), y, x, c, task.conf_level)
            for n in names
        }


def _seeds(task: _Task, stop: int, stream: str) -> list[int]:
    return [
        arms.arm_seed(task.random_seed, task.params, r, stream) for r in range(task.start, stop)
    ]


def _builtin_arm(task: _Task, name: str, y, x, c, stop: int) -> dict[str, Any]:
    if name == "ml":
        return arms.call_plugin(arms.ml_estimator, y, x, c, task.conf_level)
    settings = dict(task.mcmc)
    # one seed per replication: a data set's chains do not depend on its chunk

    def mcmc(ys, xs, cs, *, conf_level, random_seed):
        return arms.mcmc_estimator(ys, xs, cs, conf_level=conf_level, random_seed=random_seed,
                                   **settings)

    return arms.call_plugin(mcmc, y, x, c, task.conf_level,
                            per_row={"random_seed": _seeds(task, stop, "mcmc")})


def _run_chunk(task: _Task) -> dict[str, Any]:
    """Generate one chunk's data and fit every arm; return per-replication arrays."""
    B = task.stop - task.start
    seconds: dict[str, float] = {}
    y, x, c = _timed(
        seconds,
        "generate",
        simulate_replications,
        task.params,
        task.start,
        task.stop,
        random_seed=task.random_seed,
        seed_block=task.seed_block,
    )
    results = {n: _empty(B, required_keys(n, fn is None, task.n_boot)) for n, fn in task.estimators}
    cf = [n for n, fn in task.estimators if fn is None and n in arms.CLOSED_FORM]
    if cf:
        out = _timed(seconds, "closed_form", _closed_form, task, y, x, c, cf)
        for n in cf:
            _fill(results[n], B, out[n], task.conf_level)
            _keep_first(results[n], min(task.stop, task.arm_stop.get(n, task.stop)) - task.start)
            seconds[n] = seconds["closed_form"] / len(cf)
            seconds[f"cpu:{n}"] = seconds["cpu:closed_form"] / len(cf)
        if "mlob" in cf and task.n_boot > 0:
            lo, hi = _timed(
                seconds,
                "mlob_bootstrap",
                arms.bootstrap_intervals,
                y,
                x,
                c,
                conf_level=task.conf_level,
                mode=task.mode,
                n_boot=task.n_boot,
                seeds=_seeds(task, task.stop, "bootstrap"),
            )
            use = results["mlob"]["ran"] & ~results["mlob"]["error"]
            results["mlob"]["lo::bootstrap"] = np.where(use, lo, np.nan)
            results["mlob"]["hi::bootstrap"] = np.where(use, hi, np.nan)
    for name, fn in task.estimators:
        if fn is None and name in arms.CLOSED_FORM:
            continue
        stop = min(task.stop, task.arm_stop.get(name, task.stop))
        m = stop - task.start
        seconds.setdefault(name, 0.0)
        seconds.setdefault(f"cpu:{name}", 0.0)
        if m <= 0:
            continue
        ys, xs, cs = y[:m], x[:m], c[:m]
        if fn is not None:
            out = _timed(seconds, name, arms.call_plugin, fn, ys, xs, cs, task.conf_level)
        else:
            out = _timed(seconds, name, _builtin_arm, task, name, ys, xs, cs, stop)
        _fill(results[name], m, out, task.conf_level)
    seconds.pop("closed_form", None)
    seconds.pop("cpu:closed_form", None)
    return {
        "cell": task.cell,
        "start": task.start,
        "stop": task.stop,
        "results": results,
        "seconds": seconds,
    }


# ---------------------------------------------------------------------------------------------
# steps of run_study


def _plan(s: Settings, config: dict[str, Any], cells: list[dict[str, Any]]) -> list[_Task]:
    root = int(config["random_seed"])
    study = ckpt.fingerprint(config)
    names = [n for n, _ in s.estimators]
    n_boot = config["n_boot"]
    tasks = []
    for ci, params in enumerate(cells):
        stops = {n: (s.arm_stop[n] if s.masks[n][ci] else 0) for n in s.arm_stop}
        key = cell_key(params)
        for start in range(0, s.replications, s.chunk_size):
            stop = min(start + s.chunk_size, s.replications)
            tasks.append(
                _Task(
                    ci,
                    params,
                    start,
                    stop,
                    root,
                    s.seed_block,
                    s.estimators,
                    stops,
                    s.conf_level,
                    s.mode,
                    n_boot,
                    s.mcmc if "mcmc" in names else {},
                    ckpt.chunk_identity(study, ci, params, key, root, start, stop),
                )
            )
    return tasks


def _load_finished(tasks: list[_Task], ckpt_dir: Path | None, n_boot: int):
    """Split tasks into chunks loaded from the checkpoint (verified) and chunks still to run."""
    results: dict[tuple[int, int], dict[str, Any]] = {}
    todo: list[_Task] = []
    for task in tasks:
        path = ckpt.chunk_file(ckpt_dir, task.cell, task.start) if ckpt_dir else None
        res = None
        if path is not None and path.exists():
            required = {n: required_keys(n, fn is None, n_boot) for n, fn in task.estimators}
            res = ckpt.load_chunk(path, task.identity, required)
        if res is None:
            todo.append(task)
        else:
            results[(task.cell, task.start)] = res
    return results, todo


def run_study(
    design: Any = "talk",
    replications: int = 5000,
    estimators: Any = ("mlob", "ml_moments"),
    random_seed: Any = None,
    scheduler: Any = None,
    checkpoint: str | os.PathLike | None = None,
    *,
    subsets: Mapping[str, Any] | None = None,
    chunk_size: int = 1000,
    seed_block: int = 100,
    conf_level: float = 0.95,
    mode: str = "r",
    n_boot: int = 0,
    mcmc_kwargs: Mapping[str, Any] | None = None,
    n_workers: int | None = None,
    keep_replications: bool = False,
    progress: bool = True,
    callback: Callable[[ChunkInfo], None] | None = None,
):
    """Run a simulation study of estimators of ``beta_b`` and summarise it per cell.

    Parameters
    ----------
    design : "talk", Design or mapping, default "talk"
        The MLOB talk's 540 cells (:func:`~mlob_pp.comparisons.study.design.talk_design`), a
        :class:`~mlob_pp.comparisons.study.design.Design`, or a mapping of changes to the talk's
        design such as ``{"J": (5, 10), "rho_c": 0.0}``.
    replications : int, default 5000
        Replications per cell.
    estimators : name, sequence or mapping, default ("mlob", "ml_moments")
        Built-in names ``"mlob"``, ``"ml_moments"``, ``"ml"``, ``"mcmc"``, and/or a mapping
        ``name -> function`` for user arms (see :mod:`mlob_pp.comparisons.study.arms`; a
        ``None`` value means the built-in). Every arm runs on every replication of every cell.
    random_seed : None, int, numpy Generator or SeedSequence
        Root seed (:mod:`mlob_pp.seeds`). ``None`` draws fresh entropy and stores it in the
        attributes (and in the checkpoint manifest, from which a resumed run takes it).
    scheduler : None, "local", str or distributed.Client
        ``None`` runs serially in this process; ``"local"`` starts a
        ``distributed.LocalCluster`` (processes, one thread each; with the MCMC arm one worker
        per two cores); ``"tcp://host:port"`` connects to a running scheduler.
    checkpoint : path, optional
        Directory for per-chunk result files and a manifest. An interrupted run called again
        with the same directory and settings skips the finished chunks; a chunk file that is
        unreadable or not the chunk it is named for is reported (warning) and recomputed.
    subsets : mapping, optional
        Only when asked: per estimator, ``{"replications": R, "cells": {factor: levels}}`` fits
        the first R replications of the matching cells only.
    chunk_size : int, default 1000
        Replications of one cell per task and checkpoint file.
    seed_block : int, default 100
        Replications per random-number block (changing it changes the data).
    conf_level : float, default 0.95
        Nominal level of the intervals.
    mode : {"r", "stable"}, default "r"
        Mode of :func:`mlob_pp.mlob_batch` for ``"mlob"`` and ``"ml_moments"``.
    n_boot : int, default 0
        Bootstrap refits per data set for MLOB's test-inversion bootstrap interval
        (``mlob_bootstrap``); 0 leaves it out.
    mcmc_kwargs : mapping, optional
        ``draws``, ``tune``, ``chains``, ``target_accept``, ``prior_slope_sd`` of
        :func:`mlob_pp.mcmc_batch` (defaults 500, 500, 4, 0.95, 2.5), and ``rhat_max`` and
        ``ess_min`` of the convergence count (1.01, 400). Every replication's chains have
        their own seed, so MCMC results, like the others, do not change with ``chunk_size``.
    n_workers : int, optional
        Workers of the local cluster.
    keep_replications : bool, default False
        Also return per-replication ``estimate``, ``se``, ``ci_lower``, ``ci_upper`` (dims
        estimator, replication) and ``interval_lower``, ``interval_upper`` (interval,
        replication).
    progress : bool, default True
        Show a tqdm progress bar on stderr.
    callback : callable, optional
        Called with a :class:`ChunkInfo` after each chunk is stored; an exception raised there
        stops the run (finished chunks stay in the checkpoint).

    Returns
    -------
    xarray.Dataset
        Dimensions: the design factors, ``estimator``, ``metric`` (:data:`METRICS`), ``count``
        (:data:`COUNTS`), ``interval`` (e.g. ``mlob_analytic``, ``ml_profile``; coordinate
        ``interval_estimator``), ``interval_metric``, ``phase`` (``generate``, the estimators,
        ``mlob_bootstrap``). Variables: ``value``, ``mcse``, ``n_used`` (factors x estimator x
        metric), ``interval_value``, ``interval_mcse``, ``interval_n_used`` (factors x interval
        x interval_metric), ``counts``, ``truth``, ``icc_y``, ``seconds`` and ``cpu_seconds``
        (factors x phase). Attributes: provenance and settings.

    Raises
    ------
    ValueError, TypeError
        For invalid arguments, or a checkpoint directory written by a different study.

    See Also
    --------
    mlob_pp.comparisons.study.design.talk_design, save_study, mlob_pp.comparisons.study.plots

    Examples
    --------
    >>> ds = run_study({"J": (10,), "n": (5,), "icc_x": (0.1,), "beta_w": (0.2,)},
    ...                replications=200, random_seed=1, progress=False)
    >>> ds["value"].sel(metric="rmse").dims
    ('icc_x', 'J', 'n', 'beta_b', 'beta_w', 'estimator')
    """
    t_start = time.perf_counter()
    s = check_settings(
        design,
        replications,
        estimators,
        random_seed,
        subsets,
        chunk_size,
        seed_block,
        conf_level,
        mode,
        n_boot,
        mcmc_kwargs,
        n_workers,
        keep_replications,
        progress,
    )
    config = study_config(s)
    ckpt_dir = Path(checkpoint) if checkpoint is not None else None
    if ckpt_dir is not None:
        ckpt.open_checkpoint(ckpt_dir, config)  # fills a None seed
    elif config["random_seed"] is None:
        config["random_seed"] = int(np.random.SeedSequence().entropy % 2**63)
    cells = list(s.design.cells())
    tasks = _plan(s, config, cells)
    results, todo = _load_finished(tasks, ckpt_dir, config["n_boot"])

    from tqdm import tqdm

    bar = tqdm(
        total=len(cells) * s.replications,
        unit="rep",
        unit_scale=True,
        initial=sum(r["stop"] - r["start"] for r in results.values()),
        desc="simulate",
        file=sys.stderr,
        disable=not s.progress,
        dynamic_ncols=True,
    )
    identities = {(t.cell, t.start): t.identity for t in tasks}

    def finish(res: dict[str, Any]) -> None:
        key = (res["cell"], res["start"])
        results[key] = res
        if ckpt_dir is not None:
            ckpt.save_chunk(ckpt_dir, res, identities[key])
        bar.update(res["stop"] - res["start"])
        if callback is not None:
            callback(ChunkInfo(res["cell"], res["start"], res["stop"], len(results), len(tasks)))

    try:
        mcmc = any(n == "mcmc" and fn is None for n, fn in s.estimators)
        sched_text = execute(_run_chunk, todo, finish, scheduler, s.n_workers, mcmc)
    finally:
        bar.close()
    ds = assemble(
        s.design,
        cells,
        s.replications,
        s.estimators,
        results,
        config["n_boot"],
        s.keep_replications,
    )
    ds.attrs.update(study_attrs(config, s.design, sched_text, time.perf_counter() - t_start))
    return ds


def save_study(ds: Any, path: str | os.PathLike) -> Path:
    """Write a study Dataset to netCDF (h5netcdf engine, compressed) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding = {
        v: {"compression": "gzip", "compression_opts": 4}
        for v in ds.data_vars
        if ds[v].dtype.kind in "fiub" and ds[v].ndim > 0
    }
    ds.to_netcdf(path, engine="h5netcdf", encoding=encoding)
    return path


def load_study(path: str | os.PathLike) -> Any:
    """Read a study Dataset written by :func:`save_study` (loaded into memory).

    Raises
    ------
    ValueError
        If `path` is not a netCDF file holding a study.
    """
    import xarray as xr

    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ds = ds.load()
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"`path` {str(path)!r} is not a study written by save_study "
            f"({type(exc).__name__}: {exc})"
        ) from None
    if "value" not in ds or "metric" not in ds.dims:
        raise ValueError(f"`path` {str(path)!r} is a netCDF file but not a study result")
    return ds
