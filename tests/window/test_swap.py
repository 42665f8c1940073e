"""
SwapController: items and levels by value per token, history from a conversation;
contexts never exceed the budget.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preload import BudgetConfig, CategoryConfig, CompressedConversation, TiktokenCounter
from preload.compression import Level, MultiLevelCompressor, Representation
from preload.window import HierarchicalBudgetManager, SwapController

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
    return SwapController(HierarchicalBudgetManager(config), COUNTER)


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


def _rep_of_words(key: str, words: int, category: str) -> Representation:
    text = " ".join(f"w{key}{i}" for i in range(words))
    half = " ".join(f"w{key}{i}" for i in range(words // 4))
    return Representation(
        key=key,
        source="kb",
        category=category,
        levels=(
            Level(name="full", text=text, tokens=COUNTER.count(text), quality=1.0),
            Level(name="minimal", text=half, tokens=COUNTER.count(half), quality=0.25),
        ),
    )


items = st.lists(
    st.tuples(
        st.integers(1, 3000),
        st.sampled_from(["domain_knowledge", "task_context", "examples"]),
        st.floats(0, 1),
    ),
    max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(
    required=items,
    optional=items,
    history=st.lists(st.text(max_size=300), max_size=8),
    request=st.text(max_size=2000),
    total=st.integers(2_800, 12_000),
)
def test_context_never_exceeds_the_budget(
    required: list[tuple[int, str, float]],
    optional: list[tuple[int, str, float]],
    history: list[str],
    request: str,
    total: int,
) -> None:
    """
    Whatever is asked for, the rendered context plus the response buffer fits.
    """
    swap = SwapController(HierarchicalBudgetManager(BudgetConfig(total_tokens=total)), COUNTER)
    ctx = swap.assemble(
        "s",
        request=request,
        required=[_rep_of_words(f"r{i}", n, c) for i, (n, c, _) in enumerate(required)],
        optional=[(_rep_of_words(f"o{i}", n, c), v) for i, (n, c, v) in enumerate(optional)],
        history=history,
    )
    assert COUNTER.count(ctx.render()) <= ctx.tokens
    assert ctx.tokens + ctx.reserved <= total
