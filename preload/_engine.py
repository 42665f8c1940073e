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
from collections.abc import Set as AbstractSet
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._config import EngineConfig
from ._errors import EngineStateError, InputTooLargeError
from ._lifecycle import Lifecycle
from ._metrics import EngineStatistics, MetricsSnapshot, compose
from ._sources import Source, SourceRouter
from ._tokens import TiktokenCounter, TokenCounter
from .caches import CacheBackend, make_cache
from .compression import Compressor, MultiLevelCompressor, Representation
from .history import CompressedConversation
from .learning import EngineForecaster, Forecast, Forecaster, StateNamer
from .loading import OFFLOAD_CHARS, Fetched, Preloader
from .window import Context, HierarchicalBudgetManager, SwapController

__all__ = ["PreloadEngine"]

logger = logging.getLogger(__name__)


#: Exchanges longer than this (characters, request and reply) are recorded in the
#: history by the learner in a worker thread (about 10 ms of work a KB).
HISTORY_OFFLOAD_CHARS = 2_000


class _Default(enum.Enum):
    CACHE = 1


@dataclass(slots=True)
class _Counters:
    requests: int = 0
    hits: int = 0
    partial_hits: int = 0
    misses: int = 0
    tokens: int = 0
    learner_drops: int = 0
    replies_truncated: int = 0


@dataclass(slots=True, eq=False)
class _Session:
    id: str
    user: str | None
    turns: list[dict[str, Any]] = field(default_factory=list)
    forecast: Forecast | None = None
    learning: bool = False  # a "turn" event is queued and will see the reply too
    history: CompressedConversation | None = None
    recorded: int = 0  # turns already in the history
    recording: bool = False  # the learner prepares the next exchange in a worker thread


