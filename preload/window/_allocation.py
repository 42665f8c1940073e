"""
The split of one context window across its categories.

Each category has a minimum it is guaranteed when it has content, a maximum, and a
priority. What a category cannot use goes to the others by priority; nothing is
reserved for a category with nothing to put in it; the response buffer is always
kept, and whatever nobody can use is added to it, so an allocation always sums to the
budget. Within a category, items and their levels are chosen by the multiple-choice
knapsack (:func:`~preload.window.select`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .._config import BudgetConfig, CategoryConfig
from ._knapsack import Option, Selection, select

__all__ = ["Allocation", "HierarchicalBudgetManager"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Allocation:
    """
    Tokens per category; ``sum(tokens.values()) == total``.

    .. versionadded:: 0.1
    """

    total: int
    tokens: dict[str, int]

    def __getitem__(self, category: str) -> int:
        return self.tokens.get(category, 0)

    def explain(self) -> str:
        """
        One line a category, largest first.
        """
        parts = sorted(self.tokens.items(), key=lambda kv: (-kv[1], kv[0]))
        return f"{self.total} tokens: " + ", ".join(f"{k} {v}" for k, v in parts if v)


class HierarchicalBudgetManager:
    """
    Splits a token budget across categories by their min, max and priority, and
    chooses items and levels within a category by value per token.

    Args:
        config: The budget section of the engine configuration.

    .. versionadded:: 0.1
    """

    def __init__(self, config: BudgetConfig | None = None) -> None:
        self.config = config or BudgetConfig()

    @property
    def total(self) -> int:
        """
        The whole budget in tokens.
        """
        return self.config.total_tokens

    def allocate(
        self,
        demand: Mapping[str, int],
        total: int | None = None,
        *,
        caps: Mapping[str, int] | None = None,
    ) -> Allocation:
        """
        Tokens for each category given what each would use now (``demand``).

        Every category with demand gets up to its minimum first (by priority), then
        the rest is handed out by priority up to each category's maximum and demand;
        the response buffer keeps its minimum and takes what is left, so nothing is
        reserved for a category with nothing to use it. ``caps`` (the adaptive
        budget's) lower a category's maximum, never below its minimum.

        .. versionchanged:: 0.6
           ``caps``.
        """
        total = self.config.total_tokens if total is None else total
        cats = self.config.categories
        buffer = "response_buffer"
        tokens = dict.fromkeys(cats, 0)
        tokens[buffer] = min(cats[buffer].min, total)
        left = total - tokens[buffer]
        ranked = _by_priority(cats)
        for name, cat in ranked:
            if name == buffer:
                continue
            give = min(cat.min, max(0, demand.get(name, 0)), left)
            tokens[name] = give
            left -= give
        for name, cat in ranked:
            if name == buffer or left <= 0:
                continue
            cap = max(0, demand.get(name, 0))
            if cat.max:
                cap = min(cap, cat.max)
            if caps is not None and name in caps:
                cap = min(cap, max(caps[name], cat.min))
            give = min(max(0, cap - tokens[name]), left)
            tokens[name] += give
            left -= give
        tokens[buffer] += left
        return Allocation(total=total, tokens=tokens)

    def select(self, items: Sequence[Sequence[Option]], budget: int) -> Selection:
        """
        Items and levels within ``budget`` (see :func:`select`), exact up to the
        configured ``knapsack_exact_items``.
        """
        return select(items, budget, exact_items=self.config.knapsack_exact_items)


def _by_priority(cats: Mapping[str, CategoryConfig]) -> list[tuple[str, CategoryConfig]]:
    return sorted(cats.items(), key=lambda kv: (-kv[1].priority, kv[0]))
