"""R's default random number generator, for runs that must match R's ``set.seed()`` exactly.

R MLOB deletes rows at random when it balances groups and draws random rows for its jackknife,
from R's global generator (Mersenne-Twister, ``sample.kind = "Rejection"``, R >= 3.6). Passing
``random_state=RRandom(seed)`` to :func:`mlob_pp.mlob` reproduces the draws that R makes after
``set.seed(seed)``, so unbalanced and jackknife results can be checked against R bit for bit.

The generator follows R's C sources as described in the mlob_pp specification (appendix A):
seed scrambling by the linear congruential generator ``s <- 69069 s + 1``, MT19937 words with
the standard tempering, ``unif_rand()`` with R's fix-up of 0 and 1, and ``R_unif_index()``
(rejection sampling on 16-bit chunks) for ``sample()``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["RRandom"]

_I2_32M1 = 2.328306437080797e-10  # 1 / (2^32 - 1)
_TO_UNIT = 2.3283064365386963e-10  # 2^-32


class RRandom:
    """R's Mersenne-Twister generator as seeded by ``set.seed(seed)``.

    Parameters
    ----------
    seed : int
        The argument of R's ``set.seed()``.

    Examples
    --------
    >>> rng = RRandom(1)
    >>> [round(rng.unif_rand(), 7) for _ in range(3)]  # R: set.seed(1); runif(3)
    [0.2655087, 0.3721239, 0.5728534]
    """

    def __init__(self, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise TypeError(f"`seed` must be an integer; got {seed!r}")
        self.seed = int(seed)
        s = self.seed & 0xFFFFFFFF
        for _ in range(50):
            s = (69069 * s + 1) & 0xFFFFFFFF
        words = np.empty(625, dtype=np.uint32)
        for i in range(625):
            s = (69069 * s + 1) & 0xFFFFFFFF
            words[i] = s
        # words[0] is R's position slot (set to 624: regenerate on first use)
        self._bitgen = np.random.MT19937(0)
        self._bitgen.state = {
            "bit_generator": "MT19937",
            "state": {"key": words[1:].copy(), "pos": 624},
        }

    def __repr__(self) -> str:
        return f"RRandom({self.seed})"

    def _raw(self, size: int) -> np.ndarray:
        return np.asarray(self._bitgen.random_raw(size), dtype=np.float64)

    def unif_rand(self) -> float:
        """Return one draw of R's ``unif_rand()`` (uniform on (0, 1))."""
        value = float(self._raw(1)[0]) * _TO_UNIT
        if value <= 0.0:
            return 0.5 * _I2_32M1
        if 1.0 - value <= 0.0:
            return 1.0 - 0.5 * _I2_32M1
        return value

    def unif_index(self, dn: int) -> int:
        """Return R's ``R_unif_index(dn)``: a uniform integer in ``0 .. dn - 1``."""
        if dn <= 0:
            return 0
        bits = math.ceil(math.log2(dn))
        while True:
            v = 0
            for _ in range(0, bits + 1, 16):
                v1 = math.floor(self.unif_rand() * 65536)
                v = 65536 * v + v1
            v &= (1 << bits) - 1
            if v < dn:
                return v

    def sample(self, n: int, size: int) -> np.ndarray:
        """Draw ``size`` of ``0 .. n - 1`` without replacement, as R's ``sample.int(n, size)``.

        Returns 0-based positions in R's draw order.
        """
        pool = list(range(n))
        out = np.empty(size, dtype=np.intp)
        current = n
        for k in range(size):
            j = self.unif_index(current)
            out[k] = pool[j]
            pool[j] = pool[current - 1]
            current -= 1
        return out

    def sample_replace(self, n: int, size: int) -> np.ndarray:
        """Draw ``size`` of ``0 .. n - 1`` with replacement (R ``sample(n, size, TRUE)`` - 1)."""
        return np.array([self.unif_index(n) for _ in range(size)], dtype=np.intp)
