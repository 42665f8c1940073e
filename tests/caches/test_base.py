"""
What the backends share: cache keys, and the CacheBackend interface they implement.
"""

from __future__ import annotations

import inspect

import pytest

from preload import CacheConfig, CacheError
from preload.caches import CacheBackend, MemoryCache, RedisCache, cache_key
from preload.caches._serialization import JsonSerializer, MsgPackSerializer

#: What the rest of the project calls on a cache: the whole interface, nothing more.
MEMBERS = {
    "__contains__",
    "__len__",
    "clear",
    "close",
    "config",
    "delete",
    "get",
    "get_many",
    "get_objects",
    "lease",
    "leased",
    "peek_object",
    "release",
    "remember",
    "return_slots",
    "set",
    "shared",
    "statistics",
    "take_slot",
}


def test_keys_of_different_tenants_never_collide() -> None:
    """
    No choice of tenant, source and key yields another tenant's cache key.
    """
    assert cache_key("a:b", "c", "d") != cache_key("a", "b:c", "d")
    assert cache_key("t1", "kb", "x") != cache_key("t2", "kb", "x")


def test_the_protocol_is_exactly_what_the_project_uses() -> None:
    """
    CacheBackend declares the members the preloader, engine, replay and metrics
    call, each with a docstring that states its contract.
    """
    declared = {
        name
        for name in vars(CacheBackend)
        if name in ("__contains__", "__len__") or not name.startswith("_")
    }
    assert MEMBERS == declared
    assert [] == [name for name in sorted(MEMBERS) if not getattr(CacheBackend, name).__doc__]


async def test_both_backends_implement_every_member_with_its_signature() -> None:
    """
    MemoryCache and RedisCache have every member, and every method accepts what the
    protocol passes (Redis adds keyword-only options of its own).
    """
    pytest.importorskip("redis", reason="the redis package is missing: pip install -e '.[test]'")
    redis = RedisCache(CacheConfig(backend="redis"))  # no connection until used
    try:
        for cache in (MemoryCache(), redis):
            assert [] == [name for name in sorted(MEMBERS) if not hasattr(cache, name)]
            for name in sorted(MEMBERS - {"config", "shared"}):
                wanted = inspect.signature(getattr(CacheBackend, name)).parameters
                have = inspect.signature(getattr(type(cache), name)).parameters
                assert list(wanted) == list(have)[: len(wanted)], (type(cache), name)
                extra = [have[p] for p in list(have)[len(wanted) :]]
                assert all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in extra)
    finally:
        await redis.close()


@pytest.mark.parametrize("serializer", [JsonSerializer(), MsgPackSerializer()])
def test_a_cached_value_nested_past_reading_is_a_cache_error(
    serializer: JsonSerializer | MsgPackSerializer,
) -> None:
    """
    A cached value another replica (or anything else on the shared Redis) wrote, nested
    deeper than the decoder reads, is a CacheError like any value that does not decode,
    not a RecursionError.
    """
    deep: str | bytes = "[" * 5_000 + "]" * 5_000
    if isinstance(serializer, MsgPackSerializer):
        deep = b"\x91" * 5_000 + b"\x90"  # arrays of one, 5,000 deep
    with pytest.raises(CacheError, match="cannot decode"):
        serializer.loads(deep)  # type: ignore[arg-type]
