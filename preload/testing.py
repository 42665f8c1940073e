"""
Test doubles for code that uses preload: sources and call sources with scripted
latency and failures, and a call predictor that says what a test tells it to.

They serve unit tests and failure injection; figures always come from the real parts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import anyio

from graph import CallGuess

from ._errors import MissingItemError
from .calls import call_key

__all__ = ["ScriptedCallPredictor", "ScriptedCallSource", "ScriptedSource"]


class ScriptedSource:
    """
    A source whose behaviour a test controls.

    Args:
        items: The texts by key.
        name: The source's name.
        latency: Seconds every fetch sleeps (on the event loop's clock).
        gate: When given, every fetch waits for this event before answering.
        fail: Exceptions to raise, by key.
        hang: Keys whose fetch never returns.
        garbage: Values returned as they are, by key (to inject non-text answers).
        fail_first: How many of the first fetches of a key fail (with a
            ``ConnectionError``) before it answers, by key (to test retries).

    Attributes:
        calls: Fetches started, by key.
        started: Set when the first fetch starts.
        active: Fetches running now.
        peak: The most fetches that ran at once.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        items: Mapping[str, str],
        *,
        name: str = "scripted",
        latency: float = 0.0,
        gate: anyio.Event | None = None,
        fail: Mapping[str, BaseException] | None = None,
        hang: frozenset[str] | set[str] = frozenset(),
        garbage: Mapping[str, object] | None = None,
        fail_first: Mapping[str, int] | None = None,
    ) -> None:
        self.name = name
        self.items = dict(items)
        self.latency = latency
        self.gate = gate
        self.fail = dict(fail or {})
        self.hang = set(hang)
        self.garbage = dict(garbage or {})
        self.fail_first = dict(fail_first or {})
        self.calls: Counter[str] = Counter()
        self.started = anyio.Event()
        self.active = 0
        self.peak = 0

    def __contains__(self, key: object) -> bool:
        return key in self.items or key in self.fail or key in self.hang or key in self.garbage

    async def fetch(self, key: str) -> str:
        """
        Answer as scripted.
        """
        self.calls[key] += 1
        self.started.set()
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if key in self.hang:
                await anyio.sleep_forever()
            if self.latency:
                await anyio.sleep(self.latency)
            if key in self.fail:
                raise self.fail[key]
            if self.calls[key] <= self.fail_first.get(key, 0):
                raise ConnectionError(f"{self.name}: scripted failure {self.calls[key]} of {key}")
            if key in self.garbage:
                return self.garbage[key]  # type: ignore[return-value]
            try:
                return self.items[key]
            except KeyError:
                raise MissingItemError(self.name, key) from None
        finally:
            self.active -= 1


class ScriptedCallSource:
    """
    A call source whose tools a test controls: each answers with a text naming the
    call, after the scripted latency, unless told to fail or hang.

    Args:
        tools: Whether each tool only reads, by name.
        name: The source's name.
        latency: Seconds every call sleeps (on the event loop's clock).
        gate: When given, every call waits for this event before answering.
        fail: Exceptions to raise, by tool name.
        hang: Tools whose calls never return.

    Attributes:
        calls: Calls made, by call key (:func:`~preload.calls.call_key`).
        made: Every call made, in order, as ``(name, args)``.
        started: Set when a call starts (replace it with a new event to wait for the
            next).

    .. versionadded:: 0.3
    .. versionchanged:: 0.28
       ``started``.
    """

    def __init__(
        self,
        tools: Mapping[str, bool],
        *,
        name: str = "backend",
        latency: float = 0.0,
        gate: anyio.Event | None = None,
        fail: Mapping[str, BaseException] | None = None,
        hang: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        self.name = name
        self.tools = dict(tools)
        self.latency = latency
        self.gate = gate
        self.fail = dict(fail or {})
        self.hang = set(hang)
        self.calls: Counter[str] = Counter()
        self.made: list[tuple[str, dict[str, Any]]] = []
        self.started = anyio.Event()

    def read_only(self, name: str) -> bool | None:
        """
        As scripted; None for an unknown tool.
        """
        return self.tools.get(name)

    async def call(self, name: str, args: Mapping[str, Any]) -> str:
        """
        Answer as scripted.
        """
        self.calls[call_key(name, args)] += 1
        self.made.append((name, dict(args)))
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if name in self.hang:
            await anyio.sleep_forever()
        if self.latency:
            await anyio.sleep(self.latency)
        if name in self.fail:
            raise self.fail[name]
        return f"{name} answered {sorted(args.items())}"


class ScriptedCallPredictor:
    """
    A call predictor that gives the guesses a test scripted, at either moment.

    Args:
        guesses: What to forecast, as ``(name, args, p)``.
        moments: When to give them: ``"request"``, ``"reply"``, ``"call"`` (after a call
            the request made: it holds ``tool_calls``), or several.

    Attributes:
        asked: Every question, as ``(session_id, turns in history, request given)``.
        observed: The sessions learned from, as their turns.

    .. versionadded:: 0.3
    """

    def __init__(
        self,
        guesses: Sequence[tuple[str, Mapping[str, Any], float]],
        *,
        moments: frozenset[str] = frozenset({"request", "reply"}),
    ) -> None:
        self.guesses = [
            CallGuess(name=n, args=dict(a), p=p, evidence=dict.fromkeys(a, "script"))
            for n, a, p in guesses
        ]
        self.moments = moments
        self.asked: list[tuple[str, int, bool]] = []
        self.observed: list[list[Mapping[str, Any]]] = []
        self.contexts: list[int] = []

    def predict_calls(
        self,
        session_id: str,
        history: Sequence[Mapping[str, Any]],
        request: Mapping[str, Any] | None,
        *,
        k: int,
    ) -> Sequence[CallGuess]:
        """
        The scripted guesses, when asked at a scripted moment.
        """
        self.asked.append((session_id, len(history), request is not None))
        moment = "reply" if request is None else "call" if request.get("tool_calls") else "request"
        return self.guesses[:k] if moment in self.moments else []

    def observe_session(
        self, turns: Sequence[Mapping[str, Any]], user: str | None, *, learned: int = 0
    ) -> None:
        """
        Remember the turns learned from (``observed``) and how many turns before them
        were handed over as their context (``contexts``).
        """
        self.observed.append(list(turns)[learned:])
        self.contexts.append(learned)
