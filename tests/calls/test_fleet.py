"""
The replicas sharing a Redis run at most ``calls.fleet_max_in_flight_per_source`` calls
ahead at once against a tenant's call source, together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import anyio
import pytest
import redis.asyncio

from graph import CallGuess
from preload import CacheConfig, ConfigError, DictSource, EngineConfig, PreloadEngine
from preload.caches import MemoryCache, RedisCache
from preload.calls import slot_name
from preload.testing import ScriptedCallPredictor, ScriptedCallSource

if TYPE_CHECKING:
    from conftest import RedisServer

FIND = "Restaurants:Find"
SLOTS = slot_name("default", "backend")


def _config(url: str, fleet: int) -> EngineConfig:
    config = EngineConfig(cache=CacheConfig(backend="redis", redis_url=url, redis_timeout_s=5.0))
    return config.replace(
        calls=replace(
            config.calls,
            max_per_call=math.inf,
            max_in_flight_per_source=32,
            fleet_max_in_flight_per_source=fleet,
        )
    )


def _engine(
    config: EngineConfig,
    source: ScriptedCallSource,
    cities: str,
    cache: RedisCache | None = None,
    predictor: ScriptedCallPredictor | None = None,
) -> PreloadEngine:
    """
    An engine whose forecast guesses a call of each of ``cities`` (or ``predictor``'s),
    on ``cache`` (else the one its config makes).
    """
    kb = {"kb": DictSource({"k": "text"})}
    guesses = predictor or ScriptedCallPredictor([(FIND, {"city": c}, 0.9) for c in cities])
    if cache is None:
        return PreloadEngine(config, sources=kb, call_sources=[source], call_predictor=guesses)
    return PreloadEngine(
        config, sources=kb, call_sources=[source], call_predictor=guesses, cache=cache
    )


class _Takes(RedisCache):
    """
    The engine's Redis cache, telling (:attr:`done`) once it was asked for
    ``expected`` slots: a forecast's guesses have all been judged.
    """

    def __init__(self, url: str, expected: int) -> None:
        super().__init__(CacheConfig(backend="redis", redis_url=url, redis_timeout_s=5.0))
        self.expected = expected
        self.taken: list[bool] = []
        self.done = anyio.Event()

    async def take_slot(
        self, name: str, token: str, *, most: int, ttl: float, returned: Sequence[str] = ()
    ) -> bool:
        got = await super().take_slot(name, token, most=most, ttl=ttl, returned=returned)
        self.taken.append(got)
        if len(self.taken) >= self.expected:
            self.done.set()
        return got


async def test_slots_are_counted_by_every_process_and_a_dead_holder_s_expire(
    redis_server: RedisServer,
) -> None:
    """
    Two caches on one Redis (two replicas) share the slots of a name: a token that
    holds one keeps it, one given back (or returned with the next take) frees it, and
    one whose time is up counts no more (a replica that died holding it).
    """
    config = CacheConfig(backend="redis", redis_url=redis_server.url)
    a, b = RedisCache(config), RedisCache(config)
    try:
        assert await a.take_slot("s", "a1", most=2, ttl=60)
        assert await a.take_slot("s", "a1", most=2, ttl=60)  # held: renewed, not a second
        assert await a.take_slot("s", "a2", most=2, ttl=60)
        assert not await b.take_slot("s", "b1", most=2, ttl=60)
        assert await b.take_slot("other", "b1", most=2, ttl=60)  # another name's slots
        assert await a.take_slot("s", "a3", most=2, ttl=60, returned=["a1"])
        assert not await b.take_slot("s", "b1", most=2, ttl=60)
        await a.return_slots("s", ["a2", "not held"])
        assert await b.take_slot("s", "b1", most=2, ttl=60)
        client = redis.asyncio.Redis.from_url(redis_server.url)
        try:
            key = f"{config.namespace}.slots:s"
            assert {b"a3", b"b1"} == set(await client.zrange(key, 0, -1))
            seconds, micros = await client.time()
            now_ms = seconds * 1000 + micros // 1000
            await client.zadd(key, {"a3": now_ms - 1})  # its replica died; its time is up
            assert await b.take_slot("s", "b2", most=2, ttl=60)
            assert 0 < await client.pttl(key) <= 60_000  # the set goes with its last slot
        finally:
            await client.aclose()
    finally:
        await a.close()
        await b.close()


async def test_a_cache_that_cannot_reach_redis_grants_every_slot(
    own_redis_server: RedisServer,
) -> None:
    """
    While Redis is down each replica's own limits bound its calls (a slot is granted,
    as a lease is), and a memory cache, which no other process shares, always grants.
    """
    config = CacheConfig(backend="redis", redis_url=own_redis_server.url, redis_timeout_s=1.0)
    cache = RedisCache(config)
    memory = MemoryCache(config)
    try:
        assert await cache.take_slot("s", "t", most=1, ttl=60)
        assert not await cache.take_slot("s", "u", most=1, ttl=60)
        own_redis_server.stop()
        assert await cache.take_slot("s", "u", most=1, ttl=60)
        assert await memory.take_slot("s", "t", most=1, ttl=60)
        assert await memory.take_slot("s", "u", most=1, ttl=60)
    finally:
        await cache.close()
        await memory.close()


async def test_replicas_run_at_most_the_fleet_s_calls_ahead_together(
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """
    Another replica holds three of the tenant's four slots: of this replica's three
    sure guesses one runs ahead, two are held back by the fleet's bound (logged once),
    though its own limit (32) would run them. Once a call returns its slot is given
    back, and once the other replica gives its slots back, the two held run. Without a
    fleet bound all three run at once. (The calls wait at the source until the three
    guesses are judged, so that none gives its slot back before.)
    """
    other = RedisCache(CacheConfig(backend="redis", redis_url=redis_server.url))
    gate = anyio.Event()
    source = ScriptedCallSource({FIND: True}, gate=gate)
    cache = _Takes(redis_server.url, 3)
    try:
        for token in ("o1", "o2", "o3"):
            assert await other.take_slot(SLOTS, token, most=4, ttl=60)
        async with _engine(_config(redis_server.url, 4), source, "ABC", cache) as engine:
            await engine.handle(session_id="s1", text="go")
            with anyio.fail_after(10):
                await cache.done.wait()
            first = engine.call_statistics()
            gate.set()
            await engine.wait_idle()
            assert 1 == len(source.made)
            # its call returned and gave its slot back: the fourth is free again
            assert await other.take_slot(SLOTS, "o4", most=4, ttl=60)
            await other.return_slots(SLOTS, ["o1", "o2", "o3", "o4"])
            await engine.handle(session_id="s2", text="go")  # the two held, and the one run
            await engine.wait_idle()
            second = engine.call_statistics()
        assert (1, 2, 2) == (
            first.speculative,
            first.speculative_skipped_fleet,
            first.speculative_skipped,
        )
        assert (3, 2) == (second.speculative, second.speculative_skipped_fleet)
        told = [r for r in caplog.records if "fleet_max_in_flight_per_source" in r.getMessage()]
        assert 1 == len(told)
        alone = ScriptedCallSource({FIND: True})
        async with _engine(_config(redis_server.url, 0), alone, "DEF") as engine:
            await engine.handle(session_id="s", text="go")
            await engine.wait_idle()
            assert (3, 0) == (
                engine.call_statistics().speculative,
                engine.call_statistics().speculative_skipped_fleet,
            )
    finally:
        await other.close()
        await cache.close()


async def test_the_slot_of_a_call_that_failed_is_given_back_with_the_next_take(
    redis_server: RedisServer,
) -> None:
    """
    A call run ahead that failed does not give its slot back as it ends (a failing
    backend gets no more calls for it); the engine's next call run ahead gives it back
    as it takes its own, so that one slot serves one call after the other.
    """
    other = RedisCache(CacheConfig(backend="redis", redis_url=redis_server.url))
    source = ScriptedCallSource({FIND: True}, fail={FIND: RuntimeError("down")})
    try:
        predictor = ScriptedCallPredictor([(FIND, {"city": "A"}, 0.9)])
        async with _engine(_config(redis_server.url, 1), source, "", predictor=predictor) as engine:
            await engine.handle(session_id="s1", text="go")
            await engine.wait_idle()
            assert not await other.take_slot(SLOTS, "o", most=1, ttl=60)  # still held
            predictor.guesses = [CallGuess(name=FIND, args={"city": "B"}, p=0.9, evidence={})]
            await engine.handle(session_id="s2", text="go")
            await engine.wait_idle()
            stats = engine.call_statistics()
        assert (2, 0) == (stats.speculative, stats.speculative_skipped_fleet)
        assert {"A", "B"} <= {args["city"] for _, args in source.made}
    finally:
        await other.close()


async def test_a_replica_that_closes_gives_its_slots_back(redis_server: RedisServer) -> None:
    """
    A replica whose calls run ahead are still running when it closes gives their slots
    back, so the other replicas need not wait for them to expire.
    """
    other = RedisCache(CacheConfig(backend="redis", redis_url=redis_server.url))
    gate = anyio.Event()
    source = ScriptedCallSource({FIND: True}, gate=gate)  # its calls wait until closed
    try:
        async with _engine(_config(redis_server.url, 2), source, "AB") as engine:
            await engine.handle(session_id="s", text="go")
            with anyio.fail_after(10):
                while len(source.made) < 2:  # both started; the source tells each
                    await source.started.wait()
                    source.started = anyio.Event()
            assert not await other.take_slot(SLOTS, "o1", most=2, ttl=60)
        assert await other.take_slot(SLOTS, "o1", most=2, ttl=60)
        assert await other.take_slot(SLOTS, "o2", most=2, ttl=60)
    finally:
        await other.close()


def test_a_negative_fleet_bound_is_refused_naming_its_key() -> None:
    config = EngineConfig()
    with pytest.raises(ConfigError, match="calls.fleet_max_in_flight_per_source"):
        replace(config.calls, fleet_max_in_flight_per_source=-1)


async def test_a_fleet_bound_on_a_memory_cache_bounds_nothing_and_says_so(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    One process's memory cache has no replicas to count with: the bound holds nothing
    back (each engine's own limits do), and the process says so once, naming the key.
    """
    from preload.engine import _calls

    monkeypatch.setitem(_calls._TOLD, "unshared fleet", False)
    config = EngineConfig()
    config = config.replace(
        calls=replace(config.calls, max_per_call=math.inf, fleet_max_in_flight_per_source=1)
    )
    for _ in range(2):
        source = ScriptedCallSource({FIND: True})
        async with _engine(config, source, "ABC") as engine:
            await engine.handle(session_id="s", text="go")
            await engine.wait_idle()
            assert (3, 0) == (
                engine.call_statistics().speculative,
                engine.call_statistics().speculative_skipped_fleet,
            )
    told = [r for r in caplog.records if "fleet_max_in_flight_per_source" in r.getMessage()]
    assert 1 == len(told)
    assert 'cache.backend = "redis"' in told[0].getMessage()


