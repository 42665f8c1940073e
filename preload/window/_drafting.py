"""
A context window being drafted: :class:`Draft` holds its items, the decisions that put
them in or kept them out and the tokens each category has left; :class:`Spare` the room
left to knowledge items, which may take what the other item categories left over; and
the steps that put in this turn's needs and the tenant-wide items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._context import ContextItem, Decision
from ._knapsack import Option

if TYPE_CHECKING:
    from ..compression import Level, Representation
    from ._tenant_layer import SharedItem

__all__ = [
    "ITEM_CATEGORIES",
    "Draft",
    "Spare",
    "category_of",
    "demand_of",
    "item_at",
    "options_of",
    "put_required",
    "put_shared",
]

#: Categories that knowledge items may occupy.
ITEM_CATEGORIES = ("task_context", "domain_knowledge", "examples")


@dataclass(slots=True)
class Draft:
    """
    A context being assembled: its items, its decisions so far, and the tokens each
    category has left.
    """

    left: dict[str, int]
    items: list[ContextItem] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def put(self, key: str, category: str, text: str, tokens: int, level: str, reason: str) -> None:
        """
        Add a fixed part (system prompt, request, history) from its category's tokens.
        """
        self.include(
            ContextItem(
                key=key,
                category=category,
                level=level,
                text=text,
                tokens=tokens,
                value=1.0,
                reason=reason,
            )
        )
        self.left[category] -= tokens

    def include(self, item: ContextItem) -> None:
        """
        Add ``item`` and the decision that put it in.
        """
        self.items.append(item)
        self.decisions.append(Decision(key=item.key, included=True, reason=item.reason))

    def exclude(self, key: str, reason: str) -> None:
        """
        Record why ``key`` stays out.
        """
        self.decisions.append(Decision(key=key, included=False, reason=reason))


def demand_of(
    system_tokens: int,
    request_tokens: int,
    history_tokens: int,
    required: Sequence[Representation],
    optional: Sequence[tuple[Representation, float]],
    shared: Sequence[SharedItem] = (),
) -> dict[str, int]:
    """
    The tokens each category would use now: the fixed parts and every item at full
    (a tenant-wide item once).
    """
    demand: dict[str, int] = {
        "system": system_tokens,
        "working_memory": request_tokens,
        "user_history": history_tokens,
    }
    layer = {item.key: item for item in shared}
    for rep in [*required, *(rep for rep, _ in optional)]:
        if rep.key not in layer:
            demand[category_of(rep)] = demand.get(category_of(rep), 0) + rep.tokens
    for item in shared:
        cat = item.category if item.category in ITEM_CATEGORIES else "domain_knowledge"
        demand[cat] = demand.get(cat, 0) + item.tokens
    return demand


def put_required(
    draft: Draft,
    spare: Spare,
    required: Sequence[Representation],
    layer: dict[str, SharedItem],
) -> None:
    """
    This turn's needs, in order, each at the richest level the room left allows; a
    need of the tenant-wide layer as the layer holds it, when it fits.
    """
    for rep in required:
        cat = category_of(rep)
        shared = layer.get(rep.key)
        if shared is not None and shared.tokens <= spare.room(cat):
            spare.take(cat, shared.tokens)
            draft.include(_shared_item(shared, cat, f"needed this turn; {_shared_reason(shared)}"))
            continue
        level = rep.best_within(spare.room(cat))
        if level is None:
            draft.exclude(
                rep.key,
                f"needed, but even its smallest level "
                f"({rep.levels[-1].tokens} tok) exceeds the {spare.room(cat)} left",
            )
            continue
        spare.take(cat, level.tokens)
        draft.include(item_at(rep, level, 1.0, "needed this turn"))


def put_shared(draft: Draft, spare: Spare, shared: Sequence[SharedItem]) -> None:
    """
    The tenant-wide items this turn's needs did not bring, each whole where it fits.
    """
    have = {item.key for item in draft.items}
    for item in shared:
        if item.key in have:
            continue
        cat = item.category if item.category in ITEM_CATEGORIES else "domain_knowledge"
        if item.tokens > spare.room(cat):
            draft.exclude(item.key, f"{_shared_reason(item)}, but no room ({item.tokens} tok)")
            continue
        spare.take(cat, item.tokens)
        draft.include(_shared_item(item, cat, _shared_reason(item)))


def _shared_reason(item: SharedItem) -> str:
    return f"tenant-wide: held by {item.share:.0%} of the tenant's sessions"


def _shared_item(item: SharedItem, category: str, reason: str) -> ContextItem:
    return ContextItem(
        key=item.key,
        category=category,
        level="full",
        text=item.text,
        tokens=item.tokens,
        value=item.share,
        reason=reason,
        shared=True,
    )


def options_of(rep: Representation, value: float, bonus: float) -> list[Option]:
    """
    An item's knapsack options, one a level; ``bonus`` is what staying is worth.
    """
    return [
        Option(value=(value + bonus) * max(level.quality, 0.05), tokens=level.tokens)
        for level in rep.levels
    ]


def item_at(rep: Representation, level: Level, value: float, reason: str) -> ContextItem:
    return ContextItem(
        key=rep.key,
        category=category_of(rep),
        level=level.name,
        text=level.text,
        tokens=level.tokens,
        value=value,
        reason=reason,
    )


def category_of(rep: Representation) -> str:
    return rep.category if rep.category in ITEM_CATEGORIES else "domain_knowledge"


class Spare:
    """
    Room left per item category; an item may also use what the other item
    categories left over.
    """

    def __init__(self, left: dict[str, int]) -> None:
        self.left = {cat: max(0, left.get(cat, 0)) for cat in ITEM_CATEGORIES}

    def room(self, category: str) -> int:
        return sum(self.left.values()) if category in self.left else 0

    def take(self, category: str, tokens: int) -> None:
        own = min(tokens, self.left[category])
        self.left[category] -= own
        tokens -= own
        for cat in ITEM_CATEGORIES:
            extra = min(tokens, self.left[cat])
            self.left[cat] -= extra
            tokens -= extra
