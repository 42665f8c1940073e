"""
The cache in this process, over aiocache's ``SimpleMemoryCache``.

aiocache's memory cache has no bound, so :class:`MemoryCache` keeps an
:class:`~preload.caches._index.EntryIndex` of entries and bytes and evicts the least
recently used itself; in front of the serialized store it keeps a small LRU of decoded
objects, so that a hit on the request path costs a dictionary lookup and no decoding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiocache import SimpleMemoryCache

from .._config import CacheConfig
from .._errors import CacheError
from ._base import LOCAL_LEASE, CacheStatistics, read_objects
from ._demand import Demand, EntryValue
from ._index import DecodedObjects, EntryIndex
from ._serialization import encode, identity, make_serializer

__all__ = ["MemoryCache"]

logger = logging.getLogger(__name__)


class MemoryCache:
    """
    The cache in this process: plain data under a key, within a bound of entries and
    bytes, evicting the least recently used or the least valuable
    (``cache.eviction``; aiocache's ``SimpleMemoryCache``).

    With ``cache.eviction = "value"`` the cache keeps a :class:`~preload.caches.Demand`
    (:attr:`demand`) that the preloaders writing to it fill with their sessions'
    forecasts; eviction drops the entry worth least and a preload worth less than
    what it would evict is refused.

    Args:
        config: The cache section of the engine configuration.
        on_evict: Called with the key of every entry evicted to make room.
        value: What keeping an entry is worth, when not the sessions' demand (a
            replay's oracle); implies value-aware eviction.

    .. versionadded:: 0.1
    .. versionchanged:: 0.5
       Value-aware eviction, ``value``.
    """

    #: Whether other processes read and write the same store.
    shared = False

    def __init__(
        self,
        config: CacheConfig | None = None,
        *,
        on_evict: Callable[[str], None] | None = None,
        value: EntryValue | None = None,
    ) -> None:
        self.config = config or CacheConfig()
        self._serializer = make_serializer(self.config)
        # aiocache's own timeout goes through asyncio.wait_for: deadlines are ours.
        self._backend = SimpleMemoryCache(serializer=self._serializer, timeout=None)
        #: The live sessions' forecasts, when eviction is by their value.
        self.demand: Demand | None = None
        if value is None and self.config.eviction == "value":
            value = self.demand = Demand()
        self._index = EntryIndex(
            max_entries=self.config.max_entries,
            max_bytes=self.config.max_bytes,
            value=value,
            sample=self.config.eviction_sample,
        )
        self._objects: DecodedObjects[Any] = DecodedObjects(self.config.decoded_entries)
        self._on_evict = on_evict
        self._hits = self._misses = 0

    # -- the synchronous fast path ----------------------------------------------------

    def __contains__(self, key: object) -> bool:
        """
        Whether ``key`` is held and not expired (an expired entry is dropped).
        """
        if not isinstance(key, str) or key not in self._index:
            return False
        if self._index.expired(key):
            self._expire(key)
            return False
        return True

    def __len__(self) -> int:
        """
        The number of entries held, expired ones not yet noticed included.
        """
        return len(self._index)

    def holds(self, key: str) -> bool:
        """
        Whether the index holds ``key``, expired or not; no side effects.
        """
        return key in self._index

    def peek_object(self, key: str) -> Any:
        """
        The decoded object remembered for ``key``, or None; no I/O, no decoding.

        A hit here counts as a cache hit and moves the entry to the recent end.
        """
        obj = self._objects.get(key)
        if obj is None or key not in self:
            return None
        self._objects.touch(key)
        self._index.read(key)
        self._hits += 1
        return obj

    def admits(self, key: str, survival: float = 1.0) -> bool:
        """
        Whether a preload of ``key`` stored now would be kept (see ``cache.eviction``):
        always, unless the cache is full and ``key``'s worth, times ``survival`` (the
        chance that it stays until its use), is less than that of the entry it would
        evict. Bounded by ``cache.eviction_sample``.

        .. versionadded:: 0.5
        .. versionchanged:: 0.6
           ``survival``.
        """
        return self._index.admits(key, survival)

    def remember(self, key: str, obj: Any) -> None:
        """
        Keep the decoded ``obj`` of the entry ``key`` for :meth:`peek_object`.
        """
        if key in self._index:
            self._objects.put(key, obj)

    def _expire(self, key: str) -> None:
        self._index.expire(key)
        self._objects.discard(key)

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
        self._index.read(key)
        return value

    async def get_many(self, keys: Sequence[str]) -> list[Any]:
        """
        The values under ``keys`` (None for each miss). An undecodable value reads as
        a miss and is dropped.
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
        return await read_objects(self, keys, decode)

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
        blob = encode(self._serializer, key, value, self.config.max_bytes)
        ttl = ttl if ttl is not None else (self.config.ttl_s or None)
        await self._backend.set(key, blob, ttl=ttl, dumps_fn=identity)
        self._objects.discard(key)
        self._index.add(key, len(blob), ttl=ttl, unread=preload)
        while (old := self._index.evict()) is not None:
            self._objects.discard(old)
            await self._backend.delete(old)
            if self._on_evict is not None:
                self._on_evict(old)
        if obj is not None:
            self.remember(key, obj)

    async def delete(self, key: str) -> None:
        """
        Drop ``key``.
        """
        self._index.remove(key)
        self._objects.discard(key)
        await self._backend.delete(key)

    async def clear(self) -> None:
        """
        Drop everything.
        """
        self._index.clear()
        self._objects.clear()
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

    async def take_slot(
        self, name: str, token: str, *, most: int, ttl: float, returned: Sequence[str] = ()
    ) -> bool:
        """
        A slot of ``name``: always granted, no other process sharing this cache.
        """
        return True

    async def return_slots(self, name: str, tokens: Sequence[str]) -> None:
        """
        Give back slots: none are held.
        """

    # -- reporting and lifecycle ------------------------------------------------------

    def statistics(self) -> CacheStatistics:
        """
        A snapshot of sizes and counters.
        """
        return CacheStatistics(
            entries=len(self._index),
            bytes=self._index.bytes,
            hits=self._hits,
            misses=self._misses,
            evictions=self._index.evictions,
            expirations=self._index.expirations,
            evicted_unused=self._index.evicted_unused,
            rejected=self._index.rejected,
        )

    async def close(self) -> None:
        """
        Release the backend.
        """
        await self._backend.close()
