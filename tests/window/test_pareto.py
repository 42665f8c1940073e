"""
Pareto budgeting: candidate windows on four objectives, the frontier, the weighted
choice and its explanation.
"""

from __future__ import annotations

import pytest

from preload import (
    BudgetConfig,
    CategoryConfig,
    ConfigError,
    EngineConfig,
    ObjectivesConfig,
    TiktokenCounter,
)
from preload.compression import MultiLevelCompressor, Representation
from preload.window import (
    HierarchicalBudgetManager,
    Option,
    SwapController,
    WindowPoint,
    choose,
    frontier,
)

COUNTER = TiktokenCounter()


def _point(name: str, *objectives: float) -> WindowPoint:
    r, c, e, d = objectives
    return WindowPoint(
        name=name, choices=(), relevance=r, completeness=c, efficiency=e, diversity=d
    )


def test_the_frontier_keeps_only_windows_nothing_beats_everywhere() -> None:
    """
    A window worse or equal on every objective than another is off the frontier;
    windows that trade one objective for another both stay; a duplicate goes.
    """
    a = _point("a", 0.9, 0.5, 0.3, 0.5)
    b = _point("b", 0.6, 0.5, 0.8, 0.5)
    worse = _point("worse", 0.6, 0.4, 0.3, 0.5)
    twin = _point("twin", 0.9, 0.5, 0.3, 0.5)
    assert [a, b] == frontier([a, b, worse, twin])


def _items() -> tuple[list[list[Option]], list[tuple[str, str]], list[float]]:
    """
    Four candidates: two large valuable ones of one kind, two small ones of others
    (one of them a predicted need).
    """
    items = [
        [Option(value=0.9, tokens=400), Option(value=0.5, tokens=200)],
        [Option(value=0.8, tokens=400)],
        [Option(value=0.3, tokens=50)],
        [Option(value=0.2, tokens=40)],
    ]
    groups = [("kb", "db"), ("kb", "db"), ("kb", "slot"), ("docs", "intent")]
    predicted = [0.0, 0.0, 0.0, 0.7]
    return items, groups, predicted


def test_weights_pick_different_points_and_explain_the_nearest() -> None:
    """
    With relevance alone the knapsack's window wins; weighing efficiency picks a
    smaller window of more value per token; the explanation names the chosen point
    and the nearest alternative.
    """
    items, groups, predicted = _items()
    first = (0, 0, 0, 0)  # what the knapsack took within 890 tokens
    common = {"first": first, "values": [0.9, 0.8, 0.3, 0.2], "groups": groups}
    relevant = choose(items, 890, **common, predicted=predicted, weights={"relevance": 1.0})
    assert "knapsack" == relevant.chosen.name
    efficient = choose(
        items, 890, **common, predicted=predicted, weights={"relevance": 0.2, "efficiency": 1.0}
    )
    assert efficient.chosen.efficiency > relevant.chosen.efficiency
    assert sum(c >= 0 for c in efficient.chosen.choices) < 4
    lines = efficient.explain()
    assert lines[0].startswith(f"pareto: chose {efficient.chosen.name} (relevance ")
    assert efficient.nearest is not None
    assert lines[1].startswith(f"pareto: nearest alternative {efficient.nearest.name}")
    assert all(p in efficient.frontier for p in (efficient.chosen, efficient.nearest))


def test_completeness_and_diversity_count_what_the_window_covers() -> None:
    """
    When the knapsack's window leaves out the one predicted need (and its source and
    kind), weighing completeness and diversity picks a window that covers it all.
    """
    items, groups, predicted = _items()
    first = (0, 0, 0, -1)  # the knapsack's within 850 tokens: the predicted need left out
    picked = choose(
        items,
        850,
        first=first,
        values=[0.9, 0.8, 0.3, 0.2],
        groups=groups,
        predicted=predicted,
        weights={"completeness": 1.0, "diversity": 1.0},
    )
    knapsack = choose(
        items,
        850,
        first=first,
        values=[0.9, 0.8, 0.3, 0.2],
        groups=groups,
        predicted=predicted,
        weights={"relevance": 1.0},
    ).chosen
    assert first == knapsack.choices
    assert (0.0, 3 / 5) == (knapsack.completeness, knapsack.diversity)  # kb, db, slot of 5
    assert 1.0 == picked.chosen.completeness
    assert 1.0 == picked.chosen.diversity
    assert picked.chosen.choices[3] >= 0


def test_objective_weights_are_checked() -> None:
    """
    A negative weight names its key; weights all zero name the section.
    """
    with pytest.raises(ConfigError, match=r"budget\.objectives\.efficiency.*>= 0"):
        EngineConfig.from_dict({"budget": {"objectives": {"efficiency": -1}}})
    with pytest.raises(ConfigError, match=r"budget\.objectives.: the weights are all 0"):
        EngineConfig.from_dict({"budget": {"objectives": {"relevance": 0}}})
    with pytest.raises(ConfigError, match=r"budget\.objectives\.speed"):
        EngineConfig.from_dict({"budget": {"objectives": {"speed": 1}}})
    assert not ObjectivesConfig().pareto
    assert ObjectivesConfig(diversity=0.5).pareto


def _rep(key: str, source: str, text: str) -> Representation:
    return MultiLevelCompressor(COUNTER).compress(
        key=key, source=source, category="domain_knowledge", text=text
    )


def _swap(objectives: ObjectivesConfig) -> SwapController:
    config = BudgetConfig(
        total_tokens=1200,
        categories={
            "system": CategoryConfig(min=20, max=100, priority=100),
            "working_memory": CategoryConfig(min=20, max=100, priority=90),
            "domain_knowledge": CategoryConfig(min=0, max=0, priority=70),
            "response_buffer": CategoryConfig(min=200, max=200, priority=1000),
        },
        objectives=objectives,
    )
    return SwapController(HierarchicalBudgetManager(config), COUNTER)


def test_the_swap_controller_explains_its_pareto_choice() -> None:
    """
    With objectives beyond relevance the context says which window it chose and the
    nearest alternative; with relevance alone it says nothing of a frontier.
    """
    rows = "\n".join(f"{i}. hotel {i} in Lisbon, {40 + i} EUR a night" for i in range(60))
    optional = [
        (_rep("db:hotels", "kb", rows), 0.9),
        (_rep("db:more", "kb", rows.replace("Lisbon", "Porto")), 0.8),
        (_rep("intent:book", "docs", "Book a hotel: name, dates, room."), 0.4),
    ]
    plain = _swap(ObjectivesConfig()).assemble(
        "s", request="hotels", required=[], optional=optional
    )
    assert () == plain.choice and "pareto" not in plain.explain()
    weighed = _swap(ObjectivesConfig(relevance=0.2, efficiency=1.0, diversity=1.0)).assemble(
        "s", request="hotels", required=[], optional=optional, forecast={"intent:book": 0.6}
    )
    explained = weighed.explain()
    assert "pareto: chose" in explained and "pareto: nearest alternative" in explained
    assert "intent:book" in {item.key for item in weighed.items}
    assert weighed.tokens + weighed.reserved <= 1200
