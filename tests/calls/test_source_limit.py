"""
The source's limit of calls run ahead at once falls while the source is slower than
usual and grows back once it is not.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import anyio
import pytest

from graph import CallGuess
from preload import DictSource, EngineConfig, PreloadEngine
from preload.calls import CallAdapter, CallBook, SourceLimit, source_load
from preload.replay._clock import VirtualClockLoop
from preload.testing import ScriptedCallPredictor, ScriptedCallSource

FIND = "Restaurants:Find"


def _lognormal(rng: random.Random, median_s: float) -> float:
    return rng.lognormvariate(math.log(median_s), math.log(5) / 1.645)  # p95 = 5 x median


def test_a_source_of_steady_latency_keeps_its_limit_however_much_calls_vary() -> None:
    """
    Ten thousand calls of a lognormal latency whose p95 is five times its median (the
    replay's ``db``), each started beside others that do not slow it (few of them
    beside fewer than four), every one of them wanting more: the limit never falls.
    """
    limit = SourceLimit(32)
    rng = random.Random(7)
    lowest = 32
    for _ in range(10_000):
        limit.timed(_lognormal(rng, 0.4), _beside(rng))
        limit.held()
        lowest = min(lowest, limit.limit)
    assert 32 == lowest


def _beside(rng: random.Random) -> int:
    """
    How many other calls a call starts beside on a busy replica: one in twenty beside
    fewer than four, the others beside sixteen to twenty-four.
    """
    return rng.randrange(4) if rng.random() < 0.05 else rng.randrange(16, 25)


def _queued(rng: random.Random, beside: int) -> float:
    """
    A call of a backend that serves four calls at once: beside more than three others,
    it waits about a quarter of a call's time for each beyond.
    """
    return _lognormal(rng, 0.4) * (1 + max(0, beside - 3) / 4)


def test_a_backend_full_from_the_first_call_lowers_the_limit() -> None:
    """
    A backend that serves four calls at once, busy from the start: most calls start
    beside many others and wait, so the source's usual latency over time is a busy
    one, and only the few calls that started beside three others or fewer, taken
    together, show how long a call takes when the engine does not fill it. Held to
    those, the limit falls to none; a limit that does not adapt stays.
    """
    limit, fixed = SourceLimit(32), SourceLimit(32, tolerance=0)
    rng = random.Random(5)
    for _ in range(1000):
        beside = _beside(rng)
        seconds = _queued(rng, beside)
        for each in (limit, fixed):
            each.held()
            each.timed(seconds, beside)
    assert (0, 32) == (limit.limit, fixed.limit)
    assert limit.slowdown > 1.5


def test_the_limit_falls_while_the_source_is_slow_and_grows_back_after() -> None:
    """
    Calls four times slower than usual: within two hundred calls no call may run ahead;
    once they are as fast as before, and the limit holds calls back, it is back to its
    most within two hundred. Without calls held back it stays low: a source no
    speculation waits for need not be tried.
    """
    limit = SourceLimit(32)
    rng = random.Random(3)
    for _ in range(500):
        limit.timed(_lognormal(rng, 0.4))
    for _ in range(200):
        limit.timed(_lognormal(rng, 1.6))
    assert 0 == limit.limit
    assert limit.slowdown > 1.5
    for _ in range(200):
        limit.timed(_lognormal(rng, 0.4))
    assert 0 == limit.limit  # nothing held back: no reason to grow
    for _ in range(200):
        limit.held()
        limit.timed(_lognormal(rng, 0.4))
    assert 32 == limit.limit


def test_a_burst_of_calls_that_end_the_quickest_first_does_not_lower_the_limit() -> None:
    """
    Three hundred calls started at once end in the order of their latencies, the
    quickest first (as a replica's first sessions make them): the first calls timed are
    the source's fastest, not its usual, and the steady calls after them, as slow as the
    burst's on average, do not lower the limit. (The burst's calls start beside the
    calls started before them.)
    """
    limit = SourceLimit(32)
    rng = random.Random(11)
    burst = [(_lognormal(rng, 0.4), beside) for beside in range(300)]
    lowest = 32
    for seconds, beside in sorted(burst):
        limit.held()
        limit.timed(seconds, beside)
        lowest = min(lowest, limit.limit)
    for _ in range(3000):
        limit.held()
        limit.timed(_lognormal(rng, 0.4), _beside(rng))
        lowest = min(lowest, limit.limit)
    assert 32 == lowest


def test_a_limit_that_does_not_adapt_stays_at_its_most() -> None:
    limit = SourceLimit(8, tolerance=0)
    for seconds in [0.1] * 600 + [10.0] * 200:
        limit.timed(seconds)
    assert 8 == limit.limit
    assert limit.slowdown > 2.0  # measured still


@pytest.mark.parametrize(("most", "tolerance"), [(0, 2.0), (4, 1.0), (4, 0.5)])
def test_a_limit_of_no_calls_or_of_no_slowdown_is_refused(most: int, tolerance: float) -> None:
    with pytest.raises(ValueError, match="most|tolerance"):
        SourceLimit(most, tolerance=tolerance)


def test_an_engine_runs_fewer_calls_ahead_against_a_slow_source(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """
    The agent's calls time the source (0.1 s, then 1 s): its limit of four calls run
    ahead at once falls to none, so five sure guesses are held back as slow, which is
    logged once; with ``source_slowdown = 0`` four run. Once the
    source is fast again, the held guesses let the limit grow back. (On the virtual
    clock: the latencies are the source's, whatever the machine.)
    """

    async def main(slowdown: float) -> tuple[int, int, int, int, int]:
        source = ScriptedCallSource({FIND: True}, latency=0.1)
        guesses = [(FIND, {"city": c}, 0.9) for c in "ABCDE"]
        config = EngineConfig()
        config = config.replace(
            calls=replace(
                config.calls,
                guesses=5,
                max_per_turn=5,
                max_per_call=math.inf,
                max_in_flight_per_source=4,
                source_slowdown=slowdown,
            )
        )
        predictor = ScriptedCallPredictor(guesses, moments=frozenset({"request"}))
        async with PreloadEngine(
            config,
            sources={"kb": DictSource({"k": "text"})},
            call_sources=[source],
            call_predictor=predictor,
        ) as engine:
            for i in range(600):
                await engine.call("agent", FIND, {"city": f"fast {i}"})
            source.latency = 1.0
            for i in range(100):
                await engine.call("agent", FIND, {"city": f"slow {i}"})
            await engine.handle(session_id="s", text="go")
            await engine.wait_idle()
            slow = engine.call_statistics()
            source.latency = 0.1
            for i in range(300):  # new guesses each time: each is held back, or runs
                predictor.guesses = [
                    CallGuess(name=FIND, args={"city": f"{c} {i}"}, p=0.9, evidence={})
                    for c in "ABCDE"
                ]
                await engine.handle(session_id=f"again {i}", text="go")
                await engine.call("agent", FIND, {"city": f"fast again {i}"})
                await engine.wait_idle()
            after = engine.call_statistics()
        return (
            slow.speculative,
            slow.speculative_skipped_source,
            slow.speculative_skipped_slow,
            slow.source_limit,
            after.source_limit,
        )

    adapting = anyio.run(main, 1.5, backend_options={"loop_factory": VirtualClockLoop})
    assert (0, 5, 5, 0, 4) == adapting
    told = [r for r in caplog.records if "source_slowdown" in r.getMessage()]
    assert 1 == len(told)
    fixed = anyio.run(main, 0.0, backend_options={"loop_factory": VirtualClockLoop})
    assert (4, 1, 0, 4, 4) == fixed


def test_a_source_slower_for_good_on_a_busy_replica_gets_its_limit_back() -> None:
    """
    A source three times slower for good, on a replica never quiet again: no call
    starts beside fewer than sixteen others, and none waits its turn. The limit falls,
    then the calls of the quiet moments before are too old to say how long a call
    takes, the usual latency is the slow one, and the limit is back at its most.
    """
    limit = SourceLimit(32)
    rng = random.Random(13)
    for _ in range(2000):
        limit.timed(_lognormal(rng, 0.4), _beside(rng))
    lowest = 32
    for _ in range(4000):
        limit.held()
        limit.timed(_lognormal(rng, 1.2), rng.randrange(16, 25))
        lowest = min(lowest, limit.limit)
    assert (0, 32) == (lowest, limit.limit)


def test_each_call_is_timed_with_the_calls_running_beside_it() -> None:
    """
    Three calls of one second started together are timed beside none, one and two
    others; a call that fails is not timed, and leaves the count of calls running as
    it was. (On the virtual clock.)
    """
    timed: list[tuple[float, int]] = []
    source = ScriptedCallSource(
        {FIND: True, "Bad": True}, latency=1.0, fail={"Bad": RuntimeError("down")}
    )
    adapter = CallAdapter(source, CallBook(), timed=lambda s, beside: timed.append((s, beside)))

    async def main() -> int:
        async with anyio.create_task_group() as tg:
            for city in "ABC":
                tg.start_soon(adapter.call, FIND, {"city": city})
        with pytest.raises(RuntimeError):
            await adapter.call("Bad", {})
        return adapter.running

    running = anyio.run(main, backend_options={"loop_factory": VirtualClockLoop})
    assert (0, [(1.0, 0), (1.0, 1), (1.0, 2)]) == (running, sorted(timed))


def test_engines_given_one_source_share_its_load() -> None:
    """
    Two tenants' engines given one source object (one client to one backend): the
    calls of both count towards the source's usual latency and its slowdown, so that
    slow calls made through one tenant lower the limit of the other, which made too
    few calls of its own to move it. Engines given sources of their own do not.
    """

    async def main(shared: bool) -> int:
        sources = [ScriptedCallSource({FIND: True}, latency=0.1) for _ in range(2)]
        if shared:
            sources[1] = sources[0]
        config = EngineConfig()
        config = config.replace(
            calls=replace(config.calls, max_in_flight_per_source=4, source_slowdown=1.5)
        )
        kb = {"kb": DictSource({"k": "text"})}
        async with (
            PreloadEngine(config.replace(tenant="a"), sources=kb, call_sources=[sources[0]]) as a,
            PreloadEngine(config.replace(tenant="b"), sources=kb, call_sources=[sources[1]]) as b,
        ):
            for i in range(300):
                await a.call("agent", FIND, {"city": f"a {i}"})
                await b.call("agent", FIND, {"city": f"b {i}"})
            sources[1].latency = 1.0
            for i in range(100):
                await b.call("agent", FIND, {"city": f"slow {i}"})
            return a.call_statistics().source_limit

    assert 0 == anyio.run(main, True, backend_options={"loop_factory": VirtualClockLoop})
    assert 4 == anyio.run(main, False, backend_options={"loop_factory": VirtualClockLoop})


def test_calls_through_two_adapters_of_one_load_are_timed_beside_each_other() -> None:
    """
    Calls started together through the adapters of two engines sharing a source's
    load are timed beside each other's (0, 1 and 2 others), and the count of calls
    running is the sum; one source object gives one load, another source its own, and
    a source that cannot be held weakly a load of its own each time.
    """
    timed: list[int] = []
    source = ScriptedCallSource({FIND: True}, latency=1.0)
    load = source_load(source, 4)
    assert load is source_load(source, 4)
    assert load is not source_load(ScriptedCallSource({FIND: True}), 4)
    assert load is not source_load(source, 8)  # another engine's settings
    first, second = (
        CallAdapter(source, CallBook(), timed=lambda s, beside: timed.append(beside), load=load)
        for _ in range(2)
    )
    seen: list[int] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.call, FIND, {"city": "A"})
            tg.start_soon(second.call, FIND, {"city": "B"})
            tg.start_soon(first.call, FIND, {"city": "C"})
            await anyio.sleep(0.5)
            seen.extend([first.running, second.running])

    anyio.run(main, backend_options={"loop_factory": VirtualClockLoop})
    assert ([3, 3], [0, 1, 2], 0) == (seen, sorted(timed), load.running)
    unhashable = [source]  # a list: no weak reference, no hash
    assert source_load(unhashable, 4) is not source_load(unhashable, 4)


def test_calls_run_ahead_by_engines_sharing_a_source_count_against_one_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """
    Two tenants' engines given one source of at most four calls run ahead at once:
    the first runs three ahead (they wait at the backend), the second then one, its
    two others held back by the source's limit, as the first's guesses for another
    session are, and the limit's binding is logged once; given sources of their own,
    each runs its three. (On the real clock: the virtual one would move on to the
    calls' deadline while they wait.)
    """

    async def main(shared: bool) -> tuple[int, int, int]:
        gate = anyio.Event()
        sources = [ScriptedCallSource({FIND: True}, gate=gate) for _ in range(2)]
        if shared:
            sources[1] = sources[0]
        config = EngineConfig()
        config = config.replace(
            calls=replace(config.calls, max_in_flight_per_source=4, max_per_call=math.inf)
        )
        kb = {"kb": DictSource({"k": "text"})}
        engines = [
            PreloadEngine(
                config.replace(tenant=tenant),
                sources=kb,
                call_sources=[source],
                call_predictor=ScriptedCallPredictor(
                    [(FIND, {"city": f"{tenant} {c}"}, 0.9) for c in "ABC"]
                ),
            )
            for tenant, source in zip("ab", sources, strict=True)
        ]
        async with engines[0] as a, engines[1] as b:
            await a.handle(session_id="s", text="go")
            await anyio.wait_all_tasks_blocked()
            await b.handle(session_id="s", text="go")
            await anyio.wait_all_tasks_blocked()
            stats = b.call_statistics()
            await a.handle(session_id="s2", text="go")
            await anyio.wait_all_tasks_blocked()
            gate.set()
        return a.call_statistics().speculative, stats.speculative, stats.speculative_skipped_source

    assert (3, 1, 2) == anyio.run(main, True)
    told = [r for r in caplog.records if "max_in_flight_per_source (4)" in r.getMessage()]
    assert 1 == len(told)
    assert (3, 3, 0) == anyio.run(main, False)
