"""
The Redis backend on a real Redis: sharing between replicas, undecodable values,
leases across clients, falling back to memory while Redis is down, and engines and
preloaders that share one Redis. (What every backend does is in test_contract.py.)
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from preload import (
    CacheConfig,
    CacheError,
    DictSource,
    EngineConfig,
    PreloadEngine,
    PreloaderConfig,
    SourceRouter,
    TiktokenCounter,
)
from preload.caches import RedisCache
from preload.compression import TruncatingCompressor
from preload.learning import NullForecaster
from preload.loading import Fetched, Preloader
from preload.testing import ScriptedSource

if TYPE_CHECKING:
    from conftest import RedisServer


def redis_cache(server: RedisServer, **config: object) -> RedisCache:
    """
    A Redis cache on ``server`` that retries Redis at once after a failure.
    """
    return RedisCache(
        CacheConfig(  # a generous timeout: a busy test machine is not an outage
            backend="redis",
            redis_url=server.url,
            redis_retry_s=0.0,
            redis_timeout_s=2.0,
            **config,  # type: ignore[arg-type]
        )
    )


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
    caplog.set_level(logging.WARNING, logger="preload.caches._redis")
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


def replica(
    server: RedisServer,
    source: ScriptedSource,
    counter: TiktokenCounter,
    *,
    tenant: str = "default",
    **config: object,
) -> Preloader:
    """
    One replica's preloader on the shared Redis.
    """
    return Preloader(
        sources=SourceRouter({source.name: source}),
        cache=redis_cache(server),
        compressor=TruncatingCompressor(counter),
        config=PreloaderConfig(**config),  # type: ignore[arg-type]
        tenant=tenant,
        close_cache=True,
    )


async def test_a_preload_by_one_replica_is_a_hit_for_another(
    redis_server: RedisServer, counter: TiktokenCounter
) -> None:
    """
    Replica A preloads; replica B's request hits Redis without calling its source.
    """
    source_a, source_b = ScriptedSource({"k": "shared ✓"}), ScriptedSource({"k": "shared ✓"})
    async with (
        replica(redis_server, source_a, counter) as a,
        replica(redis_server, source_b, counter) as b,
    ):
        assert a.schedule("k", 0.9)
        await a.wait_idle()
        got = await b.get("k")
        assert not b.schedule("k", 0.9)  # B knows it warm now
        again = await b.get("k")
    assert ("hit", "shared ✓") == (got.status, got.item.full.text if got.item else None)
    assert (1, 0) == (source_a.calls.total(), source_b.calls.total())
    # The first hit was A's doing; the second, B's own copy.
    assert ("hit", 1, 0) == (again.status, b.statistics().remote_hits, a.statistics().remote_hits)


async def test_concurrent_demand_on_two_replicas_loads_once(
    redis_server: RedisServer, counter: TiktokenCounter
) -> None:
    """
    While A loads a key under its lease, B's request for it waits for A's value
    instead of loading it again.
    """
    gate = anyio.Event()
    source_a = ScriptedSource({"k": "text"}, gate=gate)
    source_b = ScriptedSource({"k": "text"})
    got: dict[str, Fetched] = {}
    async with (
        replica(redis_server, source_a, counter) as a,
        replica(redis_server, source_b, counter) as b,
    ):

        async def ask(name: str, preloader: Preloader) -> None:
            got[name] = await preloader.get("k", deadline_s=10)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, "a", a)
            await source_a.started.wait()  # A holds the lease and is loading
            tg.start_soon(ask, "b", b)
            while not b.statistics().lease_waits:  # until B found A's lease (Redis I/O: no event)
                await wait_all_tasks_blocked()
            gate.set()
    assert (1, 0) == (source_a.calls.total(), source_b.calls.total())
    assert ("miss", "partial") == (got["a"].status, got["b"].status)
    assert (1, 1) == (b.statistics().lease_waits, b.statistics().remote_loads)


async def test_a_dead_holders_lease_expires(
    redis_server: RedisServer, counter: TiktokenCounter
) -> None:
    """
    A lease left by a replica that died mid-load expires; the waiting replica then
    takes it and loads the key itself.
    """
    import redis.asyncio

    source = ScriptedSource({"k": "text"})
    async with replica(redis_server, source, counter) as b:
        ck = b.key_of("k")
        assert ck is not None
        client = redis.asyncio.Redis(port=redis_server.port)
        try:
            await client.set(f"preload.lease:{ck[1]}", "dead-replica", px=200)
        finally:
            await client.aclose()
        got = await b.get("k", deadline_s=10)
    assert ("miss", 1, 1) == (got.status, source.calls["k"], b.statistics().lease_waits)


async def test_tenants_never_see_each_others_items_on_redis(
    redis_server: RedisServer, counter: TiktokenCounter
) -> None:
    """
    The same key under two tenants is two entries: each tenant gets its own text.
    """
    one, two = ScriptedSource({"k": "tenant one"}), ScriptedSource({"k": "tenant two"})
    async with (
        replica(redis_server, one, counter, tenant="t1") as a,
        replica(redis_server, two, counter, tenant="t2") as b,
    ):
        first = await a.get("k")
        second = await b.get("k")
        again = await a.get("k")
    texts = [f.item.full.text if f.item else None for f in (first, second, again)]
    assert ["tenant one", "tenant two", "tenant one"] == texts
    assert ("miss", "miss", "hit") == (first.status, second.status, again.status)


async def test_engine_keeps_serving_while_redis_is_down(
    own_redis_server: RedisServer,
    knowledge: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """
    Redis killed mid-run: requests still get their items (from the memory fallback),
    the outage is logged once; Redis back: the engine writes to it again.
    """
    import redis.asyncio

    config = EngineConfig(
        cache=CacheConfig(
            backend="redis",
            redis_url=own_redis_server.url,
            redis_retry_s=0.0,
            redis_timeout_s=2.0,
        )
    )
    caplog.set_level(logging.WARNING, logger="preload.caches._redis")
    keys = list(knowledge)
    async with PreloadEngine(
        config, sources={"kb": DictSource(knowledge)}, forecaster=NullForecaster()
    ) as engine:
        first = await engine.handle(session_id="s", text="one", needs=keys[:2])
        own_redis_server.stop()
        down = [await engine.handle(session_id="s", text="two", needs=keys[:4]) for _ in range(3)]
        assert not engine.metrics().backend_up
        own_redis_server.start()  # empty: nothing survived the crash
        back = await engine.handle(session_id="s", text="three", needs=keys)
        assert engine.metrics().backend_up
        client = redis.asyncio.Redis(port=own_redis_server.port)
        try:
            stored = len(await client.keys("preload:*"))
        finally:
            await client.aclose()
    assert (0, 2) == (first.hits, first.misses)
    assert [(0, 4), (4, 0), (4, 0)] == [(c.hits, c.misses) for c in down]  # Redis lost all
    assert all(len(c.missing) == 0 for c in [first, *down, back])
    assert 1 == sum("unreachable" in r.getMessage() for r in caplog.records)
    assert 1 == sum("is back" in r.getMessage() for r in caplog.records)
    assert len(keys) - 4 == stored  # the keys loaded after Redis came back


REPLICA = Path(__file__).parent / "replica.py"


def run_replicas(
    server: RedisServer, mode: str, names: list[str], keys: list[str]
) -> list[dict[str, Any]]:
    """
    Start one engine process per name on ``server``, release them together once all
    are ready, and return what each printed.
    """
    import redis

    procs = [
        subprocess.Popen(
            [sys.executable, "-P", str(REPLICA), server.url, name, mode, *keys],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPLICA.parent.parent,
        )
        for name in names
    ]
    try:
        with redis.Redis(port=server.port) as client:
            for _ in names:
                assert client.blpop(["test:ready"], timeout=60) is not None, (
                    "a replica never started"
                )
            for name in names:
                client.rpush(f"test:go:{name}", "go")
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert 0 == p.returncode, err.decode()
    return [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]


def test_two_engine_processes_share_one_redis(redis_server: RedisServer) -> None:
    """
    Two engine processes on one Redis: a preload by one is a hit for the other, and
    under concurrent demand from both every key is loaded once in total.
    """
    warm = ["warm:1", "warm:2", "warm:3"]
    (preloaded,) = run_replicas(redis_server, "preload", ["a"], warm)
    (served,) = run_replicas(redis_server, "demand", ["b"], warm)
    assert dict.fromkeys(warm, 1) == preloaded["calls"]
    assert ({}, len(warm), 0) == (served["calls"], served["hits"], served["misses"])

    cold = [f"cold:{i}" for i in range(8)]
    both = run_replicas(redis_server, "demand", ["c", "d"], cold)
    loads: Counter[str] = Counter()
    for replica_out in both:
        loads.update(replica_out["calls"])
    assert dict.fromkeys(cold, 1) == dict(loads)
    assert [len(cold)] * 2 == [r["hits"] + r["partial"] + r["misses"] for r in both]
