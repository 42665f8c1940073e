"""
The preloader's counters, and the frozen snapshot it reports them in.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, fields

__all__ = ["LATENCY_BUCKETS", "PreloaderStatistics"]

#: Upper bounds (seconds) of the load-latency histogram's buckets.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf"))


@dataclass(frozen=True, slots=True, kw_only=True)
class PreloaderStatistics:
    """
    What the preloader has done so far.

    ``loads`` and ``preloads`` count calls to sources (on demand and in the
    background); ``preloads_used`` were read by a session they were loaded for,
    ``wasted`` ones were never read by any of them before it ended;
    ``preloads_lost`` were needed by their session after they had left
    the cache; ``rejected`` preloads were refused by a value-aware cache (worth less
    than what they would evict). ``missing`` keys
    no source has. ``remote_loads`` were satisfied by a value another replica stored, and
    ``remote_hits`` are a request's hits on one (found on the shared cache, not known
    to this process),
    ``lease_waits`` waited for another replica's load. ``shed`` preloads were dropped
    from a full queue, ``cancelled`` ones were dropped or stopped because nobody
    wanted them any more (or the preloader closed). ``failures`` are loads that failed
    after ``retries``; ``cooldowns`` counts sources put to rest, ``cooldown_skips``
    the loads not attempted meanwhile. ``queued`` and ``in_flight`` are gauges read
    when the snapshot is taken.

    .. versionadded:: 0.2
    .. versionchanged:: 0.6
       ``preloads_lost``, ``rejected``.
    """

    loads: int = 0
    preloads: int = 0
    preloads_used: int = 0
    preloads_lost: int = 0
    wasted: int = 0
    rejected: int = 0
    missing: int = 0
    shed: int = 0
    cancelled: int = 0
    failures: int = 0
    timeouts: int = 0
    retries: int = 0
    cooldowns: int = 0
    cooldown_skips: int = 0
    remote_loads: int = 0
    remote_hits: int = 0
    lease_waits: int = 0
    queued: int = 0
    in_flight: int = 0
    load_latency_buckets: tuple[tuple[float, int], ...] = ()
    load_latency_sum: float = 0.0


@dataclass(slots=True)
class Counters:
    """
    The preloader's mutable counters; only the preloader and its parts write them.
    """

    loads: int = 0
    preloads: int = 0
    missing: int = 0
    shed: int = 0
    cancelled: int = 0
    failures: int = 0
    timeouts: int = 0
    retries: int = 0
    cooldowns: int = 0
    cooldown_skips: int = 0
    remote_loads: int = 0
    remote_hits: int = 0
    lease_waits: int = 0
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
        queued: int,
        in_flight: int,
        preloads_used: int,
        preloads_lost: int,
        wasted: int,
        rejected: int,
    ) -> PreloaderStatistics:
        """
        A frozen copy, with the gauges the preloader reads now and the ledger's counts.
        """
        return PreloaderStatistics(
            **{name: getattr(self, name) for name in _COUNTED},
            preloads_used=preloads_used,
            preloads_lost=preloads_lost,
            wasted=wasted,
            rejected=rejected,
            queued=queued,
            in_flight=in_flight,
            load_latency_buckets=tuple(zip(LATENCY_BUCKETS, self.latency_counts, strict=True)),
            load_latency_sum=self.latency_sum,
        )


#: The counters a snapshot copies as they are.
_COUNTED = tuple(f.name for f in fields(Counters) if f.type in ("int", int))
