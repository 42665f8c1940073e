"""
The preloader: single-flight, background loads, failures counted, clean shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from preload import (
    CacheConfig,
    DictSource,
    EngineConfig,
    EngineStateError,
    PreloadEngine,
    PreloaderConfig,
    SourceRouter,
    TiktokenCounter,
)
from preload.caches import MemoryCache
from preload.compression import TruncatingCompressor
from preload.learning import MarkovForecaster
from preload.loading import Preloader
from preload.replay import VirtualClockLoop
from preload.testing import ScriptedSource


def make(source: ScriptedSource, counter: TiktokenCounter, **config: object) -> Preloader:
    """
    A preloader over one scripted source with a memory cache.
    """
    return Preloader(
        sources=SourceRouter({source.name: source}),
        cache=MemoryCache(),
        compressor=TruncatingCompressor(counter),
        config=PreloaderConfig(**config),  # type: ignore[arg-type]
    )


async def test_many_requests_for_one_key_load_it_once(
    knowledge: dict[str, str], counter: TiktokenCounter
) -> None:
    """
    However many sessions ask for a key at once, one load happens and all get it.
    """
    gate = anyio.Event()
    source = ScriptedSource(knowledge, gate=gate)
    results = []
    async with make(source, counter) as preloader:

        async def ask() -> None:
            results.append(await preloader.get("service:Flights"))

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(ask)
            preloader.schedule("service:Flights", 0.9, session="other")
            await wait_all_tasks_blocked()
            gate.set()
    assert 1 == source.calls["service:Flights"]
    assert {"miss", "partial"} >= {r.status for r in results}
    assert {knowledge["service:Flights"]} == {r.item.full.text for r in results if r.item}


async def test_a_preload_makes_the_next_request_a_hit(
    knowledge: dict[str, str], counter: TiktokenCounter
) -> None:
    """
    A scheduled background load lands in the cache; the request then hits.
    """
    source = ScriptedSource(knowledge)
    async with make(source, counter) as preloader:
        assert preloader.schedule("intent:Flights:Book", 0.8)
        await preloader.wait_idle()
        got = await preloader.get("intent:Flights:Book")
        assert not preloader.schedule("intent:Flights:Book", 0.8)  # warm: nothing to do
    assert ("hit", 1, 1) == (got.status, preloader.statistics().preloads, source.calls.total())


async def test_close_cancels_pending_loads_and_leaves_no_task(
    knowledge: dict[str, str], counter: TiktokenCounter
) -> None:
    """
    Leaving the context cancels loads in flight and queued; no task outlives it.
    """
    before = set(asyncio.all_tasks())
    source = ScriptedSource(knowledge, hang=frozenset(knowledge))
    async with make(source, counter, workers=2) as preloader:
        for key in knowledge:
            preloader.schedule(key, 0.5)
        await source.started.wait()
        await wait_all_tasks_blocked()
        assert 2 == source.active
    assert before == set(asyncio.all_tasks())
    assert 0 == source.active
    assert len(knowledge) == preloader.statistics().cancelled
    with pytest.raises(EngineStateError, match="not open"):
        preloader.schedule("service:Flights", 1.0)


async def test_workers_start_as_work_arrives_and_none_waits_idle(
    knowledge: dict[str, str], counter: TiktokenCounter
) -> None:
    """
    A pool of a thousand workers costs no task while there is no work (an engine of
    each of many tenants pays nothing for it); queued work runs at once up to the
    pool's size, and once the queue is empty its workers end.
    """
    before = set(asyncio.all_tasks())
    gate = anyio.Event()
    source = ScriptedSource(knowledge, gate=gate)
    async with make(source, counter, workers=1000) as preloader:
        assert before == set(asyncio.all_tasks())
        for key in knowledge:
            preloader.schedule(key, 0.5)
        await wait_all_tasks_blocked()
        assert len(knowledge) == source.active
        gate.set()
        await preloader.wait_idle()
        await wait_all_tasks_blocked()
        assert before == set(asyncio.all_tasks())
        assert preloader.schedule("service:Flights", 0.5) is False  # warm now
    assert len(knowledge) == source.calls.total()


async def test_full_queue_sheds_the_least_valuable_work(
    knowledge: dict[str, str], counter: TiktokenCounter
) -> None:
    """
    When the queue is full, low-value work is shed and high-value work replaces it.
    """
    gate = anyio.Event()
    source = ScriptedSource({f"k{i}": "x" for i in range(10)}, gate=gate)
    async with make(source, counter, workers=1, queue_size=2) as preloader:
        preloader.schedule("k0", 0.5)  # taken by the worker, blocks on the gate
        await source.started.wait()
        assert preloader.schedule("k1", 0.3)
        assert preloader.schedule("k2", 0.4)
        assert not preloader.schedule("k3", 0.2)  # less than everything queued: shed
        assert preloader.schedule("k4", 0.9)  # displaces k1
        assert 2 == preloader.statistics().shed
        gate.set()
        await preloader.wait_idle()
    assert {"k0", "k2", "k4"} == set(source.calls)


async def test_failures_are_counted_and_the_request_goes_on(
    knowledge: dict[str, str], counter: TiktokenCounter
) -> None:
    """
    A source that raises, returns garbage or hangs costs at most the deadline.
    """
    source = ScriptedSource(
        knowledge,
        fail={"boom": RuntimeError("backend down")},
        garbage={"junk": 12345},
        hang=frozenset({"stuck"}),
    )
    async with make(source, counter) as preloader:
        with anyio.fail_after(5):
            boom = await preloader.get("boom")
            junk = await preloader.get("junk")
            stuck = await preloader.get("stuck", deadline_s=0.01)
            missing = await preloader.get("no-such-key")
        ok = await preloader.get("service:Flights")
    assert ["failed", "failed", "failed", "missing", "miss"] == [
        r.status for r in (boom, junk, stuck, missing, ok)
    ]
    assert 2 == preloader.statistics().failures
    assert 1 == preloader.statistics().timeouts


async def test_a_newer_forecast_cancels_preloads_that_fell_below_the_threshold(
    counter: TiktokenCounter,
) -> None:
    """
    reprioritize drops queued and running preloads the session no longer values,
    keeps those another session or a waiting request still wants, and re-prices the
    rest.
    """
    gate = anyio.Event()
    source = ScriptedSource({f"k{i}": f"text {i}" for i in range(6)}, gate=gate)
    async with make(source, counter, workers=2) as preloader:
        for key, value in (("k0", 0.9), ("k1", 0.8), ("k2", 0.5), ("k3", 0.4)):
            preloader.schedule(key, value, session="a")
        preloader.schedule("k3", 0.3, session="b")
        await wait_all_tasks_blocked()
        assert ({"k0", "k1"}, 2) == (set(source.calls), preloader.queued)
        async with anyio.create_task_group() as tg:
            tg.start_soon(preloader.get, "k1")  # a request joins k1's load
            await wait_all_tasks_blocked()
            cancelled = preloader.reprioritize("a", {"k2": 0.7, "k0": 0.05})
            # k0 runs and nobody else wants it; k1 has a request waiting; k2 is repriced;
            # k3 is still b's.
            assert 1 == cancelled
            await wait_all_tasks_blocked()
            # k0's fetch was cancelled and its worker took k2, the most valuable left.
            assert (2, {"k0", "k1", "k2"}) == (source.active, set(source.calls))
            gate.set()
        await preloader.wait_idle()
    assert {"k0": 1, "k1": 1, "k2": 1, "k3": 1} == dict(source.calls)
    assert 1 == preloader.statistics().cancelled
    assert {"k1", "k2", "k3"} == {k for k in source.calls if preloader.is_ready(k)}


async def test_reprioritize_reorders_the_queue(counter: TiktokenCounter) -> None:
    """
    Raised values move queued work ahead of work that was worth more before.
    """
    gate = anyio.Event()
    order: list[str] = []
    source = ScriptedSource({f"k{i}": "x" for i in range(4)}, gate=gate)
    real_fetch = source.fetch

    async def fetch(key: str) -> str:
        order.append(key)
        return await real_fetch(key)

    source.fetch = fetch  # type: ignore[method-assign]
    async with make(source, counter, workers=1) as preloader:
        preloader.schedule("k0", 0.9, session="a")
        await source.started.wait()
        preloader.schedule("k1", 0.8, session="a")
        preloader.schedule("k2", 0.3, session="a")
        assert 0 == preloader.reprioritize("a", {"k0": 0.9, "k1": 0.2, "k2": 0.95})
        gate.set()
        await preloader.wait_idle()
    assert ["k0", "k2", "k1"] == order


async def test_failures_are_retried_with_backoff(counter: TiktokenCounter) -> None:
    """
    A source that fails twice and then answers is retried and its item loads.
    """
    source = ScriptedSource({"k": "text"}, fail_first={"k": 2})
    async with make(source, counter, retries=2, retry_backoff_s=0.001) as preloader:
        got = await preloader.get("k")
    assert ("miss", 3, 2, 0) == (
        got.status,
        source.calls["k"],
        preloader.statistics().retries,
        preloader.statistics().failures,
    )


async def test_a_failing_source_cools_down(counter: TiktokenCounter) -> None:
    """
    After failure_threshold failed loads (each retried) the source is not asked for
    cooldown_s: requests fail at once and preloads are skipped, both counted.
    """
    items = {f"k{i}": "x" for i in range(5)}
    source = ScriptedSource(items, fail={k: RuntimeError("down") for k in items})
    async with make(
        source, counter, retries=1, retry_backoff_s=0.001, failure_threshold=2, cooldown_s=60
    ) as preloader:
        first = [(await preloader.get(k)).status for k in ("k0", "k1")]
        assert "scripted" in preloader.cooling()
        later = await preloader.get("k2")
        assert not preloader.schedule("k3", 0.9)
    assert (["failed", "failed"], "failed") == (first, later.status)
    assert {"k0": 2, "k1": 2} == dict(source.calls)
    snapshot = preloader.statistics()
    assert (2, 2, 1, 2) == (
        snapshot.failures,
        snapshot.retries,
        snapshot.cooldowns,
        snapshot.cooldown_skips,
    )


async def test_per_source_concurrency_and_timeouts(counter: TiktokenCounter) -> None:
    """
    A source's own concurrency limit and timeout apply to it, not to others.
    """
    gate = anyio.Event()
    narrow = ScriptedSource({f"n{i}": "x" for i in range(4)}, name="narrow", gate=gate)
    slow = ScriptedSource({}, name="slow", hang={"s0"})
    preloader = Preloader(
        sources=SourceRouter({"narrow": narrow, "slow": slow}),
        cache=MemoryCache(),
        compressor=TruncatingCompressor(counter),
        config=PreloaderConfig(
            source_concurrency={"narrow": 1}, source_timeouts={"slow": 0.01}, retries=0
        ),
    )
    async with preloader:
        for i in range(4):
            preloader.schedule(f"n{i}", 0.5)
        await narrow.started.wait()
        await wait_all_tasks_blocked()
        assert (1, 3) == (narrow.active, preloader.in_flight - 1)
        stuck = await preloader.get("s0", deadline_s=5)
        gate.set()
        await preloader.wait_idle()
    assert ("failed", 1, 1) == (stuck.status, preloader.statistics().timeouts, narrow.peak)
    assert 4 == narrow.calls.total()


async def test_a_load_a_request_waits_for_never_queues_behind_the_preloads_limits(
    counter: TiktokenCounter,
) -> None:
    """
    The one preload a source allows at once hangs: a request's own load from that
    source still runs at once and is served, not held until the preload times out.
    """
    narrow = ScriptedSource({"n0": "x", "n1": "the answer"}, name="narrow", hang={"n0"})
    config = {"source_concurrency": {"narrow": 1}, "load_timeout_s": 60.0, "drain_s": 0.01}
    async with make(narrow, counter, **config) as preloader:
        preloader.schedule("n0", 0.9)
        await narrow.started.wait()
        with anyio.fail_after(30):  # a guard: before, it waited for the preload's timeout
            got = await preloader.get("n1", deadline_s=30)
        assert ("miss", 2) == (got.status, narrow.peak)  # closing cancels the hung one


async def test_garbage_and_huge_items_are_refused_without_retries(
    counter: TiktokenCounter,
) -> None:
    """
    Non-text and over-long answers fail at once (no retry: asking again won't help).
    """
    source = ScriptedSource(
        {"ok": "fine"}, garbage={"bytes": b"\x00\xff", "huge": "x" * 1001, "none": None}
    )
    async with make(source, counter, max_item_chars=1000, retries=3) as preloader:
        got = await preloader.get_many(["bytes", "huge", "none", "ok"])
    assert ["failed", "failed", "failed", "miss"] == [f.status for f in got.values()]
    assert {"bytes": 1, "huge": 1, "none": 1, "ok": 1} == dict(source.calls)
    assert (3, 0) == (preloader.statistics().failures, preloader.statistics().retries)


async def test_get_many_serves_hits_and_loads_the_rest_within_one_deadline(
    knowledge: dict[str, str], counter: TiktokenCounter
) -> None:
    """
    One call: hits from the cache, misses loaded, a hanging key given up at the
    deadline, unknown keys missing; results in the order asked.
    """
    source = ScriptedSource(knowledge, hang={"stuck"})
    async with make(source, counter) as preloader:
        await preloader.get("service:Flights")
        with anyio.fail_after(5):
            got = await preloader.get_many(
                ["stuck", "service:Flights", "intent:Flights:Book", "nowhere"], deadline_s=0.05
            )
    assert ["stuck", "service:Flights", "intent:Flights:Book", "nowhere"] == list(got)
    assert ["failed", "hit", "miss", "missing"] == [f.status for f in got.values()]
    assert got["stuck"].waited_s >= 0.05


async def test_get_many_peeks_at_more_keys_in_the_same_read(
    knowledge: dict[str, str], counter: TiktokenCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    ``peek`` keys are read with the needs in one cache read (one round trip on
    Redis): those warm follow the needs as hits, the others are left out and never
    loaded.
    """
    source = ScriptedSource(knowledge)
    async with make(source, counter) as preloader:
        await preloader.get_many(["service:Flights", "service:Hotels"])
        assert preloader.cache is not None
        reads: list[list[str]] = []
        get_objects = preloader.cache.get_objects

        async def counted(keys: list[str], decode: Any) -> list[Any]:
            reads.append(list(keys))
            return await get_objects(keys, decode)

        monkeypatch.setattr(preloader.cache, "peek_object", lambda key: None)  # as on Redis
        monkeypatch.setattr(preloader.cache, "get_objects", counted)
        got = await preloader.get_many(
            ["service:Flights"], peek=["service:Hotels", "intent:Flights:Book", "nowhere"]
        )
    assert [("service:Flights", "hit"), ("service:Hotels", "hit")] == [
        (k, f.status) for k, f in got.items()
    ]
    assert [3] == [len(keys) for keys in reads]  # the need and both routed peeks, at once
    assert {"service:Flights": 1, "service:Hotels": 1} == dict(source.calls)


def test_close_drains_within_the_deadline(counter: TiktokenCounter) -> None:
    """
    With drain_s, closing lets quick loads finish and cancels a hanging one at the
    deadline; no task outlives the preloader. (On the virtual clock, so that a busy
    machine cannot make the quick loads miss the deadline.)
    """
    source = ScriptedSource({f"k{i}": "x" for i in range(3)}, latency=0.01, hang={"stuck"})

    async def main() -> tuple[set[asyncio.Task[object]], set[asyncio.Task[object]], float]:
        before = set(asyncio.all_tasks())
        start = anyio.current_time()
        preloader = Preloader(
            sources=SourceRouter({source.name: source}),
            cache=MemoryCache(),
            compressor=TruncatingCompressor(counter),
            config=PreloaderConfig(drain_s=0.5),
            offload=False,
        )
        async with preloader:
            for key in ("k0", "k1", "k2", "stuck"):
                preloader.schedule(key, 0.5)
        return before, set(asyncio.all_tasks()), anyio.current_time() - start

    before, after, took = anyio.run(main, backend_options={"loop_factory": VirtualClockLoop})
    assert before == after
    assert 0.5 == pytest.approx(took, abs=0.01)
    assert {"k0": 1, "k1": 1, "k2": 1, "stuck": 1} == dict(source.calls)
    assert 0 == source.active


async def test_a_full_cache_keeps_serving(counter: TiktokenCounter) -> None:
    """
    A cache at its bounds evicts (counting preloads nobody read); an item larger than
    the whole cache is still served to its request, just not kept.
    """
    source = ScriptedSource({f"k{i}": f"item {i} " * 20 for i in range(10)} | {"big": "y" * 5000})
    preloader = Preloader(
        sources=SourceRouter({"scripted": source}),
        cache=MemoryCache(CacheConfig(max_entries=3, max_bytes=4000)),
        compressor=TruncatingCompressor(counter),
    )
    async with preloader:
        for i in range(10):
            preloader.schedule(f"k{i}", 0.5)
        await preloader.wait_idle()
        big = await preloader.get("big")
        assert preloader.cache is not None
        snapshot = preloader.cache.statistics()
    assert ("miss", False) == (big.status, preloader.is_ready("big"))
    assert 3 >= snapshot.entries
    assert snapshot.bytes <= 4000
    assert (7, 7) == (snapshot.evictions, snapshot.evicted_unused)


async def test_ten_thousand_sessions_churn_in_bounded_structures(knowledge: dict[str, str]) -> None:
    """
    10,000 sessions of two turns through an engine that learns, preloads, cancels and
    forgets: everything the engine keeps per session or per key stays within its bound,
    whatever the allocator does with the memory.
    """
    items = {f"kb:{i}": f"item {i}: " + "some context text " * 10 for i in range(300)}
    config = EngineConfig(
        cache=CacheConfig(max_entries=32), preloader=PreloaderConfig(max_preloads_per_turn=2)
    )
    forecaster = MarkovForecaster(1, persistence=0.5)  # learns online, preloads each turn
    async with PreloadEngine(
        config, sources={"kb": DictSource(items)}, forecaster=forecaster, max_sessions=500
    ) as engine:
        for s in range(10_000):
            sid = f"s{s}"
            for state in (s % 13, (s + 1) % 13):  # two turns: a transition to learn
                needs = [f"kb:{state * 3 + s % 2}", f"kb:{state * 3 + 2}"]
                await engine.handle(session_id=sid, text="hi", state=f"t{state}", needs=needs)
            if s % 2:
                engine.end_session(sid)
            if s % 2000 == 1999:
                await engine.wait_idle()
                live = set(engine._sessions)
                assert len(live) <= 500
                assert engine.preloader._ledger.sessions() <= live
                assert set(engine.swap._windows) <= live
                assert engine.preloader.queued <= config.preloader.queue_size
                assert 0 == engine.preloader.in_flight
        snapshot = engine.metrics()
    assert snapshot.cache_entries <= 32
    assert (20_000, True) == (snapshot.requests, snapshot.preloads > 0)
    assert 0 < snapshot.preloads_used + snapshot.wasted <= snapshot.preloads


async def test_peek_many_returns_what_is_warm_and_never_loads(
    knowledge: dict[str, str], counter: TiktokenCounter
) -> None:
    """
    peek_many answers from the cache only: cold and unknown keys are left out.
    """
    source = ScriptedSource(knowledge)
    async with make(source, counter) as preloader:
        await preloader.get("service:Flights")
        got = await preloader.peek_many(["service:Flights", "service:Hotels", "nowhere"])
    assert ["service:Flights"] == list(got)
    assert 1 == source.calls.total()


async def test_a_key_the_cache_refuses_is_warned_about_once(
    counter: TiktokenCounter, caplog: pytest.LogCaptureFixture
) -> None:
    """
    An item larger than the cache's byte bound is served but not cached; the warning
    says so the first time, later loads of the same key only at DEBUG (a small cache
    under pressure refuses often, and the log must stay readable).
    """
    caplog.set_level(logging.DEBUG, logger="preload.loading")
    source = ScriptedSource({"big": "word " * 2_000})
    preloader = Preloader(
        sources=SourceRouter({source.name: source}),
        cache=MemoryCache(CacheConfig(max_bytes=1_000)),
        compressor=TruncatingCompressor(counter),
    )
    async with preloader:
        for _ in range(3):
            got = await preloader.get("big", deadline_s=10)
            assert got.item is not None
    refused = [r for r in caplog.records if "not caching big" in r.getMessage()]
    assert ["WARNING", "DEBUG", "DEBUG"] == [r.levelname for r in refused]
    assert 3 == source.calls.total()
