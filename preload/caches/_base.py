"""
The interface every cache backend implements, and what the backends share.

:class:`CacheBackend` is the seam between the cache and the rest of the engine (the
preloader, the engine, the replay): exactly the members they call, nothing more.
:class:`~preload.caches.MemoryCache` keeps everything in this process;
:class:`~preload.caches.RedisCache` shares the cache between replicas and keeps a
``MemoryCache`` of its own as the fallback while Redis is down. Both return a
:class:`CacheStatistics` and build their keys with :func:`cache_key`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .._config import CacheConfig

__all__ = ["LOCAL_LEASE", "CacheBackend", "CacheStatistics", "cache_key", "read_objects"]

#: The token of a lease granted by a cache that no other process shares.
LOCAL_LEASE = "local"


def length_prefixed(*parts: str) -> str:
    """
    ``parts`` joined with ``:``, each prefixed with its length and ``.``, so that no
    choice of parts makes the name another choice makes.

    .. versionadded:: 0.28
    """
    return ":".join(f"{len(part)}.{part}" for part in parts)


def cache_key(tenant: str, source: str, key: str, version: str = "1") -> str:
    """
    The cache key of an item: every part is length-prefixed, so that no choice of
    tenant, source or key can produce another tenant's key.

    .. versionadded:: 0.1
    """
    return length_prefixed(tenant, source, key, version)


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheStatistics:
    """
    A snapshot of the cache.

    ``evicted_unused`` counts preloaded entries that were evicted or expired before
    anyone read them (wasted preloads); ``rejected`` counts preloads refused because
    they were worth less than what they would have evicted. ``backend_up`` is False while a shared
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
    rejected: int = 0
    backend: str = "memory"
    backend_up: bool = True
    backend_errors: int = 0


class CacheBackend(Protocol):
    """
    Where warm items are kept: plain data (msgpack or JSON serializable) under a key
    built by :func:`cache_key`, within the bounds of a
    :class:`~preload.CacheConfig`, with leases that make one process load a key.

    The synchronous members (``in``, :meth:`peek_object`, :meth:`remember`) never do
    I/O: they serve the request path. The rest are coroutines.

    .. versionadded:: 0.2
    """

    @property
    def shared(self) -> bool:
        """
        Whether other processes read and write the same store. When True, callers
        take a :meth:`lease` before loading a key and read the value another process
        stored rather than loading it again.
        """
        ...

    @property
    def config(self) -> CacheConfig:
        """
        The cache section of the engine configuration this cache was built with
        (callers read e.g. its per-kind TTLs).
        """
        ...

    def __contains__(self, key: object) -> bool:
        """
        Whether this process knows ``key`` to be in the cache now, not expired; no
        I/O. On a shared cache, a key another process stored is found by :meth:`get`
        only (and known from then on).
        """
        ...

    def __len__(self) -> int:
        """
        The number of entries this process holds.
        """
        ...

    def peek_object(self, key: str) -> Any:
        """
        The decoded object remembered for ``key``, or None; no I/O, no decoding. A
        non-None answer counts as a hit and makes the entry the most recently used.
        A shared backend answers None while its store is reachable (another process
        may have changed the value): callers then go through :meth:`get_objects`.
        """
        ...

    def remember(self, key: str, obj: Any) -> None:
        """
        Keep ``obj``, the decoded form of the entry ``key``, for :meth:`peek_object`
        (within ``decoded_entries``; nothing when ``key`` is not held).
        """
        ...

    async def get(self, key: str) -> Any:
        """
        The value under ``key``, or None (a miss).

        Raises:
            CacheError: The stored value cannot be decoded.
        """
        ...

    async def get_many(self, keys: Sequence[str]) -> list[Any]:
        """
        The values under ``keys``, in order, None for each miss (one round trip where
        the backend allows). An undecodable value reads as a miss and is deleted.
        """
        ...

    async def get_objects(
        self, keys: Sequence[str], decode: Callable[[str, Any], Any]
    ) -> list[Any]:
        """
        The decoded objects under ``keys``, in order, None for each miss: an object
        decoded before when it still stands for the stored value, else
        ``decode(key, value)``. A value the decoder refuses (returns None for) is
        deleted and reads as a miss.
        """
        ...

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
        ...

    async def delete(self, key: str) -> None:
        """
        Drop ``key`` (nothing happens when it is absent).
        """
        ...

    async def clear(self) -> None:
        """
        Drop every entry of this cache (on a shared cache, of its namespace, leases
        included). Counters are kept.
        """
        ...

    async def lease(self, key: str, ttl: float) -> str | None:
        """
        Try to become the one process that loads ``key``, for ``ttl`` seconds at most.

        Returns:
            An owner token to pass to :meth:`release`, or None when another process
            holds the lease. A cache no other process shares always grants it.
        """
        ...

    async def leased(self, key: str) -> bool:
        """
        Whether some process (this one included) holds the lease on ``key`` now. A
        cache no other process shares answers False: its leases only keep the
        interface.
        """
        ...

    async def release(self, key: str, token: str) -> None:
        """
        Give up the lease on ``key`` if ``token`` still owns it (a lease that expired
        and was taken by another process stays theirs).
        """
        ...

    async def take_slot(
        self, name: str, token: str, *, most: int, ttl: float, returned: Sequence[str] = ()
    ) -> bool:
        """
        Try to take one of the ``most`` slots of ``name`` that every process sharing
        the cache counts together, for ``ttl`` seconds at most (a slot whose holder
        died frees itself then), as ``token``; first give back the slots ``returned``
        (tokens this process took and is done with). A token that holds a slot keeps
        it, its ``ttl`` renewed. A cache no other process shares always grants it (the
        process's own limits bound it), as a shared one does while its store cannot
        be reached.

        .. versionadded:: 0.28
        """
        ...

    async def return_slots(self, name: str, tokens: Sequence[str]) -> None:
        """
        Give back the slots of ``name`` that ``tokens`` hold (tokens that hold none,
        or whose slot expired, are passed over).

        .. versionadded:: 0.28
        """
        ...

    def statistics(self) -> CacheStatistics:
        """
        A snapshot of sizes and counters.
        """
        ...

    async def close(self) -> None:
        """
        Release the store and its connections. A remote store is closed within its
        timeout and shielded from cancellation, so that closing never hangs a
        shutdown.
        """
        ...


async def read_objects(
    cache: CacheBackend, keys: Sequence[str], decode: Callable[[str, Any], Any]
) -> list[Any]:
    """
    :meth:`CacheBackend.get_objects` built from the other members: the remembered
    object when :meth:`~CacheBackend.peek_object` has one, else
    ``decode(key, value)`` of the values :meth:`~CacheBackend.get_many` returns;
    objects decoded here are remembered, values the decoder refuses are deleted.
    """
    out: list[Any] = [cache.peek_object(key) for key in keys]
    cold = [i for i, obj in enumerate(out) if obj is None]
    if cold:
        values = await cache.get_many([keys[i] for i in cold])
        for i, value in zip(cold, values, strict=True):
            if value is not None:
                out[i] = obj = decode(keys[i], value)
                if obj is None:
                    await cache.delete(keys[i])
                else:
                    cache.remember(keys[i], obj)
    return out
