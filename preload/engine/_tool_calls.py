"""
The engine's tool calls, as the agent makes them: :meth:`~ToolCalls.call` (served from a
speculative result, or run now), a call recorded that the engine did not run, tools
wrapped to go through the engine, and what was speculated. :class:`PreloadEngine`
inherits them; the speculation itself is the call side's (``_calls.py``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ..calls import (
    MAX_CALLS_PER_TURN,
    CallStatistics,
    SpeculatedCall,
    call_key,
    check_name,
    context_parameters,
    in_context,
    in_session,
    through_engine,
)
from ._base import EngineBase
from ._history import HistorySide
from ._inputs import check_id, check_optional_id, check_type

if TYPE_CHECKING:
    from ._calls import CallSide
    from ._session import EngineSession

__all__ = ["ToolCalls"]

logger = logging.getLogger(__name__)


class ToolCalls(EngineBase):
    """
    The tool-call methods of :class:`~preload.engine.PreloadEngine`, over the
    engine's call side, sessions and learner.
    """

    _calls: CallSide
    #: A turn's calls past ``MAX_CALLS_PER_TURN`` were said (once).
    _told_calls_cap: bool

    async def call(
        self,
        session_id: str,
        name: str,
        args: Mapping[str, Any] | None = None,
        *,
        deadline_s: float | None = None,
        call_id: str | None = None,
    ) -> str:
        """
        Make a tool call for the session's current request and return its result.

        A read-only call is served from its speculative result when that is warm or in
        flight (joined), else run now through the cache, so that the tenant's sessions
        share the result of the same call. A call that is not read-only always runs,
        and its result is never cached. Either way the call and its result join the
        session's last turn (its history, and what the call forecaster learns from),
        up to ``MAX_CALLS_PER_TURN`` (32) calls a turn: later ones run but are not
        recorded (a warning says so once).

        Args:
            session_id: The conversation whose request makes the call.
            name: The tool.
            args: Its arguments: a mapping of strings to JSON values.
            deadline_s: How long to wait for the result (``calls.deadline_s`` when None).
            call_id: The call's own id (at most ``MAX_ID_CHARS`` characters), which
                makes it safe to retry: the same call (tool and arguments) under an id
                the session's last turn already holds (:meth:`repeated_call`) is not
                run again, and its recorded result is returned (as recorded: cut to
                ``limits.max_reply_chars``). A call that failed was not recorded, and
                runs again.

        Returns:
            The tool's result, as text.

        Raises:
            UnknownToolError: No call source knows ``name``.
            TypeError: ``args`` are not a mapping of strings to JSON values, or
                ``call_id`` is not a string.
            ValueError: ``name`` is empty, ``args`` are above their size limit, or
                ``call_id`` is above ``MAX_ID_CHARS`` or was given to another call
                (another tool, or other arguments) in this turn.
            TimeoutError: No result within the deadline.
            Exception: What the tool raised.

        .. versionadded:: 0.3
        .. versionchanged:: 0.10
           ``call_id``.
        """
        self._check_open()
        check_id("session_id", session_id)
        check_optional_id("call_id", call_id)
        args = dict(args or {})
        checked = self._calls.check(name, args)
        if call_id is not None:
            done = self.repeated_call(session_id, call_id, name, args)
            if done is not None:
                return done
        session = self._session(session_id, None)
        result, read_only = await self._calls.call(session_id, name, args, checked, deadline_s)
        if session.turns and self._record(session, name, args, read_only, result, call_id):
            self._learner.speculate_after_call(session)
        return result

    def repeated_call(
        self, session_id: str, call_id: str, name: str, args: Mapping[str, Any]
    ) -> str | None:
        """
        The recorded result of the call with id ``call_id`` in the session's last turn
        (see :meth:`call`), when that call is of the tool ``name`` with ``args``; None
        when the turn holds no call with that id.

        Raises:
            ValueError: The id was given to another call (another tool, or other
                arguments) in this turn.

        .. versionadded:: 0.10
        """
        session = self._sessions.get(session_id)
        if session is None or not session.turns:
            return None
        for done in reversed(session.turns[-1].get("tool_calls") or ()):
            if done.get("call_id") != call_id:
                continue
            other = done.get("name")
            if other != name:
                raise ValueError(
                    f"call_id {call_id!r} was given to another call in this turn: of {other!r}"
                )
            if call_key(name, done.get("args") or {}) != call_key(name, args):
                raise ValueError(
                    f"call_id {call_id!r} was given to another call in this turn: of "
                    f"{name!r} with other arguments"
                )
            return str(done.get("result") or "")
        return None

    def record_call(
        self,
        session_id: str,
        name: str,
        args: Mapping[str, Any] | None,
        result: str,
        *,
        call_id: str | None = None,
    ) -> bool:
        """
        Record a tool call the agent made without the engine, with its result: it
        joins the session's last turn as the calls of :meth:`call` do (the history a
        later request's window holds, and what the call forecaster learns from), as a
        call that is not read-only. The engine never runs, serves or shares it. The
        adapters of :mod:`preload.integrations` record this way the calls of tools
        that are not wrapped (a tool the engine runs, :meth:`knows_tool`, is recorded
        by :meth:`call`).

        Args:
            session_id: The conversation whose request made the call.
            name: The tool.
            args: Its arguments: a mapping of strings to JSON values.
            result: What it returned, as text (cut to ``limits.max_reply_chars``).
            call_id: The call's own id (see :meth:`call`).

        Returns:
            Whether the call was recorded: not when the session has no turn yet, when
            the turn already holds the call under ``call_id``, or when the turn holds
            ``MAX_CALLS_PER_TURN`` (32) calls already.

        Raises:
            TypeError: ``args`` are not a mapping of strings to JSON values, or
                ``result`` or ``call_id`` is not a string.
            ValueError: ``name`` is empty, ``args`` are above their size limit, or
                ``call_id`` is above ``MAX_ID_CHARS`` or was given to another call in
                this turn.

        .. versionadded:: 0.12
        """
        self._check_open()
        check_id("session_id", session_id)
        check_optional_id("call_id", call_id)
        check_type("result", result, str)
        args = dict(args or {})
        call_key(check_name(name), args)  # checks the arguments
        session = self._sessions.get(session_id)
        if session is None or not session.turns:
            return False
        if call_id is not None and self.repeated_call(session_id, call_id, name, args) is not None:
            return False
        if not self._record(session, name, args, False, result, call_id):
            return False
        self._learner.speculate_after_call(session)
        return True

    def knows_tool(self, name: str) -> bool:
        """
        Whether a call source knows the tool ``name``: :meth:`call` runs it (and
        records its calls).

        .. versionadded:: 0.12
        """
        return self._calls.knows(name)

    def _record(
        self,
        session: EngineSession,
        name: str,
        args: dict[str, Any],
        read_only: bool,
        result: str,
        call_id: str | None,
    ) -> bool:
        """
        The call joins the session's last turn, its result cut to
        ``limits.max_reply_chars``; not past ``MAX_CALLS_PER_TURN`` calls (said once).
        Returns whether it was recorded.
        """
        calls = session.turns[-1].setdefault("tool_calls", [])
        if len(calls) >= MAX_CALLS_PER_TURN:
            if not self._told_calls_cap:
                self._told_calls_cap = True
                logger.warning(
                    "session %s: a turn made more than %d tool calls; the later ones run "
                    "but are not recorded (not in the history, and a call id does not "
                    "make them safe to retry); said once",
                    session.id,
                    MAX_CALLS_PER_TURN,
                )
            return False
        recorded: dict[str, Any] = {"name": name, "args": args, "read_only": read_only}
        if call_id is not None:
            recorded["call_id"] = call_id
        limit = self.config.limits.max_reply_chars
        calls.append({**recorded, "result": result[:limit]})
        self._last_turn_changed(session)
        return True

    def _last_turn_changed(self, session: EngineSession) -> None:
        """
        The session's last turn got its reply or a call. When its exchange is in the
        history already (:meth:`history` read it mid-turn, or the call came after the
        reply), the learner rebuilds the history from the turns, as :meth:`restore`
        does; the exchange being entered now counts as in it.
        """
        if HistorySide.entered(session) >= len(session.turns):
            HistorySide.forget(session)
            self._learner.record_soon(session)

    def tool(
        self, function: Callable[..., Awaitable[Any]], *, name: str | None = None, read_only: bool
    ) -> Callable[..., Awaitable[str]]:
        """
        Register an async tool function with the engine and return a function with its
        signature that calls it through :meth:`call`, for the session of the current
        request (set by :meth:`handle` in the task that awaited it, or by
        :meth:`session`). The wrapped function returns the result as text (JSON when
        the tool returns something else), so an agent framework takes it unchanged.

        A tool that takes an agent framework's run context (a parameter annotated
        ``RunContext``, ``RunContextWrapper``, ``ToolContext`` or ``ToolRuntime``) gets
        the one it is called with, and the call is the other arguments; the engine runs
        it only when it is called, as a call that is not read-only whatever
        ``read_only`` says: it has no context to run it ahead with, and the result may
        depend on the context, so it is not shared with other sessions.

        Args:
            function: The tool.
            name: Its name (the function's when None).
            read_only: Whether it only reads, so that it may be run speculatively.

        Raises:
            TypeError: ``function`` is not an async function.
            ValueError: The name is taken or invalid.

        .. versionadded:: 0.3
        .. versionchanged:: 0.11
           Tools that take a framework's run context.
        """
        tool_name = name or function.__name__
        contexts = context_parameters(inspect.signature(function))
        if contexts and read_only:
            logger.info(
                "tool %r takes the framework's run context (%s): the engine runs it only "
                "when it is called, as a call that is not read-only",
                tool_name,
                ", ".join(contexts),
            )
        registered = in_context(function, tool_name) if contexts else function
        self._calls.tools.add(tool_name, registered, read_only=read_only and not contexts)
        return through_engine(self.call, function, tool_name)

    @staticmethod
    def session(session_id: str, *, call_id: str | None = None) -> AbstractContextManager[None]:
        """
        Within the block, tools wrapped by :meth:`tool` call for ``session_id``; the
        first of them called makes its call under ``call_id`` (the agent framework's
        id of the tool call, see :meth:`call`), so that a framework that runs the same
        tool call again (a resumed run) gets its recorded result.

        .. versionadded:: 0.3
        .. versionchanged:: 0.11
           ``call_id``.
        """
        return in_session(session_id, call_id=call_id)

    def speculations_of(self, session_id: str) -> list[SpeculatedCall]:
        """
        The calls speculated for a session so far, with their probability, moment,
        evidence and status (``pending`` or ``used``), oldest first.

        .. versionadded:: 0.3
        """
        return self._calls.speculations_of(session_id)

    def call_statistics(self) -> CallStatistics:
        """
        A frozen snapshot of the engine's call counters: the agent's calls, how they
        were served, and the speculative calls made, used, wasted and skipped (the
        call loader's own :meth:`~preload.loading.Preloader.statistics` count its
        loads, failures and cool-downs).

        .. versionadded:: 0.3
        """
        return self._calls.statistics()
