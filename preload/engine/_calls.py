"""
The engine's call side: the agent's tool calls, the read-only ones run ahead of them
(speculation), and what the call forecaster learns from ended sessions.

:class:`CallSide` owns the call sources, the tools registered with
:meth:`PreloadEngine.tool <preload.PreloadEngine.tool>`, a preloader of its own for call
results (its workers, limits and statistics; the engine's cache, so results are shared
the way items are) and the ledger of speculations. The engine keeps the sessions and
tells it when a request arrives, when a reply is in and when a session ends.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import UnknownToolError
from .._sources import SourceRouter
from ..calls import (
    CallAdapter,
    CallBook,
    CallRationing,
    CallSource,
    CallStatistics,
    FleetSlots,
    Moment,
    SpeculatedCall,
    SpeculationLedger,
    ToolCall,
    ToolSet,
    backend_of,
    call_key,
    check_name,
    source_load,
)
from ..compression import TruncatingCompressor
from ..learning import CallPredictor, EngineCallPredictor, SharedCallPredictor, read_only_tools
from ..loading import Preloader

if TYPE_CHECKING:
    from .._config import CallsConfig, EngineConfig
    from .._tokens import TokenCounter
    from ..caches import CacheBackend
    from ._session import EngineSession

logger = logging.getLogger(__name__)

#: Runs a function off the event loop under a limiter (the engine's ``_off_loop``).
OffLoop = Callable[..., Awaitable[Any]]

#: A session the call predictor has not learned from for this many answered turns
#: teaches it those turns without ending, with the turns before them as their context:
#: the predictor learns from a session as it goes, not only once it ends (with about
#: 200 sessions in flight, what ended lags far behind), and a long-lived session (a chat
#: thread kept for months) teaches it too.
LEARN_EVERY_TURNS = 4

#: Calls run ahead whose return the call side waits for, to forecast what follows them,
#: each with the request it was run for (the oldest forgotten first: a call the call
#: loader dropped before it ran never returns).
MAX_AHEAD = 1_000

#: At most this many turns learned from before are handed over as the context of the
#: new ones (what was said, the calls made), so that learning a part costs the same
#: however long the session has been.
CONTEXT_TURNS = 32


#: What this process logged once, whichever engine told it.
_TOLD = {"unshared fleet": False}


@dataclass(slots=True)
class _CallCounters:  # the counted fields of CallStatistics
    calls: int = 0
    read_only_calls: int = 0
    call_hits: int = 0
    call_joins: int = 0
    call_misses: int = 0
    call_failures: int = 0
    speculative: int = 0
    speculative_skipped: int = 0
    speculative_skipped_step: int = 0
    speculative_skipped_source: int = 0
    speculative_skipped_slow: int = 0
    speculative_skipped_fleet: int = 0
    speculative_skipped_allowance: int = 0


class CallSide:
    """
    The engine's tool calls and speculative calls.

    Args:
        config: The engine's configuration (``[calls]`` and ``[preloader]``).
        cache: Where call results are kept, beside the items (the engine's).
        counter: Counts the tokens of a result.
        offload: Whether the call loader and the predictor use worker threads.
        off_loop: Runs a function off the event loop under a limiter.
        call_sources: What runs the agent's calls, asked in this order.
        call_predictor: What forecasts the calls to run ahead (the engine's own when
            None and ``calls.speculate``).
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
        cache: CacheBackend | None,
        counter: TokenCounter,
        offload: bool,
        off_loop: OffLoop,
        call_sources: Sequence[CallSource],
        call_predictor: CallPredictor | None,
    ) -> None:
        calls = config.calls
        self.calls = calls
        self.tools = ToolSet("tools")  # what engine.tool registers
        self.sources = [*call_sources, self.tools]
        self.predictor = _predictor(calls, call_predictor, self.sources)
        #: Whether the predictor takes the turns learned from before as context
        #: (``observe_session``'s ``learned``, from 0.20); else it gets the new ones alone.
        self._takes_context = self.predictor is not None and _takes_learned(self.predictor)
        self._book = CallBook()
        #: Per call source, how many calls run ahead may run against it at once, and
        #: how many of its calls run now: shared with the other engines of the process
        #: given the same source object (tenants whose tools are one backend's client).
        self._loads = {
            s.name: source_load(s, calls.max_in_flight_per_source, tolerance=calls.source_slowdown)
            for s in self.sources
        }
        #: The fleet-wide bound of calls run ahead against a source at once
        #: (``calls.fleet_max_in_flight_per_source``), on a cache other processes share:
        #: each such call holds a slot of the tenant's source there while it runs.
        self._fleet = _fleet_slots(config, cache, self.sources)
        #: Per call source, what makes its calls (the loader's, and the agent's it does
        #: not run), each timed for the source's limit.
        self._adapters = {
            s.name: CallAdapter(
                s,
                self._book,
                self._ran_ahead,
                load=self._loads[s.name],
                returned=self._fleet.give_back,
            )
            for s in self.sources
        }
        self.loader = _call_loader(config, self._adapters, cache, counter, offload=offload)
        self._off_loop = off_loop
        # One worker thread for the call predictor: a request's speculation never
        # queues behind the forecasts of other sessions.
        self._guessing = anyio.CapacityLimiter(1)
        self._speculation = SpeculationLedger()
        # session -> calls run ahead since its agent's step began (new_step)
        self._this_turn: dict[str, int] = {}
        self._rationing = CallRationing(calls.max_per_call)  # speculation per call made
        self._counters = _CallCounters()
        #: Told when a call run ahead for a session's current turn returns (the
        #: engine wires the learner's :meth:`~preload.engine._learner.Learner.
        #: speculate_chain`): the session, its turns with that one, the request asked
        #: with, the call, its result and its probability.
        self.chain: Callable[[str, int, Mapping[str, Any], ToolCall, str, float], None] | None
        self.chain = None
        # call key -> the sessions that ran it ahead for their current turn: (session,
        # its turns of all with that one, the request asked with, probability), until
        # it returns
        self._ahead: dict[str, list[tuple[str, int, Mapping[str, Any], float]]] = {}
        self._word_counts = 0  # the predictor's, as of its latest learning
        # Sessions that ended with calls, for the predictor to learn: their turns, user.
        self._ended: dict[str, tuple[list[dict[str, Any]], str | None, int]] = {}

    # -- the agent's calls ------------------------------------------------------------

    def check(self, name: str, args: dict[str, Any]) -> tuple[str, CallSource]:
        """
        The key of the call and the source that runs it.

        Raises:
            UnknownToolError: No call source knows ``name``.
            TypeError: ``args`` are not a mapping of strings to JSON values.
            ValueError: ``name`` is empty, or ``args`` are above their size limit.
        """
        key = call_key(check_name(name), args)  # checks the arguments
        return key, self.source_of(name)

    async def call(
        self,
        session_id: str,
        name: str,
        args: dict[str, Any],
        checked: tuple[str, CallSource],
        deadline_s: float | None,
    ) -> tuple[str, bool]:
        """
        Run one of the agent's calls, ``checked`` by :meth:`check` (see
        :meth:`PreloadEngine.call <preload.PreloadEngine.call>`): its result, and
        whether it is read-only.
        """
        key, source = checked
        read_only = bool(source.read_only(name))
        deadline = self.calls.deadline_s if deadline_s is None else deadline_s
        counters = self._counters
        counters.calls += 1
        if read_only:
            counters.read_only_calls += 1
            self._rationing.called()
            self._book.add(ToolCall(name=name, args=args, read_only=True))
            self._speculation.use(session_id, key)
            return await self._read_only_call(source, name, args, key, deadline), True
        try:
            with anyio.fail_after(deadline):
                return await self._adapters[source.name].call(name, args), False
        except BaseException:
            counters.call_failures += 1
            raise

    async def _read_only_call(
        self, source: CallSource, name: str, args: dict[str, Any], key: str, deadline: float
    ) -> str:
        """
        A read-only call through the call loader: a hit, a join of the load in flight,
        or a load now. A source cooling down after failed speculation is asked
        directly: speculation never costs the agent its own call.
        """
        counters = self._counters
        start = anyio.current_time()
        if source.name not in self.loader.cooling():
            fetched = await self.loader.get(key, deadline_s=deadline)
            if fetched.item is not None:
                if fetched.status == "hit":
                    counters.call_hits += 1
                elif fetched.status == "partial":
                    counters.call_joins += 1
                else:
                    counters.call_misses += 1
                return fetched.item.levels[0].text
            counters.call_failures += 1
            if fetched.error is None:  # still running at the deadline
                raise TimeoutError(f"tool {name!r}: no result within {deadline} s")
            raise fetched.error
        counters.call_misses += 1
        left = deadline - (anyio.current_time() - start)
        try:
            with anyio.fail_after(max(left, 0.0)):
                return await self._adapters[source.name].call(name, args)
        except BaseException:
            counters.call_failures += 1
            raise

    def source_of(self, name: str) -> CallSource:
        """
        The first call source that knows the tool ``name``.

        Raises:
            UnknownToolError: None does.
        """
        for source in self.sources:
            if source.read_only(name) is not None:
                return source
        raise UnknownToolError(name, [s.name for s in self.sources])

    def knows(self, name: str) -> bool:
        """
        Whether a call source knows the tool ``name``.
        """
        return self._known_source(name) is not None

    def _known_source(self, name: str) -> CallSource | None:
        try:
            return self.source_of(name)
        except UnknownToolError:
            return None

    # -- speculation --------------------------------------------------------------------

    def new_step(self, session_id: str) -> None:
        """
        A step of the session's agent began (its request arrived, or it made a call):
        the budget of speculative calls of a step (``calls.max_per_turn``: a turn of
        one step, as most are) starts afresh.
        """
        self._this_turn.pop(session_id, None)

    def speculates_at(self, moment: Moment) -> bool:
        """
        Whether likely calls are forecast and run ahead at ``moment``: a predictor,
        ``[calls]`` asking for it then, and something that could run a call (a call
        source given, or a tool registered with :meth:`PreloadEngine.tool
        <preload.PreloadEngine.tool>`). Without the last, no guess could run, so a
        server of documents only pays nothing for it.
        """
        calls = self.calls
        could_run = any(s is not self.tools for s in self.sources) or bool(self.tools.tools)
        return (
            self.predictor is not None and calls.speculate and moment in calls.moments and could_run
        )

    async def speculate(
        self,
        session_id: str,
        moment: Moment,
        history: list[dict[str, Any]],
        request: dict[str, Any] | None,
        *,
        turn: int | None = None,
        given: float = 1.0,
    ) -> None:
        """
        Run the likely read-only calls of the session's next turn (after the reply:
        ``request`` is None) or of its current one (when the request arrived, and
        after each of its calls: ``request`` holds them, its ``tool_calls``; a call run
        ahead that returned among them, of probability ``given``, scales the guesses'
        by it; ``turn``: how many turns the session has had with the current one, so
        that a call run ahead for it that returns is followed while it is current),
        within
        the budgets of ``[calls]`` (a turn's, a source's, and what each read-only call
        made allows, spent on the likeliest guesses). A call that is not declared
        read-only is never run.
        """
        calls = self.calls
        predictor = self.predictor
        if predictor is None or not self.speculates_at(moment):
            return
        try:
            guesses = await self._off_loop(
                partial(predictor.predict_calls, k=calls.guesses),
                session_id,
                history,
                request,
                limiter=self._guessing,
            )
        except Exception:  # a predictor's bug must not stop the engine
            logger.exception("call forecast failed for session %s", session_id)
            return
        loader = self.loader
        for guess in guesses:
            p = guess.p * given
            source = self._known_source(guess.name)
            if source is None or source.read_only(guess.name) is not True:
                continue  # unknown, or not declared read-only: never run ahead
            try:
                key = self._book.add(ToolCall(name=guess.name, args=guess.args, read_only=True))
            except (TypeError, ValueError):
                continue
            if not loader.worth([(key, p)]) or p < _threshold(calls, moment):
                continue
            if loader.is_ready(key) or (
                self._speculation.pending(session_id, key) and loader.is_pending(key)
            ):
                continue  # warm, or this session's run of it is still on its way
            load = self._loads[source.name]
            running = load.ahead_of(loader)
            in_flight = load.ahead()
            if in_flight >= load.limit.limit:  # else none ended can matter
                load.drop_ended()
                in_flight = load.ahead()
            started = self._this_turn.get(session_id, 0)
            if self._held_back(source.name, started, in_flight, p):
                continue
            if not await self._fleet.take(source.name, key, loader):
                self._held_by_fleet(source.name)
                continue
            if not loader.schedule(key, p):
                if not loader.is_pending(key):  # not run: the slot is free again
                    self._fleet.give_back(source.name, key)
                continue
            self._rationing.spend()
            # read again: another forecast of the session may have run one meanwhile
            self._this_turn[session_id] = self._this_turn.get(session_id, 0) + 1
            running.add(key)
            self._counters.speculative += 1
            self._speculation.add(
                session_id,
                key,
                SpeculatedCall(
                    name=guess.name,
                    args=guess.args,
                    p=p,
                    moment=moment,
                    evidence=guess.evidence,
                ),
            )
            # of the current turn: followed once it returns, while the turn is current
            if request is not None and turn is not None and self.chain is not None:
                ahead = (session_id, turn, request, p)
                self._ahead.setdefault(key, []).append(ahead)
                if len(self._ahead) > MAX_AHEAD:  # calls that never returned
                    del self._ahead[next(iter(self._ahead))]

    def _held_back(self, source: str, started: int, running: int, p: float) -> bool:
        """
        Whether a guess of probability ``p`` that may run is held back by a budget of
        ``[calls]``: the step's (``started`` run already), the source's (``running``
        in flight against it, against its :class:`~preload.calls.SourceLimit`, lowered
        while the source is slow) or the allowance per read-only call made, tested in
        this order and counted by the first that holds it. The source's limit binding
        is logged once a source (under load it is what keeps the calls from running
        ahead), and its fall once a source.
        """
        calls, counters = self.calls, self._counters
        limit = self._loads[source].limit
        if started >= calls.max_per_turn:
            counters.speculative_skipped_step += 1
        elif running >= limit.limit:
            counters.speculative_skipped_source += 1
            limit.held()
            if limit.limit < limit.most:
                counters.speculative_skipped_slow += 1
                told = self._loads[source].told  # once a source, however many share it
                if "slow" not in told:
                    told.add("slow")
                    logger.warning(
                        "call source %r: its calls take %.1f times their usual time, so "
                        "%d calls (of calls.max_in_flight_per_source %d) may run ahead "
                        "against it at once until they speed up again "
                        "(calls.source_slowdown; counted in speculative_skipped_slow)",
                        source,
                        limit.slowdown,
                        limit.limit,
                        limit.most,
                    )
            elif "limit" not in (told := self._loads[source].told):
                told.add("limit")
                logger.warning(
                    "call source %r: calls.max_in_flight_per_source (%d) held back a call "
                    "to run ahead; raise it if the source takes more calls at once "
                    "(counted in speculative_skipped_source)",
                    source,
                    calls.max_in_flight_per_source,
                )
        elif not self._rationing.admits(p):
            counters.speculative_skipped_allowance += 1
        else:
            return False
        counters.speculative_skipped += 1
        return True

    def _held_by_fleet(self, source: str) -> None:
        """
        Every slot of ``source`` that the replicas share was taken: count the guess
        held back, and log it once a source.
        """
        counters = self._counters
        counters.speculative_skipped_fleet += 1
        counters.speculative_skipped += 1
        told = self._loads[source].told
        if "fleet" not in told:
            told.add("fleet")
            logger.warning(
                "call source %r: the replicas run %d calls ahead against it at once "
                "(calls.fleet_max_in_flight_per_source), so a call was held back "
                "(counted in speculative_skipped_fleet)",
                source,
                self.calls.fleet_max_in_flight_per_source,
            )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """
        Run the call loader, and give back the fleet-wide slots its calls free in the
        background; on the way out (the loader first, then the slots being given
        back), give back those still held, so that the other replicas need not wait
        for them to expire.
        """
        try:
            async with anyio.create_task_group() as returning, self.loader:
                self._fleet.start(returning)
                yield
        finally:
            self._fleet.start(None)
            with anyio.CancelScope(shield=True):
                await self._fleet.give_back_all()

    @property
    def returning_slots(self) -> bool:
        """
        Whether fleet-wide slots are being given back now.
        """
        return self._fleet.returning

    async def slots_returned(self) -> None:
        """
        Wait until the fleet-wide slots being given back are.
        """
        await self._fleet.returned()

    def _ran_ahead(self, key: str, call: ToolCall, result: str | None) -> None:
        """
        A call ended (the call loader's adapter says; ``result`` None: it failed): the
        sessions that ran it ahead for their current turn, and have not asked for it
        yet (once asked, the forecast after their call follows it), forecast what
        follows a call that returned (:attr:`chain`).
        """
        for session_id, turns, asked, p in self._ahead.pop(key, ()):
            if result is None:
                continue
            if self.chain is not None and self._speculation.pending(session_id, key):
                self.chain(session_id, turns, asked, call, result, p)

    def pending(self, session_id: str) -> tuple[str, ...]:
        """
        The session's speculative calls not used yet, described (for its context).
        """
        return tuple(
            c.describe() for c in self._speculation.of(session_id) if c.status == "pending"
        )

    def speculations_of(self, session_id: str) -> list[SpeculatedCall]:
        """
        The calls speculated for a session so far, oldest first.
        """
        return self._speculation.of(session_id)

    # -- sessions that end, and learning ----------------------------------------------

    def end(
        self,
        session_id: str,
        turns: list[dict[str, Any]],
        user: str | None,
        *,
        learned: int = 0,
        learn: bool,
    ) -> bool:
        """
        The session ended: its speculations not used count as wasted. With ``learn``,
        a session that made calls (in ``turns`` after the first ``learned``, which the
        predictor learned from before) is kept for the predictor (:meth:`learn_ended`);
        whether it was.
        """
        self._speculation.end(session_id)
        self._this_turn.pop(session_id, None)
        first, learned = _with_context(turns, learned)
        made_calls = any(turn.get("tool_calls") for turn in turns[first + learned :])
        if learn and made_calls and self.predictor is not None:
            self._ended[session_id] = (turns[first:], user, learned)
            return True
        return False

    async def learn_ongoing(self, session: EngineSession) -> None:
        """
        The call predictor learns from the answered turns of a session that goes on,
        once :data:`LEARN_EVERY_TURNS` of them are new to it (off the loop), with the
        turns before them as their context; the session's end teaches it the rest.
        """
        learned = min(session.calls_learned, len(session.turns))
        upto = len(session.turns)
        if upto and session.turns[-1].get("system") is None:  # the last one not answered yet
            upto -= 1
        if self.predictor is None or upto - learned < LEARN_EVERY_TURNS:
            return
        session.calls_learned = upto
        if any(turn.get("tool_calls") for turn in session.turns[learned:upto]):
            first, context = _with_context(session.turns, learned)
            turns = [dict(turn) for turn in session.turns[first:upto]]  # the loop may change one
            await self._learn(session.id, turns, session.user, context)

    async def learn_ended(self, session_id: str) -> None:
        """
        The call predictor learns from a session that ended (off the loop).
        """
        ended = self._ended.pop(session_id, None)
        if ended is not None:
            await self._learn(session_id, *ended)

    async def _learn(
        self, session_id: str, turns: list[dict[str, Any]], user: str | None, learned: int
    ) -> None:
        """
        The call predictor learns from ``turns`` of a session after the first
        ``learned`` (their context), off the loop.
        """
        if self.predictor is None:
            return
        observe: Callable[[list[dict[str, Any]], str | None], None]
        if self._takes_context:
            observe = partial(self.predictor.observe_session, learned=learned)
        else:
            observe, turns = self.predictor.observe_session, turns[learned:]
        words = getattr(self.predictor, "word_counts", None)
        try:
            self._word_counts = await self._off_loop(
                _learned,
                observe,
                words if callable(words) else None,
                turns,
                user,
                limiter=self._guessing,
            )
        except Exception:  # a predictor's bug must not stop the engine
            logger.exception("call learning failed for session %s", session_id)

    def statistics(self) -> CallStatistics:
        """
        A frozen snapshot of the call counters (see :meth:`PreloadEngine.call_statistics
        <preload.PreloadEngine.call_statistics>`).
        """
        ledger = self._speculation
        return CallStatistics(
            **asdict(self._counters),
            speculative_used=ledger.used,
            used_after_reply=ledger.used_by_moment["reply"],
            used_at_request=ledger.used_by_moment["request"],
            used_after_call=ledger.used_by_moment["call"],
            speculative_wasted=ledger.wasted,
            learned_word_counts=self._word_counts,
            source_limit=min(load.limit.limit for load in self._loads.values()),
        )


