r"""Data-generating process and design of the MLOB simulation study.

Model (latent covariate model with one covariate, the MLOB papers' simulation model)::

    X_ij = mu_b_j + e_ij,              mu_b_j ~ N(0, icc_x),  e_ij ~ N(0, 1 - icc_x)
    C_ij = rho_c * X_ij + z_ij,         z_ij ~ N(0, 1 - rho_c**2)
    Y_ij = beta_w * (X_ij - mu_b_j) + beta_b * mu_b_j + gamma * C_ij + delta_j + eps_ij,
                                        delta_j ~ N(0, tau2),   eps_ij ~ N(0, sigma2)

for groups j = 1..J and persons i = 1..n (balanced). X has total variance 1, so ``icc_x`` is
both the ICC of X and the variance of its latent group mean; C has variance 1 and correlation
``rho_c`` with X. The intercept and the mean of X are 0.

Design of the MLOB talk (EAM 2025): ``icc_x`` in {0.05, 0.1, 0.3, 0.5},
``J`` in {5, 10, 20, 30, 40}, ``n`` in {5, 15, 30}, ``beta_b`` in {0.2, 0.5, 0.6},
``beta_w`` in {0.2, 0.5, 0.7}, one covariate with ``gamma = 0.3``: 540 cells. What the talk
leaves open is filled in from the design of the reference simulations of the R package
(``/work/shared/reference``, sidecars ``S01.json`` ...), and every choice is a parameter:

=========  =======  ===========================================================================
name       default  meaning and source
=========  =======  ===========================================================================
gamma      0.3      slope of the covariate C (talk)
rho_c      0.4      C = rho_c X + N(0, 1 - rho_c^2): corr(C, X) = 0.4, var(C) = 1 (reference)
tau2       0.1      variance of the between residual delta_j of Y (reference ``var_delta``)
sigma2     0.6      variance of the within residual eps_ij of Y (reference ``var_eps``)
=========  =======  ===========================================================================

The ICC of Y is not set directly; it follows from the other parameters (see
:func:`implied_icc_y`) and ranges from 0.07 to 0.33 over the talk's cells.

Random numbers. Each replication's data depend only on the root seed, the cell's parameters
and the replication index: the replications of a cell are cut into fixed blocks of
``seed_block`` replications and block ``b`` of a cell draws from
``numpy.random.Generator(PCG64(SeedSequence(root, spawn_key=(*cell_key, b))))``, where
``cell_key`` is a hash of the cell's parameter values (:func:`cell_key`). Results are therefore
identical whatever the chunking, the parallelism or the other cells in the design.

References
----------
.. [1] Lüdtke, O., Marsh, H. W., Robitzsch, A., Trautwein, U., Asparouhov, T., & Muthén, B.
   (2008). The multilevel latent covariate model. Psychological Methods, 13(3), 203-229.
   https://doi.org/10.1037/a0012869
.. [2] MultiLevelOptimalBayes (MLOB), R package v0.0.2.0 (repository MLOB-dev/MLOB, commit
   af7b89f) and its EAM 2025 talk (simulation design, eqs. 5-6).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlob_pp.seeds import as_generator, check_random_seed
from mlob_pp.simulate import simulate_arrays
from mlob_pp.validate import renamed_argument

__all__ = [
    "PARAMETERS",
    "TALK_FACTORS",
    "TALK_FIXED",
    "Design",
    "talk_design",
    "as_design",
    "implied_icc_y",
    "cell_key",
    "simulate_batch",
    "simulate_replications",
    "simulate_dataset",
    "frame_from_arrays",
]

#: every parameter of the data-generating process, in a fixed order
PARAMETERS: tuple[str, ...] = (
    "icc_x",
    "J",
    "n",
    "beta_b",
    "beta_w",
    "gamma",
    "rho_c",
    "tau2",
    "sigma2",
)

#: the talk's 4 x 5 x 3 x 3 x 3 = 540 cells
TALK_FACTORS: dict[str, tuple[Any, ...]] = {
    "icc_x": (0.05, 0.1, 0.3, 0.5),
    "J": (5, 10, 20, 30, 40),
    "n": (5, 15, 30),
    "beta_b": (0.2, 0.5, 0.6),
    "beta_w": (0.2, 0.5, 0.7),
}

#: parameters held fixed in the talk's design (gamma from the talk, the rest from the reference)
TALK_FIXED: dict[str, float] = {"gamma": 0.3, "rho_c": 0.4, "tau2": 0.1, "sigma2": 0.6}

_INT_PARAMS = ("J", "n")


def _check_param(name: str, value: Any) -> int | float:
    """Validate one parameter value and return it as int (J, n) or float."""
    if name in _INT_PARAMS:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"design parameter `{name}` must be an integer; got {value!r}")
        value = int(value)
        minimum = 2
        if value < minimum:
            raise ValueError(f"design parameter `{name}` must be an integer >= 2; got {value}")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"design parameter `{name}` must be a number; got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"design parameter `{name}` must be finite; got {value!r}")
    if name == "icc_x" and not 0.0 < value < 1.0:
        raise ValueError(
            f"design parameter `icc_x` must be strictly between 0 and 1; got {value!r}"
        )
    if name == "rho_c" and not -1.0 < value < 1.0:
        raise ValueError(
            f"design parameter `rho_c` must be strictly between -1 and 1; got {value!r}"
        )
    if name in ("tau2", "sigma2") and value < 0.0:
        raise ValueError(f"design parameter `{name}` must be >= 0; got {value!r}")
    return value


@dataclass(frozen=True)
class Design:
    """A full-factorial simulation design.

    Parameters
    ----------
    factors : mapping of str to sequence
        Varied parameters and their levels, in the order of the result's dimensions.
    fixed : mapping of str to number
        Parameters held fixed. Together with `factors` every name of :data:`PARAMETERS`
        must be given exactly once.
    name : str
        Label stored in the results' attributes.

    Examples
    --------
    >>> d = Design({"J": (5, 10), "n": (5,)}, {"icc_x": 0.1, "beta_b": 0.5, "beta_w": 0.3,
    ...            "gamma": 0.3, "rho_c": 0.4, "tau2": 0.1, "sigma2": 0.6})
    >>> d.n_cells
    2
    """

    factors: Mapping[str, tuple[Any, ...]]
    fixed: Mapping[str, float] = field(default_factory=dict)
    name: str = "custom"

    def __post_init__(self) -> None:
        if not isinstance(self.factors, Mapping):
            raise TypeError(f"`factors` must be a mapping name -> levels; got {self.factors!r}")
        if not isinstance(self.fixed, Mapping):
            raise TypeError(f"`fixed` must be a mapping name -> value; got {self.fixed!r}")
        factors: dict[str, tuple[Any, ...]] = {}
        for key, levels in self.factors.items():
            if key not in PARAMETERS:
                raise ValueError(
                    f"unknown design parameter {key!r} in `factors`; "
                    f"allowed: {', '.join(PARAMETERS)}"
                )
            if isinstance(levels, str | bytes) or not isinstance(levels, Sequence | np.ndarray):
                raise TypeError(f"levels of factor `{key}` must be a sequence; got {levels!r}")
            checked = tuple(_check_param(key, v) for v in levels)
            if len(checked) == 0:
                raise ValueError(f"factor `{key}` needs at least one level; got none")
            if len(set(checked)) != len(checked):
                raise ValueError(f"levels of factor `{key}` must be distinct; got {checked!r}")
            factors[key] = checked
        fixed: dict[str, int | float] = {}
        for key, value in self.fixed.items():
            if key not in PARAMETERS:
                raise ValueError(
                    f"unknown design parameter {key!r} in `fixed`; allowed: {', '.join(PARAMETERS)}"
                )
            if key in factors:
                raise ValueError(f"design parameter `{key}` is given both as factor and as fixed")
            fixed[key] = _check_param(key, value)
        missing = [p for p in PARAMETERS if p not in factors and p not in fixed]
        if missing:
            raise ValueError(
                f"design parameters missing (give them as factors or fixed): {', '.join(missing)}"
            )
        object.__setattr__(self, "factors", factors)
        object.__setattr__(self, "fixed", fixed)

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of levels per factor."""
        return tuple(len(v) for v in self.factors.values())

    @property
    def n_cells(self) -> int:
        """Number of cells (product of the numbers of levels)."""
        return int(np.prod(self.shape, dtype=np.int64))

    def cells(self) -> Iterator[dict[str, int | float]]:
        """Yield the full parameter dict of every cell, factors varying last-fastest (C order)."""
        names = list(self.factors)
        for combo in itertools.product(*self.factors.values()):
            params = dict(zip(names, combo, strict=True))
            params.update(self.fixed)
            yield {p: params[p] for p in PARAMETERS}

    def to_json(self) -> str:
        """Serialise the design (for provenance attributes and checkpoint manifests)."""
        return json.dumps(
            {
                "name": self.name,
                "factors": {k: list(v) for k, v in self.factors.items()},
                "fixed": dict(self.fixed),
            },
            sort_keys=False,
        )

    @classmethod
    def from_json(cls, text: str) -> Design:
        """Inverse of :meth:`to_json`."""
        obj = json.loads(text)
        return cls({k: tuple(v) for k, v in obj["factors"].items()}, obj["fixed"], obj["name"])


