"""The scoring worker's cost model (leadq.pipelines.service.shedding.BatchCost), on which
`leadq serve` sheds by time: fitted from observed batches, no clock involved."""

from __future__ import annotations

import pytest

from leadq.pipelines.service.shedding import BatchCost


def test_fixed_and_per_lead_cost_are_recovered_from_batches_of_several_sizes():
    cost = BatchCost()
    for n in (1, 1, 5, 20, 1, 60, 3):
        cost.observe(n, 0.030 + 0.0005 * n)
    fixed, per_lead = cost.coefficients()
    assert fixed == pytest.approx(0.030)
    assert per_lead == pytest.approx(0.0005)
    assert cost.predict(100) == pytest.approx(0.080)
    # Within a 100 ms budget: (0.100 - 0.030) / 0.0005 leads.
    assert cost.cap(0.100, 1000) == pytest.approx(140, abs=1)
    assert cost.cap(0.100, 50) == 50  # never past serve.max_batch


def test_recent_batches_outweigh_old_ones():
    """The machine gets busier: the fit follows it within a few dozen batches."""
    cost = BatchCost(halflife=10)
    for _ in range(50):
        for n in (1, 10):
            cost.observe(n, 0.010 + 0.001 * n)
    for _ in range(50):
        for n in (1, 10):
            cost.observe(n, 0.040 + 0.004 * n)
    fixed, per_lead = cost.coefficients()
    assert fixed == pytest.approx(0.040, rel=0.05)
    assert per_lead == pytest.approx(0.004, rel=0.05)


def test_one_batch_size_only_is_taken_as_fixed_cost():
    """Single leads only: nothing tells fixed from per-lead cost, so batches are not capped
    (a cap guessed from one size would shrink batches and throughput for nothing)."""
    cost = BatchCost()
    assert cost.coefficients() is None and cost.predict(10) == 0.0
    assert cost.cap(0.1, 1000) == 1000
    for _ in range(30):
        cost.observe(1, 0.025)
    assert cost.coefficients() == pytest.approx((0.025, 0.0))
    assert cost.cap(0.1, 1000) == 1000


def test_a_fixed_cost_over_the_budget_still_lets_batches_grow():
    """When one call costs more than the budget, everyone behind it waits too long anyway:
    a batch may still hold what costs one more fixed cost, which keeps the queue draining."""
    cost = BatchCost()
    for n in (1, 2, 4, 8):
        cost.observe(n, 0.200 + 0.002 * n)
    assert cost.cap(0.100, 1000) == pytest.approx(100, abs=1)  # 0.200 / 0.002


def test_costs_that_fall_with_size_are_not_negative():
    """Noise can make larger batches look cheaper: the cost per lead is never below 0."""
    cost = BatchCost()
    cost.observe(1, 0.05)
    cost.observe(10, 0.04)
    fixed, per_lead = cost.coefficients()
    assert per_lead == 0.0 and fixed > 0
