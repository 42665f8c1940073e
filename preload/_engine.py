"""
The engine: serves requests from warm context and prepares the next ones.

``handle`` is the request path: it gathers this turn's needs (a cache hit, a join of
the preload in flight, or a load under a deadline), lets the swap controller assemble
the window, and returns. Learning, forecasting and preloading happen afterwards on the
engine's task group, and their results are ready by the next request, or not.
"""

from __future__ import annotations

import enum
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._config import EngineConfig
from ._errors import EngineStateError
from ._metrics import Metrics, MetricsSnapshot
from ._sources import Source, SourceRouter
from ._tokens import TiktokenCounter, TokenCounter
from .caches._memory import MemoryCache, make_cache
from .compression._compressor import Compressor, MultiLevelCompressor, Representation
from .history._conversation import CompressedConversation
from .learning._forecasters import EngineForecaster, Forecast, Forecaster
from .loading._preloader import Fetched, Preloader
from .window._budget import BudgetManager
from .window._swap import Context, SwapController

__all__ = ["PreloadEngine"]

logger = logging.getLogger(__name__)


class _State(enum.Enum):
    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


class _Default(enum.Enum):
    CACHE = 1


@dataclass(slots=True, eq=False)
class _Session:
    id: str
    user: str | None
    turns: list[dict[str, Any]] = field(default_factory=list)
    forecast: Forecast | None = None
    preloaded: set[str] = field(default_factory=set)
    learning: bool = False  # a "turn" event is queued and will see the reply too
    history: CompressedConversation | None = None
    recorded: int = 0  # turns already in the history


