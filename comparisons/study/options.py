"""Checks of the ``estimators`` and ``subsets`` arguments of :func:`~.runner.run_study`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mlob_pp.comparisons.study.design import Design

__all__ = ["check_estimators", "check_subsets"]


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
