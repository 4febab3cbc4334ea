"""Provenance attributes stamped on every common-format result.

:func:`make_attrs` builds on :func:`arviz_base.make_attrs` (creation time and library) and adds
the estimator, the mlob_pp version, the settings of the call (as JSON) and the seed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlob_pp import __version__
from mlob_pp.seeds import seed_attr

__all__ = ["make_attrs", "jsonable"]




def jsonable(value: Any) -> Any:
    """Return `value` in a form ``json.dumps`` accepts (numpy scalars, tuples, generators)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def make_attrs(
    estimator: str,
    *,
    settings: Mapping[str, Any] | None = None,
    random_seed: Any = None,
    inference_library: str = "mlob_pp",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the provenance attributes stamped on every group of a common-format result.

    Builds on :func:`arviz_base.make_attrs` (creation time and library) and adds the
    estimator, the mlob_pp version, the call settings (as JSON text) and the seed. All values are
    strings or numbers so that they survive a netCDF round trip.

    Parameters
    ----------
    estimator : str
        One of ``"mlob"``, ``"ml_moments"``, ``"ml"``, ``"mcmc"`` (other names are allowed for
        user-defined estimators).
    settings : mapping, optional
        Settings of the call that produced the result; stored as ``json.dumps`` text.
    random_seed : int, Generator or None, optional
        Seed of the estimator; ints are stored as is, anything else by its type name, ``None``
        as ``"none"``.
    inference_library : str, default "mlob_pp"
        Library that did the estimation (``"pymc"`` for MCMC).
    extra : mapping, optional
        Further attributes (formula, group, n_obs, ...); ``None`` values are dropped.

    Returns
    -------
    dict
        Attributes for ``DataTree.attrs`` and each group's ``attrs``.

    Examples
    --------
    >>> attrs = make_attrs("ml", settings={"covariates": "shared"}, random_seed=1)
    >>> attrs["estimator"], attrs["random_seed"], attrs["settings"]
    ('ml', 1, '{"covariates": "shared"}')
    """
    from importlib import metadata

    import arviz_base

    attrs = dict(arviz_base.make_attrs())
    attrs.update(
        {
            "creation_library": "mlob_pp",
            "creation_library_version": __version__,
            "arviz_base_version": arviz_base.__version__,
            "mlob_pp_version": __version__,
            "estimator": str(estimator),
            "inference_library": inference_library,
            "settings": json.dumps(jsonable(dict(settings or {})), sort_keys=True),
            "random_seed": seed_attr(random_seed),
        }
    )
    try:
        attrs["inference_library_version"] = metadata.version(inference_library)
    except metadata.PackageNotFoundError:  # pragma: no cover - editable installs have metadata
        attrs["inference_library_version"] = __version__
    for key, value in (extra or {}).items():
        if value is None:
            continue
        if isinstance(value, (bool, np.bool_)):
            value = int(value)
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, (Mapping, list, tuple)):
            value = json.dumps(jsonable(value), sort_keys=True)
        elif not isinstance(value, (int, float, str)):
            value = str(value)
        attrs[str(key)] = value
    return attrs