class PreloadEngine(anyio.AsyncContextManagerMixin):
    """
    The predictive context-preloading engine.

    Args:
        config: The configuration (the embedded default when None).
        sources: Where items come from, by name, asked in this order.
        forecaster: What predicts the next request (the configured engine forecaster
            when None). One that is also a :class:`~preload.learning.StateNamer`
            names the state of requests that come without one.
        cache: Where warm items are kept; the default builds one from the config
            (:func:`~preload.caches.make_cache`), None keeps nothing (every request
            loads).
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
        cache: CacheBackend | None | _Default = _Default.CACHE,
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
        self._namer = self.forecaster if isinstance(self.forecaster, StateNamer) else None
        self.cache = make_cache(self.config.cache) if cache is _Default.CACHE else cache
        self.preloader = Preloader(
            sources=SourceRouter(sources),
            cache=self.cache,
            compressor=compressor or self.default_compressor(self.config, self.counter),
            config=self.config.preloader,
            tenant=self.config.tenant,
            offload=offload,
            close_cache=cache is _Default.CACHE,
        )
        self.swap = SwapController(
            HierarchicalBudgetManager(self.config.budget), self.counter, config=self.config.swap
        )
        self.max_sessions = max_sessions
        self._counters = _Counters()
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._events: MemoryObjectSendStream[tuple[str, str]] | None = None
        self._state = Lifecycle.UNOPENED
        self._pending = 0
        self._learned = anyio.Event()
        self._offload = offload
        self._cpu = anyio.CapacityLimiter(1)  # one worker thread for long messages

    @staticmethod
    def default_compressor(config: EngineConfig, counter: TokenCounter) -> Compressor:
        """
        The compressor the engine builds when none is given.
        """
        return MultiLevelCompressor(counter, config.compression)

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncGenerator[PreloadEngine]:
        if self._state is not Lifecycle.UNOPENED:
            raise EngineStateError("cannot open an engine more than once")
        send, receive = anyio.create_memory_object_stream[tuple[str, str]](4096)
        async with self.preloader, anyio.create_task_group() as tg:
            self._events = send
            tg.start_soon(self._learner, receive)
            self._state = Lifecycle.OPENED
            try:
                yield self
            finally:
                self._state = Lifecycle.CLOSED
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
                otherwise the forecaster names it from the text, if it can.
            needs: The items this request is known to need; they are loaded now if
                they are not warm. Predicted items are added only when warm.
            user: Who asks (enables per-user learning).

        Returns:
            The context, with how long it waited and what it hit or missed.

        Raises:
            EngineStateError: The engine is not open.
            TypeError: An argument has the wrong type (``needs`` must be a sequence
                of keys, not one string).
            ValueError: ``session_id`` is empty.
            InputTooLargeError: The text or the needs are above ``[limits]``.
        """
        self._check_open()
        needs = self._check_request(session_id, text, state, needs, user)
        start = anyio.current_time()
        session = self._session(session_id, user)
        if state is None and self._namer is not None:
            state = self._namer.encode(text)
        window_text = text
        if self._offload and len(text) > OFFLOAD_CHARS:
            window_text = await anyio.to_thread.run_sync(self._fit_request, text, limiter=self._cpu)
        required, counts, missing = await self._gather(session, needs)
        optional = await self._warm_predictions(session, set(needs))
        context = self.swap.assemble(
            session_id,
            request=window_text,
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
        self._counters.requests += 1
        self._counters.tokens += context.tokens
        session.turns.append({"text": text, "state": state, "needs": needs, "system": None})
        session.learning = True
        self._notify("turn", session_id)
        return context

    def _check_request(
        self,
        session_id: object,
        text: object,
        state: object,
        needs: object,
        user: object,
    ) -> list[str]:
        """
        The request's arguments checked (types, sizes); its needs without duplicates.
        """
        _check_id("session_id", session_id)
        _check_type("text", text, str)
        _check_type("state", state, str, optional=True)
        _check_type("user", user, str, optional=True)
        if isinstance(needs, str | bytes) or not isinstance(needs, Sequence | AbstractSet):
            raise TypeError(
                f"needs must be a sequence of keys, not {type(needs).__name__}; "
                f"for one key write needs=[{needs!r}]"
            )
        limits = self.config.limits
        if len(needs) > limits.max_needs:
            raise InputTooLargeError("needs", len(needs), limits.max_needs, "limits.max_needs")
        for i, key in enumerate(needs):
            if not isinstance(key, str):
                raise TypeError(f"needs[{i}] must be a string key, not {type(key).__name__}")
        assert isinstance(text, str)
        if len(text) > limits.max_request_chars:
            raise InputTooLargeError(
                "request text (characters)",
                len(text),
                limits.max_request_chars,
                "limits.max_request_chars",
            )
        return list(dict.fromkeys(needs))

    def _fit_request(self, text: str) -> str:
        """
        A long request cut to what its category may ever hold, with its tokens counted
        (in a worker thread: tokenizing a long text would hold up the loop). The swap
        controller cuts it further to what the turn leaves it, as it would the whole.
        """
        budget = self.config.budget
        category = budget.categories.get("working_memory")
        cap = category.max if category is not None and category.max else budget.total_tokens
        cut = self.counter.truncate(text, cap)
        self.counter.count(cut)
        return cut

    async def _gather(
        self, session: _Session, needs: list[str]
    ) -> tuple[list[Representation], dict[str, int], list[str]]:
        """
        This turn's needs: hits without a task (one round trip on Redis), misses
        joined or loaded at once within the request deadline.
        """
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
            if got.status in ("hit", "partial"):
                self.preloader.claim(session.id, key)
        self._counters.hits += counts["hit"]
        self._counters.partial_hits += counts["partial"]
        self._counters.misses += counts["miss"]
        return required, counts, missing

    def reply(self, session_id: str, text: str) -> None:
        """
        Record the agent's reply to the session's last request. In the background it
        joins the history, and forecasters that read replies forecast again. A reply
        longer than ``limits.max_reply_chars`` is cut to that length and counted
        (``replies_truncated``).

        Raises:
            TypeError: ``text`` is not a string.
        """
        self._check_open()
        _check_type("text", text, str)
        session = self._sessions.get(session_id)
        if session is None or not session.turns:
            return
        limit = self.config.limits.max_reply_chars
        if len(text) > limit:
            text = text[:limit]
            self._counters.replies_truncated += 1
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

    def statistics(self) -> EngineStatistics:
        """
        A frozen snapshot of the engine's own request counters.

        .. versionadded:: 0.2
        """
        return EngineStatistics(**asdict(self._counters))

    def metrics(self) -> MetricsSnapshot:
        """
        A frozen snapshot of everything: the engine's, the preloader's and the
        cache's statistics in one.
        """
        cache = self.cache.statistics() if self.cache is not None else None
        return compose(self.statistics(), self.preloader.statistics(), cache)

    async def _warm_predictions(
        self, session: _Session, needed: set[str]
    ) -> list[tuple[Representation, float]]:
        forecast = session.forecast
        if forecast is None:
            return []
        likely = forecast.needs[: self.config.preloader.max_preloads_per_turn]
        wanted = {
            key: p
            for key, p in self.preloader.worth(likely)
            if key not in needed and self.preloader.is_ready(key)
        }
        if not wanted:
            return []
        items = await self.preloader.peek_many(list(wanted))
        return [(items[key], p) for key, p in wanted.items() if key in items]

    def _conversation(self, session: _Session) -> CompressedConversation:
        if session.history is None:
            budget = self.config.budget
            cap = budget.categories.get("user_history")
            session.history = CompressedConversation(
                (cap.max if cap is not None and cap.max else budget.total_tokens),
                counter=self.counter,
                raw_turns=self.config.compression.history_raw_turns,
            )
        return session.history

    def _history(self, session: _Session, *, complete: bool) -> CompressedConversation:
        """
        The session's own history, compressed to fit. The learner records exchanges in
        the background as replies arrive (``complete=False`` leaves an unanswered last
        request for later); a request catches up on whatever is left that is cheap to
        record, an unanswered request joining as an exchange with an empty answer. A
        long exchange (above ``HISTORY_OFFLOAD_CHARS``, when the engine offloads) is
        left to the learner, which prepares it in a worker thread: the request path
        never does work that grows with a message's size.
        """
        history = self._conversation(session)
        while session.recorded < len(session.turns) and not session.recording:
            turn = session.turns[session.recorded]
            last = session.recorded == len(session.turns) - 1
            if not complete and last and turn.get("system") is None:
                break
            user, agent = turn["text"] or "", turn.get("system") or ""
            if self._offload and len(user) + len(agent) > HISTORY_OFFLOAD_CHARS:
                break
            history.add_exchange(user, agent)
            session.recorded += 1
        return history

    async def _record(self, session: _Session) -> None:
        """
        The learner's part of the history: what is cheap inline, a long exchange
        prepared in a worker thread while the loop serves other requests.
        """
        history = self._history(session, complete=False)
        while session.recorded < len(session.turns) and not session.recording:
            turn = session.turns[session.recorded]
            if session.recorded == len(session.turns) - 1 and turn.get("system") is None:
                return
            user, agent = turn["text"] or "", turn.get("system") or ""
            session.recording = True
            try:
                prepared = await anyio.to_thread.run_sync(
                    history.prepare, user, agent, limiter=self._cpu
                )
            finally:
                session.recording = False
            history.add_prepared(prepared)
            session.recorded += 1
            self._history(session, complete=False)

    # -- background -------------------------------------------------------------------

    def _notify(self, kind: str, session_id: str) -> None:
        assert self._events is not None
        try:
            self._events.send_nowait((kind, session_id))
        except anyio.WouldBlock:
            self._counters.learner_drops += 1
        else:
            self._pending += 1

    async def _learner(self, events: MemoryObjectReceiveStream[tuple[str, str]]) -> None:
        async with events:
            async for kind, session_id in events:
                try:
                    await self._learn(kind, session_id)
                finally:
                    self._pending -= 1
                    if not self._pending:
                        self._learned.set()
                await anyio.lowlevel.checkpoint()

    async def _learn(self, kind: str, session_id: str) -> None:
        session = self._sessions.get(session_id)
        if session is None:
            return
        if kind == "turn":
            session.learning = False
        await self._record(session)  # off the request path
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
        self.preloader.reprioritize(session.id, dict(forecast.needs))
        scheduled = 0
        for key, p in self.preloader.worth(forecast.needs):
            if scheduled >= limit:
                break
            if self.preloader.is_ready(key):
                continue
            if self.preloader.schedule(key, p, session=session.id):
                scheduled += 1

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
        self.preloader.end_session(session.id)
        self.swap.forget(session.id)

    def _check_open(self) -> None:
        if self._state is not Lifecycle.OPENED:
            raise EngineStateError(
                "the engine is not open; use it inside 'async with PreloadEngine(...)'"
            )


def _check_type(name: str, value: object, kind: type, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, kind):
        wanted = f"{kind.__name__} or None" if optional else kind.__name__
        raise TypeError(f"{name} must be a {wanted}, not {type(value).__name__}")


def _check_id(name: str, value: object) -> None:
    _check_type(name, value, str)
    if not value:
        raise ValueError(f"{name} must not be empty")
