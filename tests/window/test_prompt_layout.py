"""
The window laid out for the provider's prompt cache: stable to volatile, items that
stay keep their place, the price and the swap cost follow the cached prefix.
"""

from __future__ import annotations

from preload import BudgetConfig, CategoryConfig, TiktokenCounter
from preload._config import PricingConfig, SwapConfig
from preload.compression import MultiLevelCompressor, Representation
from preload.window import HierarchicalBudgetManager, SwapController

COUNTER = TiktokenCounter()


def _rep(key: str, words: int, category: str = "domain_knowledge") -> Representation:
    text = " ".join(f"{key}-fact-{i} holds." for i in range(words))
    return MultiLevelCompressor(COUNTER).compress(
        key=key, source="kb", category=category, text=text
    )


def _swap(layout: str = "stable") -> SwapController:
    config = BudgetConfig(
        total_tokens=6000,
        categories={
            "system": CategoryConfig(min=20, max=100, priority=100),
            "working_memory": CategoryConfig(min=20, max=100, priority=90),
            "task_context": CategoryConfig(min=0, max=2000, priority=80),
            "domain_knowledge": CategoryConfig(min=0, max=3000, priority=70),
            "user_history": CategoryConfig(min=50, max=200, priority=50),
            "response_buffer": CategoryConfig(min=300, max=300, priority=1000),
        },
    )
    return SwapController(
        HierarchicalBudgetManager(config),
        COUNTER,
        config=SwapConfig(layout=layout),  # type: ignore[arg-type]
        pricing=PricingConfig(min_prefix_tokens=200),
    )


def test_items_that_stay_keep_their_place_and_the_history_comes_after_them() -> None:
    """
    In the stable layout a newcomer goes after the items that stay, and the second
    turn reads the unchanged prefix from the cache,
    for less than the same window laid out without prefix awareness.
    """
    swap = _swap()
    a, b, c = _rep("a", 60), _rep("b", 60), _rep("c", 60)
    first = swap.assemble("s", request="one", required=[b, a], history=["hi there"])
    assert ["system", "b", "a", "request"] == [it.key for it in first.items]
    second = swap.assemble("s", request="two", required=[c, a, b], history=["hi there"])
    assert ["system", "b", "a", "c", "request"] == [it.key for it in second.items]
    assert second.prefix_reused_tokens > 0
    assert second.input_cost < second.naive_input_cost
    assert "prompt cache:" in second.explain()
    assert second.render().index("b-fact-0") < second.render().index("c-fact-0")


def test_leaving_a_cached_prefix_is_part_of_the_swap_cost() -> None:
    """
    A predicted item in the window whose leaving would invalidate cached tokens is
    kept, and its decision says so.
    """
    swap = _swap()
    kept = _rep("kept", 120)
    swap.assemble("s", request="one", required=[], optional=[(kept, 0.9), (_rep("x", 100), 0.9)])
    ctx = swap.assemble("s", request="two", required=[], optional=[(kept, 0.3)])
    reasons = [d.reason for d in ctx.decisions if d.key == "kept"]
    assert reasons and "kept in window" in reasons[0]
    swap.assemble("s", request="three", required=[], optional=[(kept, 0.3)])
    again = swap.assemble("s", request="four", required=[], optional=[(kept, 0.3)])
    assert any("leaving would invalidate" in d.reason for d in again.decisions if d.key == "kept")
