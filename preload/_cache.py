"""
The cache of warm context, over aiocache.

Values are plain data serialized as msgpack or JSON, never pickle. Keys are built by
:func:`cache_key` from tenant, source, item key and content version, so that one
tenant's context is never returned to another. aiocache's own memory cache has no
bound, so :class:`ItemCache` keeps an LRU index of entries and bytes and evicts
itself.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import msgpack
from aiocache import SimpleMemoryCache
from aiocache.serializers import BaseSerializer

from ._config import CacheConfig
from ._errors import CacheError

__all__ = ["CacheStatistics", "ItemCache", "JsonSerializer", "MsgPackSerializer", "cache_key"]

logger = logging.getLogger(__name__)


def cache_key(tenant: str, source: str, key: str, version: str = "1") -> str:
    """
    The cache key of an item: every part is length-prefixed, so that no choice of
    tenant, source or key can produce another tenant's key.
    """
    return ":".join(f"{len(part)}.{part}" for part in (tenant, source, key, version))


class MsgPackSerializer(BaseSerializer):  # type: ignore[misc]
    """
    msgpack with ``raw=False``: strings come back as ``str``, bytes as ``bytes``.

    ``encoding`` is None so that aiocache's Redis backend hands over the raw bytes.
    """

    DEFAULT_ENCODING = None

    def dumps(self, value: Any) -> bytes:
        """
        Pack ``value``.
        """
        return msgpack.packb(value, use_bin_type=True)

    def loads(self, value: bytes | None) -> Any:
        """
        Unpack ``value``; None stays None (a miss).
        """
        if value is None:
            return None
        try:
            return msgpack.unpackb(value, raw=False)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
            raise CacheError(f"cannot decode a cached value: {exc}") from exc


class JsonSerializer(BaseSerializer):  # type: ignore[misc]
    """
    JSON text.
    """

    def dumps(self, value: Any) -> str:
        """
        Encode ``value``.
        """
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def loads(self, value: str | bytes | None) -> Any:
        """
        Decode ``value``; None stays None (a miss).
        """
        if value is None:
            return None
        try:
            return json.loads(value)
        except ValueError as exc:
            raise CacheError(f"cannot decode a cached value: {exc}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheStatistics:
    """
    A snapshot of the cache.

    .. versionadded:: 0.1
    """

    entries: int
    bytes: int
    hits: int
    misses: int
    evictions: int
    expirations: int


class ItemCache:
    """
    Our interface to the cache: get and set plain data under a key, within a bound of
    entries and bytes, evicting the least recently used.

    Args:
        config: The cache section of the engine configuration.
        on_evict: Called with the key of every entry evicted to make room.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        config: CacheConfig | None = None,
        *,
        on_evict: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config or CacheConfig()
        serializer = (
            MsgPackSerializer() if self.config.serializer == "msgpack" else JsonSerializer()
        )
        self._serializer = serializer
        # aiocache's own timeout goes through asyncio.wait_for: deadlines are ours.
        self._backend = SimpleMemoryCache(serializer=serializer, timeout=None)
        self._index: OrderedDict[str, int] = OrderedDict()
        self._expires: dict[str, float] = {}
        self._bytes = 0
        self._on_evict = on_evict
        self._hits = self._misses = self._evictions = self._expirations = 0

    def __contains__(self, key: object) -> bool:
        if key not in self._index:
            return False
        expires = self._expires.get(key)  # type: ignore[call-overload]
        if expires is not None and anyio.current_time() >= expires:
            self._forget(key)  # type: ignore[arg-type]
            self._expirations += 1
            return False
        return True

    def _forget(self, key: str) -> None:
        self._bytes -= self._index.pop(key, 0)
        self._expires.pop(key, None)

    def __len__(self) -> int:
        return len(self._index)

    async def get(self, key: str) -> Any:
        """
        The value under ``key``, or None.
        """
        value = await self._backend.get(key)
        if value is None:
            self._misses += 1
            if key in self._index:
                self._forget(key)
                self._expirations += 1
            return None
        self._hits += 1
        self._index.move_to_end(key)
        return value

    async def set(self, key: str, value: Any, *, ttl: float | None = None) -> None:
        """
        Store ``value`` under ``key``, evicting the least recently used entries beyond
        the bounds.
        """
        size = len(self._serializer.dumps(value))
        if size > self.config.max_bytes:
            raise CacheError(
                f"value of {key!r} is {size} bytes, above cache.max_bytes {self.config.max_bytes}"
            )
        ttl = ttl if ttl is not None else (self.config.ttl_s or None)
        await self._backend.set(key, value, ttl=ttl)
        self._forget(key)
        self._index[key] = size
        self._bytes += size
        if ttl:
            self._expires[key] = anyio.current_time() + ttl
        while len(self._index) > self.config.max_entries or self._bytes > self.config.max_bytes:
            old = next(iter(self._index))
            self._forget(old)
            self._evictions += 1
            await self._backend.delete(old)
            if self._on_evict is not None:
                self._on_evict(old)

    async def delete(self, key: str) -> None:
        """
        Drop ``key``.
        """
        self._forget(key)
        await self._backend.delete(key)

    async def clear(self) -> None:
        """
        Drop everything.
        """
        self._index.clear()
        self._expires.clear()
        self._bytes = 0
        await self._backend.clear()

    def statistics(self) -> CacheStatistics:
        """
        A snapshot of sizes and counters.
        """
        return CacheStatistics(
            entries=len(self._index),
            bytes=self._bytes,
            hits=self._hits,
            misses=self._misses,
            evictions=self._evictions,
            expirations=self._expirations,
        )

    async def close(self) -> None:
        """
        Release the backend.
        """
        await self._backend.close()
