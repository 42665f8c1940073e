"""
The memory backend: bounded by entries and bytes, decoded objects kept in front.
"""

from __future__ import annotations

import pytest

from preload import CacheConfig, CacheError
from preload.caches import MemoryCache


@pytest.fixture(name="cache", params=["msgpack", "json"])
def _cache(request: pytest.FixtureRequest) -> MemoryCache:
    """
    A small memory cache with each serializer.
    """
    return MemoryCache(CacheConfig(max_entries=3, serializer=request.param))


async def test_least_recently_used_is_evicted(cache: MemoryCache) -> None:
    """
    Beyond max_entries, the least recently used entry goes, and on_evict is told.
    """
    evicted: list[str] = []
    cache._on_evict = evicted.append
    for key in ("a", "b", "c"):
        await cache.set(key, {"v": key})
    await cache.get("a")
    await cache.set("d", {"v": "d"})
    assert ["b"] == evicted
    assert None is await cache.get("b")
    assert {"v": "a"} == await cache.get("a")
    assert 3 == cache.statistics().entries


async def test_byte_bound_is_kept() -> None:
    """
    The cache never holds more bytes than max_bytes.
    """
    cache = MemoryCache(CacheConfig(max_entries=100, max_bytes=200))
    for i in range(10):
        await cache.set(f"k{i}", {"text": "x" * 50})
    assert cache.statistics().bytes <= 200
    with pytest.raises(CacheError, match="above cache.max_bytes"):
        await cache.set("huge", {"text": "x" * 500})


async def test_decoded_objects_are_kept_in_front_and_follow_the_entries() -> None:
    """
    peek_object serves a remembered object without I/O, and forgets it with its
    entry: on overwrite, delete and eviction.
    """
    cache = MemoryCache(CacheConfig(max_entries=2, decoded_entries=2))
    obj = object()
    await cache.set("a", {"v": 1}, obj=obj)
    assert obj is cache.peek_object("a")
    await cache.set("a", {"v": 2})
    assert None is cache.peek_object("a")
    cache.remember("a", obj)
    await cache.set("b", {"v": 3}, obj=object())
    await cache.set("c", {"v": 4}, obj=object())  # evicts a
    assert (None, False) == (cache.peek_object("a"), "a" in cache)
    await cache.delete("b")
    assert None is cache.peek_object("b")


async def test_preloads_evicted_unread_are_counted() -> None:
    """
    A preloaded entry evicted before anyone read it counts in evicted_unused; one
    that was read does not.
    """
    cache = MemoryCache(CacheConfig(max_entries=2))
    await cache.set("read", {"v": 1}, preload=True)
    await cache.set("unread", {"v": 2}, preload=True)
    await cache.get("read")
    await cache.set("x", {"v": 3})
    await cache.set("y", {"v": 4})
    stats = cache.statistics()
    assert (2, 1) == (stats.evictions, stats.evicted_unused)
