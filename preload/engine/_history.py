"""
The engine's history side: the session's own conversation, compressed to fit, that a
window holds. The learner records each answered exchange in a worker thread as replies
arrive; a request catches up on what is left that is cheap to record, and never does
work that grows with a message's size.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from ..history import CompressedConversation, agent_side, exchange_chars
from ..window._swap import history_budget

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._tokens import TokenCounter
    from ._session import Counters, EngineSession

__all__ = ["HISTORY_OFFLOAD_CHARS", "INLINE_HISTORY_CHARS", "HistorySide"]

logger = logging.getLogger(__name__)

#: Exchanges longer than this (characters of the request, the calls with their results
#: and the reply) are recorded in the history by the learner in a worker thread (about
#: 10 ms of work a KB).
HISTORY_OFFLOAD_CHARS = 2_000

#: An exchange a request lacks (its reply reached another replica, or came a moment
#: ago) is prepared on the loop when it is at most this long (characters, as above):
#: about 0.3 ms of work (p99 1 ms), less than what a hop to a worker thread
#: costs the request while the learner's thread holds the interpreter.
INLINE_HISTORY_CHARS = 500


class HistorySide:
    """
    Records the sessions' exchanges in their histories.

    Args:
        counter: Counts the tokens of what is recorded.
        counters: The engine's counters (``history_catch_ups``).
        offload: Prepare exchanges in worker threads (off for virtual-clock replays).
        serving: The requests' own worker thread (it never queues behind the learner's).
    """

    def __init__(
        self,
        counter: TokenCounter,
        counters: Counters,
        *,
        offload: bool,
        serving: anyio.CapacityLimiter,
    ) -> None:
        self.counter = counter
        self._counters = counters
        self._offload = offload
        self._serving = serving
        self._cpu = anyio.CapacityLimiter(1)  # one worker thread for the learner's history

    @staticmethod
    def entered(session: EngineSession) -> int:
        """
        How many of the session's turns are in its history, the exchange being entered
        now counted.
        """
        return session.recorded + session.recording.locked()

    @staticmethod
    def forget(session: EngineSession) -> None:
        """
        Drop the session's history, to be recorded again from the turns (a turn in it
        changed): an exchange being entered now ends in the history dropped, and is
        not counted (:meth:`_record_next`).
        """
        session.history = None
        session.recorded = 0

    def _conversation(self, session: EngineSession) -> CompressedConversation:
        if session.history is None:
            budget = session.config.budget
            cap = budget.categories.get("user_history")
            room = cap.max if cap is not None and cap.max else budget.total_tokens
            session.history = CompressedConversation(
                history_budget(room),  # what the window asks of it
                counter=self.counter,
                raw_turns=session.config.compression.history_raw_turns,
            )
        return session.history

    def history(self, session: EngineSession, *, complete: bool) -> CompressedConversation:
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
        while self._ready(session, session.recorded, complete) and not session.recording.locked():
            turn = session.turns[session.recorded]
            if self._offload and _chars(turn) > HISTORY_OFFLOAD_CHARS:
                break
            history.add_exchange(*_exchange(turn), score=not self._more(session, complete))
            session.recorded += 1
            self._counters.history_catch_ups += complete
        return history

    def catch_up(self, session: EngineSession, tg: anyio.abc.TaskGroup) -> anyio.Event | None:
        """
        Start bringing the history a request's window holds up to date, when it lacks
        exchanges a worker thread should prepare (:meth:`_caught_up`), in the engine's
        task group, so that the request's cache reads go on meanwhile; the event is
        set once it is done. None when there is nothing to wait for.
        """
        if not self._offload or session.recorded >= len(session.turns) or self._long(session):
            return None
        done = anyio.Event()

        async def catch_up() -> None:
            try:
                await self._caught_up(session)
            except Exception:  # the window then holds the history as it is
                logger.exception("catching up the history of session %s failed", session.id)
            finally:
                done.set()

        tg.start_soon(catch_up)
        return done

    async def _caught_up(self, session: EngineSession) -> CompressedConversation:
        """
        The history a request's window holds. Exchanges the learner has not recorded
        yet (a reply that came a moment ago, turns another replica served) are
        prepared in the requests' worker thread first, as the learner would, so that
        the loop serves other requests meanwhile; a long one is left to the learner.
        """
        if self._offload:
            alone = len(session.turns) - session.recorded <= 1  # else a run, off the loop
            while await self._record_next(session, complete=True, inline=alone):
                pass
        return self.history(session, complete=True)

    async def record(self, session: EngineSession) -> None:
        """
        The learner's part of the history: each answered exchange prepared (its
        levels, tokens and facts: the work that grows with its size) and entered (work
        that grows with its facts) in a worker thread while the loop serves other
        requests; a long one is entered on the loop, since no request waits for it
        (:meth:`catch_up`). Without offloading, short exchanges are recorded inline.
        """
        if not self._offload:
            self.history(session, complete=False)
        else:
            while await self._record_next(session, complete=False):
                pass
        # the turns recorded now may go, the oldest beyond limits.max_session_turns
        session.drop_recorded(session.config.limits.max_session_turns)

    async def _record_next(
        self, session: EngineSession, *, complete: bool, inline: bool = False
    ) -> bool:
        """
        Record the session's next exchange, prepared and entered in a worker thread
        (the learner's history thread, or for a request, ``complete``, the requests'
        own: it never queues behind the learner's work for other sessions; a request
        records a short one, ``INLINE_HISTORY_CHARS``, on the loop when it is the
        only one to record, ``inline``: the facts' scoring, which grows with the
        history, then stays off the loop for a run of them); False when there is
        none to record: all are, the last is unanswered and not ``complete``, or (for a
        request) it is long.
        """
        if complete and self._long(session):  # never wait behind a long one
            return False
        if not self._ready(session, session.recorded, complete):
            # nothing to take the lock for: taking it yields to the loop while held,
            # and a reply or call that came then found the last turn counted as being
            # entered, and had the whole history rebuilt from the turns
            return False
        async with session.recording:
            if not self._ready(session, session.recorded, complete) or (
                complete and self._long(session)
            ):
                return False  # recorded meanwhile, or changed
            turn = session.turns[session.recorded]
            history = self._conversation(session)
            user, agent = _exchange(turn)
            size = _chars(turn)
            score = not self._more(session, complete)  # with the last of a run alone
            limiter = self._serving if complete else self._cpu
            if complete and inline and size <= INLINE_HISTORY_CHARS:
                history.add_exchange(user, agent, score=score)  # short: cheaper than a thread
            elif size <= HISTORY_OFFLOAD_CHARS:
                # prepared and entered in a worker thread, off the loop; a request whose
                # window needs the history meanwhile waits for it (its catch-up takes the
                # recording lock), so none reads it half entered
                add = functools.partial(history.add_exchange, user, agent, score=score)
                await anyio.to_thread.run_sync(add, limiter=limiter)
            else:  # a long one, which no request waits for: entered here
                prepared = await anyio.to_thread.run_sync(
                    history.prepare, user, agent, limiter=limiter
                )
                history.add_prepared(prepared, score=score)
            if session.history is history:  # else restore dropped it meanwhile
                session.recorded += 1
                self._counters.history_catch_ups += complete
            return True

    @staticmethod
    def _ready(session: EngineSession, index: int, complete: bool) -> bool:
        """
        Whether the session's turn ``index`` (of those kept) can join the history: it
        is answered, or it is not the last, or (``complete``) it may be unanswered.
        """
        if index >= len(session.turns):
            return False
        return (
            complete
            or index < len(session.turns) - 1
            or session.turns[index].get("system") is not None
        )

    @classmethod
    def _more(cls, session: EngineSession, complete: bool) -> bool:
        """
        Whether the exchange after the one being recorded (``session.recorded``) is
        recorded right after it: its facts are then scored with that one alone.
        """
        return cls._ready(session, session.recorded + 1, complete)

    @staticmethod
    def _long(session: EngineSession) -> bool:
        """
        The session's next exchange to record is too long for a request to wait for.
        """
        if session.recorded >= len(session.turns):
            return False
        return _chars(session.turns[session.recorded]) > HISTORY_OFFLOAD_CHARS


def _exchange(turn: Mapping[str, Any]) -> tuple[str, str]:
    """
    A turn's exchange as its history records it: the request; the tool calls, each
    with its result, then the reply.
    """
    return turn["text"] or "", agent_side(turn.get("tool_calls") or (), turn.get("system") or "")


def _chars(turn: Mapping[str, Any]) -> int:
    """
    The characters of a turn's exchange, counted as far as the thresholds need.
    """
    return exchange_chars(turn, HISTORY_OFFLOAD_CHARS)
