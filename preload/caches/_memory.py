"""
The cache of warm context, over aiocache.

Values are plain data serialized as msgpack or JSON, never pickle. Keys are built by
:func:`cache_key` from tenant, source, item key and content version, so that one
tenant's context is never returned to another. aiocache's own memory cache has no
bound, so :class:`MemoryCache` keeps an LRU index of entries and bytes and evicts
itself; in front of the serialized store it keeps a small LRU of decoded objects, so
that a hit on the request path costs a dictionary lookup and no decoding.

:class:`~preload._redis.RedisCache` (``cache.backend = "redis"``) shares the
cache between replicas; :func:`make_cache` builds the configured one.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import msgpack
from aiocache import SimpleMemoryCache
from aiocache.serializers import BaseSerializer

from .._config import CacheConfig
from .._errors import CacheError

__all__ = [
    "CacheStatistics",
    "JsonSerializer",
    "MemoryCache",
    "MsgPackSerializer",
    "cache_key",
    "make_cache",
]

logger = logging.getLogger(__name__)

#: The token of a lease granted by a cache that no other process shares.
LOCAL_LEASE = "local"


def cache_key(tenant: str, source: str, key: str, version: str = "1") -> str:
    """
    The cache key of an item: every part is length-prefixed, so that no choice of
    tenant, source or key can produce another tenant's key.
    """
    return ":".join(f"{len(part)}.{part}" for part in (tenant, source, key, version))


class MsgPackSerializer(BaseSerializer):  # type: ignore[misc]
    """
    msgpack with ``raw=False``: strings come back as ``str``, bytes as ``bytes``.

    ``encoding`` is None so that aiocache's Redis backend hands over the raw bytes
    (with an encoding it would decode every value as UTF-8 text first).
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
        except (
            ValueError,
            TypeError,
            msgpack.ExtraData,
            msgpack.FormatError,
            msgpack.StackError,
        ) as exc:
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


def _identity(value: Any) -> Any:
    return value


def make_serializer(config: CacheConfig) -> MsgPackSerializer | JsonSerializer:
    """
    The configured serializer.
    """
    return MsgPackSerializer() if config.serializer == "msgpack" else JsonSerializer()


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheStatistics:
    """
    A snapshot of the cache.

    ``evicted_unused`` counts preloaded entries that were evicted or expired before
    anyone read them (wasted preloads). ``backend_up`` is False while a shared
    backend is unreachable and the cache serves from its memory fallback.

    .. versionadded:: 0.1
    """

    entries: int
    bytes: int
    hits: int
    misses: int
    evictions: int
    expirations: int
    evicted_unused: int = 0
    backend: str = "memory"
    backend_up: bool = True
    backend_errors: int = 0