def _predictor(
    calls: CallsConfig, given: CallPredictor | None, sources: Sequence[CallSource]
) -> CallPredictor | None:
    """
    The call predictor: the one ``given``, else the engine's own when ``calls.speculate``
    (over the read-only tools of ``sources``); the model that learns online holds at
    most ``calls.max_vocabulary`` word counts.
    """
    predictor = given
    if given is None and calls.speculate:
        predictor = EngineCallPredictor(tools=read_only_tools(sources))
    learned = predictor
    if isinstance(learned, SharedCallPredictor):
        learned = learned.own  # the shared model learns nothing: its own layer does
    if isinstance(learned, EngineCallPredictor):
        learned.model.set_params(max_vocabulary=calls.max_vocabulary or None)
    return predictor


def _fleet_slots(
    config: EngineConfig, cache: CacheBackend | None, sources: Sequence[CallSource]
) -> FleetSlots:
    """
    The slots of the calls run ahead that every replica counts together, on ``cache``
    when other processes share it (a bound set on one they do not is said once a
    process); each held at most as long as a call may take with its retries.
    """
    calls, preloader = config.calls, config.preloader
    shared = cache is not None and cache.shared
    if calls.fleet_max_in_flight_per_source and not shared and not _TOLD["unshared fleet"]:
        _TOLD["unshared fleet"] = True
        logger.warning(
            "calls.fleet_max_in_flight_per_source bounds nothing on a cache no other "
            'process shares: set cache.backend = "redis" for replicas to count together'
        )
    return FleetSlots(
        cache if shared else None,
        config.tenant,
        calls.fleet_max_in_flight_per_source,
        ttl=calls.timeout_s * (preloader.retries + 1)
        + preloader.retry_backoff_s * 2**preloader.retries,
        backends={s.name: b for s in sources if (b := backend_of(s)) is not None},
    )


