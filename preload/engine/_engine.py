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
import math
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from .._config import EngineConfig
from .._errors import EngineStateError
from .._lifecycle import Lifecycle
from .._metrics import EngineStatistics, MetricsSnapshot, compose
from .._sources import SearchingSource, Source, SourceRouter
from .._tokens import TiktokenCounter, TokenCounter
from ..caches import CacheBackend, make_cache
from ..calls import (
    CallSource,
    current_session,
)
from ..compression import Compressor, MultiLevelCompressor, Representation
from ..learning import (
    AdaptiveBudget,
    CallPredictor,
    EngineForecaster,
    Forecast,
    Forecaster,
    StateNamer,
    ThinkTimes,
    ValuePredictor,
)
from ..loading import Fetched, Preloader
from ..window import Context, HierarchicalBudgetManager, SwapController
from ..window._drafting import ITEM_CATEGORIES
from ._calls import CallSide
from ._experiment import ExperimentSide
from ._history import HistorySide
from ._in_flight import RequestsInFlight
from ._inputs import check_optional_id, check_request, check_type
from ._learner import Learner
from ._preloads import PreloadSide
from ._session import Arm, Counters, EngineSession
from ._tool_calls import ToolCalls
from ._turns import StoredTurns
from ._values import ValueSide

if TYPE_CHECKING:
    from ..experiments import ArmStatistics, SessionOutcome

