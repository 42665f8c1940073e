"""
The item cache: bounded, namespaced, msgpack or JSON values.
"""

from __future__ import annotations

import pytest

from preload import CacheConfig, CacheError, MemoryCache, cache_key


@pytest.fixture(name="cache", params=["msgpack", "json"])
def _cache(request: pytest.FixtureRequest) -> MemoryCache:
    """
    A small memory cache with each serializer.
    """
    return MemoryCache(CacheConfig(max_entries=3, serializer=request.param))


async def test_non_ascii_values_round_trip(cache: MemoryCache) -> None:
    """
    Values come back equal, non-ASCII text included.
    """
    value = {"text": "東京 café ✓", "n": [1, 2.5], "nested": {"ok": True}}
    await cache.set("k", value)
    assert value == await cache.get("k")


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


def test_keys_of_different_tenants_never_collide() -> None:
    """
    No choice of tenant, source and key yields another tenant's cache key.
    """
    assert cache_key("a:b", "c", "d") != cache_key("a", "b:c", "d")
    assert cache_key("t1", "kb", "x") != cache_key("t2", "kb", "x")


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


async def test_get_objects_decodes_once_and_drops_what_is_not_an_item() -> None:
    """
    get_objects decodes stored values, remembers them, and deletes values its
    decoder refuses.
    """
    cache = MemoryCache()
    decoded: list[str] = []

    def decode(key: str, value: object) -> object:
        decoded.append(key)
        return None if key == "bad" else ("item", value)

    await cache.set("good", {"v": 1})
    await cache.set("bad", [1, 2])
    first = await cache.get_objects(["good", "bad", "absent"], decode)
    again = await cache.get_objects(["good"], decode)
    assert [("item", {"v": 1}), None, None] == first
    assert first[0] is again[0]
    assert (["good", "bad"], False) == (decoded, "bad" in cache)


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
