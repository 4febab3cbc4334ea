"""Common-format conversion, comparison tables, plots and simulation studies.

Installed as ``mlob_pp.comparisons``. Every estimator's result becomes an ``xarray.DataTree`` in
one layout (see :mod:`mlob_pp.comparisons.convert` and ``docs/architecture_common_format.md``):

>>> from mlob_pp.comparisons import from_mlob, from_ml, from_pymc, compare  # doctest: +SKIP
>>> results = {"mlob": from_mlob(res), "ml": from_ml(ml), "mcmc": from_pymc(mc)}  # doctest: +SKIP
>>> compare(results)  # doctest: +SKIP

Names are imported on first access, so ``import mlob_pp.comparisons`` imports neither PyMC nor
ArviZ nor matplotlib (nor xarray).

The function :func:`compare` shares its name with the module ``mlob_pp.comparisons.compare``
that defines it. Python's import system would rebind ``mlob_pp.comparisons.compare`` to that
module as soon as it is imported; the package's module type below keeps the name bound to the
function (the module stays reachable as ``sys.modules["mlob_pp.comparisons.compare"]`` and by
``from mlob_pp.comparisons.compare import ...``).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

# public name -> module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "from_mlob": "mlob_pp.comparisons.convert",
    "from_ml": "mlob_pp.comparisons.convert",
    "from_pymc": "mlob_pp.comparisons.convert",
    "make_attrs": "mlob_pp.provenance",
    "compare": "mlob_pp.comparisons.compare",
    "plot_compare": "mlob_pp.comparisons.compare",
    "match_sample_shape": "mlob_pp.comparisons.compare",
    "save": "mlob_pp.comparisons.compare",
    "load": "mlob_pp.comparisons.compare",
    "run_study": "mlob_pp.comparisons.study.runner",
    "load_study": "mlob_pp.comparisons.study.runner",
    "save_study": "mlob_pp.comparisons.study.runner",
    "talk_design": "mlob_pp.comparisons.study.design",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mlob_pp.comparisons' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *globals()})


class _Package(types.ModuleType):
    """Module type of ``mlob_pp.comparisons``: ``compare`` is always the function."""

    @property
    def compare(self) -> Any:
        """:func:`mlob_pp.comparisons.compare.compare` (imported on first access)."""
        return importlib.import_module("mlob_pp.comparisons.compare").compare

    @compare.setter
    def compare(self, value: Any) -> None:
        # the import system binds the submodule here after loading it: keep the function
        if not isinstance(value, types.ModuleType):
            raise AttributeError("mlob_pp.comparisons.compare cannot be reassigned")


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # pragma: no cover
    from mlob_pp.comparisons.compare import (  # noqa: F401
        compare,
        load,
        match_sample_shape,
        plot_compare,
        save,
    )
    from mlob_pp.comparisons.convert import from_ml, from_mlob, from_pymc, make_attrs  # noqa: F401