__all__ = ["PreloadEngine"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


#: Requests longer than this (characters) are cut to what the window can hold in a
#: worker thread (counting tokens: about 1.5 ms at 20,000 characters, less below).
REQUEST_OFFLOAD_CHARS = 20_000


class _Default(enum.Enum):
    CACHE = 1


class PreloadEngine(ToolCalls, StoredTurns, anyio.AsyncContextManagerMixin):
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
        call_sources: What runs the agent's tool calls (:meth:`call`), asked in this
            order; the first that knows a tool runs it.
        call_predictor: What forecasts the calls to run ahead (the engine's own, learning
            from the sessions as they go and end, when None; speculation needs call
            sources and ``calls.speculate``).
        requests_in_flight: The requests the learner stands aside for (see
            :meth:`in_flight`): the engine's own when None; engines of one process
            share one, so that a request of any holds every learner back.

    Example::

        async with PreloadEngine(config, sources={"kb": JsonlKnowledgeSource(path)}) as engine:
            ctx = await engine.handle(session_id="s1", text="find me a drama")

    .. versionadded:: 0.1
    """

    #: How long the learner waits, at most, for the requests in flight to be served
    #: before it starts its next piece of work (:meth:`in_flight`).
    LEARNER_YIELD_S = 0.05

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
        call_sources: Sequence[CallSource] = (),
        call_predictor: CallPredictor | None = None,
        requests_in_flight: RequestsInFlight | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self.counter = counter or TiktokenCounter(
            self.config.tokens.encoding,
            cache_size=self.config.tokens.cache_size,
            cache_chars=self.config.tokens.cache_chars,
        )
        self.forecaster: Forecaster = forecaster or EngineForecaster.from_config(self.config)
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
        self.swap = self._swap_controller(self.config)
        self.adaptive = self._adaptive_budget(self.config)
        self._experiment = ExperimentSide(
            self.config.experiments, {arm: self._arm(arm) for arm in self.config.experiments.arms}
        )
        self.max_sessions = max_sessions
        self._told_calls_cap = False  # a turn's calls past MAX_CALLS_PER_TURN, said once
        self._counters = Counters()
        self._sessions: OrderedDict[str, EngineSession] = OrderedDict()
        self._state = Lifecycle.UNOPENED
        self._in_flight = requests_in_flight or RequestsInFlight()
        self._offload = offload
        self._tg: anyio.abc.TaskGroup | None = None
        self._wire_background(sources, call_sources, call_predictor)

    def _wire_background(
        self,
        sources: Mapping[str, Source],
        call_sources: Sequence[CallSource],
        call_predictor: CallPredictor | None,
    ) -> None:
        """
        Build the parts the learner drives off the request path: the value predictor,
        preloads, histories, tool calls and the learner itself.
        """
        offload = self._offload
        retrieval = self.config.retrieval
        saved = getattr(self.forecaster, "values", None)  # a model file's, learned before
        self.values = (
            (saved if isinstance(saved, ValuePredictor) else None)
            or ValuePredictor(min_feedback=retrieval.min_feedback)
            if retrieval.value_model
            else None
        )
        adapting = [self.adaptive, *(arm.adaptive for arm in self._experiment.arms.values())]
        self._learning = anyio.CapacityLimiter(1)  # one for the forecasters
        # What the parts are handed holds no reference to the engine: a closed engine
        # is then freed by reference counting, its models with it, without waiting for
        # a pass of the cycle collector.
        off_loop = partial(_off_loop, offload, self._learning)
        self._values = ValueSide(
            self.preloader,
            [s for s in sources.values() if isinstance(s, SearchingSource)],
            self.values,
            judging=self.values is not None or any(a is not None for a in adapting),
            counters=self._counters,
            off_loop=off_loop,
        )
        self.think_times = ThinkTimes()
        self._preloads = PreloadSide(
            self.preloader,
            self.think_times,
            self._counters,
            live=partial(_is_live, self._sessions),
        )
        # One for requests' own work (catching their history up, fitting a long text):
        # a request never queues behind the learner's work for other sessions.
        self._serving = anyio.CapacityLimiter(1)
        self._histories = HistorySide(
            self.counter, self._counters, offload=offload, serving=self._serving
        )
        self._calls = CallSide(
            self.config,
            cache=self.cache,
            counter=self.counter,
            offload=offload,
            off_loop=off_loop,
            call_sources=call_sources,
            call_predictor=call_predictor,
        )
        self._learner = Learner(
            self._sessions,
            forecaster=self.forecaster,
            namer=self.forecaster if isinstance(self.forecaster, StateNamer) else None,
            calls=self._calls,
            values=self._values,
            histories=self._histories,
            preloads=self._preloads,
            think_times=self.think_times,
            counters=self._counters,
            off_loop=off_loop,
            stand_aside=partial(
                _stand_aside, self._in_flight if offload else None, self.LEARNER_YIELD_S
            ),
        )
        self._calls.chain = self._learner.speculate_chain  # what follows a call run ahead

    def _swap_controller(self, config: EngineConfig) -> SwapController:
        """
        A swap controller with ``config``'s window settings.
        """
        return SwapController(
            HierarchicalBudgetManager(config.budget),
            self.counter,
            config=config.swap,
            pricing=config.pricing,
            ttl_of=self._ttl_of,
        )

    @staticmethod
    def _adaptive_budget(config: EngineConfig) -> AdaptiveBudget | None:
        """
        The adaptive budget of ``config``, when ``budget.adaptive.enabled``.
        """
        if not config.budget.adaptive.enabled:
            return None
        return AdaptiveBudget(
            config.budget, break_even=config.swap.swap_threshold, categories=ITEM_CATEGORIES
        )

    def _arm(self, name: str) -> Arm:
        """
        An experiment arm; it shares the engine's swap controller when it leaves the
        window settings (``swap``, ``budget``, ``pricing``) as they are.
        """
        config = self.config.arm_config(name)
        window = (config.swap, config.budget, config.pricing)
        same = window == (self.config.swap, self.config.budget, self.config.pricing)
        swap = self.swap if same else self._swap_controller(config)
        adaptive = self.adaptive if same else self._adaptive_budget(config)
        return Arm(name=name, config=config, swap=swap, adaptive=adaptive)

    def _ttl_of(self, key: str) -> float | None:
        """
        How long ``key`` lives in the cache (None: until evicted).
        """
        routed = self.preloader.key_of(key)
        return self.config.cache.ttl_for(routed[0].name if routed else "", key)

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
        try:
            async with self.preloader, self._calls.running(), anyio.create_task_group() as tg:
                self._tg = tg
                self._learner.start(tg)
                self._state = Lifecycle.OPENED
                try:
                    yield self
                finally:
                    self._state = Lifecycle.CLOSED
                    self._learner.stop()
                    tg.cancel_scope.cancel()
                    for session in list(self._sessions.values()):
                        self._finish(session)
                    self._sessions.clear()
        finally:
            # A cancelled task's traceback keeps its frame, and so the learner, in a
            # reference cycle: let go of the parts, so that the models go with the
            # engine rather than with the cycle collector's next pass.
            self._tg = None
            self._learner.detach()

    # -- the request path -------------------------------------------------------------

    async def handle(
        self,
        *,
        session_id: str,
        text: str,
        state: str | None = None,
        needs: Sequence[str] = (),
        user: str | None = None,
        request_id: str | None = None,
    ) -> Context:
        """
        Serve one request: gather its needs and assemble its context within budget.

        Args:
            session_id: The conversation this request belongs to.
            text: The request's text.
            state: Its state label (intent, tool call, page category), when known;
                otherwise the forecaster names it from the text, if it can (in the
                background, with the learning: the request path never runs a model).
            needs: The items this request is known to need; they are loaded now if
                they are not warm. Predicted items are added only when warm.
            user: Who asks (enables per-user learning).
            request_id: The request's own id (at most ``MAX_ID_CHARS``
                characters), when it may be served more than once: a request served
                again under an id the session's latest requests had (a client's retry,
                a change a server serves again after its store refused the write) is
                not counted again in the metrics (requests, tokens, hits, partial
                hits, misses) nor in an experiment's outcomes: it counts as it was
                first served. The turn keeps it (:meth:`turns_of`), and the ids of
                turns :meth:`restore` brings count as counted: another replica
                counted them.

        Returns:
            The context, with how long it waited and what it hit or missed.

        Raises:
            EngineStateError: The engine is not open.
            TypeError: An argument has the wrong type (``needs`` must be a sequence
                of keys, not one string).
            ValueError: ``session_id`` is empty, ``state`` or a need holds a control
                character the forecaster reserves, ``session_id``, ``user``,
                ``state`` or a need is above ``MAX_LABEL_CHARS`` (1,000) characters,
                or ``request_id`` is above ``MAX_ID_CHARS``.
            InputTooLargeError: The text or the needs are above ``[limits]``.

        .. versionchanged:: 0.10
           ``request_id``.
        """
        self._check_open()
        needs = check_request(self.config.limits, session_id, text, state, needs, user)
        check_optional_id("request_id", request_id)
        with self.in_flight():
            return await self._handle(session_id, text, state, needs, user, request_id)

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        """
        Mark a request in flight while in the block: the learner starts no new work
        meanwhile (for at most ``LEARNER_YIELD_S``), so that its worker threads do not
        take the interpreter from the request. :meth:`handle` marks itself; a server
        that does more around it (taking a lease, writing the turn) wraps all of it::

            with engine.in_flight():
                async with store.lease(session_id):
                    context = await engine.handle(session_id=session_id, text=text)
                    await store.append(session_id, text)

        .. versionadded:: 0.6
        """
        with self._in_flight.mark():
            yield

    @property
    def requests_in_flight(self) -> RequestsInFlight:
        """
        The requests in flight its learner stands aside for: its own, or those it shares
        with the engines given the same (``requests_in_flight=``).

        .. versionadded:: 0.15
        """
        return self._in_flight

    async def _handle(
        self,
        session_id: str,
        text: str,
        state: str | None,
        needs: list[str],
        user: str | None,
        request_id: str | None,
    ) -> Context:
        """
        :meth:`handle`, its arguments checked, the request marked in flight.
        """
        start = anyio.current_time()
        session = self._session(session_id, user)
        counted = request_id is None or request_id not in session.request_ids
        session.state = state or ""
        self._arrived(session, start)
        self._learner.speculate_request(session, text, state, needs)
        window_text = text
        if self._offload and len(text) > REQUEST_OFFLOAD_CHARS:
            window_text = await anyio.to_thread.run_sync(
                self._fit_request, session.config, text, limiter=self._serving
            )
        assert self._tg is not None
        caught_up = self._histories.catch_up(session, self._tg)  # while the cache reads
        likely = self._warm_predictions(session, set(needs))  # read with the needs
        required, counts, missing, found = await self._gather(session, needs, likely, counted)
        if found is None:  # it waited for loads: the likely keys warm now
            likely = self._warm_predictions(session, set(needs))
            found = await self.preloader.peek_many(list(likely))
        optional = [(found[key], p) for key, p in likely.items() if key in found]
        if not needs and self._values.searchers and session.config.retrieval.search:
            optional = await self._values.retrieve(session, window_text, optional)
        if caught_up is not None:
            await caught_up.wait()
        context = session.swap.assemble(
            session_id,
            request=window_text,
            required=required,
            optional=optional,
            conversation=self._histories.history(session, complete=True),
            caps=session.adaptive.caps() if session.adaptive is not None else None,
            forecast=self._forecast_for_choice(session),
        )
        if session.swap.tenant is not None:  # the tenant-wide layer learns in the learner
            session.shared = (context, [*required, *(r for r, _ in optional)], anyio.current_time())
        context = replace(
            context,
            waited_s=anyio.current_time() - start,
            hits=counts["hit"],
            partial_hits=counts["partial"],
            misses=counts["miss"],
            missing=tuple(missing),
            speculated=self._calls.pending(session_id),
            ttl_skipped=tuple(session.ttl_skipped),
            deferred=self._preloads.explain(session, start),
        )
        if session.arm is not None:
            context = replace(
                context, experiment=self.config.experiments.name, arm=session.arm.name
            )
            if counted:
                self._experiment.count_turn(session, context, needs, text)
        session.answered_at = anyio.current_time()
        self._values.note_window(session, context)
        current_session.set(session_id)  # for tools wrapped by engine.tool
        if counted:  # its id remembered once it counts: a request that failed did not
            self._counters.requests += 1
            self._counters.tokens += context.tokens
            if request_id is not None:
                session.request_ids.append(request_id)
        turn = {"text": text, "state": state, "needs": needs, "system": None, "at": time.time()}
        if request_id is not None:
            turn["request_id"] = request_id
        session.turns.append(turn)
        session.learning = True
        self._learner.notify("turn", session_id)
        return context

    def _forecast_for_choice(self, session: EngineSession) -> dict[str, float] | None:
        """
        The forecast's probabilities of the predicted needs, for a Pareto choice
        (None when none is asked for: the work is skipped).
        """
        if not session.config.budget.objectives.pareto or session.forecast is None:
            return None
        limit = session.config.preloader.max_preloads_per_turn
        return dict(session.forecast.needs[:limit])

    def _arrived(self, session: EngineSession, now: float) -> None:
        """
        A request of ``session`` arrived: its preloads waiting to start just in time
        are no longer wanted, and the time since the last answer is a think time.
        """
        if session.deferred is not None:
            session.deferred.cancel()
            session.deferred = None
        session.preloaded.clear()
        if session.turns and session.answered_at is not None:
            session.think = (session.turns[-1].get("state"), now - session.answered_at)

    def _fit_request(self, config: EngineConfig, text: str) -> str:
        """
        A long request cut to what its category may ever hold, with its tokens counted
        (in a worker thread: tokenizing a long text would hold up the loop). The swap
        controller cuts it further to what the turn leaves it, as it would the whole.
        """
        budget = config.budget
        category = budget.categories.get("working_memory")
        cap = category.max if category is not None and category.max else budget.total_tokens
        cut = self.counter.truncate(text, cap)
        self.counter.count(cut)
        return cut

    async def _gather(
        self, session: EngineSession, needs: list[str], likely: Mapping[str, float], counted: bool
    ) -> tuple[list[Representation], dict[str, int], list[str], dict[str, Representation] | None]:
        """
        This turn's needs: hits without a task (one round trip on Redis, which also
        reads the ``likely`` keys: those warm are returned, or None when the request
        then waited for loads, after which others may be), misses joined or loaded at
        once within the request deadline; ``counted`` in the metrics unless the
        request is served again.
        """
        fetched: dict[str, Fetched] = await self.preloader.get_many(
            needs, deadline_s=session.config.preloader.request_deadline_s, peek=list(likely)
        )
        found = {key: fetched[key].item for key in likely if key in fetched}
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
            elif got.status == "miss":  # a preload for it left the cache before its use?
                self.preloader.lose(session.id, key)
        if counted:
            self._counters.hits += counts["hit"]
            self._counters.partial_hits += counts["partial"]
            self._counters.misses += counts["miss"]
        if any(fetched[key].waited_s for key in needs):
            return required, counts, missing, None
        return required, counts, missing, {k: v for k, v in found.items() if v is not None}

    def feedback(self, session_id: str, *, used: Sequence[str], score: float | None = None) -> None:
        """
        Record which items of the session's last window the answer used (and,
        optionally, a task score). The content-value predictor learns from it in the
        background; nothing waits for it. Feedback for a session the engine does not
        know, or with no window yet, and keys that were not in the window, are ignored
        and counted (``feedback_ignored``), never an error. A window is judged once:
        feedback on a window already judged (a client's retry) is ignored and counted
        too, so that it does not count twice in what is learned or in an experiment. In an experiment, the
        share of the window used and the score join the session's outcome
        (:meth:`experiment_outcomes`).

        A score that is not finite (NaN, infinite) is left out and counted.

        Raises:
            TypeError: ``used`` is one string, or holds something else than strings;
                ``score`` is not a number.

        .. versionadded:: 0.4
        """
        self._check_open()
        if isinstance(used, str | bytes):
            raise TypeError(f"used must be a sequence of keys, not one string; write [{used!r}]")
        if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
            raise TypeError(f"score must be a number or None, not {type(score).__name__}")
        if score is not None and not math.isfinite(score):
            self._counters.feedback_ignored += 1  # NaN or infinite: the score is left out
            score = None
        keys = list(dict.fromkeys(used))
        for i, key in enumerate(keys):
            if not isinstance(key, str):
                raise TypeError(f"used[{i}] must be a string key, not {type(key).__name__}")
        session = self._sessions.get(session_id) if isinstance(session_id, str) else None
        judged = self._values.judge(session, keys) if session is not None else None
        if judged is None:
            self._counters.feedback_ignored += 1
            return
        assert session is not None
        shown, used_here, queued = judged
        self._experiment.feedback(
            session, shown, used_here, None if score is None else float(score)
        )
        if queued:
            self._learner.notify("feedback", session_id)

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
        check_type("text", text, str)
        session = self._sessions.get(session_id)
        if session is None or not session.turns:
            return
        limit = self.config.limits.max_reply_chars
        if len(text) > limit:
            text = text[:limit]
            self._counters.replies_truncated += 1
        session.turns[-1]["system"] = text
        session.answered_at = anyio.current_time()
        self._last_turn_changed(session)
        if not session.learning:  # else the queued "turn" event sees the reply too
            self._learner.notify("reply", session_id)

    def end_session(self, session_id: str) -> None:
        """
        Forget a session; its preloads that it never used count as wasted.
        """
        session = self._sessions.pop(session_id, None)
        if session is not None:
            self._finish(session)

    def arm_of(self, session_id: str) -> str | None:
        """
        The experiment arm that serves a session: the arm its id is assigned to (so
        also for a session the engine has not seen yet); None without an experiment.

        .. versionadded:: 0.6
        """
        return self._experiment.arm_of(session_id)

    def experiment_outcomes(self) -> list[SessionOutcome]:
        """
        The outcome of every session of the experiment: those that ended (the last
        ``MAX_OUTCOMES``), then the live ones so far; empty without an experiment.
        Write them for ``preload report`` with
        :func:`~preload.experiments.write_outcomes`.

        .. versionadded:: 0.6
        """
        return list(self.iter_experiment_outcomes())

    def iter_experiment_outcomes(self) -> Iterator[SessionOutcome]:
        """
        :meth:`experiment_outcomes`, each live session's outcome worked out as it is
        reached (of the sessions there were when called): for a server that sends them
        a few at a time rather than hold its event loop for all of them (about 10 µs
        an outcome).

        .. versionadded:: 0.10
        """
        return self._experiment.outcomes(self._sessions.values())

    def arm_statistics(self) -> dict[str, ArmStatistics]:
        """
        Each experiment arm's counts so far (sessions assigned, requests, hits,
        tokens, needs held, waits, feedback); empty without an experiment.

        .. versionadded:: 0.6
        """
        return self._experiment.statistics()

    def forecast_of(self, session_id: str) -> Forecast | None:
        """
        The latest forecast made for a session's next request, if any.
        """
        session = self._sessions.get(session_id)
        return session.forecast if session is not None else None

    @property
    def sessions_remembered(self) -> int:
        """
        The sessions the engine holds now (at most ``max_sessions``).

        .. versionadded:: 0.6
        """
        return len(self._sessions)

    async def save_model(self, path: str | Path) -> None:
        """
        Write the forecaster with the content-value predictor learned from feedback so
        far, in one versioned JSON file: what ``EngineForecaster.load`` and ``preload
        serve --model`` read, the value predictor then serving from the start. Written
        from the learner's worker thread, so nothing learns while it is written.

        Raises:
            TypeError: The engine's forecaster is not an :class:`EngineForecaster`.
            EngineStateError: The engine is not open, or its forecaster never fitted.
            InputError: The file cannot be written.

        .. versionadded:: 0.6
        """
        self._check_open()
        forecaster = self.forecaster
        if not isinstance(forecaster, EngineForecaster):
            raise TypeError(f"only an EngineForecaster is saved, not {type(forecaster).__name__}")
        forecaster.values = self.values
        await self._off_loop(forecaster.save, path)

    def history(self, session_id: str, available_tokens: int | None = None) -> str:
        """
        The session's own history (its exchanges so far, the last request included),
        compressed to fit ``available_tokens`` (the ``user_history`` category's maximum
        when None); empty for a session the engine does not know. What adapters put
        in place of a framework's message history.

        .. versionadded:: 0.4
        """
        self._check_open()
        session = self._sessions.get(session_id)
        if session is None:
            return ""
        history = self._histories.history(session, complete=True)
        if available_tokens is None:
            available_tokens = history.max_tokens
        return history.get_context(available_tokens)

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

    def _warm_predictions(self, session: EngineSession, needed: set[str]) -> dict[str, float]:
        """
        The forecast's keys worth offering that this replica knows warm, with their
        probabilities (the request reads them with its needs).
        """
        forecast = session.forecast
        if forecast is None:
            return {}
        likely = forecast.needs[: session.config.preloader.max_preloads_per_turn]
        return {
            key: p
            for key, p in self.preloader.worth(likely)
            if key not in needed and self.preloader.is_ready(key)
        }

    # -- background -------------------------------------------------------------------

    async def _off_loop(
        self, function: Callable[..., T], *args: Any, limiter: anyio.CapacityLimiter | None = None
    ) -> T:
        """
        ``function(*args)`` off the loop as the learner runs it (see :func:`_off_loop`).
        """
        return await _off_loop(self._offload, self._learning, function, *args, limiter=limiter)

    async def wait_idle(self) -> None:
        """
        Wait until the background work caused so far is done: every turn learned from,
        every forecast made and every preload and speculative call finished (the
        fleet-wide slots those held given back). For tests, benchmarks and graceful draining; the request path never waits for it.
        """
        self._check_open()
        while (
            self._learner.pending
            or not self.preloader.idle
            or not self._calls.loader.idle
            or self._calls.returning_slots
            or self._preloads.deferring
        ):
            if self._learner.pending:
                await self._learner.settled()
            elif not self.preloader.idle:
                await self.preloader.wait_idle()
            elif not self._calls.loader.idle:
                await self._calls.loader.wait_idle()
            elif self._calls.returning_slots:  # what the calls run ahead held, given back
                await self._calls.slots_returned()
            else:  # preloads waiting to start just in time (at their start times)
                await self._preloads.wait()

    def _session(self, session_id: str, user: str | None) -> EngineSession:
        session = self._sessions.get(session_id)
        if session is None:
            session = self._sessions[session_id] = self._new_session(session_id, user)
            while len(self._sessions) > self.max_sessions:
                _, old = self._sessions.popitem(last=False)
                self._finish(old)
        else:
            self._sessions.move_to_end(session_id)
        return session

    def _new_session(self, session_id: str, user: str | None) -> EngineSession:
        """
        A new session, served by its experiment arm when there is an experiment.
        """
        arm = self._experiment.arm_for(session_id)
        if arm is None:
            return EngineSession(
                id=session_id, user=user, config=self.config, swap=self.swap, adaptive=self.adaptive
            )
        return EngineSession(
            id=session_id,
            user=user,
            config=arm.config,
            swap=arm.swap,
            adaptive=arm.adaptive,
            arm=arm,
            tally=self._experiment.tally_for(session_id),
        )

    def _finish(self, session: EngineSession) -> None:
        if session.deferred is not None:
            session.deferred.cancel()
            session.deferred = None
        self.preloader.end_session(session.id)
        session.swap.forget(session.id)
        self._experiment.end(session)
        learn = self._state is Lifecycle.OPENED
        turns = session.turns  # those after calls_learned: the rest learned as it went
        ended = self._calls.end(
            session.id, turns, session.user, learned=session.calls_learned, learn=learn
        )
        if ended:
            self._learner.notify("end", session.id)

    def _check_open(self) -> None:
        if self._state is not Lifecycle.OPENED:
            raise EngineStateError(
                "the engine is not open; use it inside 'async with PreloadEngine(...)'"
            )


async def _off_loop(
    offload: bool,
    learning: anyio.CapacityLimiter,
    function: Callable[..., T],
    *args: Any,
    limiter: anyio.CapacityLimiter | None = None,
) -> T:
    """
    ``function(*args)`` in a worker thread when the engine offloads, inline otherwise
    (a virtual-clock replay stays deterministic). One at a time under ``limiter``: the
    learner's (``learning``: the forecasters are only ever used there) unless told
    otherwise (the call predictor has its own).
    """
    if not offload:
        return function(*args)
    return await anyio.to_thread.run_sync(function, *args, limiter=limiter or learning)


async def _stand_aside(in_flight: RequestsInFlight | None, yield_s: float) -> None:
    """
    Wait, at most ``yield_s``, until no request is in flight (of the engine, or of any
    engine sharing its ``requests_in_flight``; None when the engine does not offload:
    a virtual-clock replay stays as it is): the learner's worker threads would share
    the interpreter with it.
    """
    if in_flight is not None:
        await in_flight.quiet(yield_s)


def _is_live(sessions: Mapping[str, EngineSession], session: EngineSession) -> bool:
    """
    Whether ``session`` is the one the engine holds under its id.
    """
    return sessions.get(session.id) is session
