"""Common-format conversion, comparison tables, plots, files and simulation studies.

Installed as ``mlob_pp.comparisons``. Every estimator's result becomes an ``xarray.DataTree`` in
one layout (``docs/architecture_common_format.md``): point estimators keep their exact table in
an ``estimate`` group, MCMC its draws in ``posterior``.

>>> from mlob_pp.comparisons import from_mlob, from_ml, from_pymc, compare  # doctest: +SKIP
>>> results = {"mlob": from_mlob(res), "ml": from_ml(ml), "mcmc": from_pymc(mc)}  # doctest: +SKIP
>>> compare(results)  # doctest: +SKIP

Modules: :mod:`~mlob_pp.comparisons.convert` (``from_*``), :mod:`~mlob_pp.comparisons.table`
(:func:`compare`), :mod:`~mlob_pp.comparisons.plots` (:func:`plot_compare`),
:mod:`~mlob_pp.comparisons.io` (:func:`save`, :func:`load`), ``study/`` (simulation studies).
Names are imported on first access, so ``import mlob_pp.comparisons`` imports neither PyMC nor
ArviZ nor matplotlib (nor xarray).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "from_mlob": "mlob_pp.comparisons.convert",
    "from_ml": "mlob_pp.comparisons.convert",
    "from_pymc": "mlob_pp.comparisons.convert",
    "make_attrs": "mlob_pp.provenance",
    "compare": "mlob_pp.comparisons.table",
    "plot_compare": "mlob_pp.comparisons.plots",
    "match_sample_shape": "mlob_pp.comparisons.plots",
    "save": "mlob_pp.comparisons.io",
    "load": "mlob_pp.comparisons.io",
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


if TYPE_CHECKING:  # pragma: no cover
    from mlob_pp.comparisons.convert import from_ml, from_mlob, from_pymc  # noqa: F401
    from mlob_pp.comparisons.io import load, save  # noqa: F401
    from mlob_pp.comparisons.plots import match_sample_shape, plot_compare  # noqa: F401
    from mlob_pp.comparisons.table import compare  # noqa: F401
    from mlob_pp.provenance import make_attrs  # noqa: F401
