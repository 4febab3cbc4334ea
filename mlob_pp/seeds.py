"""One seed rule for every estimator: ``random_seed``.

Every random entry point of mlob_pp takes ``random_seed``: ``None`` (fresh entropy), a
non-negative ``int``, a :class:`numpy.random.Generator` or a :class:`numpy.random.SeedSequence`;
where R's draws are wanted (balancing deletions, R's jackknife) also a
:class:`mlob_pp.RRandom`. The helpers below turn that one argument into what each consumer needs.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from mlob_pp.rrandom import RRandom

__all__ = [
    "check_random_seed", "as_generator", "as_seed_sequence", "as_int_seed", "seed_attr",
    "is_seed_sequence", "per_item_generators",
]

_ALLOWED = "None, a non-negative int, a numpy Generator, a numpy SeedSequence or mlob_pp.RRandom"


def check_random_seed(random_seed: Any, name: str = "random_seed", *, r_allowed: bool = True):
    """Check a ``random_seed`` argument; return it unchanged.

    Parameters
    ----------
    random_seed : None, int, numpy.random.Generator, numpy.random.SeedSequence or RRandom
        The seed to check.
    name : str, default "random_seed"
        Argument name used in error messages.
    r_allowed : bool, default True
        Whether :class:`mlob_pp.RRandom` is accepted (only where R's draws can be reproduced).

    Raises
    ------
    TypeError
        For any other type (bool included).
    ValueError
        For a negative integer.
    """
    if random_seed is None or isinstance(random_seed, np.random.Generator | np.random.SeedSequence):
        return random_seed
    if isinstance(random_seed, RRandom):
        if not r_allowed:
            raise TypeError(
                f"`{name}` cannot be mlob_pp.RRandom here (R's draws are not reproduced by this "
                "estimator); pass None, an int, a numpy Generator or a numpy SeedSequence"
            )
        return random_seed
    if isinstance(random_seed, numbers.Integral) and not isinstance(random_seed, bool | np.bool_):
        if random_seed < 0:
            raise ValueError(f"`{name}` must be a non-negative integer seed; got {random_seed}")
        return random_seed
    raise TypeError(f"`{name}` must be {_ALLOWED}; got {type(random_seed).__name__}")


def as_generator(random_seed: Any, name: str = "random_seed") -> Any:
    """Return a random generator for `random_seed`.

    ``None`` gives a fresh :class:`numpy.random.Generator`, an int or a ``SeedSequence`` a seeded
    one, a ``Generator`` is used as it is, and :class:`mlob_pp.RRandom` is passed through.

    Examples
    --------
    >>> as_generator(1).integers(100) == as_generator(1).integers(100)
    np.True_
    """
    check_random_seed(random_seed, name)
    if isinstance(random_seed, np.random.Generator | RRandom):
        return random_seed
    return np.random.default_rng(random_seed)


def as_seed_sequence(random_seed: Any, name: str = "random_seed") -> np.random.SeedSequence:
    """Return a :class:`numpy.random.SeedSequence` to spawn independent streams from.

    A ``Generator`` contributes a fresh 128-bit draw (so the sequence is determined by the
    generator's state); ``RRandom`` is not accepted.
    """
    check_random_seed(random_seed, name, r_allowed=False)
    if isinstance(random_seed, np.random.SeedSequence):
        return random_seed
    if isinstance(random_seed, np.random.Generator):
        return np.random.SeedSequence(int(random_seed.integers(0, 2**63 - 1)))
    return np.random.SeedSequence(random_seed)


def as_int_seed(random_seed: Any, name: str = "random_seed") -> int:
    """Return an integer seed in [0, 2**31) for libraries that take ints (PyMC, nutpie).

    An int is returned unchanged when it fits; ``None`` draws fresh entropy; a ``Generator`` or
    ``SeedSequence`` gives a deterministic int derived from it.
    """
    check_random_seed(random_seed, name, r_allowed=False)
    if isinstance(random_seed, numbers.Integral) and 0 <= int(random_seed) < 2**31:
        return int(random_seed)
    ss = as_seed_sequence(random_seed, name)
    return int(ss.generate_state(1, dtype=np.uint32)[0] >> 1)


def is_seed_sequence(random_seed: Any) -> bool:
    """Whether `random_seed` is a sequence of seeds (list, tuple or array), one per item."""
    return isinstance(random_seed, list | tuple | np.ndarray)


def per_item_generators(random_seed: Any, n_items: int, item: str = "item",
                        name: str = "random_seed") -> list[np.random.Generator]:
    """One independent generator per item (e.g. per data set of a batch).

    A sequence of `n_items` seeds (:func:`is_seed_sequence`) gives item ``i`` the generator of
    ``random_seed[i]``; any other seed is turned into one :class:`numpy.random.SeedSequence`
    whose child ``i`` (spawn key ``i``, without mutating the parent) seeds item ``i``. Either
    way an item's stream does not depend on the other items.

    Examples
    --------
    >>> a = per_item_generators(7, 3)[2].integers(100)
    >>> b = per_item_generators([np.random.SeedSequence(7, spawn_key=(2,))], 1)[0].integers(100)
    >>> bool(a == b)
    True
    """
    if is_seed_sequence(random_seed):
        seeds = list(np.asarray(random_seed, dtype=object).ravel())
        if len(seeds) != n_items:
            raise ValueError(f"`{name}` as a sequence needs one seed per {item} ({n_items}); "
                             f"got {len(seeds)}")
        for i, seed in enumerate(seeds):
            check_random_seed(seed, f"{name}[{i}]", r_allowed=False)
        return [np.random.default_rng(seed) for seed in seeds]
    root = as_seed_sequence(random_seed, name)
    return [
        np.random.default_rng(np.random.SeedSequence(root.entropy,
                                                     spawn_key=(*root.spawn_key, i)))
        for i in range(n_items)
    ]


def seed_attr(random_seed: Any) -> int | str:
    """Return a netCDF-safe description of a seed: the int itself, else its type name."""
    if isinstance(random_seed, numbers.Integral) and not isinstance(random_seed, bool):
        return int(random_seed)
    if random_seed is None:
        return "none"
    return type(random_seed).__name__
