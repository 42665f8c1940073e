"""
The item cache: bounded, namespaced, msgpack or JSON values.
"""

from __future__ import annotations

import pytest

from preload import CacheConfig, CacheError, ItemCache, cache_key


@pytest.fixture(name="cache", params=["msgpack", "json"])
def _cache(request: pytest.FixtureRequest) -> ItemCache:
    """
    A small memory cache with each serializer.
    """
    return ItemCache(CacheConfig(max_entries=3, serializer=request.param))


async def test_non_ascii_values_round_trip(cache: ItemCache) -> None:
    """
    Values come back equal, non-ASCII text included.
    """
    value = {"text": "東京 café ✓", "n": [1, 2.5], "nested": {"ok": True}}
    await cache.set("k", value)
    assert value == await cache.get("k")


async def test_least_recently_used_is_evicted(cache: ItemCache) -> None:
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
    cache = ItemCache(CacheConfig(max_entries=100, max_bytes=200))
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
