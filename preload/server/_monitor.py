"""
What the server watches about itself: the event loop's lag, its request times and the
pauses of Python's garbage collector.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import anyio
import anyio.lowlevel

__all__ = ["LoopMonitor", "Reservoir", "server_timing", "watch_gc"]


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
    Measures the event loop's lag: every ``interval_s``, how long a task that yields
    waits before the loop runs it again (the callbacks ready before it run first). A
    loop that something blocks makes it wait as long. Measured with
    ``time.perf_counter``: uvloop's clock counts whole milliseconds.

    Args:
        interval_s: How often to measure.
    """

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.lags = Reservoir(30_000)

    async def run(self) -> None:
        """
        Measure until cancelled.
        """
        while True:
            await anyio.sleep(self.interval_s)
            start = time.perf_counter()
            await anyio.lowlevel.checkpoint()
            self.lags.add(time.perf_counter() - start)


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
