"""Compiled grid search of the MLOB criterion (optional numba accelerator).

The 100 x 100 grid search dominates the cost of a fit (10^4 criterion evaluations per data set,
independent of N). This module evaluates it in one fused loop per data set, in exactly the
floating-point operation order of :func:`mlob_pp.closed_form.moments.criterion` (no fast-math),
so the selected grid point is bit-for-bit the one of the numpy path and of R. numba ships with
PyMC's stack; without it (or with ``MLOB_PP_NO_NUMBA=1``) the numpy path is used.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["grid_argmin_compiled", "AVAILABLE"]

AVAILABLE = False
_kernel = None

if os.environ.get("MLOB_PP_NO_NUMBA", "0") != "1":
    try:  # pragma: no branch
        from numba import njit, prange

        def _kernel_py(w, s1, q1, K2, T2, b, lo, hi, stable):  # pragma: no cover - compiled
            B = s1.shape[0]
            index = np.zeros(B, dtype=np.int64)
            best = np.full(B, np.nan)
            for k in prange(B):
                step = (hi[k] - lo[k]) / 99.0
                bi = -1
                bv = np.inf
                K2k = K2[k]
                T2k = T2[k]
                bk = b[k]
                P = (K2k * T2k**2) * (K2k + 1.0)
                Ps = (K2k * T2k * T2k) * (K2k + 1.0)
                Qs = (2.0 * bk) * K2k * T2k
                for j in range(100):
                    wj = w[j]
                    w2 = wj * wj
                    a1 = (2.0 * w2) * q1[k]
                    a2 = (4.0 * w2) * q1[k]
                    ws = wj * s1[k]
                    for i in range(100):
                        t = hi[k] if i == 99 else lo[k] + i * step
                        D = ((1.0 - wj) * t) + ws
                        D2 = D * D
                        A1 = D2 - a1
                        A2 = D2 - a2
                        if stable:
                            if not (A1 > 0.0 and A2 > 0.0 and D > 0.0):
                                continue
                            v = Ps * D2 / (A1 * A2)
                            v = v - Qs * D / A1
                        else:
                            first = (P * D) / (A1 * A2)
                            v = (first - (((2.0 * bk) * K2k) * T2k * D) / A1) + bk
                        if v < bv or (bi < 0 and v == np.inf):
                            bv = v
                            bi = 100 * j + i
                if bi >= 0:
                    index[k] = bi
                    best[k] = bv
            return index, best

        # a threaded kernel for batches and a serial one for single fits (thread start-up
        # costs more than one data set's grid)
        _kernel = njit(cache=True, parallel=True, nogil=True, error_model="numpy")(_kernel_py)
        _kernel_serial = njit(cache=True, nogil=True, error_model="numpy")(_kernel_py)
        AVAILABLE = True
    except ImportError:  # pragma: no cover
        AVAILABLE = False


def grid_argmin_compiled(w, s1, q1, K2, T2, b, lo, hi, stable: bool):
    """Return (index, best, valid) of the first arg-min over the grid, NaN skipped."""
    arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in (s1, q1, K2, T2, b, lo, hi)]
    kernel = _kernel if arrays[0].shape[0] >= 64 else _kernel_serial
    index, best = kernel(np.ascontiguousarray(w, dtype=np.float64), *arrays, bool(stable))
    return index.astype(np.intp), best, ~np.isnan(best)
