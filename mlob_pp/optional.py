"""Optional dependencies: import them, or say which extra of mlob_pp installs them.

The base install (``pip install mlob_pp``) gives the closed-form estimator, true ML, the
variability models, the common format and the simulation-study runner. Full MCMC (PyMC,
nutpie, JAX) and Dask are optional extras. Code that needs one of them imports it through
:func:`require`, so that a user without the extra gets one clear message naming the feature and
the command that fixes it, instead of a bare ``ModuleNotFoundError`` from deep inside a call.

Examples
--------
>>> from mlob_pp.optional import require
>>> np = require("numpy", "mcmc", "this example")
>>> np.__name__
'numpy'
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
from types import ModuleType

__all__ = ["EXTRAS", "MissingOptionalDependencyError", "available", "require", "require_all"]

#: The optional extras of mlob_pp and the import names each one provides (the distributions are
#: listed in pyproject.toml; ``pip install 'mlob_pp[all]'`` installs every extra).
EXTRAS: dict[str, tuple[str, ...]] = {
    "mcmc": ("pymc", "pytensor", "nutpie", "jax", "blackjax"),
    "dask": ("distributed",),
}


class MissingOptionalDependencyError(ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra that installs it.

    A subclass of :class:`ModuleNotFoundError` (hence of :class:`ImportError`), so existing
    ``except ImportError`` clauses keep working. ``name`` is the module that is missing,
    ``extra`` the extra of mlob_pp that installs it and ``feature`` what needed it.
    """

    def __init__(self, message: str, *, name: str, extra: str, feature: str) -> None:
        super().__init__(message, name=name)
        self.extra = extra
        self.feature = feature


def _check_name(value: object, argument: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be a str, got {type(value).__name__}: {value!r}")
    if not value:
        raise ValueError(f"{argument} must be a non-empty string, got {value!r}")
    return value


def _message(feature: str, extra: str, missing: str) -> str:
    return (
        f"{feature} needs the optional dependencies of mlob_pp[{extra}]: "
        f"pip install 'mlob_pp[{extra}]' (missing module: {missing!r})"
    )


def require(package: str, extra: str, feature: str) -> ModuleType:
    """Import an optional dependency, or raise an error that names the extra installing it.

    Parameters
    ----------
    package : str
        Import name of the module, e.g. ``"pymc"`` or ``"pytensor.tensor"``.
    extra : str
        The extra of mlob_pp that installs it, e.g. ``"mcmc"`` or ``"dask"``.
    feature : str
        What needs it, as the user called it, e.g. ``"fit_mcmc"``; starts the message.

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    MissingOptionalDependencyError
        If the module (or a module it imports) is not installed. The message reads
        ``"<feature> needs the optional dependencies of mlob_pp[<extra>]: pip install
        'mlob_pp[<extra>]' (missing module: '<name>')"``.
    TypeError
        If an argument is not a string.
    ValueError
        If an argument is an empty string.

    Notes
    -----
    Only a *missing* module is translated. Other import failures of an installed package (a
    broken binary, an incompatible version raising ImportError) propagate unchanged, because
    installing the extra would not fix them.

    Examples
    --------
    >>> from mlob_pp.optional import require
    >>> require("numpy", "mcmc", "fit_mcmc").__name__
    'numpy'
    """
    _check_name(package, "package")
    _check_name(extra, "extra")
    _check_name(feature, "feature")
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError as exc:
        if isinstance(exc, MissingOptionalDependencyError):
            raise
        missing = exc.name or package
        raise MissingOptionalDependencyError(
            _message(feature, extra, missing), name=missing, extra=extra, feature=feature
        ) from exc


def require_all(packages: Iterable[str], extra: str, feature: str) -> tuple[ModuleType, ...]:
    """Import several optional dependencies of one extra (see :func:`require`).

    Parameters
    ----------
    packages : iterable of str
        Import names, e.g. ``("pymc", "nutpie")``.
    extra : str
        The extra of mlob_pp that installs them.
    feature : str
        What needs them; starts the message.

    Returns
    -------
    tuple of module
        The imported modules, in the order given.

    Raises
    ------
    MissingOptionalDependencyError
        For the first module that is not installed.
    TypeError
        If ``packages`` is a single string instead of an iterable of strings.

    Examples
    --------
    >>> from mlob_pp.optional import require_all
    >>> [m.__name__ for m in require_all(["numpy", "scipy"], "mcmc", "fit_mcmc")]
    ['numpy', 'scipy']
    """
    if isinstance(packages, str):
        raise TypeError(
            f"packages must be an iterable of module names, got the single string {packages!r}; "
            "use require() for one module"
        )
    return tuple(require(p, extra, feature) for p in packages)


def available(package: str) -> bool:
    """Tell whether a module can be imported, without importing it.

    Parameters
    ----------
    package : str
        Import name, e.g. ``"pymc"``.

    Returns
    -------
    bool
        True if the module is found (already imported, or findable on the path).

    Examples
    --------
    >>> from mlob_pp.optional import available
    >>> available("numpy"), available("no_such_module_xyz")
    (True, False)
    """
    _check_name(package, "package")
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        # a blocked module (sys.modules[name] = None) or a missing parent package
        return False