def talk_design(**overrides: Any) -> Design:
    """Return the MLOB talk's 540-cell design, optionally with parameters changed.

    Parameters
    ----------
    **overrides
        A parameter name with a scalar fixes it, with a sequence makes it a factor (or replaces
        its levels), e.g. ``talk_design(rho_c=0.0, J=(5, 10))``.

    Returns
    -------
    Design

    Examples
    --------
    >>> talk_design().n_cells
    540
    >>> talk_design(J=(5,), n=(5,)).n_cells
    36
    """
    factors: dict[str, Any] = dict(TALK_FACTORS)
    fixed: dict[str, Any] = dict(TALK_FIXED)
    for key, value in overrides.items():
        if key not in PARAMETERS:
            raise ValueError(f"unknown design parameter {key!r}; allowed: {', '.join(PARAMETERS)}")
        factors.pop(key, None)
        fixed.pop(key, None)
        if isinstance(value, Sequence | np.ndarray) and not isinstance(value, str):
            factors[key] = tuple(value)
        else:
            fixed[key] = value
    order = [p for p in PARAMETERS if p in factors]
    name = "talk" if not overrides else "talk (modified)"
    return Design({k: factors[k] for k in order}, fixed, name)


def as_design(design: Any) -> Design:
    """Turn ``"talk"``, a :class:`Design` or a mapping of factors into a :class:`Design`.

    A mapping is read as overrides of the talk's design (see :func:`talk_design`).
    """
    if isinstance(design, Design):
        return design
    if isinstance(design, str):
        if design != "talk":
            raise ValueError(f"`design` must be 'talk', a Design or a mapping; got {design!r}")
        return talk_design()
    if isinstance(design, Mapping):
        return talk_design(**design)
    raise TypeError(f"`design` must be 'talk', a Design or a mapping; got {type(design).__name__}")


