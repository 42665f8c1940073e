"""
The window laid out for the provider's prompt cache: stable to volatile, items that
stay keep their place, the price and the swap cost follow the cached prefix.
"""

from __future__ import annotations

from collections.abc import Callable

from preload import BudgetConfig, CategoryConfig, TiktokenCounter
from preload._config import PricingConfig, SwapConfig
from preload.compression import MultiLevelCompressor, Representation
from preload.window import HierarchicalBudgetManager, SwapController
from preload.window._tenant_layer import TenantLayer

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


def _tenant_swap(ttl_of: Callable[[str], float | None] | None = None) -> SwapController:
    return SwapController(
        HierarchicalBudgetManager(BudgetConfig(total_tokens=6000)),
        COUNTER,
        config=SwapConfig(tenant_tokens=1000, tenant_min_share=0.5, tenant_refresh=2),
        pricing=PricingConfig(min_prefix_tokens=150),
        ttl_of=ttl_of,
    )


def test_the_tenant_layer_learns_shared_items_and_keeps_their_order() -> None:
    """
    Items most of a tenant's sessions hold become the layer, most shared first; a
    later newcomer goes after the members (their order is kept), and an item fewer
    sessions hold stays out.
    """
    layer = TenantLayer(max_tokens=1000, min_share=0.5, refresh=2, hysteresis=0.1)
    for i in range(4):
        held = [("a", "domain_knowledge", "A", 10), ("c", "domain_knowledge", "C", 10)]
        layer.observe(f"s{i}", [*held, ("b", "task_context", "B", 10)][: 2 + (i == 0)], 0.0)
    assert ["a", "c"] == layer.keys
    for i in range(4, 6):
        layer.observe(f"s{i}", [("b", "task_context", "B", 10), ("a", "x", "A", 10)], 0.0)
    assert ["a", "c", "b"] == layer.keys  # b joined after the members
    assert ["A", "C", "B"] == [item.text for item in layer.items(0.0)]
    for i in range(6, 40):
        layer.observe(f"s{i}", [("b", "task_context", "B", 10), ("a", "x", "A", 10)], 0.0)
    assert ["a", "b"] == layer.keys  # c fell below the share; a and b keep their order


def test_a_new_session_reads_the_tenant_prefix_other_sessions_wrote() -> None:
    """
    Once the layer has formed, a session's first window starts with the system prompt
    and the tenant-wide items, under a header of their own, and reads that prefix from
    the tenant's prompt cache (written by other sessions); the same items laid out
    naively cost more.
    """
    swap = _tenant_swap()
    common, other = _rep("common", 80), _rep("other", 40)
    for i in range(4):
        required = [common, _rep(f"own{i}", 30)]
        window = swap.assemble(f"s{i}", request="hello", required=required)
        swap.learn_shared(f"s{i}", window, required, 0.0)  # the engine's learner does this
    ctx = swap.assemble("new", request="hi", required=[_rep("mine", 30)], optional=[(other, 0.9)])
    keys = [it.key for it in ctx.items]
    assert ["system", "common"] == keys[:2]
    assert {"mine", "other"} <= set(keys[2:-1])
    assert ctx.items[1].shared
    assert ctx.prefix_reused_tokens >= 150
    assert ctx.input_cost < ctx.naive_input_cost
    text = ctx.render()
    assert text.index("## tenant_knowledge") < text.index("common-fact-0") < text.index("mine-fact")
    assert "tenant-wide: held by" in ctx.explain()


def test_a_tenant_item_past_its_ttl_is_left_out_until_seen_again() -> None:
    """
    A layer item whose text is older than its time to live is not served from the
    layer; a window that holds it again refreshes it.
    """
    layer = TenantLayer(
        max_tokens=100, min_share=0.5, refresh=1, hysteresis=0.1, ttl_of=lambda key: 10.0
    )
    layer.observe("s1", [("db:x", "domain_knowledge", "rows", 5)], now=0.0)
    assert ["db:x"] == [item.key for item in layer.items(5.0)]
    assert [] == layer.items(20.0)
    layer.observe("s2", [("db:x", "domain_knowledge", "rows", 5)], now=20.0)
    assert ["db:x"] == [item.key for item in layer.items(25.0)]
