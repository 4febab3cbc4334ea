"""Input validation at the public boundary.

Every check raises ``TypeError`` (bad type) or ``ValueError`` (bad value) with a message that
names the argument, states what is allowed and echoes what was given.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from mlob_pp.seeds import as_generator, check_random_seed
from mlob_pp.warnings import (
    BalancingWarning,
    ConvergenceWarning,
    MissingDataWarning,
    MLOBWarning,
    NumericalWarning,
)

__all__ = [
    "MLOBWarning",
    "BalancingWarning",
    "NumericalWarning",
    "MissingDataWarning",
    "ConvergenceWarning",
    "check_probability",
    "check_fraction",
    "check_positive",
    "check_bool",
    "check_choice",
    "check_int",
    "as_generator",
    "check_random_seed",
    "check_random_state",
    "renamed_argument",
    "reject_unknown",
]


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_probability(value: Any, name: str, *, hint: str = "") -> float:
    """Check a number strictly between 0 and 1 and return it as float."""
    if not _is_real(value):
        raise TypeError(f"`{name}` must be a number strictly between 0 and 1; got {value!r}{hint}")
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"`{name}` must be strictly between 0 and 1; got {value!r}{hint}")
    return value


def check_fraction(value: Any, name: str) -> float:
    """Check a number in [0, 1] (inclusive) and return it as float."""
    if not _is_real(value):
        raise TypeError(f"`{name}` must be a number in [0, 1]; got {value!r}")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1]; got {value!r}")
    return value


def check_positive(value: Any, name: str) -> float:
    """Check a finite number > 0 and return it as float."""
    if not _is_real(value):
        raise TypeError(f"`{name}` must be a number greater than 0; got {value!r}")
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be a finite number greater than 0; got {value!r}")
    return value


def check_bool(value: Any, name: str) -> bool:
    """Check a Python or numpy bool."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"`{name}` must be True or False; got {value!r}")
    return bool(value)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Check that `value` is one of the strings in `choices`."""
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be one of {allowed}; got {value!r}")
    return value


def check_int(value: Any, name: str, *, minimum: int | None = None) -> int:
    """Check an integer (not bool), optionally >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer; got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value}")
    return value


def check_random_state(random_state: Any, name: str = "random_state") -> None:
    """Check a seed argument (see :func:`mlob_pp.seeds.check_random_seed`)."""
    check_random_seed(random_state, name)


def renamed_argument(
    func: str, kwargs: dict[str, Any], old: str, new: str, value: Any, default: Any = None
) -> Any:
    """Accept a deprecated argument name for the 0.2 series.

    If `old` is in `kwargs` it is removed and a ``DeprecationWarning`` naming `new` is emitted;
    giving both names is an error. Returns the value to use for `new`.

    Examples
    --------
    >>> import warnings
    >>> kw = {"random_state": 3}
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     renamed_argument("mlob", kw, "random_state", "random_seed", None)
    3
    >>> str(w[0].message)
    'mlob(): `random_state` is deprecated since 0.2 and will be removed; use `random_seed`'
    """
    import warnings

    if old not in kwargs:
        return value
    old_value = kwargs.pop(old)
    if value is not default:
        raise TypeError(f"{func}() got both `{old}` (deprecated) and `{new}`; give only `{new}`")
    warnings.warn(
        f"{func}(): `{old}` is deprecated since 0.2 and will be removed; use `{new}`",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value


def reject_unknown(func: str, kwargs: dict[str, Any]) -> None:
    """Raise ``TypeError`` for keyword arguments left over after the renamed ones were taken."""
    if kwargs:
        names = ", ".join(f"`{k}`" for k in kwargs)
        raise TypeError(f"{func}() got unexpected keyword argument(s) {names}")