def implied_icc_y(params: Mapping[str, float]) -> float:
    r"""ICC of Y implied by the data-generating process.

    Between variance ``(beta_b + gamma rho_c)^2 icc_x + tau2``; within variance
    ``(beta_w + gamma rho_c)^2 (1 - icc_x) + gamma^2 (1 - rho_c^2) + sigma2``.

    Examples
    --------
    >>> round(implied_icc_y(dict(icc_x=0.05, beta_b=0.2, beta_w=0.2, gamma=0.3, rho_c=0.4,
    ...                          tau2=0.1, sigma2=0.6)), 4)
    0.1197
    """
    gr = params["gamma"] * params["rho_c"]
    between = (params["beta_b"] + gr) ** 2 * params["icc_x"] + params["tau2"]
    within = (
        (params["beta_w"] + gr) ** 2 * (1.0 - params["icc_x"])
        + params["gamma"] ** 2 * (1.0 - params["rho_c"] ** 2)
        + params["sigma2"]
    )
    return float(between / (between + within))


def cell_key(params: Mapping[str, Any]) -> tuple[int, ...]:
    """Four 32-bit words identifying a cell by its parameter values (for seeding).

    The key is a SHA-256 hash of the parameters (:data:`PARAMETERS`, in order, ``repr`` of
    floats), so a cell draws the same data in every design that contains it.
    """
    text = ";".join(
        f"{p}={int(params[p]) if p in _INT_PARAMS else float(params[p])!r}" for p in PARAMETERS
    )
    digest = hashlib.sha256(text.encode()).digest()
    return tuple(int.from_bytes(digest[4 * i : 4 * i + 4], "little") for i in range(4))


