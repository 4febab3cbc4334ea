"""Checkpoints of a simulation study: a manifest and one verified file per chunk.

A checkpoint directory holds ``manifest.json`` (the study's settings: design, replications,
seed, chunking, estimators, ...) and ``chunks/cell<ccccc>_rep<rrrrrrr>.npz``, one file per
finished chunk. Every chunk file carries its own identity: the study's fingerprint (a hash of the
manifest's settings), the cell index, the cell's parameter values and their seed key, the root
seed and the replication range. A file is reused only when all of these match the chunk it is
loaded for and every estimator's arrays have the chunk's length; a file that is unreadable
(truncated, not a zip archive, missing keys) or that belongs to another cell or study is reported
by name with a warning and recomputed (then overwritten). Files are written to a temporary name
and renamed, so an interrupted write leaves no half file under a chunk's name.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlob_pp.warnings import CheckpointWarning

__all__ = [
    "CheckpointWarning",
    "FORMAT_VERSION",
    "chunk_file",
    "chunk_identity",
    "fingerprint",
    "save_chunk",
    "load_chunk",
    "open_checkpoint",
]

FORMAT_VERSION = 2


def now() -> str:
    """UTC time stamp (seconds)."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def fingerprint(config: Mapping[str, Any]) -> str:
    """Short hash of a study's settings (stored in the manifest and in every chunk)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def chunk_file(directory: Path, cell: int, start: int) -> Path:
    """Path of the chunk of `cell` starting at replication `start`."""
    return directory / "chunks" / f"cell{cell:05d}_rep{start:07d}.npz"


def chunk_identity(
    study: str,
    cell: int,
    params: Mapping[str, Any],
    key: tuple[int, ...],
    random_seed: int,
    start: int,
    stop: int,
) -> dict[str, Any]:
    """Identity record of one chunk (see the module docstring)."""
    return {
        "format": FORMAT_VERSION,
        "study": study,
        "cell": int(cell),
        "params": {
            k: (int(v) if isinstance(v, int | np.integer) else float(v)) for k, v in params.items()
        },
        "cell_key": [int(k) for k in key],
        "random_seed": int(random_seed),
        "start": int(start),
        "stop": int(stop),
    }


def save_chunk(directory: Path, res: Mapping[str, Any], identity: Mapping[str, Any]) -> Path:
    """Write one chunk's per-replication arrays and seconds, with its identity."""
    arrays: dict[str, np.ndarray] = {}
    for name, r in res["results"].items():
        for key, arr in r.items():
            arrays[f"r::{name}::{key}"] = np.asarray(arr)
    for key, sec in res["seconds"].items():
        arrays[f"s::{key}"] = np.array(sec, dtype=float)
    arrays["identity"] = np.array(json.dumps(dict(identity), sort_keys=True))
    path = chunk_file(directory, identity["cell"], identity["start"])
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def _read(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    # open the file here: np.load leaks its own handle when the archive is truncated
    with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
        identity = json.loads(str(f["identity"][()]))
        results: dict[str, dict[str, np.ndarray]] = {}
        seconds: dict[str, float] = {}
        for key in f.files:
            if key.startswith("r::"):
                _, name, field_ = key.split("::", 2)
                results.setdefault(name, {})[field_] = f[key]
            elif key.startswith("s::"):
                seconds[key[3:]] = float(f[key])
    return identity, {"results": results, "seconds": seconds}


def _mismatch(found: Mapping[str, Any], expected: Mapping[str, Any]) -> str | None:
    for key in ("format", "study", "cell", "params", "cell_key", "random_seed", "start", "stop"):
        if found.get(key) != expected.get(key):
            return f"its {key} is {found.get(key)!r}, expected {expected.get(key)!r}"
    return None


def load_chunk(
    path: Path,
    identity: Mapping[str, Any],
    required: Mapping[str, tuple[str, ...]],
) -> dict[str, Any] | None:
    """Load a stored chunk if it is readable and is the chunk described by `identity`.

    Parameters
    ----------
    path : pathlib.Path
        Chunk file.
    identity : mapping
        What the chunk must be (study fingerprint, cell, parameters, seed, replication range).
    required : mapping
        Per estimator, the array names the chunk must hold (each of length stop - start).

    Returns
    -------
    dict or None
        The chunk (``cell``, ``start``, ``stop``, ``results``, ``seconds``), or ``None`` after a
        :class:`CheckpointWarning` naming the file when it cannot be used (it is recomputed).
    """
    try:
        found, body = _read(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is recomputed, not fatal
        warnings.warn(
            f"checkpoint chunk {str(path)!r} is unreadable ({type(exc).__name__}: {exc}); "
            "recomputing it",
            CheckpointWarning,
            stacklevel=3,
        )
        return None
    reason = _mismatch(found, identity)
    if reason is None:
        m = identity["stop"] - identity["start"]
        for name, keys in required.items():
            got = body["results"].get(name, {})
            bad = [k for k in keys if k not in got or np.shape(got[k]) != (m,)]
            if bad:
                reason = f"estimator {name!r} lacks {len(bad)} of its arrays (e.g. {bad[0]!r})"
                break
    if reason is not None:
        warnings.warn(
            f"checkpoint chunk {str(path)!r} does not belong to this chunk of the study "
            f"({reason}); recomputing it",
            CheckpointWarning,
            stacklevel=3,
        )
        return None
    return {"cell": identity["cell"], "start": identity["start"], "stop": identity["stop"], **body}


def open_checkpoint(directory: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Create the checkpoint directory or check that it belongs to the same study.

    A ``random_seed`` of ``None`` in `config` is taken from an existing manifest (or drawn
    fresh for a new one) and written into `config`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "chunks").mkdir(exist_ok=True)
    manifest = directory / "manifest.json"
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text())
            old_cfg = dict(old["config"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"`checkpoint` directory {str(directory)!r} has an unreadable manifest.json "
                f"({type(exc).__name__}: {exc}); use a new directory or delete the manifest"
            ) from None
        if config.get("random_seed") is None:
            config["random_seed"] = old_cfg.get("random_seed")
        for key in sorted(set(old_cfg) | set(config)):
            if old_cfg.get(key) != config.get(key):
                raise ValueError(
                    f"`checkpoint` directory {str(directory)!r} holds a different study: "
                    f"{key!r} was {old_cfg.get(key)!r} there but is {config.get(key)!r} now; "
                    "use a new directory or the same settings"
                )
        return old
    if config.get("random_seed") is None:
        config["random_seed"] = int(np.random.SeedSequence().entropy % 2**63)
    doc = {"format": FORMAT_VERSION, "created": now(), "config": config}
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, manifest)
    return doc
