"""
What the server watches about itself: the event loop's lag, its request times and the
pauses of Python's garbage collector.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import anyio
import anyio.lowlevel

__all__ = ["IdleCollector", "LoopMonitor", "Reservoir", "server_timing", "watch_gc"]


class Reservoir:
    """
    The last ``size`` observations (seconds), for quantiles over recent traffic.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self.count = 0
        self.total = 0.0

    def add(self, seconds: float) -> None:
        """
        Record one observation.
        """
        self._values.append(seconds)
        self.count += 1
        self.total += seconds

    def quantiles(self, qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> dict[float, float]:
        """
        The quantiles of the observations kept (0 when there are none).
        """
        ordered = sorted(self._values)
        if not ordered:
            return dict.fromkeys(qs, 0.0)
        return {q: ordered[min(int(q * len(ordered)), len(ordered) - 1)] for q in qs}

    def maximum(self) -> float:
        """
        The largest observation kept.
        """
        return max(self._values, default=0.0)


class LoopMonitor:
    """
    Measures the event loop's lag: every ``interval_s``, how late the loop runs a task
    whose sleep has ended (the time from the moment it was due to the moment it ran).
    Whatever keeps the loop from running it adds to that: callbacks ready before it,
    work that blocks the loop, and a worker thread that holds the interpreter (a C
    routine such as the JSON decoder keeps it until it returns). Measured with
    ``time.perf_counter``; the loop's timers count whole milliseconds (uvloop's), so a
    lag is known to about a millisecond.

    Args:
        interval_s: How often to measure.
        clock: What the lag is read on, in seconds (``time.perf_counter``; tests give
            a clock of their own).

    .. versionchanged:: 0.18
       The lag is counted from the moment the task was due, so that the time a worker
       thread holds the interpreter while the loop waits for its timers counts too
       (before, only the wait of a task that yields was: a thread's hold showed only
       when it fell on that moment).
    """

    def __init__(
        self, interval_s: float = 0.01, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.lags = Reservoir(30_000)
        self._sampled = anyio.Event()  # set when a lag is recorded, then replaced

    async def run(self) -> None:
        """
        Measure until cancelled.
        """
        while True:
            due = self.clock() + self.interval_s
            await anyio.sleep(self.interval_s)
            self.lags.add(max(self.clock() - due, 0.0))
            self._sampled.set()
            self._sampled = anyio.Event()

    async def next_sample(self) -> None:
        """
        Wait until the next lag is recorded (for tests and tools).
        """
        await self._sampled.wait()


class IdleCollector:
    """
    Python's garbage collector, run between requests rather than inside them. A pass
    stops every thread, and Python starts one on an allocation, most often while a
    request is being served (it and the learner allocate), so its pause adds to that
    request's time. While :meth:`serving`, automatic collection is off: the middleware
    counts the requests in flight (:meth:`enter`, :meth:`leave`) and, when the last one
    ends, collects the oldest generation whose count is above its threshold, as Python
    would have. Under a load that never leaves the server idle, :meth:`run` collects
    anyway, every ``check_s``, once the youngest generation holds ``backlog`` times its
    threshold, so memory stays bounded.

    Args:
        thresholds: The generations' thresholds, as :func:`gc.set_threshold` takes.
        backlog: How many thresholds' worth of young objects may wait for an idle
            moment.
        check_s: How often :meth:`run` looks.
    """

    def __init__(
        self, thresholds: tuple[int, int, int], *, backlog: int = 8, check_s: float = 0.05
    ) -> None:
        self.thresholds = thresholds
        self.backlog = backlog
        self.check_s = check_s
        self.in_flight = 0
        self.forced = 0  # passes run with requests in flight (the backlog was full)

    @contextmanager
    def serving(self) -> Iterator[None]:
        """
        Automatic collection off in the block (as it was after it).
        """
        was = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            if was:
                gc.enable()

    def enter(self) -> None:
        """
        A request starts.
        """
        self.in_flight += 1

    def leave(self) -> None:
        """
        A request ended: collect what is due if it was the last in flight.
        """
        self.in_flight -= 1
        if not self.in_flight:
            self.collect_due()

    def collect_due(self) -> int | None:
        """
        Collect the oldest generation whose count is above its threshold (and the
        younger ones with it); the generation, or None when none is due.
        """
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self.thresholds[generation]:
                gc.collect(generation)
                return generation
        return None

    def check(self) -> int | None:
        """
        Collect what is due, requests in flight or not, when the backlog is full.
        """
        if gc.get_count()[0] <= self.backlog * self.thresholds[0]:
            return None
        self.forced += bool(self.in_flight)
        return self.collect_due()

    async def run(self) -> None:
        """
        :meth:`check` every ``check_s``, until cancelled.
        """
        while True:
            await anyio.sleep(self.check_s)
            self.check()


@contextmanager
def watch_gc(pauses: Reservoir) -> Iterator[None]:
    """
    Record in ``pauses`` how long each collection of the garbage collector takes (every
    thread stands still meanwhile: a request in flight waits as long), while in the
    block.
    """
    started = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.add(time.perf_counter() - started[0])

    gc.callbacks.append(callback)
    try:
        yield
    finally:
        gc.callbacks.remove(callback)


def server_timing(durations: Mapping[str, float]) -> str:
    """
    A ``Server-Timing`` header's value: each duration (seconds) by name, in ms.
    """
    return ", ".join(f"{name};dur={seconds * 1000:.3f}" for name, seconds in durations.items())