class PreloadEngine(anyio.AsyncContextManagerMixin):
    """
    The predictive context-preloading engine.

    Args:
        config: The configuration (the embedded default when None).
        sources: Where items come from, by name, asked in this order.
        forecaster: What predicts the next request (the configured engine forecaster
            when None).
        cache: Where warm items are kept; the default builds one from the config, None
            keeps nothing (every request loads).
        counter: Counts tokens (tiktoken with the configured encoding when None).
        compressor: Builds each item's levels.
        offload: Run heavy CPU work in worker threads (off for virtual-clock replays).
        max_sessions: Sessions remembered at once; the least recently active go first.

    Example::

        async with PreloadEngine(config, sources={"kb": JsonlKnowledgeSource(path)}) as engine:
            ctx = await engine.handle(session_id="s1", text="find me a drama")

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        sources: Mapping[str, Source],
        forecaster: Forecaster | None = None,
        cache: MemoryCache | None | _Default = _Default.CACHE,
        counter: TokenCounter | None = None,
        compressor: Compressor | None = None,
        offload: bool = True,
        max_sessions: int = 10_000,
    ) -> None:
        self.config = config or EngineConfig()
        self.counter = counter or TiktokenCounter(
            self.config.tokens.encoding, cache_size=self.config.tokens.cache_size
        )
        self.forecaster: Forecaster = forecaster or EngineForecaster.from_config(self.config)
        self.metrics_ = Metrics()
        self.cache = make_cache(self.config.cache) if cache is _Default.CACHE else cache
        self.preloader = Preloader(
            sources=SourceRouter(sources),
            cache=self.cache,
            compressor=compressor or self.default_compressor(self.config, self.counter),
            config=self.config.preloader,
            tenant=self.config.tenant,
            metrics=self.metrics_,
            offload=offload,
            on_preloaded=self._on_preloaded,
            close_cache=cache is _Default.CACHE,
        )
        self.swap = SwapController(BudgetManager(self.config.budget), self.counter)
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._events: MemoryObjectSendStream[tuple[str, str]] | None = None
        self._state = _State.UNOPENED
        self.learner_drops = 0
        self._pending = 0
        self._learned = anyio.Event()

    @staticmethod
    def default_compressor(config: EngineConfig, counter: TokenCounter) -> Compressor:
        """
        The compressor the engine builds when none is given.
        """
        return MultiLevelCompressor(counter, config.compression)

    @staticmethod
    def default_cache(config: EngineConfig) -> MemoryCache:
        """
        The cache the engine builds from ``config`` when none is given.
        """
        return MemoryCache(config.cache)

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncGenerator[PreloadEngine]:
        if self._state is not _State.UNOPENED:
            raise EngineStateError("cannot open an engine more than once")
        send, receive = anyio.create_memory_object_stream[tuple[str, str]](4096)
        async with self.preloader, anyio.create_task_group() as tg:
            self._events = send
            tg.start_soon(self._learner, receive)
            self._state = _State.OPENED
            try:
                yield self
            finally:
                self._state = _State.CLOSED
                send.close()
                tg.cancel_scope.cancel()
                for session in list(self._sessions.values()):
                    self._finish(session)
                self._sessions.clear()

    # -- the request path -------------------------------------------------------------

    async def handle(
        self,
        *,
        session_id: str,
        text: str,
        state: str | None = None,
        needs: Sequence[str] = (),
        user: str | None = None,
    ) -> Context:
        """
        Serve one request: gather its needs and assemble its context within budget.

        Args:
            session_id: The conversation this request belongs to.
            text: The request's text.
            state: Its state label (intent, tool call, page category), when known;
                otherwise the forecaster's state encoder names it from the text, if
                it learned one.
            needs: The items this request is known to need; they are loaded now if
                they are not warm. Predicted items are added only when warm.
            user: Who asks (enables per-user learning).

        Returns:
            The context, with how long it waited and what it hit or missed.

        Raises:
            EngineStateError: The engine is not open.
        """
        self._check_open()
        start = anyio.current_time()
        session = self._session(session_id, user)
        if state is None:  # name it from the text when the forecaster learned how
            encode = getattr(self.forecaster, "encode", None)
            state = encode(text) if callable(encode) else None
        needs = list(dict.fromkeys(needs))
        # Hits without a task (one round trip on Redis); misses joined or loaded at once.
        fetched: dict[str, Fetched] = await self.preloader.get_many(
            needs, deadline_s=self.config.preloader.request_deadline_s
        )
        required: list[Representation] = []
        counts = {"hit": 0, "partial": 0, "miss": 0}
        missing: list[str] = []
        for key in needs:
            got = fetched[key]
            if got.status in counts:
                counts[got.status] += 1
            if got.status in ("missing", "failed"):
                missing.append(key)
            if got.item is not None:
                required.append(got.item)
            if key in session.preloaded and got.status in ("hit", "partial"):
                session.preloaded.discard(key)
                self.metrics_.preloads_used += 1
        self.metrics_.hits += counts["hit"]
        self.metrics_.partial_hits += counts["partial"]
        self.metrics_.misses += counts["miss"]
        optional = await self._warm_predictions(session, set(needs))
        context = self.swap.assemble(
            session_id,
            request=text,
            required=required,
            optional=optional,
            conversation=self._history(session, complete=True),
        )
        context = replace(
            context,
            waited_s=anyio.current_time() - start,
            hits=counts["hit"],
            partial_hits=counts["partial"],
            misses=counts["miss"],
            missing=tuple(missing),
        )
        self.metrics_.requests += 1
        self.metrics_.tokens += context.tokens
        session.turns.append({"text": text, "state": state, "needs": needs, "system": None})
        session.learning = True
        self._notify("turn", session_id)
        return context

    def reply(self, session_id: str, text: str) -> None:
        """
        Record the agent's reply to the session's last request. In the background it
        joins the history, and forecasters that read replies forecast again.
        """
        self._check_open()
        session = self._sessions.get(session_id)
        if session is None or not session.turns:
            return
        session.turns[-1]["system"] = text
        if not session.learning:  # else the queued "turn" event sees the reply too
            self._notify("reply", session_id)

    def end_session(self, session_id: str) -> None:
        """
        Forget a session; its preloads that it never used count as wasted.
        """
        session = self._sessions.pop(session_id, None)
        if session is not None:
            self._finish(session)

    def forecast_of(self, session_id: str) -> Forecast | None:
        """
        The latest forecast made for a session's next request, if any.
        """
        session = self._sessions.get(session_id)
        return session.forecast if session is not None else None

    def metrics(self) -> MetricsSnapshot:
        """
        A frozen snapshot of the engine's counters.
        """
        return self.preloader.snapshot()

    async def _warm_predictions(
        self, session: _Session, needed: set[str]
    ) -> list[tuple[Representation, float]]:
        forecast = session.forecast
        if forecast is None:
            return []
        threshold = self.config.preloader.value_threshold
        wanted = {
            key: p
            for key, p in forecast.needs[: self.config.preloader.max_preloads_per_turn]
            if key not in needed and p >= threshold and self.preloader.is_ready(key)
        }
        if not wanted:
            return []
        items = await self.preloader.peek_many(list(wanted))
        return [(items[key], p) for key, p in wanted.items() if key in items]

    def _history(self, session: _Session, *, complete: bool) -> CompressedConversation:
        """
        The session's own history, compressed to fit. The learner records exchanges in
        the background as replies arrive (``complete=False`` leaves an unanswered last
        request for later); a request catches up on whatever is left, an unanswered
        request joining as an exchange with an empty answer.
        """
        if session.history is None:
            budget = self.config.budget
            cap = budget.categories.get("user_history")
            session.history = CompressedConversation(
                (cap.max if cap is not None and cap.max else budget.total_tokens),
                counter=self.counter,
                raw_turns=self.config.compression.history_raw_turns,
            )
        while session.recorded < len(session.turns):
            turn = session.turns[session.recorded]
            last = session.recorded == len(session.turns) - 1
            if not complete and last and turn.get("system") is None:
                break
            session.history.add_exchange(turn["text"] or "", turn.get("system") or "")
            session.recorded += 1
        return session.history

    # -- background -------------------------------------------------------------------

    def _notify(self, kind: str, session_id: str) -> None:
        assert self._events is not None
        try:
            self._events.send_nowait((kind, session_id))
        except anyio.WouldBlock:
            self.learner_drops += 1
        else:
            self._pending += 1

    async def _learner(self, events: MemoryObjectReceiveStream[tuple[str, str]]) -> None:
        async with events:
            async for kind, session_id in events:
                try:
                    self._learn(kind, session_id)
                finally:
                    self._pending -= 1
                    if not self._pending:
                        self._learned.set()
                await anyio.lowlevel.checkpoint()

    def _learn(self, kind: str, session_id: str) -> None:
        session = self._sessions.get(session_id)
        if session is None:
            return
        if kind == "turn":
            session.learning = False
        self._history(session, complete=False)  # off the request path
        if kind == "reply" and not self.forecaster.uses_reply:
            return
        try:
            if kind == "turn":
                self.forecaster.observe(session.turns, session.user)
            forecast = self.forecaster.forecast(session.turns, session.user, session_id)
        except Exception:  # a forecaster's bug must not stop the engine
            logger.exception("forecast failed for session %s", session_id)
            return
        session.forecast = forecast
        self._preload(session, forecast)

    async def wait_idle(self) -> None:
        """
        Wait until the background work caused so far is done: every turn learned from,
        every forecast made and every preload finished. For tests, benchmarks and
        graceful draining; the request path never waits for it.
        """
        self._check_open()
        while self._pending or not self.preloader.idle:
            if self._pending:
                if self._learned.is_set():
                    self._learned = anyio.Event()
                await self._learned.wait()
            else:
                await self.preloader.wait_idle()

    def _preload(self, session: _Session, forecast: Forecast) -> None:
        limit = self.config.preloader.max_preloads_per_turn
        threshold = self.config.preloader.value_threshold
        self.preloader.reprioritize(session.id, dict(forecast.needs), threshold=threshold)
        scheduled = 0
        for key, p in forecast.needs:
            if scheduled >= limit or p < threshold:
                break
            if self.preloader.is_ready(key):
                continue
            if self.preloader.schedule(key, p, session=session.id):
                scheduled += 1

    def _on_preloaded(self, key: str, sessions: frozenset[str]) -> None:
        # One load, one owner: the preload is used or wasted once, by the first asker.
        for sid in sorted(sessions):
            session = self._sessions.get(sid)
            if session is not None:
                session.preloaded.add(key)
                return

    def _session(self, session_id: str, user: str | None) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            session = self._sessions[session_id] = _Session(id=session_id, user=user)
            while len(self._sessions) > self.max_sessions:
                _, old = self._sessions.popitem(last=False)
                self._finish(old)
        else:
            self._sessions.move_to_end(session_id)
        return session

    def _finish(self, session: _Session) -> None:
        self.metrics_.wasted += len(session.preloaded)
        session.preloaded.clear()
        self.preloader.reprioritize(session.id, {})
        self.swap.forget(session.id)

    def _check_open(self) -> None:
        if self._state is not _State.OPENED:
            raise EngineStateError(
                "the engine is not open; use it inside 'async with PreloadEngine(...)'"
            )


def _exchange(turn: Mapping[str, Any]) -> str:
    text = f"User: {turn.get('text') or ''}"
    if turn.get("system"):
        text += f"\nAssistant: {turn['system']}"
    return text
