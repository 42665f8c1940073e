"""
The contract every cache backend keeps: the same tests on memory and on a real Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from preload import CacheError

if TYPE_CHECKING:
    from preload.caches import CacheBackend

    NewCache = Callable[..., CacheBackend]


async def test_non_ascii_values_round_trip(cache: CacheBackend) -> None:
    """
    Values come back equal, non-ASCII text included.
    """
    value = {"text": "東京 café ✓", "n": [1, 2.5], "nested": {"ok": True}}
    await cache.set("k", value)
    assert value == await cache.get("k")


@pytest.mark.parametrize("serializer", ["msgpack", "json"])
async def test_non_ascii_values_round_trip_in_bulk(new_cache: NewCache, serializer: str) -> None:
    """
    msgpack (raw bytes through aiocache on Redis) and JSON both return non-ASCII text
    intact, one by one and in bulk.
    """
    value = {"text": "東京 café ✓ — ünïcödé 🚀", "n": [1, 2.5, -3], "ok": True, "none": None}
    cache = new_cache(serializer=serializer)
    await cache.set("k", value)
    assert [value, None] == await cache.get_many(["k", "absent"])
    assert value == await cache.get("k")


async def test_get_objects_decodes_once_and_drops_what_is_not_an_item(
    new_cache: NewCache,
) -> None:
    """
    get_objects decodes stored values, remembers them, and deletes values its
    decoder refuses.
    """
    cache = new_cache()
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


async def test_a_stored_key_is_known_until_deleted_or_cleared(cache: CacheBackend) -> None:
    """
    ``in`` knows a key this process stored, with no I/O; delete and clear drop values.
    """
    await cache.set("a", {"v": 1})
    await cache.set("b", {"v": 2})
    assert ("a" in cache, "b" in cache, "absent" in cache) == (True, True, False)
    await cache.delete("a")
    await cache.delete("absent")
    assert ("a" in cache, None) == (False, await cache.get("a"))
    await cache.clear()
    assert ("b" in cache, [None, None]) == (False, await cache.get_many(["a", "b"]))


async def test_statistics_count_entries_hits_and_misses(cache: CacheBackend) -> None:
    """
    One stored entry, one hit, one miss, whatever the backend.
    """
    await cache.set("k", {"v": 1})
    await cache.get("k")
    await cache.get("absent")
    stats = cache.statistics()
    assert (1, 1, 1, True) == (stats.entries, stats.hits, stats.misses, stats.backend_up)
    assert stats.bytes > 0


async def test_a_value_above_max_bytes_is_refused(new_cache: NewCache) -> None:
    """
    A value larger than max_bytes raises CacheError and is not stored.
    """
    cache = new_cache(max_entries=100, max_bytes=200)
    with pytest.raises(CacheError, match="above cache.max_bytes"):
        await cache.set("huge", {"text": "x" * 500})
    assert ("huge" in cache, None) == (False, await cache.get("huge"))


async def test_a_released_lease_can_be_taken_again(cache: CacheBackend) -> None:
    """
    A lease is granted with a token; once released, nobody holds it and it is
    granted again.
    """
    token = await cache.lease("k", ttl=30)
    assert token is not None
    await cache.release("k", token)
    assert not await cache.leased("k")
    assert None is not await cache.lease("k", ttl=30)
