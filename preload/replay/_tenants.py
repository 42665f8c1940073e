"""
Replays under pressure: sessions spread over tenants that share one cache, the cache
sized to a fraction of their working set, and the global oracle's eviction.

A session belongs to tenant ``crc32(session_id) % tenants`` (stable across runs and
processes, unlike ``hash``). Every tenant has its own copy of the knowledge under its
own cache namespace (``tenant<i>``), so the working set is, over the tenants, the
distinct items their sessions need; :func:`with_capacity` sizes the cache in entries
and bytes to a fraction of it.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import anyio

from .._errors import ConfigError
from .._tokens import TiktokenCounter
from ..caches import cache_key
from ..caches._serialization import make_serializer
from ..compression import MultiLevelCompressor

if TYPE_CHECKING:
    from .._config import EngineConfig
    from .._sessions import Session
    from .._sources import DictSource

__all__ = ["BeladyValue", "tenant_name", "tenant_of", "with_capacity", "working_set"]


def tenant_of(session_id: str, tenants: int) -> int:
    """
    The tenant a session belongs to, of ``tenants``: a stable hash of its id.
    """
    return zlib.crc32(session_id.encode("utf-8")) % tenants if tenants > 1 else 0


def tenant_name(index: int, config: EngineConfig) -> str:
    """
    The cache namespace of tenant ``index`` (the configured tenant when there is one).
    """
    return config.tenant if config.replay.tenants == 1 else f"tenant{index}"


def working_set(
    sessions: Sequence[Session], knowledge: DictSource, config: EngineConfig
) -> tuple[int, int]:
    """
    The entries and bytes the sessions' needs take in the cache: over the tenants,
    each distinct item a tenant's sessions need, at its cached size (every level of
    it, serialized as the cache does).
    """
    entries, size, _ = _measure(sessions, knowledge, config)
    return entries, size


def _measure(
    sessions: Sequence[Session], knowledge: DictSource, config: EngineConfig
) -> tuple[int, int, int]:
    """
    The working set's entries and bytes, and the bytes of its largest item.
    """
    tenants = config.replay.tenants
    needed: list[set[str]] = [set() for _ in range(tenants)]
    for s in sessions:
        mine = needed[tenant_of(s.session_id, tenants)]
        mine.update(n for t in s.turns for n in t.needs if n in knowledge)
    keys = sorted(set().union(*needed))
    texts = asyncio.run(_texts(knowledge, keys))
    compressor = MultiLevelCompressor(
        TiktokenCounter(
            config.tokens.encoding,
            cache_size=config.tokens.cache_size,
            cache_chars=config.tokens.cache_chars,
        ),
        config.compression,
    )
    serializer = make_serializer(config.cache)
    size = {}
    for key, text in zip(keys, texts, strict=True):
        item = compressor.compress(
            key=key, source=knowledge.name, category=knowledge.category(key), text=text
        )
        size[key] = len(serializer.dumps(item.to_dict()))
    entries = sum(len(mine) for mine in needed)
    return entries, sum(size[k] for mine in needed for k in mine), max(size.values(), default=1)


async def _texts(knowledge: DictSource, keys: Sequence[str]) -> list[str]:
    return [await knowledge.fetch(key) for key in keys]


def with_capacity(
    config: EngineConfig,
    fraction: float,
    sessions: Sequence[Session],
    knowledge: DictSource,
) -> EngineConfig:
    """
    ``config`` with a cache of ``fraction`` of the working set, in entries and in
    bytes (at least one entry, and the largest item's bytes).

    Raises:
        ConfigError: ``fraction`` is not a positive number.
    """
    if isinstance(fraction, bool) or not (isinstance(fraction, int | float) and fraction > 0):
        raise ConfigError(
            "capacity", f"must be a positive fraction of the working set, got {fraction!r}"
        )
    if not math.isfinite(fraction):
        raise ConfigError("capacity", f"must be finite, got {fraction!r}")
    entries, size, largest = _measure(sessions, knowledge, config)
    floor = config.cache.max_bytes if fraction >= 1 else largest
    cache = replace(
        config.cache,
        max_entries=max(1, round(entries * fraction)),
        max_bytes=max(floor, round(size * fraction)),
    )
    return config.replace(cache=cache)


class BeladyValue:
    """
    The global oracle's worth of a cache entry: how soon any session uses it next
    (``1 / (1 + seconds to the next use)``; 0 when never again), so that eviction
    drops the entry used furthest in the future (Belady) and a preload used later
    than everything held is refused.

    Args:
        uses: Cache key -> the virtual times of its uses, ascending.
    """

    def __init__(self, uses: Mapping[str, Sequence[float]]) -> None:
        self._uses = uses

    def value(self, key: str) -> float:
        """
        How soon ``key`` is used next.
        """
        times = self._uses.get(key)
        if not times:
            return 0.0
        now = anyio.current_time()
        i = bisect.bisect_right(times, now)
        return 0.0 if i == len(times) else 1.0 / (1.0 + times[i] - now)

    @classmethod
    def of(
        cls,
        sessions: Sequence[Session],
        starts: Sequence[float],
        source: str,
        config: EngineConfig,
    ) -> BeladyValue:
        """
        The uses of every need of ``sessions``, starting at ``starts``, under the
        cache keys of their tenants.
        """
        uses: dict[str, list[float]] = {}
        tenants = config.replay.tenants
        for session, start in zip(sessions, starts, strict=True):
            tenant = tenant_name(tenant_of(session.session_id, tenants), config)
            for turn in session.turns:
                for need in turn.needs:
                    uses.setdefault(cache_key(tenant, source, need), []).append(start + turn.t)
        for times in uses.values():
            times.sort()
        return cls(uses)
