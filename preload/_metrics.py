"""
Metrics: counters kept by the engine, read as one frozen snapshot.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .caches._memory import CacheStatistics

__all__ = ["Metrics", "MetricsSnapshot"]

#: Upper bounds (seconds) of the load-latency histogram's buckets.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf"))


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSnapshot:
    """
    What the engine has done so far.

    ``hits`` were ready in the cache when their request arrived; ``partial_hits`` were
    being preloaded and the request waited for the rest; ``misses`` were loaded on
    demand. ``wasted`` preloads were never used by the session that caused them;
    ``evicted_unused`` preloads left the cache (evicted or expired) before anyone read
    them. ``loads`` and ``preloads`` count calls to sources (on demand and in the
    background); ``remote_loads`` were satisfied by a value another replica stored,
    ``lease_waits`` waited for another replica's load. ``shed`` preloads were dropped
    from a full queue, ``cancelled`` ones were dropped or stopped because nobody wanted
    them any more (or the engine closed). ``failures`` are loads that failed after
    ``retries``; ``cooldowns`` counts sources put to rest, ``cooldown_skips`` the
    loads not attempted meanwhile. ``queued``, ``in_flight``, ``cache_*`` and
    ``backend_up`` are gauges read when the snapshot is taken.

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
    retries: int = 0
    cooldowns: int = 0
    cooldown_skips: int = 0
    remote_loads: int = 0
    lease_waits: int = 0
    queued: int = 0
    in_flight: int = 0
    cache_entries: int = 0
    cache_bytes: int = 0
    evictions: int = 0
    evicted_unused: int = 0
    backend_up: bool = True
    backend_errors: int = 0
    tokens: int = 0
    load_latency_buckets: tuple[tuple[float, int], ...] = ()
    load_latency_sum: float = 0.0

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
    retries: int = 0
    cooldowns: int = 0
    cooldown_skips: int = 0
    remote_loads: int = 0
    lease_waits: int = 0
    tokens: int = 0
    latency_counts: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    latency_sum: float = 0.0

    def observe_load(self, seconds: float) -> None:
        """
        Count one load's latency in the histogram.
        """
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def snapshot(
        self,
        *,
        in_flight: int = 0,
        cache_entries: int = 0,
        cache_bytes: int = 0,
        evictions: int = 0,
        queued: int = 0,
        cache: CacheStatistics | None = None,
    ) -> MetricsSnapshot:
        """
        A frozen copy, with the gauges the caller measures (``cache``, when given,
        supplies every ``cache_*`` gauge, evictions and the backend's health).
        """
        if cache is not None:
            cache_entries, cache_bytes, evictions = cache.entries, cache.bytes, cache.evictions
        counters = {name: getattr(self, name) for name in _COUNTERS}
        return MetricsSnapshot(
            **counters,
            queued=queued,
            in_flight=in_flight,
            cache_entries=cache_entries,
            cache_bytes=cache_bytes,
            evictions=evictions,
            evicted_unused=cache.evicted_unused if cache is not None else 0,
            backend_up=cache.backend_up if cache is not None else True,
            backend_errors=cache.backend_errors if cache is not None else 0,
            load_latency_buckets=tuple(zip(LATENCY_BUCKETS, self.latency_counts, strict=True)),
            load_latency_sum=self.latency_sum,
        )


#: The counters a snapshot copies as they are: every integer field the two share.
_COUNTERS = tuple(
    f.name
    for f in fields(Metrics)
    if f.type in ("int", int) and f.name in {g.name for g in fields(MetricsSnapshot)}
)
