"""
The engine's value side: what a window's items are worth and what feedback teaches.
A request without known needs gets the items the searching sources find most relevant
(beside the warm predictions), valued by the content-value predictor once it has
learned enough; each window is noted for feedback to judge once; the learner then
teaches the value predictor and the adaptive budget from the judged windows.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..learning import AdaptiveBudget, Candidate, JudgedItem, ValuePredictor
from ..window._drafting import ITEM_CATEGORIES
from ._session import JudgedWindow

if TYPE_CHECKING:
    from .._sources import SearchingSource
    from ..compression import Representation
    from ..loading import Preloader
    from ..window import Context
    from ._session import Counters, EngineSession

__all__ = ["ValueSide"]

logger = logging.getLogger(__name__)

#: Judged windows a session keeps for the learner; feedback past them is ignored.
_MAX_JUDGED = 16

#: Items a session remembers as used (feedback), the least recently used going first.
_MAX_USED = 256

#: Turns an item an answer used stays a candidate of the session's windows.
_CARRY_TURNS = 3

#: Window categories that feedback does not judge: the engine's own parts.
_NOT_JUDGED = frozenset({"system", "working_memory", "user_history"})


class ValueSide:
    """
    Retrieval's candidates, their features, feedback on windows, and what the value
    predictor and the adaptive budget learn from it.

    Args:
        preloader: The engine's preloader (what is warm, loads within the deadline).
        searchers: The sources that can search, asked in this order.
        values: The content-value predictor (None when ``retrieval.value_model`` is off).
        judging: Whether anything learns from feedback (the value predictor, or an
            adaptive budget): otherwise windows are not noted with their features.
        counters: The engine's counters (``retrieved``, ``feedback``, ``feedback_ignored``).
        off_loop: Runs a function in the learner's worker thread (the engine's).
    """

    def __init__(
        self,
        preloader: Preloader,
        searchers: Sequence[SearchingSource],
        values: ValuePredictor | None,
        *,
        judging: bool,
        counters: Counters,
        off_loop: Callable[..., Awaitable[Any]],
    ) -> None:
        self.preloader = preloader
        self.searchers = list(searchers)
        self.values = values
        self._judging = judging
        self._counters = counters
        self._off_loop = off_loop

    def judge(self, session: EngineSession, keys: list[str]) -> tuple[int, int, bool] | None:
        """
        Judge the session's last window by feedback that the answer used ``keys``:
        the items the window held, those of them used, and whether the window waits
        for the learner now. None when there is no window to judge, or it was judged
        (a client's retry); keys that were not in the window are ignored and counted.
        """
        if not session.window or session.window_judged:
            return None
        session.window_judged = True
        self._counters.feedback_ignored += sum(key not in session.window for key in keys)
        turn = session.count - 1
        for key in keys:
            if key in session.window:
                session.used_at.pop(key, None)
                session.used_at[key] = turn
        while len(session.used_at) > _MAX_USED:
            del session.used_at[next(iter(session.used_at))]
        shown = list(session.window)
        used = sum(key in session.window for key in keys)
        if len(session.judged) >= _MAX_JUDGED:
            self._counters.feedback_ignored += 1
            return len(shown), used, False
        session.judged.append(
            JudgedWindow(
                candidates=[session.window[k] for k in shown],
                keys=shown,
                used=[key in keys for key in shown],
                placed=[session.placed[k] for k in shown if k in session.placed],
            )
        )
        self._counters.feedback += len(shown)
        return len(shown), used, True

    async def retrieve(
        self,
        session: EngineSession,
        text: str,
        predicted: list[tuple[Representation, float]],
    ) -> list[tuple[Representation, float]]:
        """
        A request without known needs: the items the searching sources find most
        relevant to its text (searched in worker threads), from the cache or loaded
        within the request deadline, beside the warm predictions; each valued by the
        content-value predictor once it has learned enough (and then with the items the
        session just had or used, :meth:`_carry`), else by the larger of its relevance
        and its forecast probability.
        """
        retrieval = session.config.retrieval
        relevance: dict[str, float] = {}
        for source in self.searchers:
            try:
                found = await source.search(text, retrieval.limit)
            except Exception:  # a source's search must not fail the request
                logger.exception("search failed in source %s", source.name)
                continue
            for key, score in found:
                if score >= retrieval.min_score:
                    relevance[key] = max(relevance.get(key, 0.0), score)
        if relevance:  # relative to the best match: a cosine is no probability of use
            top = max(relevance.values())
            relevance = {key: score / top for key, score in relevance.items()}
        items = {item.key: (item, p) for item, p in predicted}
        wanted = [key for key in relevance if key not in items]
        if wanted:
            fetched = await self.preloader.get_many(
                wanted, deadline_s=session.config.preloader.request_deadline_s
            )
            for key in wanted:
                got = fetched[key]
                if got.item is not None:
                    items[key] = (got.item, 0.0)
                    self._counters.retrieved += 1
        carried = set()
        if self.values is not None and self.values.ready:
            carried = await self._carry(session, items)
        learned = None
        if self._judging:  # what feedback on this window will be learned from
            forecast = dict(session.forecast.needs) if session.forecast is not None else {}
            session.candidates = {
                key: (
                    self._candidate(
                        session, key, relevance.get(key, 0.0), forecast.get(key, p), item.category
                    ),
                    item.full.text,
                    item.full.tokens,
                )
                for key, (item, p) in items.items()
            }
        if self.values is not None and self.values.ready:
            rows = [
                self.values.row(_with_density(*session.candidates[key]), session.user)
                for key in items
            ]
            learned = self.values.predict(rows)
        out = []
        floor = session.config.swap.swap_threshold - session.config.swap.hysteresis
        for i, (key, (item, p)) in enumerate(items.items()):
            value = learned[i] if learned is not None else max(relevance.get(key, 0.0), p)
            if key in carried and value < floor:
                continue  # it would stay only by its place in the window
            out.append((item, value))
        return out

    async def _carry(
        self, session: EngineSession, items: dict[str, tuple[Representation, float]]
    ) -> set[str]:
        """
        The items of the session's last window, and those its answers used in the last
        ``_CARRY_TURNS`` turns, that are still warm, as candidates beside the retrieved
        ones: the value predictor weighs what the session just had and used (its
        recency features) against what the search found; the fixed rule cannot, so
        they are offered only once the predictor answers, and only while their P(used)
        with the hysteresis reaches the swap threshold (an item the window already
        holds stays otherwise, whatever its value). Returns the keys carried.
        """
        now = session.count
        keys = [*session.last_shown]
        keys += [k for k, t in session.used_at.items() if now - t <= _CARRY_TURNS]
        wanted = [k for k in dict.fromkeys(keys) if k not in items and self.preloader.is_ready(k)]
        if not wanted:
            return set()
        found = await self.preloader.peek_many(wanted)
        for key, item in found.items():
            items[key] = (item, 0.0)
        return set(found)

    def _candidate(
        self, session: EngineSession, key: str, relevance: float, forecast: float, category: str
    ) -> Candidate:
        """
        What is known of a window candidate now (its density is measured later, with
        its text: :func:`_with_density`).
        """
        routed = self.preloader.key_of(key)
        last = session.last_in.get(key)
        used = session.used_at.get(key)
        return Candidate(
            key=key,
            source=routed[0].name if routed is not None else "",
            kind=key.split(":", 1)[0] if ":" in key else "",
            relevance=relevance,
            forecast=forecast,
            turns_since=None if last is None else session.count - last,
            shown=session.shown[key],
            used_since=None if used is None else session.count - used,
            context=session.state,
            category=category if category in ITEM_CATEGORIES else "domain_knowledge",
        )

    def note_window(self, session: EngineSession, context: Context) -> None:
        """
        Remember what feedback will judge: the window's items and the candidates the
        window passed over (so that the predictor also learns from what it left out,
        not only from what it chose), cheaply: their features are computed by the
        learner, should feedback come. The items shown are noted for later windows.
        """
        judged = dict(session.candidates)
        forecast = dict(session.forecast.needs) if session.forecast is not None else {}
        shown = []
        for item in context.items:
            if item.category in _NOT_JUDGED:
                continue
            shown.append(item.key)
            if self._judging and item.key not in judged:  # else nothing learns
                judged[item.key] = (
                    self._candidate(
                        session, item.key, 0.0, forecast.get(item.key, 0.0), item.category
                    ),
                    item.text,
                    item.tokens,
                )
        turn = session.count
        for key in shown:
            session.last_in[key] = turn
            session.shown[key] += 1
        session.last_shown = shown
        session.window = judged
        session.window_judged = False
        if session.adaptive is not None:
            inside = {item.key: item for item in context.items}
            no_room = {
                d.key
                for d in context.decisions
                if not d.included and d.reason.startswith("no room")
            }
            session.placed = {}
            for key, (candidate, _, tokens) in judged.items():
                got = inside.get(key)
                session.placed[key] = (
                    candidate.category,
                    got.tokens if got is not None else tokens,
                    got.value if got is not None else 0.0,
                    got is not None,
                    key in no_room,
                )
        session.candidates = {}

    async def learn(self, session: EngineSession) -> None:
        """
        The value predictor and the adaptive budget learn from the session's judged
        windows (in the learner's worker thread).
        """
        judged, session.judged = session.judged, []
        for window in judged:
            await self._off_loop(self._learn_window, window, session.user, session.adaptive)

    def _learn_window(
        self, window: JudgedWindow, user: str | None, adaptive: AdaptiveBudget | None
    ) -> None:
        """
        The value predictor's features of a judged window, and its learning from them;
        the adaptive budget's (in the learner's worker thread).
        """
        if adaptive is not None and len(window.placed) == len(window.keys):
            adaptive.observe(
                [
                    JudgedItem(
                        category=category,
                        tokens=tokens,
                        value=value,
                        included=included,
                        no_room=no_room,
                        used=used,
                    )
                    for (category, tokens, value, included, no_room), used in zip(
                        window.placed, window.used, strict=True
                    )
                ]
            )
        if self.values is None:
            return
        shown = window.candidates
        rows = [self.values.row(_with_density(c, text, tokens), user) for c, text, tokens in shown]
        self.values.learn(rows, window.keys, window.used, user, [c.context for c, _, _ in shown])


def _with_density(candidate: Candidate, text: str, tokens: int) -> Candidate:
    """
    The candidate with its density: distinct words a token of its text.
    """
    return replace(candidate, density=len(set(text.split())) / max(tokens, 1))
