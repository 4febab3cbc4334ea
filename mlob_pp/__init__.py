"""mlob_pp: closed-form MLOB, true ML and PyMC MCMC for two-level models, in one format.

The public API is imported lazily, so ``import mlob_pp`` stays fast and never imports PyMC.

Examples
--------
>>> import mlob_pp
>>> df = mlob_pp.datasets.load("passnyc")
>>> res = mlob_pp.mlob("math ~ ENI + ELA + ENI:ELA", df, "District",
...                    balancing_limit=0.35, random_seed=1)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0.dev0"

# public name -> module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    # closed-form MLOB (issue: foundation)
    "mlob": "mlob_pp.closed_form.api",
    "MLOBResult": "mlob_pp.closed_form.result",
    "mlob_batch": "mlob_pp.closed_form.core",
    "BatchResult": "mlob_pp.closed_form.core",
    # batched true ML and MCMC (simulation studies)
    "ml_batch": "mlob_pp.ml.batch",
    "MLBatchResult": "mlob_pp.ml.batch",
    "mcmc_batch": "mlob_pp.mcmc.batch",
    "MCMCBatchResult": "mlob_pp.mcmc.batch",
    "RRandom": "mlob_pp.rrandom",
    "parse_formula": "mlob_pp.formula.parse",
    # true ML of the latent covariate model
    "fit_ml": "mlob_pp.ml.fit",
    "MLResult": "mlob_pp.ml.fit",
    # MCMC of the latent covariate model
    "fit_mcmc": "mlob_pp.mcmc.fit",
    "MCMCResult": "mlob_pp.mcmc.fit",
    # SS-MELSM
    "fit_melsm": "mlob_pp.melsm.fit",
    "MELSMResult": "mlob_pp.melsm.fit",
    "prepare_saeb": "mlob_pp.melsm.fit",
    "simulate_saeb": "mlob_pp.datasets",
    # variability analysis
    "null_model": "mlob_pp.variability",
    "contextual_model": "mlob_pp.variability",
    "means_as_outcomes": "mlob_pp.variability",
    "parametric_bootstrap": "mlob_pp.closed_form.bootstrap",
    # the common format
    "NotAPosteriorError": "mlob_pp.common_format",
}

_SUBMODULES = {
    "datasets", "models", "comparisons", "validate", "variability", "warnings", "seeds",
    "tables", "results", "design", "simulate", "provenance",
}

__all__ = sorted([*_LAZY, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"mlob_pp.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'mlob_pp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from mlob_pp import comparisons, datasets, models  # noqa: F401
    from mlob_pp.closed_form.api import mlob  # noqa: F401
    from mlob_pp.closed_form.core import BatchResult, mlob_batch  # noqa: F401
    from mlob_pp.closed_form.result import MLOBResult  # noqa: F401
    from mlob_pp.rrandom import RRandom  # noqa: F401
