"""Input validation at the public boundary.

Every check raises ``TypeError`` (bad type) or ``ValueError`` (bad value) with a message that
names the argument, states what is allowed and echoes what was given.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

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
    "check_random_state",
]


class MLOBWarning(UserWarning):
    """Base class of the warnings that mlob_pp emits."""


class BalancingWarning(MLOBWarning):
    """Rows or groups were deleted to balance the data (as R MLOB does)."""


class NumericalWarning(MLOBWarning):
    """A pole, a degenerate branch or a fallback of the algorithm decided the result."""


class ConvergenceWarning(MLOBWarning):
    """MCMC diagnostics failed: divergent transitions, R-hat > 1.01 or a low effective size."""


class MissingDataWarning(MLOBWarning):
    """Incomplete rows were dropped because the user asked for it."""


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
    """Check that `random_state` is None, a non-negative int, a Generator or RRandom."""
    from mlob_pp.rrandom import RRandom

    if random_state is None or isinstance(random_state, np.random.Generator | RRandom |
                                          np.random.SeedSequence):
        return
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"`{name}` must be a non-negative integer seed; got {random_state}")
        return
    raise TypeError(
        f"`{name}` must be None, an int, a numpy Generator or mlob_pp.RRandom; "
        f"got {type(random_state).__name__}"
    )


def as_generator(random_state: Any, name: str = "random_state") -> Any:
    """Turn `random_state` into a random generator.

    ``None`` gives a fresh unseeded :class:`numpy.random.Generator`, an integer a seeded one,
    a ``Generator`` is used as it is, and a :class:`mlob_pp.RRandom` (R's Mersenne-Twister)
    is passed through.
    """
    from mlob_pp.rrandom import RRandom

    check_random_state(random_state, name)
    if isinstance(random_state, np.random.Generator | RRandom):
        return random_state
    return np.random.default_rng(random_state)
