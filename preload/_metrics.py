"""
Metrics: one frozen snapshot composed of what each component reports.

The engine counts requests, the preloader its loads (:class:`PreloaderStatistics`),
the cache its entries (:class:`~preload.caches.CacheStatistics`); each owns its
counters and reports them as a frozen snapshot, and :func:`compose` joins the three.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .caches import CacheStatistics
    from .loading import PreloaderStatistics

__all__ = ["EngineStatistics", "MetricsSnapshot", "compose"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineStatistics:
    """
    The engine's own counters: ``requests`` served, their needs that were ``hits``
    (warm), ``partial_hits`` (a preload in flight, waited for) and ``misses``
    (loaded on demand), the context ``tokens`` assembled, ``learner_drops``: turns
    the background learner never saw because its queue was full, and
    ``replies_truncated``: replies cut to ``limits.max_reply_chars``. ``retrieved``
    items were found by searching for requests without known needs; ``feedback``
    counts the window items judged by :meth:`~preload.PreloadEngine.feedback`, and
    ``feedback_ignored`` the feedback that named no known window or keys not in it.
    ``deferred`` preloads were started just in time rather than at once
    (``preloader.just_in_time``); ``ttl_skipped`` were not preloaded because their
    time to live would end before their expected use (``preloader.ttl_aware``).
    ``history_catch_ups`` are exchanges a request recorded in its session's history
    itself, before its window could hold them, because the learner had not yet (a
    reply that came a moment before, turns another replica served).

    .. versionadded:: 0.2
    .. versionchanged:: 0.4
       ``retrieved``, ``feedback``, ``feedback_ignored``.
    """

    requests: int = 0
    hits: int = 0
    partial_hits: int = 0
    misses: int = 0
    tokens: int = 0
    learner_drops: int = 0
    replies_truncated: int = 0
    retrieved: int = 0
    feedback: int = 0
    feedback_ignored: int = 0
    deferred: int = 0
    ttl_skipped: int = 0
    history_catch_ups: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSnapshot:
    """
    What the engine has done so far.

    ``hits`` were ready in the cache when their request arrived; ``partial_hits`` were
    being preloaded and the request waited for the rest; ``misses`` were loaded on
    demand. ``wasted`` preloads were never used by the session that caused them;
    ``preloads_lost`` were needed by that session after they had left
    the cache; ``evicted_unused`` preloads left the cache (evicted or expired) before
    anyone read them; ``rejected`` preloads were refused by a value-aware cache
    (``cache.eviction = "value"``: worth less than what they would evict). ``loads``
    and ``preloads`` count calls to sources (on demand and in the background);
    ``remote_loads`` were satisfied by a value another replica stored, and
    ``remote_hits`` are a request's hits on one,
    ``lease_waits`` waited for another replica's load. ``shed`` preloads were dropped
    from a full queue, ``cancelled`` ones were dropped or stopped because nobody wanted
    them any more (or the engine closed). ``failures`` are loads that failed after
    ``retries``; ``cooldowns`` counts sources put to rest, ``cooldown_skips`` the
    loads not attempted meanwhile. ``learner_drops`` are turns the background learner
    never saw (its queue was full); ``replies_truncated`` were cut to
    ``limits.max_reply_chars``; ``history_catch_ups`` are exchanges a request recorded
    in its history itself (the learner had not yet). ``queued``, ``in_flight``, ``cache_*`` and
    ``backend_up`` are gauges read when the snapshot is taken.

    .. versionadded:: 0.1
    .. versionchanged:: 0.6
       ``preloads_lost``, ``rejected``.
    """

    requests: int = 0
    hits: int = 0
    partial_hits: int = 0
    misses: int = 0
    missing: int = 0
    loads: int = 0
    preloads: int = 0
    preloads_used: int = 0
    preloads_lost: int = 0
    wasted: int = 0
    rejected: int = 0
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
    learner_drops: int = 0
    replies_truncated: int = 0
    retrieved: int = 0
    feedback: int = 0
    feedback_ignored: int = 0
    deferred: int = 0
    ttl_skipped: int = 0
    history_catch_ups: int = 0
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


def compose(
    engine: EngineStatistics,
    preloader: PreloaderStatistics,
    cache: CacheStatistics | None,
) -> MetricsSnapshot:
    """
    One snapshot of the three components' own snapshots (no cache: its gauges are 0).

    .. versionadded:: 0.2
    """
    parts = {f.name: getattr(engine, f.name) for f in fields(engine)}
    parts.update({f.name: getattr(preloader, f.name) for f in fields(preloader)})
    if cache is not None:
        parts.update(
            cache_entries=cache.entries,
            cache_bytes=cache.bytes,
            evictions=cache.evictions,
            evicted_unused=cache.evicted_unused,
            backend_up=cache.backend_up,
            backend_errors=cache.backend_errors,
        )
    return MetricsSnapshot(**parts)
