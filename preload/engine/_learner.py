"""
The engine's learner: the background path. The request path only sends it events (a
turn served, a reply, feedback, a session that ended, a session another replica
served); one task takes them in order and does their work off the request path:
learning, the session's history, forecasting, preloading, and the calls run ahead
after a reply. A request's own calls run ahead in a task of their own, started as it
arrives, again after each call it makes, and after each call run ahead for it that
returned before the agent asked for it (what would follow it). :meth:`Learner.settled`
waits for all of it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

if TYPE_CHECKING:
    from ..calls import ToolCall
    from ..learning import Forecast, Forecaster, StateNamer, ThinkTimes
    from ._calls import CallSide, OffLoop
    from ._history import HistorySide
    from ._preloads import PreloadSide
    from ._session import Counters, EngineSession
    from ._values import ValueSide

__all__ = ["MAX_EVENTS", "Learner"]

logger = logging.getLogger(__name__)

#: Events the learner's queue holds; past them a turn is dropped (``learner_drops``).
MAX_EVENTS = 4096


class Learner:
    """
    The engine's background work, fed by its request path.

    Args:
        sessions: The engine's sessions by id (a session gone or replaced meanwhile
            is not learned from).
        forecaster: What forecasts the next request (learns from each turn).
        namer: What names the states of requests that came without one, if any.
        calls: The call side (speculation, and learning from ended sessions).
        values: The value side (learning from feedback).
        histories: The history side (records the sessions' exchanges).
        preloads: The preload side (preloads a forecast's needs).
        think_times: Learns the time from an answer to the next request.
        counters: The engine's counters (``learner_drops``).
        off_loop: Runs a function in the learner's worker thread.
        stand_aside: Waits while requests are in flight (the engine's ``in_flight``).
    """

    def __init__(
        self,
        sessions: Mapping[str, EngineSession],
        *,
        forecaster: Forecaster,
        namer: StateNamer | None,
        calls: CallSide,
        values: ValueSide,
        histories: HistorySide,
        preloads: PreloadSide,
        think_times: ThinkTimes,
        counters: Counters,
        off_loop: OffLoop,
        stand_aside: Callable[[], Awaitable[None]],
    ) -> None:
        self._sessions = sessions
        self._forecaster = forecaster
        self._namer = namer
        self._calls = calls
        self._values = values
        self._histories = histories
        self._preloads = preloads
        self._think_times = think_times
        self._counters = counters
        self._off_loop = off_loop
        self._stand_aside = stand_aside
        self._events: MemoryObjectSendStream[tuple[str, str]] | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self.pending = 0  # events and requests' speculations not done yet
        self._settled = anyio.Event()
        self._due: dict[str, None] = {}  # sessions recorded first (record_soon)

    def start(self, tg: anyio.abc.TaskGroup) -> None:
        """
        Start taking events, in ``tg``.
        """
        send, receive = anyio.create_memory_object_stream[tuple[str, str]](MAX_EVENTS)
        self._events = send
        self._tg = tg
        tg.start_soon(self._run, receive)

    def stop(self) -> None:
        """
        Take no more events.
        """
        if self._events is not None:
            self._events.close()

    def detach(self) -> None:
        """
        Let go of the engine's parts once its task group is done (the engine closed).
        """
        self._tg = None
        self._events = None
        for part in ("_forecaster", "_namer", "_calls", "_values", "_histories", "_preloads"):
            vars(self).pop(part, None)

    def notify(self, kind: str, session_id: str) -> None:
        """
        An event of the session (``turn``, ``reply``, ``feedback``, ``end``,
        ``restored``) for the learner; dropped and counted when its queue is full.
        """
        assert self._events is not None
        try:
            self._events.send_nowait((kind, session_id))
        except anyio.WouldBlock:
            self._counters.learner_drops += 1
        else:
            self.pending += 1

    def record_soon(self, session: EngineSession) -> None:
        """
        Have the learner record the session's answered exchanges before it turns to
        its next event (not behind its queue of other sessions' forecasts, nor beside
        them in threads of their own, which would share the interpreter with the
        requests all the more): turns another replica served, which a request here may
        soon need.
        """
        self._due[session.id] = None
        self.notify("restored", session.id)  # wakes the learner; settled counts it

    def speculate_request(
        self, session: EngineSession, text: str, state: str | None, needs: Sequence[str]
    ) -> None:
        """
        A request of ``session`` arrived: its turn's budget of speculative calls starts
        afresh, and its likely calls start now, in a task of their own, while the
        request gathers its context (the agent decides only once it has it): neither
        the request nor the learner's queue of other sessions' work delays them.
        """
        self._calls.new_step(session.id)
        if not self._calls.speculates_at("request"):
            return
        assert self._tg is not None
        request = {"text": text, "state": state, "needs": list(needs), "system": None}
        self.pending += 1  # background work settled waits for, as the events
        self._tg.start_soon(
            self._speculate_now,
            session.id,
            list(session.turns),
            request,
            "request",
            session.count + 1,
        )

    def speculate_after_call(self, session: EngineSession) -> None:
        """
        The agent made a call for the session's request (recorded in its last turn,
        not answered yet): the calls it makes next start now, forecast from the calls
        so far and their results (an id a lookup returned), in a task of their own,
        while the agent's model reads the result. Each such step of the agent starts
        its budget of speculative calls afresh.
        """
        turn = session.turns[-1] if session.turns else None
        if turn is None or turn.get("system") is not None or not self._calls.speculates_at("call"):
            return
        assert self._tg is not None
        self._calls.new_step(session.id)
        self.pending += 1
        self._tg.start_soon(self._speculate_after_call_now, session, session.count)

    async def _speculate_after_call_now(self, session: EngineSession, turns: int) -> None:
        """
        :meth:`speculate_after_call`'s task: the request and the turns before it are
        copied here, off the agent's call (their copy grows with the session), as
        they stand now (a call made meanwhile is among them), while the turn is still
        the session's ``turns``-th.
        """
        try:
            turn = session.turns[-1] if session.turns else {}
            if session.count != turns or turn.get("system") is not None:
                return
            request = _request_of(turn, turn.get("tool_calls") or ())
            history = session.turns[:-1]
            await self._calls.speculate(session.id, "call", history, request, turn=turns)
        finally:
            self._done()

    def speculate_chain(
        self,
        session_id: str,
        turns: int,
        asked: Mapping[str, Any],
        call: ToolCall,
        result: str,
        p: float,
    ) -> None:
        """
        A call run ahead for the session's current turn (its ``turns``-th of all,
        :attr:`EngineSession.count`, asked with the request ``asked``) returned before its agent asked for it: the calls that
        would follow it start now, forecast as if the agent had made it, each of its
        probability times ``p`` (the call's own), while the agent is still deciding on
        that call. Not when the turn was answered or another began. A call that
        returned before the request's turn was recorded (a fast tool, a slow context)
        follows the request as it was asked.
        """
        session = self._sessions.get(session_id)
        if session is None or self._tg is None:
            return
        turn: Mapping[str, Any]
        if session.count == turns:
            turn, history = session.turns[-1], session.turns[:-1]
            if turn.get("system") is not None:
                return
        elif session.count == turns - 1:
            turn, history = asked, session.turns
        else:
            return
        ahead = {"name": call.name, "args": dict(call.args), "read_only": True, "result": result}
        request = _request_of(turn, [*(turn.get("tool_calls") or ()), ahead])
        self.pending += 1
        self._tg.start_soon(
            self._speculate_now, session_id, list(history), request, "call", turns, p
        )

    async def settled(self) -> None:
        """
        Wait until the events sent so far and the requests' speculations are done.
        """
        while self.pending:
            if self._settled.is_set():
                self._settled = anyio.Event()
            await self._settled.wait()

    def _done(self) -> None:
        """
        One piece of the work :meth:`settled` waits for is done.
        """
        self.pending -= 1
        if not self.pending:
            self._settled.set()

    async def _speculate_now(
        self,
        session_id: str,
        history: list[dict[str, Any]],
        request: dict[str, Any],
        moment: Literal["request", "call"],
        turn: int,
        given: float = 1.0,
    ) -> None:
        try:
            await self._calls.speculate(
                session_id, moment, history, request, turn=turn, given=given
            )
        finally:
            self._done()

    async def _run(self, events: MemoryObjectReceiveStream[tuple[str, str]]) -> None:
        async with events:
            async for kind, session_id in events:
                await self._stand_aside()
                try:
                    await self._record_due()
                    await self._learn(kind, session_id)
                except Exception:  # a bug in learning must never stop the serving
                    logger.exception("learning from %s of session %s failed", kind, session_id)
                finally:
                    self._done()
                await anyio.lowlevel.checkpoint()

    async def _record_due(self) -> None:
        """
        Record the exchanges of the sessions :meth:`record_soon` named, oldest first.
        """
        while self._due:
            session_id = next(iter(self._due))
            del self._due[session_id]
            session = self._sessions.get(session_id)
            try:
                if session is not None:
                    await self._histories.record(session)
            except Exception:  # a request here then records them
                logger.exception("recording the history of session %s failed", session_id)

    async def _learn(self, kind: str, session_id: str) -> None:
        if kind == "end":
            await self._calls.learn_ended(session_id)
            return
        session = self._sessions.get(session_id)
        if session is None or not session.turns:  # ended, or its turns taken back
            return
        if kind == "restored":  # its exchanges were recorded before (_record_due)
            return
        if kind == "feedback":
            await self._values.learn(session)
            return
        last = session.turns[-1]
        answered = last.get("system") is not None
        if kind == "turn":
            session.learning = False
            if session.shared is not None:
                session.swap.learn_shared(session_id, *session.shared)
                session.shared = None
            if session.think is not None:
                self._think_times.observe(*session.think)
                session.think = None
        if answered:
            await self._calls.speculate(session.id, "reply", list(session.turns), None)
            await self._calls.learn_ongoing(session)
        await self._histories.record(session)  # off the request path
        if kind == "reply" and not self._forecaster.uses_reply:
            return
        try:
            forecast = await self._off_loop(
                self._observe_and_forecast, kind, list(session.turns), session.user, session_id
            )
        except Exception:  # a forecaster's bug must not stop the engine
            logger.exception("forecast failed for session %s", session_id)
            return
        if self._sessions.get(session_id) is not session:
            return  # ended meanwhile
        session.forecast = forecast
        assert self._tg is not None
        self._preloads.preload(session, forecast, self._tg)

    def _observe_and_forecast(
        self, kind: str, turns: list[dict[str, Any]], user: str | None, session_id: str
    ) -> Forecast:
        """
        The learner's CPU work for one event (in its worker thread): name the states of
        requests that came without one, learn from a new turn, forecast the next.
        """
        if self._namer is not None:
            for turn in turns:
                if turn.get("state") is None and not turn.get("named"):
                    turn["state"] = self._namer.encode(turn.get("text") or "")
                    turn["named"] = True
        if kind == "turn":
            self._forecaster.observe(turns, user)
        return self._forecaster.forecast(turns, user, session_id)


def _request_of(turn: Mapping[str, Any], calls: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """
    The request of a turn not answered yet, as the call predictor is asked with it
    after ``calls`` (copies: the turn may change meanwhile).
    """
    return {
        "text": turn.get("text"),
        "state": turn.get("state"),
        "needs": list(turn.get("needs") or ()),
        "system": None,
        "tool_calls": [dict(call) for call in calls],
    }