class MemoryCache:
    """
    Our interface to the cache: get and set plain data under a key, within a bound of
    entries and bytes, evicting the least recently used. This one keeps everything in
    this process (aiocache's ``SimpleMemoryCache``).

    Args:
        config: The cache section of the engine configuration.
        on_evict: Called with the key of every entry evicted to make room.

    .. versionadded:: 0.1
    """

    #: Whether other processes read and write the same store.
    shared = False

    def __init__(
        self,
        config: CacheConfig | None = None,
        *,
        on_evict: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config or CacheConfig()
        serializer = make_serializer(self.config)
        self._serializer = serializer
        # aiocache's own timeout goes through asyncio.wait_for: deadlines are ours.
        self._backend = SimpleMemoryCache(serializer=serializer, timeout=None)
        self._index: OrderedDict[str, int] = OrderedDict()
        self._expires: dict[str, float] = {}
        self._objects: OrderedDict[str, Any] = OrderedDict()
        self._unused: set[str] = set()
        self._bytes = 0
        self._on_evict = on_evict
        self._hits = self._misses = self._evictions = self._expirations = 0
        self._evicted_unused = 0

    # -- the synchronous fast path ----------------------------------------------------

    def __contains__(self, key: object) -> bool:
        if key not in self._index:
            return False
        expires = self._expires.get(key)  # type: ignore[call-overload]
        if expires is not None and anyio.current_time() >= expires:
            self._expire(key)  # type: ignore[arg-type]
            return False
        return True

    def __len__(self) -> int:
        return len(self._index)

    def peek_object(self, key: str) -> Any:
        """
        The decoded object remembered for ``key``, or None; no I/O, no decoding.

        A hit here counts as a cache hit and moves the entry to the recent end.
        """
        obj = self._objects.get(key)
        if obj is None or key not in self:
            return None
        self._objects.move_to_end(key)
        self._index.move_to_end(key)
        self._unused.discard(key)
        self._hits += 1
        return obj

    def remember(self, key: str, obj: Any) -> None:
        """
        Keep the decoded ``obj`` of the entry ``key`` for :meth:`peek_object`.
        """
        limit = self.config.decoded_entries
        if not limit or key not in self._index:
            return
        self._objects[key] = obj
        self._objects.move_to_end(key)
        while len(self._objects) > limit:
            self._objects.popitem(last=False)

    def _forget(self, key: str) -> None:
        self._bytes -= self._index.pop(key, 0)
        self._expires.pop(key, None)
        self._objects.pop(key, None)

    def _expire(self, key: str) -> None:
        self._forget(key)
        self._expirations += 1
        if key in self._unused:
            self._unused.discard(key)
            self._evicted_unused += 1

    # -- the store --------------------------------------------------------------------

    async def get(self, key: str) -> Any:
        """
        The value under ``key``, or None.

        Raises:
            CacheError: The stored value cannot be decoded.
        """
        value = await self._backend.get(key)
        if value is None:
            self._misses += 1
            if key in self._index:
                self._expire(key)
            return None
        self._hits += 1
        if key in self._index:
            self._index.move_to_end(key)
        self._unused.discard(key)
        return value

    async def get_many(self, keys: Sequence[str]) -> list[Any]:
        """
        The values under ``keys`` (None for each miss), in one round trip where the
        backend allows. An undecodable value reads as a miss and is dropped.
        """
        out: list[Any] = []
        for key in keys:
            try:
                out.append(await self.get(key))
            except CacheError:
                logger.warning("dropping undecodable cache entry %s", key)
                await self.delete(key)
                out.append(None)
        return out

    async def get_objects(
        self, keys: Sequence[str], decode: Callable[[str, Any], Any]
    ) -> list[Any]:
        """
        The decoded objects under ``keys`` (None for each miss): the remembered object
        when there is one, else ``decode(key, value)`` of the stored value (a decoder
        that returns None drops the entry as not an item). Objects decoded here are
        remembered for the next hit.
        """
        out: list[Any] = [self.peek_object(key) for key in keys]
        cold = [i for i, obj in enumerate(out) if obj is None]
        if cold:
            values = await self.get_many([keys[i] for i in cold])
            for i, value in zip(cold, values, strict=True):
                if value is not None:
                    out[i] = obj = decode(keys[i], value)
                    if obj is None:
                        await self.delete(keys[i])
                    else:
                        self.remember(keys[i], obj)
        return out

    def _encode(self, key: str, value: Any) -> bytes | str:
        blob: bytes | str = self._serializer.dumps(value)
        if len(blob) > self.config.max_bytes:
            raise CacheError(
                f"value of {key!r} is {len(blob)} bytes, above cache.max_bytes "
                f"{self.config.max_bytes}; raise the bound or keep items smaller"
            )
        return blob

    async def set(
        self,
        key: str,
        value: Any,
        *,
        ttl: float | None = None,
        obj: Any = None,
        preload: bool = False,
    ) -> None:
        """
        Store ``value`` under ``key``, evicting the least recently used entries beyond
        the bounds.

        Args:
            key: The cache key.
            value: Plain data (msgpack or JSON serializable).
            ttl: Seconds it lives (the configured ``ttl_s`` when None; 0: forever).
            obj: The decoded object ``value`` stands for, kept for :meth:`peek_object`.
            preload: Stored by a background preload: if it leaves the cache unread, it
                counts in ``evicted_unused``.

        Raises:
            CacheError: The value is larger than ``cache.max_bytes``.
        """
        blob = self._encode(key, value)
        await self._store_local(key, blob, len(blob), ttl=ttl)
        if obj is not None:
            self.remember(key, obj)
        if preload:
            self._unused.add(key)
        else:
            self._unused.discard(key)

    async def _store_local(
        self, key: str, blob: bytes | str, size: int, *, ttl: float | None
    ) -> None:
        ttl = ttl if ttl is not None else (self.config.ttl_s or None)
        await self._backend.set(key, blob, ttl=ttl, dumps_fn=_identity)
        self._forget(key)
        self._index[key] = size
        self._bytes += size
        if ttl:
            self._expires[key] = anyio.current_time() + ttl
        while len(self._index) > self.config.max_entries or self._bytes > self.config.max_bytes:
            old = next(iter(self._index))
            self._forget(old)
            self._evictions += 1
            if old in self._unused:
                self._unused.discard(old)
                self._evicted_unused += 1
            await self._backend.delete(old)
            if self._on_evict is not None:
                self._on_evict(old)

    async def delete(self, key: str) -> None:
        """
        Drop ``key``.
        """
        self._forget(key)
        self._unused.discard(key)
        await self._backend.delete(key)

    async def clear(self) -> None:
        """
        Drop everything.
        """
        self._index.clear()
        self._expires.clear()
        self._objects.clear()
        self._unused.clear()
        self._bytes = 0
        await self._backend.clear()

    # -- leases (single-flight across processes) --------------------------------------

    async def lease(self, key: str, ttl: float) -> str | None:
        """
        Try to become the one process that loads ``key`` for ``ttl`` seconds.

        Returns:
            An owner token to pass to :meth:`release`, or None when another process
            holds the lease. A cache no other process shares always grants it.
        """
        return LOCAL_LEASE

    async def leased(self, key: str) -> bool:
        """
        Whether another process holds the lease on ``key`` now.
        """
        return False

    async def release(self, key: str, token: str) -> None:
        """
        Give up the lease on ``key`` if ``token`` still owns it.
        """

    # -- reporting and lifecycle ------------------------------------------------------

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
            evicted_unused=self._evicted_unused,
        )

    async def close(self) -> None:
        """
        Release the backend.
        """
        await self._backend.close()


def make_cache(config: CacheConfig) -> MemoryCache:
    """
    The cache ``config`` asks for: in memory, or on Redis (shared by replicas).

    Raises:
        ConfigError: The Redis backend is asked for but the ``redis`` package is
            missing.
    """
    if config.backend == "redis":
        from ._redis import RedisCache

        return RedisCache(config)
    return MemoryCache(config)