async def test_tenants_whose_sources_name_one_backend_share_its_slots(
    redis_server: RedisServer,
) -> None:
    """
    Sources that name the backend they call (``backend_name``) count the fleet's slots over
    every tenant's calls to it: another tenant's replica holds one of the backend's
    two slots, so of three sure guesses one runs; a source naming no backend has its
    tenant's own slots. A ``backend_name`` that is not a name is refused naming the source.
    """
    other = RedisCache(CacheConfig(backend="redis", redis_url=redis_server.url))
    try:
        assert await other.take_slot(slot_name("b", "x", "api"), "o", most=2, ttl=60)
        runs = []
        for backend in ("api", None):
            gate = anyio.Event()  # no call returns before the three guesses are judged
            source = ScriptedCallSource({FIND: True}, gate=gate)
            source.backend_name = backend  # type: ignore[attr-defined]
            config = _config(redis_server.url, 2).replace(tenant="a")
            cache = _Takes(redis_server.url, 3)
            async with _engine(config, source, "ABC", cache) as engine:
                await engine.handle(session_id="s", text="go")
                with anyio.fail_after(10):
                    await cache.done.wait()
                stats = engine.call_statistics()
                runs.append((stats.speculative, stats.speculative_skipped_fleet))
                gate.set()
            await cache.close()
        assert [(1, 2), (2, 1)] == runs
        source = ScriptedCallSource({FIND: True}, name="crm")
        source.backend_name = ""  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match="call source 'crm': backend_name must be"):
            _engine(_config(redis_server.url, 2), source, "A")
    finally:
        await other.close()
