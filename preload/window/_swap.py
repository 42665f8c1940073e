"""
The swap controller: assembles each turn's context window within the budget.

Per session it remembers the current window. This turn's needs go in first, at the
richest level that fits; then warm predicted items by value per token. An item that
is not in the window yet is swapped in only when its value beats the swap cost (a
change near the top of the window invalidates the prompt-prefix cache); items already
in the window keep their place. Every decision is recorded for :meth:`Context.explain`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import anyio

from .._config import CATEGORIES, PricingConfig, SwapConfig
from ._context import TENANT_SECTION, Context, ContextItem
from ._drafting import (
    ITEM_CATEGORIES,
    Draft,
    Spare,
    category_of,
    demand_of,
    item_at,
    options_of,
    put_required,
    put_shared,
)
from ._knapsack import select
from ._pareto import MAX_CANDIDATES, choose
from ._prompt_cache import PromptCache, Segment, SessionPrefix
from ._tenant_layer import TenantLayer

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._tokens import TokenCounter
    from ..compression import Representation
    from ..history import CompressedConversation
    from ._allocation import Allocation, HierarchicalBudgetManager

__all__ = ["RENDER_OVERHEAD", "STABLE_ORDER", "SwapController", "history_budget"]

#: Tokens kept aside for what :meth:`Context.render` adds (headers, separators).
RENDER_OVERHEAD = 64


def history_budget(room: int) -> int:
    """
    The tokens a window asks a conversation's history for within ``room`` tokens of
    its category: one less, for the line break that joins it to the window. A history
    made with this ``max_tokens`` has its context ready for the window's first ask.
    """
    return max(0, room - 1)


#: The stable-to-volatile order of the categories (``swap.layout = "stable"``): the
#: system prompt, the items, the history (it grows every turn), the request.
STABLE_ORDER = (
    "system",
    "task_context",
    "domain_knowledge",
    "examples",
    "user_history",
    "working_memory",
    "response_buffer",
)


@dataclass(slots=True)
class _Window:
    keys: list[str] = field(default_factory=list)
    prefix: SessionPrefix = field(default_factory=SessionPrefix)


class SwapController:
    """
    Chooses what each turn's context holds.

    Args:
        budget: Splits the window across categories.
        counter: Counts tokens of the request, the history and the system prompt.
        config: The swap section of the engine configuration (defaults when None).
        swap_threshold: The value a predicted item that is not in the window yet must
            reach to be swapped in; when given, overrides ``config.swap_threshold``.
        exact_items: Up to this many predicted items, items and levels are chosen by
            the exact knapsack; above, by the convex-hull greedy (the request path
            default: 0, always the greedy, which is well under a millisecond); when
            given, overrides ``config.exact_items``.
        pricing: What the provider charges and how its prompt cache works: each
            window is priced by it, and what an item's leaving would invalidate is
            part of its swap cost (defaults when None). The provider's cache is
            shared by every session of the controller (one tenant's).
        ttl_of: An item's time to live in seconds, by key (None: forever); the
            tenant-wide layer leaves out an item not seen again within it.

    Raises:
        ConfigError: ``swap_threshold`` or ``exact_items`` is out of range.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
        The ``config`` parameter.
    .. versionchanged:: 0.5
        ``pricing``; the stable-to-volatile layout (``swap.layout``).
    .. versionchanged:: 0.6
        The provider's cache is the tenant's (shared by its sessions); the tenant-wide
        layer (``swap.tenant_tokens``); ``ttl_of``.
    """

    def __init__(
        self,
        budget: HierarchicalBudgetManager,
        counter: TokenCounter,
        *,
        config: SwapConfig | None = None,
        swap_threshold: float | None = None,
        exact_items: int | None = None,
        pricing: PricingConfig | None = None,
        ttl_of: Callable[[str], float | None] | None = None,
    ) -> None:
        config = config or SwapConfig()
        self.pricing = pricing or PricingConfig()
        if swap_threshold is not None:
            config = replace(config, swap_threshold=swap_threshold)
        if exact_items is not None:
            config = replace(config, exact_items=exact_items)
        self.budget = budget
        self.counter = counter
        self.config = config
        self._windows: dict[str, _Window] = {}
        self.prompt_cache = PromptCache()  # the tenant's, as laid out
        self._naive_cache = PromptCache()  # the tenant's, laid out naively
        self.tenant: TenantLayer | None = None
        if config.tenant_tokens > 0:
            self.tenant = TenantLayer(
                max_tokens=config.tenant_tokens,
                min_share=config.tenant_min_share,
                refresh=config.tenant_refresh,
                hysteresis=config.hysteresis,
                ttl_of=ttl_of,
            )

    @property
    def swap_threshold(self) -> float:
        """
        The value a predicted item not in the window yet must reach to swap in.
        """
        return self.config.swap_threshold

    @property
    def exact_items(self) -> int:
        """
        Up to this many predicted items, the knapsack is solved exactly.
        """
        return self.config.exact_items

    def forget(self, session_id: str) -> None:
        """
        Drop a session's window.
        """
        self._windows.pop(session_id, None)
        if self.tenant is not None:
            self.tenant.forget(session_id)

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
        caps: Mapping[str, int] | None = None,
        forecast: Mapping[str, float] | None = None,
    ) -> Context:
        """
        The context for one request.

        The budget is split across categories by what each would use; the system
        prompt, the request and the history go in first, then this turn's needs, then
        the tenant-wide items (``swap.tenant_tokens``), then the predicted items that
        win the knapsack; the items keep their order in the session's window.

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
            caps: Lower maxima of some categories (the adaptive budget's).
            forecast: The forecast's probability of the items that are predicted
                needs: what the Pareto choice's completeness covers.
        """
        window = self._windows.setdefault(session_id, _Window())
        now = _now()
        system_text = self.budget.config.system_prompt if system is None else system
        request_tokens = self.counter.count(request)
        system_tokens = self.counter.count(system_text)
        history_tokens = (
            [conversation.tokens]
            if conversation is not None
            else [self.counter.count(h) for h in history]
        )
        shared = self.tenant.items(now) if self.tenant is not None else []
        demand = demand_of(
            system_tokens, request_tokens, sum(history_tokens), required, optional, shared
        )
        overhead = RENDER_OVERHEAD
        if shared:
            overhead += self.counter.count(f"## {TENANT_SECTION}\n") + 1
        allocation = self.budget.allocate(demand, self.budget.total - overhead, caps=caps)
        draft = Draft(left=dict(allocation.tokens))
        system_cut = self._cut(system_text, system_tokens, draft.left["system"])
        draft.put("system", "system", *system_cut, "system prompt")
        request_cut = self._cut(request, request_tokens, draft.left.get("working_memory", 0))
        draft.put("request", "working_memory", *request_cut, "this request")
        if conversation is not None:
            self._put_conversation(draft, conversation)
        else:
            self._put_history(draft, history, history_tokens)
        spare = Spare(draft.left)
        layer = {item.key: item for item in shared}
        put_required(draft, spare, required, layer)
        put_shared(draft, spare, shared)
        candidates = self._candidates(draft, window, required, optional)
        if candidates:
            keep = self._keep_bonus(window, now)
            self._put_predicted(draft, spare, candidates, keep, forecast or {})
        return self._close(session_id, window, draft, allocation, now)

    def learn_shared(
        self,
        session_id: str,
        context: Context,
        reps: Sequence[Representation],
        now: float,
    ) -> None:
        """
        The tenant-wide layer learns what a window :meth:`assemble` laid out held on
        its own merit: the turn's needs and the predicted items chosen (``reps``, what
        was given as required and optional; a tenant-wide item counts only when the
        turn needed or predicted it), each at its full level. Learning, not assembly:
        the engine calls it from its learner, after the answer has left. Nothing to
        do without the layer (``swap.tenant_tokens = 0``).
        """
        if self.tenant is None:
            return
        by_key = {rep.key: rep for rep in reps}
        held = []
        for item in context.items:
            rep = by_key.get(item.key)
            if rep is not None:
                full = rep.levels[0]
                held.append((rep.key, category_of(rep), full.text, full.tokens))
        self.tenant.observe(session_id, held, now)

    def _keep_bonus(self, window: _Window, now: float) -> dict[str, tuple[float, int]]:
        """
        What staying is worth to each item of the window over a newcomer: the
        hysteresis, plus the cached prompt tokens its leaving would invalidate,
        priced as the share of a whole window at the input price that their cache
        write would cost instead of their read; and those tokens.
        """
        pricing, cache = self.pricing, window.prefix
        per_token = 0.0
        if pricing.input > 0:
            per_token = (pricing.cache_write - pricing.cached_input) / pricing.input
        bonus: dict[str, tuple[float, int]] = {}
        where: dict[object, int] = {}
        for i, ident in enumerate(cache.ids):
            where.setdefault(_key_of(ident), i)
        for key in window.keys:
            index = where.get(key, -1)
            lost = cache.cached_after(index, now, pricing) if index >= 0 else 0
            extra = per_token * lost / max(1, self.budget.total)
            bonus[key] = (self.config.hysteresis + extra, lost)
        return bonus

    def _cut(self, text: str, tokens: int, room: int) -> tuple[str, int, str]:
        if tokens <= room:
            return text, tokens, "full"
        cut = self.counter.truncate(text, room)
        return cut, self.counter.count(cut), "truncated"

    def _put_conversation(self, draft: Draft, conversation: CompressedConversation) -> None:
        """
        The conversation's recent exchanges and stated facts, within the history room.
        """
        room = draft.left.get("user_history", 0)
        text = conversation.get_context(history_budget(room))
        if text:
            tokens = self.counter.count(text)
            decisions = conversation.decisions
            whole = len(decisions) == 1 and decisions[0].part == "all"
            how = "full" if whole else "compressed"
            draft.put("history", "user_history", text, tokens, how, "history and stated facts")

    def _put_history(self, draft: Draft, history: Sequence[str], tokens: Sequence[int]) -> None:
        """
        The last exchanges that fit the history room whole (a newline each).
        """
        kept: list[str] = []
        room = draft.left.get("user_history", 0)
        for text, count in zip(reversed(history), reversed(tokens), strict=True):
            if count + 1 > room:
                break
            kept.append(text)
            room -= count + 1
        if kept:
            text = "\n".join(reversed(kept))
            count = self.counter.count(text)
            draft.put("history", "user_history", text, count, "full", f"last {len(kept)} exchanges")

    def _candidates(
        self,
        draft: Draft,
        window: _Window,
        required: Sequence[Representation],
        optional: Sequence[tuple[Representation, float]],
    ) -> list[tuple[Representation, float, bool]]:
        """
        The predicted items that may go in, each with its value and whether it is
        already in the window (sticky); the others are refused below the swap cost.
        """
        in_window = set(window.keys)
        have = {rep.key for rep in required} | {item.key for item in draft.items}
        candidates: list[tuple[Representation, float, bool]] = []
        for rep, value in optional:
            if rep.key in have:
                continue
            have.add(rep.key)
            sticky = rep.key in in_window
            if not sticky and value < self.swap_threshold:
                draft.exclude(
                    rep.key,
                    f"predicted value {value:.2f} below the swap cost {self.swap_threshold:.2f}",
                )
                continue
            candidates.append((rep, value, sticky))
        return candidates

    def _put_predicted(
        self,
        draft: Draft,
        spare: Spare,
        candidates: Sequence[tuple[Representation, float, bool]],
        keep: dict[str, tuple[float, int]],
        forecast: Mapping[str, float],
    ) -> None:
        """
        Which candidates and which level of each: a multiple-choice knapsack on value
        (predicted value x level quality; plus, for staying in the window, the
        hysteresis and the price of the cached tokens its leaving would invalidate)
        per token; with objectives beyond relevance, the Pareto choice among windows.
        """
        options = [
            options_of(rep, value, keep.get(rep.key, (0.0, 0))[0] if sticky else 0.0)
            for rep, value, sticky in candidates
        ]
        room = spare.room(ITEM_CATEGORIES[0])
        selection = select(options, room, exact_items=self.exact_items)
        choices = selection.choices
        objectives = self.budget.config.objectives
        if objectives.pareto and len(candidates) <= MAX_CANDIDATES:
            picked = choose(
                options,
                room,
                first=choices,
                values=[value for _, value, _ in candidates],
                groups=[(rep.source, _kind(rep.key)) for rep, _, _ in candidates],
                predicted=[forecast.get(rep.key, 0.0) for rep, _, _ in candidates],
                weights=objectives.weights,
            )
            choices = picked.chosen.choices
            draft.notes.extend(picked.explain())
        for (rep, value, sticky), choice, first in zip(
            candidates, choices, selection.choices, strict=True
        ):
            if choice < 0 and first >= 0:
                draft.exclude(rep.key, f"value {value:.2f}: left out by the Pareto choice")
                continue
            if choice < 0:
                smallest = rep.levels[-1]
                draft.exclude(
                    rep.key,
                    f"no room: value {value:.2f}; even {smallest.name} "
                    f"({smallest.tokens} tok) lost to items worth more per token",
                )
                continue
            level = rep.levels[choice]
            spare.take(category_of(rep), level.tokens)
            lost = keep.get(rep.key, (0.0, 0))[1] if sticky else 0
            reason = (
                f"predicted, value {value:.2f} x quality {level.quality:.2f}"
                + (" (kept in window" if sticky else "")
                + (f"; leaving would invalidate {lost} cached tok" if lost else "")
                + (")" if sticky else "")
                + (f"; {rep.levels[0].tokens - level.tokens} tok saved" if choice else "")
            )
            draft.include(item_at(rep, level, value, reason))

    def _close(
        self,
        session_id: str,
        window: _Window,
        draft: Draft,
        allocation: Allocation,
        now: float,
    ) -> Context:
        """
        The context: items laid out by ``swap.layout``; the window now holds them.
        Its tokens count the render's headers and separators too. The window is
        priced as laid out, and as it would be laid out without prefix awareness
        (the category order, this turn's items in the order chosen, tenant-wide
        items under their categories, the cache written up to the request), both
        against the tenant's prompt cache. The stable layout writes the cache up to
        its last item: the history and the request change every turn.
        """
        chosen = list(draft.items)
        items = self._layout(window, chosen)
        window.keys = [it.key for it in items]
        segments = self._segments(items)
        volatile = 1
        if self.config.layout == "stable":
            volatile = sum(it.category in _VOLATILE for it in items)
        charge = self.prompt_cache.charge(
            segments, volatile=volatile, now=now, pricing=self.pricing, session=window.prefix
        )
        naive = sorted(
            (replace(it, shared=False) for it in chosen),
            key=lambda it: CATEGORIES.index(it.category),
        )
        naive_charge = self._naive_cache.charge(
            self._segments(naive), volatile=1, now=now, pricing=self.pricing
        )
        return Context(
            session_id=session_id,
            items=tuple(items),
            decisions=tuple(draft.decisions),
            budget=self.budget.total,
            reserved=allocation["response_buffer"],
            tokens=sum(tokens for _, tokens in segments),
            prefix_reused_tokens=charge.reused,
            input_cost=charge.cost,
            naive_input_cost=naive_charge.cost,
            choice=tuple(draft.notes),
        )

    def _layout(self, window: _Window, items: list[ContextItem]) -> list[ContextItem]:
        """
        The window's order. Stable to volatile: the system prompt, the tenant-wide
        items in the layer's order, then by category the items that stay in their
        place and then newcomers, the history, the request. Or the fixed category
        order, within a category the items that stay, then newcomers.
        """
        order = {key: i for i, key in enumerate(window.keys)}
        if self.config.layout != "stable":
            return sorted(
                items,
                key=lambda it: (CATEGORIES.index(it.category), order.get(it.key, len(order))),
            )
        layer = {key: i for i, key in enumerate(self.tenant.keys if self.tenant else ())}

        def rank(it: ContextItem) -> tuple[int, int, int]:
            if it.category == "system":
                return (0, 0, 0)
            if it.shared:
                return (1, layer.get(it.key, len(layer)), 0)
            return (2, STABLE_ORDER.index(it.category), order.get(it.key, len(order)))

        return sorted(items, key=rank)

    def _segments(self, items: Sequence[ContextItem]) -> list[Segment]:
        """
        The prompt's segments, one an item, the request last: what identifies its
        text (with the header that opens its run, if it does), and its tokens with
        that header and its separator, as :meth:`Context.render` writes them.
        """
        body = [it for it in items if it.category != "working_memory"]
        tail = [it for it in items if it.category == "working_memory"]
        segments: list[Segment] = []
        section = None
        for it in [*body, *tail]:
            if not it.text:
                segments.append(((it.key, None, None), it.tokens))
                continue
            opens = it.section != section
            section = it.section
            extra = 1
            if opens:
                extra += self.counter.count(f"## {section}\n") + 1
            ident = (it.key, hash(it.text), section if opens else None)
            segments.append((ident, it.tokens + extra))
        return segments


#: The parts of a window that change every turn: the stable layout writes the
#: provider's cache up to them.
_VOLATILE = ("user_history", "working_memory", "response_buffer")


def _kind(key: str) -> str:
    return key.split(":", 1)[0] if ":" in key else ""


def _key_of(ident: object) -> object:
    return ident[0] if isinstance(ident, tuple) else ident


def _now() -> float:
    """
    The event loop's clock (virtual in a replay), else the monotonic clock.
    """
    try:
        return anyio.current_time()
    except Exception:  # noqa: BLE001  no event loop: a caller outside async code
        return time.monotonic()
