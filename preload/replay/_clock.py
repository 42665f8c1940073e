"""
A virtual clock for asyncio: time jumps to the next timer instead of passing.

:class:`VirtualClockLoop` is an ordinary selector event loop whose ``time()`` is a
counter and whose selector, when nothing is ready, sets that counter to the due time
of the earliest timer instead of sleeping. Everything built on the loop's timers
(``anyio.sleep``, ``fail_after``, aiocache's TTLs) then runs on simulated time, as
fast as the CPU allows and in the same order on every run. Work handed to threads
finishes in real time, so a replay keeps CPU work on the loop.

The clock lands on a timer's due time exactly, never on ``now + timeout``: at large
times (past about 1.7e7 s) a nanosecond added to the clock is lost to float rounding,
and a clock that only adds could stop just short of a timer forever. asyncio runs the
timers due before ``time() + clock resolution``; this loop's resolution is at least
one unit in the last place of the time, so a timer due now always runs.
"""

from __future__ import annotations

import asyncio
import math
import selectors
from collections.abc import Callable

__all__ = ["VirtualClockLoop"]

#: Real seconds to wait for a thread when no timer is pending before calling it a
#: deadlock of the simulation.
DEADLOCK_S = 30.0

#: asyncio's own resolution of the monotonic clock (1 ns).
_RESOLUTION_S = 1e-9


class _VirtualSelector(selectors.SelectSelector):
    def __init__(self, next_due: Callable[[], float | None]) -> None:
        super().__init__()
        self.now = 0.0
        self._next_due = next_due

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        due = self._next_due() if timeout is not None else None
        if due is None or not math.isfinite(due):
            # No timer, or only ones that never come due (a sleep of math.inf): only a
            # thread can wake the loop now.
            ready = super().select(DEADLOCK_S)
            if not ready:
                raise RuntimeError(
                    "virtual clock: every task waits and no timer is pending (deadlock)"
                )
            return ready
        # Land on the due time itself: adding the timeout could fall short of it.
        self.now = max(self.now, due)
        return []


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """
    An asyncio event loop on simulated time starting at 0.

    Use it as ``anyio.run(main, backend_options={"loop_factory": VirtualClockLoop})``.

    .. versionadded:: 0.1
    """

    def __init__(self) -> None:
        self._virtual = _VirtualSelector(self._next_due)
        super().__init__(self._virtual)

    def time(self) -> float:
        """
        The simulated time in seconds.
        """
        return self._virtual.now

    @property
    def _clock_resolution(self) -> float:
        # asyncio runs the timers due before time() + _clock_resolution: at least one
        # unit in the last place, so that the sum never rounds back to time().
        return max(_RESOLUTION_S, math.ulp(self._virtual.now))

    @_clock_resolution.setter
    def _clock_resolution(self, value: float) -> None:
        pass  # set by BaseEventLoop.__init__; this loop derives it from the time

    def _next_due(self) -> float | None:
        # The loop keeps its timers in a heap, earliest first; asyncio drops the
        # cancelled ones from its head before it asks the selector to wait.
        scheduled: list[asyncio.TimerHandle] = self._scheduled  # type: ignore[attr-defined]
        return scheduled[0].when() if scheduled else None
