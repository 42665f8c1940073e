"""
A virtual clock for asyncio: time jumps to the next timer instead of passing.

:class:`VirtualClockLoop` is an ordinary selector event loop whose ``time()`` is a
counter and whose selector, when nothing is ready, advances that counter by the
timeout instead of sleeping. Everything built on the loop's timers (``anyio.sleep``,
``fail_after``, aiocache's TTLs) then runs on simulated time, as fast as the CPU
allows and in the same order on every run. Work handed to threads finishes in real
time, so a replay keeps CPU work on the loop.
"""

from __future__ import annotations

import asyncio
import selectors

__all__ = ["VirtualClockLoop"]

#: Real seconds to wait for a thread when no timer is pending before calling it a
#: deadlock of the simulation.
DEADLOCK_S = 30.0


class _VirtualSelector(selectors.SelectSelector):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready:
            return ready
        if timeout is None:
            # Nothing scheduled: only a thread can wake the loop now.
            ready = super().select(DEADLOCK_S)
            if not ready:
                raise RuntimeError(
                    "virtual clock: every task waits and no timer is pending (deadlock)"
                )
            return ready
        if timeout > 0:
            self.now += timeout
        return []


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """
    An asyncio event loop on simulated time starting at 0.

    Use it as ``anyio.run(main, backend_options={"loop_factory": VirtualClockLoop})``.

    .. versionadded:: 0.1
    """

    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(self._virtual)

    def time(self) -> float:
        """
        The simulated time in seconds.
        """
        return self._virtual.now
