"""
The bookkeeping both caches keep in this process, beside their store.

:class:`EntryIndex` knows which keys are held, their size, until when they live (on
the event loop's clock, so that a replay on simulated time expires them too) and which
preloads nobody has read yet; it evicts the least recently used beyond its bounds and
counts evictions, expirations and wasted preloads. :class:`DecodedObjects` is the
small LRU of decoded objects that lets a hit skip decoding.

:class:`~preload.caches.MemoryCache` indexes its store with both;
:class:`~preload.caches.RedisCache` indexes the keys it knows warm in Redis and the
objects it decoded from Redis with them (and its memory fallback is a
``MemoryCache``).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio

if TYPE_CHECKING:
    from ._demand import EntryValue

__all__ = ["DecodedObjects", "EntryIndex"]

V = TypeVar("V")


class EntryIndex:
    """
    An LRU index of entries: size in bytes, expiry, and whether a preloaded entry has
    been read, within ``max_entries`` and ``max_bytes``.

    With ``value``, eviction is value-aware: of the ``sample`` least recently used
    entries, the one worth least goes first (ties: the least recently used), and a
    preload just added that is worth less than all of them is refused (dropped
    itself, counted in ``rejected``). Without, it is LRU.

    Args:
        max_entries: The most entries it holds.
        max_bytes: The most bytes they add up to (None: no bound).
        value: What keeping an entry is worth (None: LRU).
        sample: How many of the least recently used entries one eviction compares.
    """

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int | None = None,
        value: EntryValue | None = None,
        sample: int = 64,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.value = value
        self.sample = max(1, sample)
        self._newest_preload: str | None = None
        self._sizes: OrderedDict[str, int] = OrderedDict()
        self._expires: dict[str, float] = {}
        self._unread: set[str] = set()
        #: The bytes of every entry held.
        self.bytes = 0
        #: Entries evicted to keep the bounds.
        self.evictions = 0
        #: Entries that expired while held.
        self.expirations = 0
        #: Preloaded entries evicted or expired before anyone read them.
        self.evicted_unused = 0
        #: Preloads refused because they were worth less than what they would evict.
        self.rejected = 0

    def __contains__(self, key: object) -> bool:
        """
        Whether ``key`` is held, expired or not (see :meth:`expired`).
        """
        return key in self._sizes

    def __len__(self) -> int:
        return len(self._sizes)

    def expired(self, key: str) -> bool:
        """
        Whether the held entry ``key`` has outlived its TTL on the loop's clock.
        """
        expires = self._expires.get(key)
        return expires is not None and anyio.current_time() >= expires

    def add(self, key: str, size: int, *, ttl: float | None, unread: bool = False) -> None:
        """
        Hold ``key`` (replacing its entry) as the most recently used, for ``ttl``
        seconds (None or 0: until evicted); then call :meth:`evict` until it returns
        None.

        Args:
            key: The entry.
            size: Its size in bytes.
            ttl: Seconds it lives (None or 0: until evicted).
            unread: It was stored by a preload: if it leaves unread, it counts in
                ``evicted_unused``.
        """
        self._drop(key)
        self._sizes[key] = size
        self.bytes += size
        if ttl:
            self._expires[key] = anyio.current_time() + ttl
        if unread:
            self._unread.add(key)
        else:
            self._unread.discard(key)
        self._newest_preload = key if unread else None

    def evict(self) -> str | None:
        """
        Drop the least recently used entry if the index is beyond its bounds.

        Returns:
            The key dropped, or None when the index is within its bounds.
        """
        over_bytes = self.max_bytes is not None and self.bytes > self.max_bytes
        if not self._sizes or (len(self._sizes) <= self.max_entries and not over_bytes):
            return None
        old = next(iter(self._sizes)) if self.value is None else self._victim()
        self._drop(old)
        if old == self._newest_preload:
            self.rejected += 1
            self._newest_preload = None
        else:
            self.evictions += 1
        self._settle_unread(old)
        return old

    def admits(self, key: str, survival: float = 1.0) -> bool:
        """
        Whether a preload of ``key`` would stay if it were added now: the index has
        room, or it is not value-aware, or ``key``'s worth times ``survival`` (the
        chance that it is still held when used) is at least that of the entry it
        would evict.
        """
        if self.value is None or key in self._sizes or self._has_room():
            return True
        value = self.value.value
        least = min(value(k) for k in itertools.islice(self._sizes, self.sample))
        return value(key) * survival >= least

    def _has_room(self) -> bool:
        """
        Whether one more entry of the mean size fits in both bounds.
        """
        held = len(self._sizes)
        if held >= self.max_entries:
            return False
        return (
            self.max_bytes is None or not held or self.bytes * (held + 1) <= self.max_bytes * held
        )

    def _victim(self) -> str:
        """
        The entry worth least among the ``sample`` least recently used (the first
        among equals), or the preload just added when it is worth less still.
        """
        assert self.value is not None
        value = self.value.value
        victim, least = "", float("inf")
        for key in itertools.islice(self._sizes, self.sample):
            v = value(key)
            if v < least:
                victim, least = key, v
        newest = self._newest_preload
        if newest is not None and newest in self._sizes and value(newest) < least:
            return newest
        return victim

    def expire(self, key: str) -> None:
        """
        Drop ``key`` as expired, counting it.
        """
        self._drop(key)
        self.expirations += 1
        self._settle_unread(key)

    def read(self, key: str) -> None:
        """
        Note a read of ``key``: it becomes the most recently used and, if it was an
        unread preload, a read one.
        """
        if key in self._sizes:
            self._sizes.move_to_end(key)
        self._unread.discard(key)

    def remove(self, key: str) -> None:
        """
        Drop ``key`` entirely (it was deleted: not an eviction, not a waste).
        """
        self._drop(key)
        self._unread.discard(key)

    def clear(self) -> None:
        """
        Drop every entry; the counters stay.
        """
        self._sizes.clear()
        self._expires.clear()
        self._unread.clear()
        self.bytes = 0

    def _drop(self, key: str) -> None:
        # Whether it is an unread preload is for the caller to settle.
        self.bytes -= self._sizes.pop(key, 0)
        self._expires.pop(key, None)

    def _settle_unread(self, key: str) -> None:
        if key in self._unread:
            self._unread.discard(key)
            self.evicted_unused += 1


class DecodedObjects(Generic[V]):
    """
    An LRU of decoded objects by key, at most ``limit`` of them (0: none).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._objects: OrderedDict[str, V] = OrderedDict()

    def get(self, key: str) -> V | None:
        """
        The object kept for ``key``, or None; its place in the LRU does not change.
        """
        return self._objects.get(key)

    def put(self, key: str, obj: V) -> None:
        """
        Keep ``obj`` for ``key`` as the most recently used, dropping the least
        recently used beyond the limit.
        """
        if not self.limit:
            return
        self._objects[key] = obj
        self._objects.move_to_end(key)
        while len(self._objects) > self.limit:
            self._objects.popitem(last=False)

    def touch(self, key: str) -> None:
        """
        Make ``key``'s object the most recently used.
        """
        self._objects.move_to_end(key)

    def discard(self, key: str) -> None:
        """
        Forget ``key``'s object, if any.
        """
        self._objects.pop(key, None)

    def clear(self) -> None:
        """
        Forget every object.
        """
        self._objects.clear()
