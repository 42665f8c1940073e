"""
A session's turns as the engine gives them and takes them back (:class:`StoredTurns`,
which :class:`PreloadEngine` inherits: what keeps a session in a store that replicas
share): JSON-ready copies of their known keys, kept within the ``[limits]`` when taken
back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..calls import MAX_CALLS_PER_TURN
from ._base import EngineBase
from ._history import HistorySide
from ._inputs import check_id

if TYPE_CHECKING:
    from .._config import LimitsConfig
    from ._experiment import ExperimentSide

__all__ = ["StoredTurns", "exchange_parts", "stored_turn"]


class StoredTurns(EngineBase):
    """
    The methods of :class:`~preload.engine.PreloadEngine` that give a session's turns
    and take them back, over the engine's sessions, experiment and learner.
    """

    _experiment: ExperimentSide

    def turns_of(self, session_id: str, start: int = 0) -> list[dict[str, Any]]:
        """
        The session's turns from ``start`` on, as JSON-ready mappings (``text``,
        ``state``, ``needs``, ``system``: the reply, ``tool_calls`` with their
        results, ``request_id`` when :meth:`handle` was given one, ``at``: when
        :meth:`handle` served the request, in seconds since the epoch), copies; empty for
        a session the engine does not know. ``start`` counts every turn the session
        had, but the engine keeps only its last ``limits.max_session_turns`` (an older
        one goes once the history recorded it): the turns it no longer has are not
        given. A negative ``start`` counts from the end, as in a slice (``-1``: the last
        turn alone). With :meth:`restore`, what keeps a session in a store that
        replicas share.

        .. versionadded:: 0.4
        .. versionchanged:: 0.11
           A negative ``start``.
        .. versionchanged:: 0.14
           Only the last ``limits.max_session_turns`` turns are kept.
        .. versionchanged:: 0.19
           ``at``.
        """
        session = self._sessions.get(session_id)
        if session is None:
            return []
        if start > 0:
            start = max(0, start - session.first)
        return [stored_turn(turn) for turn in session.turns[start:]]

    def restore(
        self,
        session_id: str,
        turns: Sequence[Mapping[str, Any]],
        *,
        start: int = 0,
        user: str | None = None,
        record: bool = False,
    ) -> None:
        """
        Make the session's turns from ``start`` on those given (as :meth:`turns_of`
        gives them; another replica served them, or a stored history seeds them),
        creating the session if need be. Each is kept within ``[limits]`` as a turn
        served here is: its request and reply cut to ``max_request_chars`` and
        ``max_reply_chars``, at most ``MAX_CALLS_PER_TURN`` calls, each result cut to
        ``max_reply_chars``. The history records the new exchanges as it would have: with ``record``, the
        learner records them before its next event; otherwise the next request whose
        window needs them does. When a turn it has recorded changed, it is rebuilt
        from the turns. The turns served here that are dropped or changed leave the
        experiment's counts (a turn served again counts once; one with a request id stays
        counted as first served, see :meth:`handle`); a session left without
        turns is kept, with what it preloaded and speculated, for its request served
        again (:meth:`end_session` ends it). ``start`` counts every turn the session
        had, as :meth:`turns_of`'s does; a negative one counts from the end. A session
        the engine holds no turns of may begin at any ``start`` (the last turns of a
        longer stored session); turns given again from before the ones it keeps
        (``limits.max_session_turns``) are passed over.

        Raises:
            ValueError: ``start`` is past the session's turns.

        .. versionadded:: 0.4
        .. versionchanged:: 0.14
           A negative ``start``; a session may begin past its first turn.
        """
        self._check_open()
        check_id("session_id", session_id)
        if session_id not in self._sessions and not turns:
            return  # nothing to take back, nothing to begin
        session = self._session(session_id, user)
        if start < 0:
            start = max(0, session.count + start)
        if not session.turns:
            session.first = start  # the session (as this engine holds it) begins there
        if start > session.count:
            raise ValueError(
                f"start {start} is past session {session_id!r}'s {session.count} turns"
            )
        if start < session.first:  # turns that went from here: passed over
            turns, start = turns[session.first - start :], session.first
        new = [stored_turn(turn, self.config.limits) for turn in turns]
        for turn in new:  # counted by whoever served them
            request_id = turn.get("request_id")
            if request_id is not None and request_id not in session.request_ids:
                session.request_ids.append(request_id)
        # the exchange being recorded now counts as recorded: if it changed, the
        # recording ends in the history dropped here, and is not counted (HistorySide)
        upto = HistorySide.entered(session)
        at = start - session.first  # in the turns kept
        if upto > at:
            old = session.turns[at:upto]
            same = len(new) >= len(old) and all(
                exchange_parts(a) == exchange_parts(b) for a, b in zip(old, new, strict=False)
            )
            if not same:
                HistorySide.forget(session)
        self._experiment.take_back(session, start, new)
        if len(new) < len(session.turns) - at:  # a turn dropped: its answer too
            session.answered_at = None
        session.turns[at:] = new
        session.recorded = min(session.recorded, len(session.turns))
        if record and session.turns:
            self._learner.record_soon(session)


def exchange_parts(turn: Mapping[str, Any]) -> tuple[Any, ...]:
    """
    What a turn's exchange in the history is made of: its request, its calls with their
    results, and its reply.
    """
    return turn.get("text"), turn.get("tool_calls") or [], turn.get("system")


def stored_turn(turn: Mapping[str, Any], limits: LimitsConfig | None = None) -> dict[str, Any]:
    """
    A turn as :meth:`PreloadEngine.turns_of` gives it: its known keys, copied; within
    ``limits`` when given (:meth:`PreloadEngine.restore`).
    """
    text, reply = turn.get("text") or "", turn.get("system")
    calls = [dict(call) for call in list(turn.get("tool_calls") or ())[:MAX_CALLS_PER_TURN]]
    if limits is not None:
        text = text[: limits.max_request_chars]
        reply = reply[: limits.max_reply_chars] if isinstance(reply, str) else reply
        for call in calls:
            if isinstance(call.get("result"), str):
                call["result"] = call["result"][: limits.max_reply_chars]
    out: dict[str, Any] = {
        "text": text,
        "state": turn.get("state"),
        "needs": list(turn.get("needs") or ()),
        "system": reply,
    }
    if calls:
        out["tool_calls"] = calls
    request_id = turn.get("request_id")
    if isinstance(request_id, str) and request_id:
        out["request_id"] = request_id
    at = turn.get("at")
    if isinstance(at, int | float) and not isinstance(at, bool) and math.isfinite(at):
        out["at"] = float(at)
    return out
