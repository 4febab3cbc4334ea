"""The warning classes of mlob_pp, in one place.

Every warning that mlob_pp emits derives from :class:`MLOBWarning`, so users can filter them
together (``warnings.simplefilter("ignore", mlob_pp.warnings.MLOBWarning)``) or one category at
a time. The classes are re-exported by :mod:`mlob_pp.validate` for backward compatibility.
"""

from __future__ import annotations

__all__ = [
    "MLOBWarning",
    "BalancingWarning",
    "NumericalWarning",
    "ConvergenceWarning",
    "MissingDataWarning",
    "CheckpointWarning",
    "SingularFitWarning",
    "BoundaryWarning",
    "InadmissibleWarning",
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


class CheckpointWarning(MLOBWarning):
    """A stored study checkpoint chunk is unreadable or belongs to another cell or study.

    The chunk is named in the message and recomputed.
    """


class BoundaryWarning(NumericalWarning):
    """An estimate lies on the boundary of the parameter space (a Heywood case).

    The result is returned with the boundary value (for example a between-group variance of
    0) and is flagged as such; standard errors of parameters at the boundary are not defined.
    """


class InadmissibleWarning(BoundaryWarning):
    """The ML solution has a negative (or zero) variance estimate: a Heywood case."""


class SingularFitWarning(BoundaryWarning):
    """A mixed model's variance component was estimated at (or numerically near) zero."""
