"""Direct tests of mlob_pp.closed_form.balance: R's target size, the draws, memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from mlob_pp.closed_form.balance import BalancePlan, check_plan, draw_balance, plan_balance
from mlob_pp.rrandom import RRandom
from mlob_pp.warnings import BalancingWarning


def _r_table_plan(sizes, punish):
    """R's full cost table over every size from the smallest to the largest group."""
    sizes = np.asarray(sizes, dtype=np.int64)
    cand = np.arange(sizes.min(), sizes.max() + 1)
    keep = sizes[None, :] >= cand[:, None]
    cost = np.where(keep, sizes[None, :] - cand[:, None], punish * sizes[None, :]).sum(axis=1)
    best = int(np.argmin(cost))
    return int(cand[best]), int(np.where(keep[best], sizes - cand[best], sizes).sum())


def test_hand_computed_plans():
    # sizes 3, 5, 6; cost(3) = 0 + 2 + 3 = 5, cost(4) = 2*3 + 1 + 2 = 9, cost(5) = 6 + 0 + 1
    # = 7, cost(6) = 6 + 10 + 0 = 16: s* = 3, 5 rows deleted, no group
    plan = plan_balance(np.array([3, 5, 6]), 2.0)
    assert (plan.target_size, plan.rows_deleted, plan.groups_deleted) == (3, 5, 0)
    assert plan.share_rows == pytest.approx(5 / 14)
    # one small group: cost(2) = 24, cost(10) = 2 * 2 = 4: drop the group of 2
    plan = plan_balance(np.array([2, 10, 10, 10]), 2.0)
    assert (plan.target_size, plan.rows_deleted, plan.groups_deleted) == (10, 2, 1)
    np.testing.assert_array_equal(plan.groups_kept, [1, 2, 3])
    assert plan_balance(np.array([4, 4, 4]), 2.0).balanced


@pytest.mark.parametrize("punish", [0.5, 1.0, 2.0, 2.5, 7.0])
def test_plan_equals_r_full_table(punish):
    rng = np.random.default_rng(int(punish * 10))
    for _ in range(200):
        J = int(rng.integers(2, 40))
        sizes = rng.integers(1, 60, size=J)
        if rng.random() < 0.3:
            sizes[: J // 2] = sizes[0]  # ties between groups
        plan = plan_balance(sizes, punish)
        assert (plan.target_size, plan.rows_deleted) == _r_table_plan(sizes, punish)


def test_plan_memory_is_linear_in_groups():
    """One group of 100,000 plus 3,000 groups of 2 (R's table: 3e8 cells, > 2 GiB)."""
    sizes = np.r_[100_000, np.full(3000, 2)]
    tracemalloc.start()
    plan = plan_balance(sizes, 2.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5 * 2**20  # bytes
    # cost(2) = 99,998 rows; cost(100,000) = 2 x 2 x 3,000 = 12,000: keep the big group
    assert (plan.target_size, plan.groups_deleted, plan.rows_deleted) == (100_000, 3000, 6000)


def test_draws_are_seeded_and_balanced():
    codes = np.repeat(np.arange(4), [5, 7, 6, 2])
    plan = plan_balance(np.bincount(codes), 2.0)
    assert plan.target_size == 5 and plan.groups_deleted == 1
    a = draw_balance(codes, plan, np.random.default_rng(1))
    b = draw_balance(codes, plan, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.bincount(codes[a], minlength=4), [5, 5, 5, 0])
    assert np.all(np.diff(a) > 0)  # original order kept
    r = draw_balance(codes, plan, RRandom(3))
    np.testing.assert_array_equal(np.bincount(codes[r], minlength=4), [5, 5, 5, 0])


def test_draw_memory_for_one_huge_group():
    codes = np.r_[np.zeros(100_000, dtype=np.intp), np.repeat(np.arange(1, 3001), 2)]
    plan = BalancePlan(target_size=2, rows_deleted=99_998, groups_deleted=0,
                       n_rows=codes.size, n_groups=3001, groups_kept=np.arange(3001))
    tracemalloc.start()
    kept = draw_balance(codes, plan, np.random.default_rng(0))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert kept.size == 3001 * 2
    assert peak < 20 * 2**20


def test_check_plan_warns_and_raises():
    plan = plan_balance(np.array([2, 10, 10, 10]), 2.0)
    with pytest.warns(BalancingWarning, match=r"6\.2% of data was deleted\. Deleted entries: 2 "
                                              r"Deleted groups: 1 \(target group size 10\)"):
        with pytest.raises(ValueError, match=r"exceeds the `balancing_limit`, 20%"):
            check_plan(plan, 0.2)  # 25 % of groups
    with pytest.warns(BalancingWarning) as record:
        check_plan(plan, 0.3)  # 25 % of groups, 6.25 % of rows: within the limit
    assert "You changed the balancing limit to 0.3" in str(record[-1].message)
