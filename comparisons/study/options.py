"""Checks of the arguments of :func:`~.runner.run_study` and the study's settings record."""

from __future__ import annotations

import json
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlob_pp.comparisons.study.arms import ESTIMATORS, MCMC_DEFAULTS
from mlob_pp.comparisons.study.design import Design, as_design
from mlob_pp.seeds import as_seed_sequence, check_random_seed
from mlob_pp.validate import (
    check_bool,
    check_choice,
    check_int,
    check_positive,
    check_probability,
)

__all__ = ["check_estimators", "check_subsets", "Settings", "check_settings", "study_config",
           "check_mcmc", "root_seed", "qualname"]


def check_estimators(
    estimators: Any, builtin: Sequence[str]
) -> tuple[tuple[str, Callable | None], ...]:
    """Return ``((name, function or None), ...)`` from a name, names or a mapping."""
    if isinstance(estimators, str):
        estimators = (estimators,)
    if isinstance(estimators, Mapping):
        items = list(estimators.items())
    elif isinstance(estimators, Sequence):
        items = [(e, None) if isinstance(e, str) else tuple(e) for e in estimators]
    else:
        raise TypeError(
            "`estimators` must be a name, a sequence of names or a mapping name -> function; "
            f"got {type(estimators).__name__}"
        )
    out: list[tuple[str, Callable | None]] = []
    for item in items:
        if len(item) != 2 or not isinstance(item[0], str):
            raise TypeError(f"`estimators` entries must be names or (name, function); got {item!r}")
        name, fn = item
        if fn is None and name not in builtin:
            raise ValueError(
                f"unknown estimator {name!r} in `estimators`; built-in: "
                f"{', '.join(builtin)} (or pass a mapping name -> function)"
            )
        if fn is not None and not callable(fn):
            raise TypeError(f"estimator {name!r} must be callable; got {fn!r}")
        if name in (n for n, _ in out):
            raise ValueError(f"estimator {name!r} is listed twice in `estimators`")
        out.append((name, fn))
    if not out:
        raise ValueError("`estimators` must name at least one estimator; got none")
    return tuple(out)


def _cell_mask(name: str, cells: Any, design: Design) -> np.ndarray:
    mask = np.ones(design.shape, dtype=bool)
    if cells is None:
        return mask
    if not isinstance(cells, Mapping):
        raise TypeError(
            f"`subsets[{name!r}]['cells']` must be a mapping factor -> levels; got {cells!r}"
        )
    bad = set(cells) - set(design.factors)
    if bad:
        raise ValueError(
            f"`subsets[{name!r}]['cells']` names {sorted(bad)}, which are not factors of "
            f"the design ({', '.join(design.factors)})"
        )
    for axis, (factor, levels) in enumerate(design.factors.items()):
        if factor not in cells:
            continue
        want = cells[factor]
        want = set(want if isinstance(want, Sequence | np.ndarray) else [want])
        keep = np.array([lv in want for lv in levels])
        shape = [1] * len(design.shape)
        shape[axis] = len(levels)
        mask &= keep.reshape(shape)
    return mask


def check_subsets(
    subsets: Mapping[str, Any] | None,
    estimators: tuple[tuple[str, Callable | None], ...],
    design: Design,
    replications: int,
) -> tuple[dict[str, int], dict[str, np.ndarray], dict[str, Any]]:
    """Per estimator named in `subsets`: replications to run and a mask of cells (C order).

    Estimators not named run on every replication of every cell.
    """
    names = [n for n, _ in estimators]
    if subsets is not None and not isinstance(subsets, Mapping):
        raise TypeError(f"`subsets` must be a mapping estimator -> spec; got {subsets!r}")
    given = dict(subsets or {})
    for key in given:
        if key not in names:
            raise ValueError(
                f"`subsets` names estimator {key!r}, which is not in `estimators` ({names})"
            )
    arm_stop: dict[str, int] = {}
    masks: dict[str, np.ndarray] = {}
    record: dict[str, Any] = {}
    for name, spec in given.items():
        if not isinstance(spec, Mapping):
            raise TypeError(
                f"`subsets[{name!r}]` must be a mapping with keys 'replications' and 'cells'; "
                f"got {spec!r}"
            )
        unknown = set(spec) - {"replications", "cells"}
        if unknown:
            raise ValueError(
                f"`subsets[{name!r}]` allows keys 'replications' and 'cells'; got {sorted(unknown)}"
            )
        reps = spec.get("replications")
        reps = replications if reps is None else int(reps)
        if reps < 0:
            raise ValueError(f"`subsets[{name!r}]['replications']` must be >= 0; got {reps}")
        arm_stop[name] = min(reps, replications)
        cells = spec.get("cells")
        masks[name] = _cell_mask(name, cells, design).ravel()
        record[name] = {
            "replications": arm_stop[name],
            "cells": None
            if cells is None
            else {k: list(np.atleast_1d(v).tolist()) for k, v in cells.items()},
        }
    return arm_stop, masks, record


