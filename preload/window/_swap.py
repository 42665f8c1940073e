"""
The swap controller: assembles each turn's context window within the budget.

Per session it remembers the current window. This turn's needs go in first, at the
richest level that fits; then warm predicted items by value per token. An item that
is not in the window yet is swapped in only when its value beats the swap cost (a
change near the top of the window invalidates the prompt-prefix cache); items already
in the window keep their place. Every decision is recorded for :meth:`Context.explain`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .._config import CATEGORIES
from ._budget import Option, select

if TYPE_CHECKING:
    from .._tokens import TokenCounter
    from ..compression._compressor import Representation
    from ..history._conversation import CompressedConversation
    from ._budget import BudgetManager

__all__ = ["Context", "ContextItem", "Decision", "SwapController"]

#: Tokens kept aside for what :meth:`Context.render` adds (headers, separators).
RENDER_OVERHEAD = 64

#: Categories that knowledge items may occupy.
ITEM_CATEGORIES = ("task_context", "domain_knowledge", "examples")


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextItem:
    """
    One piece of an assembled context.

    .. versionadded:: 0.1
    """

    key: str
    category: str
    level: str
    text: str
    tokens: int
    value: float
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """
    Why an item is in the window or out of it.

    .. versionadded:: 0.1
    """

    key: str
    included: bool
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """
    The context assembled for one request, within ``budget`` tokens.

    ``tokens`` counts the items plus the headers and separators :meth:`render` adds;
    ``reserved`` is the response buffer; ``tokens + reserved <= budget``.

    .. versionadded:: 0.1
    """

    session_id: str
    items: tuple[ContextItem, ...]
    decisions: tuple[Decision, ...]
    budget: int
    reserved: int
    tokens: int
    waited_s: float = 0.0
    hits: int = 0
    misses: int = 0
    partial_hits: int = 0
    missing: tuple[str, ...] = ()

    def render(self) -> str:
        """
        The context as prompt text, category by category.
        """
        parts: list[str] = []
        for category in CATEGORIES:
            texts = [item.text for item in self.items if item.category == category and item.text]
            if texts:
                parts.append(f"## {category}\n" + "\n\n".join(texts))
        return "\n\n".join(parts)

    def explain(self) -> str:
        """
        One line a decision: what is in, at which level and why; what is out and why.
        """
        lines = [
            (
                f"context for {self.session_id}: {self.tokens} of {self.budget} tokens "
                f"({self.reserved} kept for the response); waited {self.waited_s * 1000:.0f} ms"
            )
        ]
        by_key = {item.key: item for item in self.items}
        for decision in self.decisions:
            item = by_key.get(decision.key)
            if decision.included and item is not None:
                lines.append(
                    f"  in   {item.category:<16} {item.key} [{item.level}, {item.tokens} tok]: "
                    f"{decision.reason}"
                )
            else:
                lines.append(f"  out  {decision.key}: {decision.reason}")
        return "\n".join(lines)


@dataclass(slots=True)
class _Window:
    keys: list[str] = field(default_factory=list)


class SwapController:
    """
    Chooses what each turn's context holds.

    Args:
        budget: Splits the window across categories.
        counter: Counts tokens of the request, the history and the system prompt.
        swap_threshold: The value a predicted item that is not in the window yet must
            reach to be swapped in.
        exact_items: Up to this many predicted items, items and levels are chosen by
            the exact knapsack; above, by the convex-hull greedy (the request path
            default: 0, always the greedy, which is well under a millisecond).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        budget: BudgetManager,
        counter: TokenCounter,
        *,
        swap_threshold: float = 0.2,
        exact_items: int = 0,
    ) -> None:
        self.budget = budget
        self.counter = counter
        self.swap_threshold = swap_threshold
        self.exact_items = exact_items
        self._windows: dict[str, _Window] = {}

    def forget(self, session_id: str) -> None:
        """
        Drop a session's window.
        """
        self._windows.pop(session_id, None)

    def assemble(
        self,
        session_id: str,
        *,
        request: str,
        required: Sequence[Representation],
        optional: Sequence[tuple[Representation, float]] = (),
        history: Sequence[str] = (),
        system: str | None = None,
        conversation: CompressedConversation | None = None,
    ) -> Context:
        """
        The context for one request.

        Args:
            session_id: Whose window this is.
            request: The request's text (working memory).
            required: This turn's needs, in order.
            optional: Warm predicted items with their estimated value in [0, 1].
            history: Earlier exchanges as text, oldest first (the last ones that fit
                are kept whole).
            conversation: The session's compressed history; when given it replaces
                ``history`` and fills the history budget with recent exchanges and the
                facts stated so far.
            system: The system prompt (the configured one when None).
        """
        window = self._windows.setdefault(session_id, _Window())
        system_text = self.budget.config.system_prompt if system is None else system
        request_tokens = self.counter.count(request)
        system_tokens = self.counter.count(system_text)
        history_tokens = (
            [conversation.tokens]
            if conversation is not None
            else [self.counter.count(h) for h in history]
        )
        demand: dict[str, int] = {
            "system": system_tokens,
            "working_memory": request_tokens,
            "user_history": sum(history_tokens),
        }
        for rep in required:
            demand[_category(rep)] = demand.get(_category(rep), 0) + rep.tokens
        for rep, _ in optional:
            demand[_category(rep)] = demand.get(_category(rep), 0) + rep.tokens
        allocation = self.budget.allocate(demand, self.budget.total - RENDER_OVERHEAD)
        left = dict(allocation.tokens)
        items: list[ContextItem] = []
        decisions: list[Decision] = []

        def put(key: str, category: str, text: str, tokens: int, level: str, reason: str) -> None:
            items.append(
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
            left[category] -= tokens
            decisions.append(Decision(key=key, included=True, reason=reason))

        system_cut = self._cut(system_text, system_tokens, left["system"])
        put("system", "system", system_cut[0], system_cut[1], system_cut[2], "system prompt")
        request_cut = self._cut(request, request_tokens, left.get("working_memory", 0))
        put("request", "working_memory", *request_cut, "this request")
        kept: list[str] = []
        room = left.get("user_history", 0)
        if conversation is not None:
            text = conversation.get_context(max(0, room - 1))
            if text:
                tokens = self.counter.count(text)
                how = "full" if tokens >= conversation.tokens else "compressed"
                put("history", "user_history", text, tokens, how, "history and stated facts")
            history, history_tokens = (), []
        for text, tokens in zip(reversed(history), reversed(history_tokens), strict=True):
            if tokens + 1 > room:
                break
            kept.append(text)
            room -= tokens + 1
        if kept:
            text = "\n".join(reversed(kept))
            tokens = self.counter.count(text)
            put("history", "user_history", text, tokens, "full", f"last {len(kept)} exchanges")

        spare = _Spare(left)
        for rep in required:
            cat = _category(rep)
            level = rep.best_within(spare.room(cat))
            if level is None:
                decisions.append(
                    Decision(
                        key=rep.key,
                        included=False,
                        reason=f"needed, but even its smallest level "
                        f"({rep.levels[-1].tokens} tok) exceeds the {spare.room(cat)} left",
                    )
                )
                continue
            spare.take(cat, level.tokens)
            items.append(
                ContextItem(
                    key=rep.key,
                    category=cat,
                    level=level.name,
                    text=level.text,
                    tokens=level.tokens,
                    value=1.0,
                    reason="needed this turn",
                )
            )
            decisions.append(Decision(key=rep.key, included=True, reason="needed this turn"))

        in_window = set(window.keys)
        have = {rep.key for rep in required}
        candidates: list[tuple[Representation, float, bool]] = []
        for rep, value in optional:
            if rep.key in have:
                continue
            have.add(rep.key)
            sticky = rep.key in in_window
            if not sticky and value < self.swap_threshold:
                decisions.append(
                    Decision(
                        key=rep.key,
                        included=False,
                        reason=f"predicted value {value:.2f} below the swap cost "
                        f"{self.swap_threshold:.2f}",
                    )
                )
                continue
            candidates.append((rep, value, sticky))
        if candidates:
            # Which items and which level of each: a multiple-choice knapsack on value
            # (predicted value x level quality; +0.1 for staying in the window) per token.
            options = [
                [
                    Option(
                        value=(value + (0.1 if sticky else 0.0)) * max(level.quality, 0.05),
                        tokens=level.tokens,
                    )
                    for level in rep.levels
                ]
                for rep, value, sticky in candidates
            ]
            room = spare.room(ITEM_CATEGORIES[0])
            selection = select(options, room, exact_items=self.exact_items)
            for (rep, value, sticky), choice in zip(candidates, selection.choices, strict=True):
                cat = _category(rep)
                if choice < 0:
                    smallest = rep.levels[-1]
                    decisions.append(
                        Decision(
                            key=rep.key,
                            included=False,
                            reason=f"no room: value {value:.2f}; even {smallest.name} "
                            f"({smallest.tokens} tok) lost to items worth more per token",
                        )
                    )
                    continue
                level = rep.levels[choice]
                spare.take(cat, level.tokens)
                reason = (
                    f"predicted, value {value:.2f} x quality {level.quality:.2f}"
                    + (" (kept in window)" if sticky else "")
                    + (f"; {rep.levels[0].tokens - level.tokens} tok saved" if choice else "")
                )
                items.append(
                    ContextItem(
                        key=rep.key,
                        category=cat,
                        level=level.name,
                        text=level.text,
                        tokens=level.tokens,
                        value=value,
                        reason=reason,
                    )
                )
                decisions.append(Decision(key=rep.key, included=True, reason=reason))

        order = {key: i for i, key in enumerate(window.keys)}
        items.sort(key=lambda it: (CATEGORIES.index(it.category), order.get(it.key, len(order))))
        window.keys = [it.key for it in items]
        context = Context(
            session_id=session_id,
            items=tuple(items),
            decisions=tuple(decisions),
            budget=self.budget.total,
            reserved=allocation["response_buffer"],
            tokens=0,
        )
        headers = {item.category for item in items if item.text}
        overhead = sum(self.counter.count(f"## {c}\n") + 1 for c in headers) + len(items)
        return replace(context, tokens=sum(item.tokens for item in items) + overhead)

    def _cut(self, text: str, tokens: int, room: int) -> tuple[str, int, str]:
        if tokens <= room:
            return text, tokens, "full"
        cut = self.counter.truncate(text, room)
        return cut, self.counter.count(cut), "truncated"


def _category(rep: Representation) -> str:
    return rep.category if rep.category in ITEM_CATEGORIES else "domain_knowledge"


class _Spare:
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
