"""
Allocation: allocations respect min/max and sum to the budget.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from preload import BudgetConfig, CategoryConfig
from preload._config import CATEGORIES
from preload.window import HierarchicalBudgetManager

demands = st.dictionaries(st.sampled_from(CATEGORIES), st.integers(0, 20_000))


@given(demand=demands, total=st.integers(2_700, 50_000))
def test_allocation_sums_to_budget_and_respects_bounds(demand: dict[str, int], total: int) -> None:
    """
    Every allocation sums to the budget, keeps the response buffer, gives no category
    more than its max or its demand, and gives a category with demand its minimum.
    """
    manager = HierarchicalBudgetManager(BudgetConfig(total_tokens=total))
    allocation = manager.allocate(demand)
    cats = manager.config.categories
    assert total == sum(allocation.tokens.values())
    assert allocation["response_buffer"] >= cats["response_buffer"].min
    for name, cat in cats.items():
        if name == "response_buffer":
            continue
        assert allocation[name] <= demand.get(name, 0)
        if cat.max:
            assert allocation[name] <= cat.max
        assert allocation[name] >= min(cat.min, demand.get(name, 0))


def test_what_a_category_cannot_use_goes_to_others() -> None:
    """
    Nothing is reserved for an empty category: its share goes by priority.
    """
    config = BudgetConfig(
        total_tokens=1000,
        categories={
            "domain_knowledge": CategoryConfig(min=400, max=0, priority=10),
            "user_history": CategoryConfig(min=400, max=0, priority=5),
            "response_buffer": CategoryConfig(min=100, max=100, priority=0),
        },
    )
    allocation = HierarchicalBudgetManager(config).allocate({"domain_knowledge": 5000})
    assert (900, 0, 100) == (
        allocation["domain_knowledge"],
        allocation["user_history"],
        allocation["response_buffer"],
    )
