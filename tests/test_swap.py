"""
SwapController: items and levels by value per token, history from a conversation.
"""

from __future__ import annotations

import pytest

from preload import (
    BudgetConfig,
    BudgetManager,
    CategoryConfig,
    CompressedConversation,
    ImportanceScorer,
    MultiLevelCompressor,
    Representation,
    SwapController,
    TiktokenCounter,
)

COUNTER = TiktokenCounter()

ROWS = "Hotels in London (rows):\n" + "\n".join(
    f"{i}. name=Hotel {i}; city=London; stars={1 + i % 5}; price={90 + 7 * i}" for i in range(1, 40)
)


def _rep(key: str, text: str) -> Representation:
    return MultiLevelCompressor(COUNTER).compress(
        key=key, source="kb", category="domain_knowledge", text=text
    )


@pytest.fixture(name="swap")
def _swap() -> SwapController:
    """
    A swap controller with a small window, so that items compete for room.
    """
    config = BudgetConfig(
        total_tokens=1400,
        categories={
            "system": CategoryConfig(min=20, max=100, priority=100),
            "working_memory": CategoryConfig(min=20, max=100, priority=90),
            "domain_knowledge": CategoryConfig(min=0, max=0, priority=70),
            "user_history": CategoryConfig(min=0, max=200, priority=50),
            "response_buffer": CategoryConfig(min=300, max=300, priority=1000),
        },
    )
    return SwapController(BudgetManager(config), COUNTER)


def test_items_share_the_room_at_smaller_levels(swap: SwapController) -> None:
    """
    Two predicted items that do not both fit whole both go in, one or both at a
    smaller level, rather than one whole and the other out.
    """
    a, b = _rep("db:a", ROWS), _rep("db:b", ROWS.replace("London", "Paris"))
    assert a.tokens + b.tokens > 1000
    ctx = swap.assemble("s", request="hotels", required=[], optional=[(a, 0.9), (b, 0.8)])
    assert {"db:a", "db:b"} == {item.key for item in ctx.items if item.key.startswith("db:")}
    assert ctx.tokens + ctx.reserved <= 1400
    assert "quality" in ctx.explain()


def test_a_conversation_fills_the_history_budget(swap: SwapController) -> None:
    """
    With a conversation, the history item holds its stated facts within budget.
    """
    history = CompressedConversation(1000, counter=COUNTER)
    for i in range(30):
        history.add_exchange(f"Book Hotel {i} in London for {i + 2} people.", "Which date?")
    ctx = swap.assemble("s", request="hotels", required=[], conversation=history)
    item = next(item for item in ctx.items if item.key == "history")
    assert COUNTER.count(item.text) <= 200
    assert "Hotel 29" in item.text


def test_the_scorer_prefers_relevant_recent_referenced_items() -> None:
    """
    Relevance, recency and explicit references raise an item's importance.
    """
    scorer = ImportanceScorer()
    texts = ["Hotel Rintaro in London has a pool.", "The weather in Paris is sunny."]
    near, far = scorer.score("As you said earlier, does Rintaro have a pool?", texts)
    assert near.score > far.score
    assert (near.references > 0.0, far.references) == (True, 0.0)
    old, new = scorer.score("weather", texts[1:] * 2, ages=[8, 0])
    assert new.score > old.score
    assert "relevance" in near.explain()


def test_the_scorer_learns_historical_utility() -> None:
    """
    An item used whenever it was loaded is worth more than one never used.
    """
    scorer = ImportanceScorer()
    for _ in range(5):
        scorer.record("db:used", used=True)
        scorer.record("db:idle", used=False)
    used, idle = scorer.score("x", ["same text", "same text"], keys=["db:used", "db:idle"])
    assert used.utility > idle.utility
    assert used.score > idle.score
