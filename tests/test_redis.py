"""
The cache on a real Redis: round trips, sharing between replicas, leases, and falling
back to memory while Redis is down.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

from preload import CacheConfig, CacheError
from preload._redis import RedisItemCache

if TYPE_CHECKING:
    from conftest import RedisServer


def redis_cache(server: RedisServer, **config: object) -> RedisItemCache:
    """
    A Redis cache on ``server`` that retries Redis at once after a failure.
    """
    return RedisItemCache(
        CacheConfig(backend="redis", redis_url=server.url, redis_retry_s=0.0, **config)  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("serializer", ["msgpack", "json"])
async def test_non_ascii_values_round_trip_on_real_redis(
    redis_server: RedisServer, serializer: str
) -> None:
    """
    msgpack (raw bytes through aiocache) and JSON both return non-ASCII text intact.
    """
    value = {"text": "東京 café ✓ — ünïcödé 🚀", "n": [1, 2.5, -3], "ok": True, "none": None}
    cache = redis_cache(redis_server, serializer=serializer)
    try:
        await cache.set("k", value)
        assert [value, None] == await cache.get_many(["k", "absent"])
        assert value == await cache.get("k")
    finally:
        await cache.close()


async def test_a_value_one_replica_stores_is_read_by_another(redis_server: RedisServer) -> None:
    """
    Two caches on one Redis share values; only the writer knows the key warm without
    asking Redis.
    """
    one, two = redis_cache(redis_server), redis_cache(redis_server)
    try:
        await one.set("shared", {"v": 1})
        assert ("shared" in one, "shared" in two) == (True, False)
        assert {"v": 1} == await two.get("shared")
        assert "shared" in two  # seen warm now
        await two.delete("shared")
        assert None is await one.get("shared")
    finally:
        await one.close()
        await two.close()


async def test_undecodable_values_read_as_misses(redis_server: RedisServer) -> None:
    """
    Garbage under a key (written by someone else) is a miss in bulk reads and a
    CacheError in a single read.
    """
    import redis.asyncio

    cache = redis_cache(redis_server)
    client = redis.asyncio.Redis(port=redis_server.port)
    try:
        await client.set("preload:bad", b"\xc1\xc1\xc1")
        with pytest.raises(CacheError, match="cannot decode"):
            await cache.get("bad")
        assert [None] == await cache.get_many(["bad"])
        assert 0 == await client.exists("preload:bad")
    finally:
        await client.aclose()
        await cache.close()


async def test_a_lease_has_one_owner_at_a_time(redis_server: RedisServer) -> None:
    """
    SET NX: the first replica gets a token, the second none until the owner releases;
    a stale token cannot release someone else's lease.
    """
    one, two = redis_cache(redis_server), redis_cache(redis_server)
    try:
        token = await one.lease("k", ttl=30)
        assert token is not None
        assert None is await two.lease("k", ttl=30)
        assert await two.leased("k")
        await two.release("k", "not-the-owner")
        assert await one.leased("k")
        await one.release("k", token)
        assert not await two.leased("k")
        assert None is not await two.lease("k", ttl=30)
    finally:
        await one.close()
        await two.close()


async def test_redis_down_falls_back_to_memory_and_comes_back(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """
    Redis killed: the cache keeps serving from memory and logs once; Redis restarted:
    the cache uses it again (and logs that once).
    """
    cache = redis_cache(own_redis_server)
    caplog.set_level(logging.WARNING, logger="preload._redis")
    try:
        await cache.set("before", {"v": 0})
        own_redis_server.stop()
        for i in range(5):
            await cache.set(f"down{i}", {"v": i})
        assert {"v": 3} == await cache.get("down3")
        assert "down3" in cache
        assert None is not await cache.lease("k", ttl=1)  # leases degrade to per process
        stats = cache.statistics()
        assert (False, True) == (stats.backend_up, stats.backend_errors >= 1)
        assert 1 == sum("unreachable" in r.getMessage() for r in caplog.records)

        own_redis_server.start()
        await cache.set("after", {"v": 9})
        assert cache.statistics().backend_up
        assert {"v": 9} == await cache.get("after")
        assert {"v": 4} == await cache.get("down4")  # still served from the fallback
        assert 1 == sum("is back" in r.getMessage() for r in caplog.records)
    finally:
        await cache.close()
