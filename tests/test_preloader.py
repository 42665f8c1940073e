"""
The preloader: single-flight, background loads, failures counted, clean shutdown.
"""

from __future__ import annotations

import asyncio

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from preload import (
    EngineStateError,
    ItemCache,
    Preloader,
    PreloaderConfig,
    SourceRouter,
    TiktokenCounter,
    TruncatingCompressor,
)
from preload.testing import ScriptedSource


def make(source: ScriptedSource, counter: TiktokenCounter, **config: object) -> Preloader:
    """
    A preloader over one scripted source with a memory cache.
    """
    return Preloader(
        sources=SourceRouter({source.name: source}),
        cache=ItemCache(),
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
    assert ("hit", 1, 1) == (got.status, preloader.metrics.preloads, source.calls.total())


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
    assert len(knowledge) == preloader.metrics.cancelled
    with pytest.raises(EngineStateError, match="not open"):
        preloader.schedule("service:Flights", 1.0)


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
        assert 2 == preloader.metrics.shed
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
    assert 2 == preloader.metrics.failures
    assert 1 == preloader.metrics.timeouts