def _call_loader(
    config: EngineConfig,
    adapters: Mapping[str, CallAdapter],
    cache: CacheBackend | None,
    counter: TokenCounter,
    *,
    offload: bool,
) -> Preloader:
    """
    The preloader of call results: the engine's cache, ``[calls]``'s workers,
    deadline, timeout, threshold and size limit over ``[preloader]``'s other settings.
    """
    calls = config.calls
    return Preloader(
        sources=SourceRouter(adapters),
        cache=cache,
        compressor=TruncatingCompressor(counter, fractions=()),
        config=replace(
            config.preloader,
            workers=calls.workers,
            max_concurrent_loads=calls.workers,
            request_deadline_s=calls.deadline_s,
            load_timeout_s=calls.timeout_s,
            source_timeouts={},
            source_concurrency={},
            value_threshold=calls.threshold,
            max_item_chars=calls.max_result_chars,
        ),
        tenant=config.tenant,
        offload=offload,
    )


def _learned(
    observe: Callable[[list[dict[str, Any]], str | None], None],
    word_counts: Callable[[], int] | None,
    turns: list[dict[str, Any]],
    user: str | None,
) -> int:
    """
    Learn from ``turns``, then read the word counts the predictor holds (in the same
    worker thread: they are read as the learning left them), 0 if it does not tell.
    """
    observe(turns, user)
    return int(word_counts()) if word_counts is not None else 0


def _threshold(calls: CallsConfig, moment: Moment) -> float:
    """
    The probability a guess made at ``moment`` needs to be run, beyond the value
    threshold every guess needs: ``reply_threshold`` after the reply,
    ``call_threshold`` after a call.
    """
    if moment == "reply":
        return calls.reply_threshold
    return calls.call_threshold if moment == "call" else 0.0


def _with_context(turns: Sequence[Mapping[str, Any]], learned: int) -> tuple[int, int]:
    """
    Where the turns handed to the predictor begin (at most :data:`CONTEXT_TURNS` before
    the first new one), and how many of them were learned from before.
    """
    learned = max(0, min(learned, len(turns)))
    first = max(0, learned - CONTEXT_TURNS)
    return first, learned - first


def _takes_learned(predictor: CallPredictor) -> bool:
    """
    Whether ``predictor.observe_session`` takes ``learned`` (a predictor written
    before 0.20 may not).
    """
    try:
        parameters = inspect.signature(predictor.observe_session).parameters.values()
    except (TypeError, ValueError):  # no signature to read
        return False
    return any(p.name == "learned" or p.kind is p.VAR_KEYWORD for p in parameters)
