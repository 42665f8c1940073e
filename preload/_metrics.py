"""
Metrics: counters kept by the engine, read as one frozen snapshot.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

__all__ = ["Metrics", "MetricsSnapshot"]

#: Upper bounds (seconds) of the load-latency histogram's buckets.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf"))


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSnapshot:
    """
    What the engine has done so far.

    ``hits`` were ready in the cache when their request arrived; ``partial_hits`` were
    being preloaded and the request waited for the rest; ``misses`` were loaded on
    demand. ``wasted`` preloads were never used by the session that caused them.

    .. versionadded:: 0.1
    """

    requests: int = 0
    hits: int = 0
    partial_hits: int = 0
    misses: int = 0
    missing: int = 0
    loads: int = 0
    preloads: int = 0
    preloads_used: int = 0
    wasted: int = 0
    shed: int = 0
    cancelled: int = 0
    failures: int = 0
    timeouts: int = 0
    in_flight: int = 0
    cache_entries: int = 0
    cache_bytes: int = 0
    evictions: int = 0
    tokens: int = 0
    load_latency_buckets: tuple[tuple[float, int], ...] = ()

    @property
    def hit_rate(self) -> float:
        """
        Hits over every need served.
        """
        served = self.hits + self.partial_hits + self.misses
        return self.hits / served if served else 0.0


@dataclass(slots=True)
class Metrics:
    """
    The engine's mutable counters. Read them through :meth:`snapshot`.
    """

    requests: int = 0
    hits: int = 0
    partial_hits: int = 0
    misses: int = 0
    missing: int = 0
    loads: int = 0
    preloads: int = 0
    preloads_used: int = 0
    wasted: int = 0
    shed: int = 0
    cancelled: int = 0
    failures: int = 0
    timeouts: int = 0
    tokens: int = 0
    latency_counts: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))

    def observe_load(self, seconds: float) -> None:
        """
        Count one load's latency in the histogram.
        """
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def snapshot(
        self,
        *,
        in_flight: int = 0,
        cache_entries: int = 0,
        cache_bytes: int = 0,
        evictions: int = 0,
    ) -> MetricsSnapshot:
        """
        A frozen copy, with the gauges the caller measures.
        """
        return MetricsSnapshot(
            requests=self.requests,
            hits=self.hits,
            partial_hits=self.partial_hits,
            misses=self.misses,
            missing=self.missing,
            loads=self.loads,
            preloads=self.preloads,
            preloads_used=self.preloads_used,
            wasted=self.wasted,
            shed=self.shed,
            cancelled=self.cancelled,
            failures=self.failures,
            timeouts=self.timeouts,
            in_flight=in_flight,
            cache_entries=cache_entries,
            cache_bytes=cache_bytes,
            evictions=evictions,
            tokens=self.tokens,
            load_latency_buckets=tuple(zip(LATENCY_BUCKETS, self.latency_counts, strict=True)),
        )
