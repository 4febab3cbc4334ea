"""Balancing unequal group sizes by deleting rows, exactly as R MLOB does (spec section 2.3).

The closed-form estimator needs groups of equal size n. For every candidate size s between the
smallest and the largest group, a group with t_g >= s loses t_g - s rows and a smaller group is
dropped whole, at a cost of ``punish_coeff * t_g``; the target size s* is the smallest s of
minimal total cost. Groups larger than s* lose t_g - s* rows drawn at random without replacement
(group by group in sorted label order); smaller groups are deleted. The call stops when the
share of deleted rows or of deleted groups exceeds ``balancing_limit``.

Unlike R, the draws come from a seeded generator (``numpy.random.Generator``, or
:class:`mlob_pp.RRandom` to reproduce R's ``set.seed()`` runs), and several balancings can be
averaged (see :func:`mlob_pp.mlob`, ``n_balance``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from mlob_pp.rrandom import RRandom
from mlob_pp.warnings import BalancingWarning

__all__ = ["BalancePlan", "plan_balance", "check_plan", "draw_balance"]


@dataclass(frozen=True)
class BalancePlan:
    """Target group size and what balancing deletes.

    Attributes
    ----------
    target_size : int
        Common group size s* after balancing.
    rows_deleted, groups_deleted : int
        Rows and whole groups that balancing deletes.
    n_rows, n_groups : int
        Rows and groups before balancing.
    groups_kept : ndarray of int
        Codes of the groups that remain.
    """

    target_size: int
    rows_deleted: int
    groups_deleted: int
    n_rows: int
    n_groups: int
    groups_kept: np.ndarray

    @property
    def balanced(self) -> bool:
        """True when nothing has to be deleted."""
        return self.rows_deleted == 0

    @property
    def share_rows(self) -> float:
        """Share of rows deleted."""
        return self.rows_deleted / self.n_rows

    @property
    def share_groups(self) -> float:
        """Share of groups deleted."""
        return self.groups_deleted / self.n_groups


def plan_balance(sizes: np.ndarray, punish_coeff: float) -> BalancePlan:
    """Choose R MLOB's target group size for the group sizes `sizes` (sorted label order).

    R evaluates the cost of every size from the smallest to the largest group. Between two
    adjacent distinct sizes the cost falls strictly (every group at least as large loses one
    row less per step), so the minimum is always at a distinct group size; only those are
    evaluated, one at a time, in O(number of groups) memory (R's full table would need
    (largest - smallest size) x groups). Each cost is summed over the groups in the same order
    and with the same terms as R's row of the table, so ties resolve identically (the smallest
    size of minimal cost).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if sizes.min() == sizes.max():  # balanced: nothing to delete
        return BalancePlan(target_size=int(sizes[0]), rows_deleted=0, groups_deleted=0,
                           n_rows=int(sizes.sum()), n_groups=int(sizes.shape[0]),
                           groups_kept=np.arange(sizes.shape[0]))
    penalty = punish_coeff * sizes
    best_total, s = np.inf, int(sizes.min())
    for cand in np.unique(sizes):
        keep = sizes >= cand
        total = np.where(keep, sizes - cand, penalty).sum()
        if total < best_total:
            best_total, s = total, int(cand)
    keep = sizes >= s
    return BalancePlan(
        target_size=s,
        rows_deleted=int(np.where(keep, sizes - s, sizes).sum()),
        groups_deleted=int((~keep).sum()),
        n_rows=int(sizes.sum()),
        n_groups=int(sizes.shape[0]),
        groups_kept=np.flatnonzero(keep),
    )


def check_plan(plan: BalancePlan, balancing_limit: float) -> None:
    """Emit R's balancing warnings and raise when the plan exceeds `balancing_limit`."""
    if plan.balanced:
        return
    warnings.warn(
        "Your data is unbalanced. Balancing procedure was used and "
        f"{100 * plan.share_rows:.1f}% of data was deleted. Deleted entries: "
        f"{plan.rows_deleted} Deleted groups: {plan.groups_deleted} "
        f"(target group size {plan.target_size})",
        BalancingWarning,
        stacklevel=3,
    )
    if balancing_limit != 0.2:
        warnings.warn(
            f"You changed the balancing limit to {balancing_limit:g} (default 0.2). Increasing "
            "the balancing limit might result in the loss of data connections.",
            BalancingWarning,
            stacklevel=3,
        )
    if plan.share_rows > balancing_limit or plan.share_groups > balancing_limit:
        raise ValueError(
            f"The share of data that should be deleted is {100 * plan.share_rows:.1f}% of rows "
            f"and {100 * plan.share_groups:.1f}% of groups and exceeds the `balancing_limit`, "
            f"{100 * balancing_limit:g}%. Data may not be balanced. If you want to run, raise "
            "`balancing_limit` (a share in [0, 1])."
        )


def draw_balance(group_codes: np.ndarray, plan: BalancePlan, rng) -> np.ndarray:
    """Return the 0-based positions of the rows that remain, in their original order.

    Draws follow R: group by group in sorted label order, ``t_g - s*`` row positions without
    replacement for every group larger than s*; smaller groups are deleted whole.
    """
    group_codes = np.asarray(group_codes)
    order = np.argsort(group_codes, kind="stable")
    sizes = np.bincount(group_codes, minlength=plan.n_groups)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    delete = np.zeros(group_codes.shape[0], dtype=bool)
    s = plan.target_size
    for g in range(plan.n_groups):
        rows = order[starts[g]: starts[g] + sizes[g]]
        if sizes[g] < s:
            delete[rows] = True
        elif sizes[g] > s:
            m = int(sizes[g] - s)
            if isinstance(rng, RRandom):
                picked = rng.sample(int(sizes[g]), m)
            else:
                picked = rng.choice(int(sizes[g]), size=m, replace=False)
            delete[rows[picked]] = True
    return np.flatnonzero(~delete)