def simulate_batch(
    params: Mapping[str, Any], size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw `size` independent data sets of one cell as arrays.

    Parameters
    ----------
    params : mapping
        All parameters of :data:`PARAMETERS`.
    size : int
        Number of data sets B.
    rng : numpy.random.Generator
        Source of randomness. Draws, in this order: ``mu_b`` (B, J), ``delta`` (B, J), then one
        standard-normal array (3, B, J, n) for ``e``, ``z`` and ``eps``.

    Returns
    -------
    y, x : numpy.ndarray, shape (B, J, n)
    covariates : numpy.ndarray, shape (B, J, n, 1)
    """
    icc, rho = float(params["icc_x"]), float(params["rho_c"])
    y, x, c, _ = simulate_arrays(
        (size,),
        int(params["J"]),
        int(params["n"]),
        rng,
        beta_b=float(params["beta_b"]),
        beta_w=float(params["beta_w"]),
        tau2_x=icc,
        sigma2_x=1.0 - icc,
        tau2=float(params["tau2"]),
        sigma2=float(params["sigma2"]),
        gamma=[float(params["gamma"])],
        phi_w=[rho],
        phi_b=[rho],
        s_c=[np.sqrt(1.0 - rho * rho)],
    )
    return y, x, c


def _block_rng(root: int, key: tuple[int, ...], block: int) -> np.random.Generator:
    ss = np.random.SeedSequence(root, spawn_key=(*key, block))
    return np.random.Generator(np.random.PCG64(ss))


def simulate_replications(
    params: Mapping[str, Any],
    start: int,
    stop: int,
    *,
    random_seed: int,
    seed_block: int = 100,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw data sets ``start..stop-1`` of one cell, identical whatever the range asked for.

    Replication ``r`` lies in seed block ``r // seed_block``; each block is drawn with
    :func:`simulate_batch` from its own generator (see the module docstring) and sliced.

    Parameters
    ----------
    params : mapping
        All parameters of :data:`PARAMETERS`.
    start, stop : int
        Replication range (0-based, `stop` exclusive).
    random_seed : int
        Root seed of the study.
    seed_block : int, default 100
        Replications per seed block. Changing it changes the data.

    Returns
    -------
    y, x : numpy.ndarray, shape (stop - start, J, n)
    covariates : numpy.ndarray, shape (stop - start, J, n, 1)

    Examples
    --------
    >>> p = dict(icc_x=0.1, J=5, n=5, beta_b=0.5, beta_w=0.2, gamma=0.3, rho_c=0.4, tau2=0.1,
    ...          sigma2=0.6)
    >>> a = simulate_replications(p, 0, 250, random_seed=1)[0]
    >>> b = simulate_replications(p, 120, 130, random_seed=1)[0]
    >>> bool(np.array_equal(a[120:130], b))
    True
    """
    if stop <= start:
        raise ValueError(f"`stop` must be greater than `start`; got start={start}, stop={stop}")
    key = cell_key(params)
    first, last = start // seed_block, (stop - 1) // seed_block
    if first == last:
        y, x, c = simulate_batch(params, seed_block, _block_rng(random_seed, key, first))
        lo = start - first * seed_block
        return y[lo : lo + stop - start], x[lo : lo + stop - start], c[lo : lo + stop - start]
    parts = [
        simulate_batch(params, seed_block, _block_rng(random_seed, key, b))
        for b in range(first, last + 1)
    ]
    lo = start - first * seed_block
    out = tuple(np.concatenate([p[i] for p in parts])[lo : lo + stop - start] for i in range(3))
    return out  # type: ignore[return-value]


def simulate_dataset(
    params: Mapping[str, Any] | None = None, *, random_seed: Any = None, **kwargs: Any
):
    """One simulated data set as a long pandas DataFrame (columns Y, X, C, group).

    Parameters
    ----------
    params : mapping, optional
        Parameters; missing ones are taken from `kwargs`, then from the talk's fixed values and
        ``icc_x=0.1, J=20, n=15, beta_b=0.5, beta_w=0.2``.
    random_seed : None, int, numpy.random.Generator or numpy.random.SeedSequence
        Seed (:mod:`mlob_pp.seeds`). The old name ``random_state`` still works for the 0.2
        series, with a DeprecationWarning.
    **kwargs
        Parameter values (override `params`).

    Returns
    -------
    pandas.DataFrame
        ``J * n`` rows sorted by group; ``group`` holds 1..J. ``df.attrs`` holds the parameters.

    Examples
    --------
    >>> df = simulate_dataset(J=10, n=5, random_seed=1)
    >>> df.shape
    (50, 4)
    """
    random_seed = renamed_argument("simulate_dataset", kwargs, "random_state", "random_seed",
                                   random_seed)
    full: dict[str, Any] = {"icc_x": 0.1, "J": 20, "n": 15, "beta_b": 0.5, "beta_w": 0.2}
    full.update(TALK_FIXED)
    full.update(params or {})
    full.update(kwargs)
    unknown = set(full) - set(PARAMETERS)
    if unknown:
        raise ValueError(
            f"unknown design parameter(s) {sorted(unknown)}; allowed: {', '.join(PARAMETERS)}"
        )
    full = {p: _check_param(p, full[p]) for p in PARAMETERS}
    rng = as_generator(check_random_seed(random_seed, r_allowed=False))
    y, x, c = simulate_batch(full, 1, rng)
    return frame_from_arrays(y[0], x[0], c[0], attrs=full)


def frame_from_arrays(
    y: np.ndarray, x: np.ndarray, covariates: np.ndarray, attrs: Mapping[str, Any] | None = None
):
    """Long DataFrame (Y, X, C or C1.., group 1..J) from one data set shaped (J, n) / (J, n, k)."""
    import pandas as pd

    J, n = y.shape
    cols: dict[str, Any] = {"Y": y.ravel(), "X": x.ravel()}
    k = covariates.shape[-1]
    for i in range(k):
        cols["C" if k == 1 else f"C{i + 1}"] = covariates[..., i].ravel()
    cols["group"] = np.repeat(np.arange(1, J + 1), n)
    df = pd.DataFrame(cols)
    if attrs:
        df.attrs.update(attrs)
    return df
