"""
Test doubles for code that uses preload: sources with scripted latency and failures.

They serve unit tests and failure injection; figures always come from the real parts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import anyio

from ._errors import MissingItemError

__all__ = ["ScriptedSource"]


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