@dataclass
class Settings:
    """Validated arguments of :func:`~.runner.run_study`."""

    design: Design
    replications: int
    estimators: tuple[tuple[str, Callable | None], ...]
    random_seed: int | None
    chunk_size: int
    seed_block: int
    conf_level: float
    mode: str
    n_boot: int
    mcmc: dict[str, Any]
    arm_stop: dict[str, int]
    masks: dict[str, np.ndarray]
    subsets: dict[str, Any]
    n_workers: int | None
    keep_replications: bool
    progress: bool


def root_seed(random_seed: Any) -> int | None:
    """Integer root seed from ``random_seed`` (None stays None: drawn later or resumed)."""
    check_random_seed(random_seed, r_allowed=False)
    if random_seed is None:
        return None
    if isinstance(random_seed, numbers.Integral):
        return int(random_seed)
    state = as_seed_sequence(random_seed).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def check_mcmc(mcmc_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the MCMC arm's settings: defaults updated with `mcmc_kwargs` (checked)."""
    mk = dict(MCMC_DEFAULTS)
    if mcmc_kwargs:
        if not isinstance(mcmc_kwargs, Mapping):
            raise TypeError(f"`mcmc_kwargs` must be a mapping; got {type(mcmc_kwargs).__name__}")
        bad = set(mcmc_kwargs) - set(mk)
        if bad:
            raise ValueError(f"`mcmc_kwargs` allows {', '.join(mk)}; got {sorted(bad)}")
        mk.update(mcmc_kwargs)
    for key in ("draws", "tune", "chains"):
        mk[key] = check_int(mk[key], f"mcmc_kwargs['{key}']", minimum=1)
    mk["target_accept"] = check_probability(mk["target_accept"], "mcmc_kwargs['target_accept']")
    mk["prior_slope_sd"] = check_positive(mk["prior_slope_sd"], "mcmc_kwargs['prior_slope_sd']")
    return mk


def check_settings(
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
) -> Settings:
    """Check every argument of :func:`~.runner.run_study`; return them as :class:`Settings`."""
    design = as_design(design)
    replications = check_int(replications, "replications", minimum=1)
    est = check_estimators(estimators, ESTIMATORS)
    arm_stop, masks, record = check_subsets(subsets, est, design, replications)
    return Settings(
        design=design,
        replications=replications,
        estimators=est,
        random_seed=root_seed(random_seed),
        chunk_size=check_int(chunk_size, "chunk_size", minimum=1),
        seed_block=check_int(seed_block, "seed_block", minimum=1),
        conf_level=check_probability(conf_level, "conf_level"),
        mode=check_choice(mode, "mode", ("r", "stable")),
        n_boot=check_int(n_boot, "n_boot", minimum=0),
        mcmc=check_mcmc(mcmc_kwargs),
        arm_stop=arm_stop,
        masks=masks,
        subsets=record,
        n_workers=None if n_workers is None else check_int(n_workers, "n_workers", minimum=1),
        keep_replications=check_bool(keep_replications, "keep_replications"),
        progress=check_bool(progress, "progress"),
    )


def qualname(fn: Callable) -> str:
    """Dotted name of a user arm (stored in the settings)."""
    mod = getattr(fn, "__module__", None) or type(fn).__module__
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{mod}.{name}"


def study_config(s: Settings) -> dict[str, Any]:
    """JSON-safe settings of a study (checkpoint manifest, fingerprint, attributes)."""
    names = [n for n, _ in s.estimators]
    return {
        "design": json.loads(s.design.to_json()),
        "replications": s.replications,
        "random_seed": s.random_seed,
        "seed_block": s.seed_block,
        "chunk_size": s.chunk_size,
        "conf_level": s.conf_level,
        "mode": s.mode,
        "n_boot": s.n_boot if "mlob" in names else 0,
        "estimators": [[n, None if fn is None else qualname(fn)] for n, fn in s.estimators],
        "subsets": s.subsets,
        "mcmc_kwargs": s.mcmc if "mcmc" in names else None,
    }
