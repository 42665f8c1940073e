"""
Fixtures that switch the cache backend: every test that asks for ``cache`` or
``new_cache`` runs once on memory and once on a real Redis (skipped only when
``redis-server`` is not installed), as aiocache's ``tests/acceptance/conftest.py``
switches its backends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import pytest

from preload import CacheConfig
from preload.caches import CacheBackend, MemoryCache, RedisCache

if TYPE_CHECKING:
    from conftest import RedisServer

#: Builds a cache of one backend from ``CacheConfig`` keyword arguments.
NewCache = Callable[..., CacheBackend]


@pytest.fixture(name="new_memory_cache")
async def _new_memory_cache() -> AsyncIterator[Callable[..., MemoryCache]]:
    """
    A function that builds memory caches from ``CacheConfig`` keyword arguments; every
    one is closed after the test.
    """
    made: list[MemoryCache] = []

    def new(**config: object) -> MemoryCache:
        cache = MemoryCache(CacheConfig(**config))  # type: ignore[arg-type]
        made.append(cache)
        return cache

    yield new
    for cache in made:
        await cache.close()


@pytest.fixture(name="new_redis_cache")
async def _new_redis_cache(redis_server: RedisServer) -> AsyncIterator[Callable[..., RedisCache]]:
    """
    A function that builds caches on the shared real Redis (emptied for this test)
    from ``CacheConfig`` keyword arguments, retrying Redis at once after a failure;
    every one is closed after the test.
    """
    made: list[RedisCache] = []

    def new(**config: object) -> RedisCache:
        cache = RedisCache(
            CacheConfig(  # a generous timeout: a busy test machine is not an outage
                backend="redis",
                redis_url=redis_server.url,
                redis_retry_s=0.0,
                redis_timeout_s=2.0,
                **config,  # type: ignore[arg-type]
            )
        )
        made.append(cache)
        return cache

    yield new
    for cache in made:
        await cache.close()


@pytest.fixture(name="new_cache", params=["new_memory_cache", "new_redis_cache"])
def _new_cache(request: pytest.FixtureRequest) -> NewCache:
    """
    The cache builder of each backend in turn.
    """
    builder: NewCache = request.getfixturevalue(request.param)
    return builder


@pytest.fixture(name="cache", params=["msgpack", "json"])
def _cache(new_cache: NewCache, request: pytest.FixtureRequest) -> CacheBackend:
    """
    A small cache (three entries) of each backend with each serializer.
    """
    return new_cache(max_entries=3, serializer=request.param)
