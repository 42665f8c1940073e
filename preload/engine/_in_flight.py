"""
The requests in flight, which the learner stands aside for: an engine's own, or those of
every engine of a process that shares one (a server's tenants).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio

__all__ = ["RequestsInFlight"]


class RequestsInFlight:
    """
    A count of the requests in flight, and a signal once none is. An engine's learner
    starts no new work while any is (for at most ``PreloadEngine.LEARNER_YIELD_S``), so
    that its worker threads do not take the interpreter from a request. Engines that
    share one process share one of these (``PreloadEngine(requests_in_flight=...)``;
    ``preload serve`` gives its tenants' engines one): a request of one tenant then
    holds every tenant's learner back, as their threads share the interpreter.

    .. versionadded:: 0.15
    """

    def __init__(self) -> None:
        self.count = 0
        self._quiet: anyio.Event | None = None  # set once none is

    @contextmanager
    def mark(self) -> Iterator[None]:
        """
        Count a request in flight while in the block (on the event loop).
        """
        if not self.count:
            self._quiet = anyio.Event()
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1
            if not self.count and self._quiet is not None:
                self._quiet.set()

    async def quiet(self, at_most_s: float) -> None:
        """
        Wait until no request is in flight, at most ``at_most_s`` seconds.
        """
        if self.count and self._quiet is not None:
            with anyio.move_on_after(at_most_s):
                await self._quiet.wait()
