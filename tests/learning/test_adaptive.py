"""
The adaptive budget: category caps learned from feedback, within the hard min/max.
"""

from __future__ import annotations

import pytest

from preload import AdaptiveBudgetConfig, BudgetConfig, CategoryConfig, ConfigError, EngineConfig
from preload.learning import AdaptiveBudget, JudgedItem
from preload.window import HierarchicalBudgetManager

CATEGORIES = ("task_context", "domain_knowledge")


@pytest.fixture(name="config")
def _config() -> BudgetConfig:
    """
    Two item categories with ranges of 100..600 and 50..1000 tokens.
    """
    return BudgetConfig(
        total_tokens=3000,
        categories={
            "system": CategoryConfig(min=20, max=100, priority=100),
            "task_context": CategoryConfig(min=100, max=600, priority=80),
            "domain_knowledge": CategoryConfig(min=50, max=1000, priority=70),
            "user_history": CategoryConfig(min=0, max=2000, priority=50),
            "response_buffer": CategoryConfig(min=300, max=300, priority=1000),
        },
        adaptive=AdaptiveBudgetConfig(enabled=True, learning_rate=0.1, min_evidence=5),
    )


def _window(*, task_used: bool, knowledge_used: bool) -> list[JudgedItem]:
    """
    A judged window: a rich item and a marginal one (least value per token) in each
    category; the rich ones used, the marginal ones as told.
    """
    out = []
    for category, used in (("task_context", task_used), ("domain_knowledge", knowledge_used)):
        out.append(
            JudgedItem(
                category=category, tokens=100, value=0.9, included=True, no_room=False, used=True
            )
        )
        out.append(
            JudgedItem(
                category=category, tokens=300, value=0.3, included=True, no_room=False, used=used
            )
        )
    return out


def test_caps_move_towards_the_category_whose_marginal_tokens_were_used(
    config: BudgetConfig,
) -> None:
    """
    The category whose marginal item goes unused shrinks towards its minimum, never
    below it; the one whose marginal item is used keeps its maximum, never above it.
    """
    budget = AdaptiveBudget(config, break_even=0.2, categories=CATEGORIES)
    for _ in range(200):
        budget.observe(_window(task_used=True, knowledge_used=False))
    caps = budget.caps()
    assert 600 == caps["task_context"]
    assert 50 == caps["domain_knowledge"]
    assert 0.0 == budget.shares["domain_knowledge"]
    explained = budget.explain()
    assert "domain_knowledge: up to 50 tokens (min 50, max 1000" in explained
    assert "at or below the break-even" in explained


def test_a_used_item_left_without_room_grows_its_category(config: BudgetConfig) -> None:
    """
    Unused marginal items shrink a category; used items it had no room for grow it
    back.
    """
    budget = AdaptiveBudget(config, break_even=0.2, categories=CATEGORIES)
    for _ in range(10):
        budget.observe(_window(task_used=True, knowledge_used=False))
    low = budget.caps()["domain_knowledge"]
    missed = JudgedItem(
        category="domain_knowledge", tokens=400, value=0.5, included=False, no_room=True, used=True
    )
    for _ in range(10):
        budget.observe([*_window(task_used=True, knowledge_used=False), missed])
    assert low < budget.caps()["domain_knowledge"] <= 1000
    assert "10 times a used item found no room" in budget.explain()


def test_caps_wait_for_evidence_and_reset(config: BudgetConfig) -> None:
    """
    Below ``min_evidence`` windows a category keeps its configured maximum; a
    category that took no part in a window gains no evidence; reset forgets all.
    """
    budget = AdaptiveBudget(config, break_even=0.2, categories=CATEGORIES)
    only_task = [
        JudgedItem(
            category="task_context", tokens=100, value=0.5, included=True, no_room=False, used=False
        )
    ]
    for _ in range(4):
        budget.observe(only_task)
    assert {} == dict(budget.caps())
    assert "4 of 5 windows of evidence so far" in budget.explain()
    budget.observe(only_task)
    assert ["task_context"] == list(budget.caps())
    assert 0 == budget.evidence["domain_knowledge"]
    budget.reset()
    assert {} == dict(budget.caps())
    assert 1.0 == budget.shares["task_context"]


def test_allocation_takes_the_caps_within_the_minimum(config: BudgetConfig) -> None:
    """
    A cap lowers a category's maximum, and what it frees goes to the next by
    priority; a cap below the minimum still leaves the minimum.
    """
    manager = HierarchicalBudgetManager(config)
    demand = {"system": 20, "task_context": 800, "domain_knowledge": 800, "user_history": 2000}
    free = manager.allocate(demand)
    capped = manager.allocate(demand, caps={"task_context": 10, "domain_knowledge": 400})
    assert 600 == free["task_context"] and 100 == capped["task_context"]
    assert 400 == capped["domain_knowledge"]
    assert capped["user_history"] > free["user_history"]
    assert 3000 == sum(capped.tokens.values())


def test_adaptive_config_is_checked() -> None:
    """
    A learning rate outside (0, 1] or no evidence needed is a config error naming the key.
    """
    with pytest.raises(ConfigError, match=r"budget\.adaptive\.learning_rate"):
        EngineConfig.from_dict({"budget": {"adaptive": {"learning_rate": 0}}})
    with pytest.raises(ConfigError, match=r"budget\.adaptive\.min_evidence"):
        EngineConfig.from_dict({"budget": {"adaptive": {"min_evidence": 0}}})
    with pytest.raises(ConfigError, match=r"budget\.adaptive\.speed"):
        EngineConfig.from_dict({"budget": {"adaptive": {"speed": 1}}})
