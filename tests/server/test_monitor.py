"""
What the server watches about itself: the event loop's lag, the garbage collector's
pauses, and how it keeps them rare.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import TYPE_CHECKING, Self

import anyio

from preload.server._app import ServerSettings, create_app
from preload.server._keys import append_key
from preload.server._monitor import IdleCollector, LoopMonitor, Reservoir, watch_gc

from .conftest import write_config

if TYPE_CHECKING:
    from ..conftest import RedisServer


def test_watch_gc_records_each_collection_while_watching() -> None:
    """
    Every collection in the block adds its pause; none after it.
    """
    pauses = Reservoir()
    with watch_gc(pauses):
        gc.collect()
        gc.collect(0)
    counted = pauses.count
    gc.collect()
    assert 2 <= counted == pauses.count  # other threads' collections may add some
    assert 0 < pauses.maximum() and 0 < pauses.total


async def test_the_server_collects_between_requests_at_its_thresholds_while_it_serves(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """
    Between start-up and shutdown Python's automatic collection is off and the server
    collects at ``server.gc_thresholds`` between requests; the process' collector is
    as it was after.
    """
    keys = tmp_path / "keys.jsonl"
    append_key(keys, "acme")
    config = write_config(
        tmp_path / "server.toml", redis_server.url, more="gc_thresholds = [1234, 5, 67]"
    )
    app = create_app(ServerSettings(config=str(config), keys=str(keys)))
    before = gc.get_threshold()
    async with app.router.lifespan_context(app):
        assert not gc.isenabled()
        assert app.state.server.collector.thresholds == (1234, 5, 67)
    assert gc.isenabled()
    assert gc.get_threshold() == before


class _Passes:
    """
    The generations of the collections run in the block.
    """

    def __init__(self) -> None:
        self.generations: list[int] = []

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.generations.append(info["generation"])

    def __enter__(self) -> Self:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def _allocate(n: int) -> list[list[int]]:
    return [[i] for i in range(n)]  # n objects the collector tracks


def test_no_collection_runs_while_a_request_is_in_flight_and_the_last_one_out_collects() -> None:
    """
    With requests in flight, young objects pile up past the threshold and nothing is
    collected; when the last request ends, the youngest generation is.
    """
    collector = IdleCollector((100, 10, 10))
    with collector.serving(), _Passes() as passes:
        collector.enter()
        collector.enter()
        kept = _allocate(500)
        assert gc.get_count()[0] > 100
        collector.leave()  # one still in flight
        assert [] == passes.generations
        collector.leave()
        assert [0] == passes.generations
        assert 0 == collector.forced
    assert len(kept) == 500


def test_the_oldest_generation_due_is_collected_with_the_younger_ones() -> None:
    """
    As Python would: once the youngest generation has been collected more often than
    the middle one's threshold, a pass collects the middle one (and the youngest).
    """
    collector = IdleCollector((100, 1, 1000))
    with collector.serving(), _Passes() as passes:
        gc.collect(0)
        gc.collect(0)  # the middle generation's count is now 2, above 1
        assert 1 == collector.collect_due()
        assert [0, 0, 1] == passes.generations


def test_a_full_backlog_is_collected_even_with_requests_in_flight() -> None:
    """
    A server never idle still collects, once the young objects waiting reach
    ``backlog`` thresholds, and counts that pass as forced; below that it waits.
    """
    collector = IdleCollector((100, 10, 10), backlog=4)
    with collector.serving(), _Passes() as passes:
        collector.enter()
        gc.collect()  # counts from zero
        kept = _allocate(200)
        assert collector.check() is None  # above the threshold, within the backlog
        kept += _allocate(400)
        assert 0 == collector.check()
        assert ([0], 1) == (passes.generations[1:], collector.forced)
        collector.leave()
    assert len(kept) == 600


async def test_the_loop_lag_counts_what_kept_the_loop_from_a_task_due_to_wake() -> None:
    """
    The lag is counted from the moment the monitor's task was due to wake: time that
    passes while it sleeps beyond that (the loop held by work on it, or by a thread
    holding the interpreter) is counted, on the monitor's clock (the test's own here,
    moved on while the monitor sleeps).
    """
    now = [0.0]
    monitor = LoopMonitor(interval_s=0.02, clock=lambda: now[0])
    async with anyio.create_task_group() as tg:
        tg.start_soon(monitor.run)
        await monitor.next_sample()  # it sleeps again from now, due at 0.02
        now[0] += 0.1  # the loop held: the monitor runs 80 ms after it was due
        await monitor.next_sample()
        tg.cancel_scope.cancel()
    assert monitor.lags.maximum() >= 0.07
