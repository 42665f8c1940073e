"""
Just-in-time preloads and TTLs honoured, on the replay's virtual clock: think times
learned per state, a preload started at the expected arrival less its latency and a
margin, never delayed when the think time is shorter than the load, and an item whose
TTL would end before its expected use left out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import anyio
import pytest

from preload import ConfigError, EngineConfig, PreloadEngine
from preload.learning import Forecast, ThinkTimes
from preload.replay._clock import VirtualClockLoop
from preload.testing import ScriptedSource


class _TimedSource(ScriptedSource):
    """
    A scripted source that notes when each fetch started (virtual time).
    """

    def __init__(self, items: dict[str, str], *, latency: float) -> None:
        super().__init__(items, name="kb", latency=latency)
        self.started_at: dict[str, float] = {}

    async def fetch(self, key: str) -> str:
        """
        Note the start, then answer as scripted.
        """
        self.started_at.setdefault(key, anyio.current_time())
        return await super().fetch(key)


class _NextKey:
    """
    Forecasts ``<prefix>k<n>`` for the turn after the n-th, for sure (and, so that
    their loads go on, the earlier turns' keys).
    """

    predicts_states = False
    uses_reply = False

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def fit(self, sessions: Sequence[Any]) -> None:
        """
        Nothing to learn.
        """

    def observe(self, turns: Sequence[Any], user: str | None) -> None:
        """
        Nothing to learn.
        """

    def forecast(self, turns: Sequence[Any], user: str | None, session_id: str) -> Forecast:
        """
        The next turn's key.
        """
        return Forecast(needs=tuple((f"{self.prefix}k{n}", 1.0) for n in range(len(turns), 0, -1)))


def _run(
    *,
    think: float,
    latency: float,
    turns: int,
    prefix: str = "",
    needs: bool = False,
    max_entries: int = 3,
    **preloader: Any,
) -> tuple[_TimedSource, list[float], PreloadEngine, list[str]]:
    """
    One session of ``turns`` turns ``think`` seconds apart (each answered at once;
    turn i needs ``k<i>`` when ``needs``), with a cache of ``max_entries`` (small: it
    is crowded soon), on the virtual clock; the source, when each turn was answered, the engine and
    each context's explanation.
    """
    source = _TimedSource({f"{prefix}k{i}": f"item {i}" for i in range(turns + 1)}, latency=latency)
    base = EngineConfig()
    config = base.replace(
        preloader=replace(base.preloader, **preloader),
        cache=replace(base.cache, ttl={"db": 5.0}, max_entries=max_entries),
    )
    engine = PreloadEngine(
        config, sources={"kb": source}, forecaster=_NextKey(prefix), offload=False
    )
    times: list[float] = []
    explained: list[str] = []

    async def main() -> None:
        async with engine:
            for i in range(turns):
                await anyio.sleep_until(i * think)
                need = [f"{prefix}k{i}"] if needs else []
                ctx = await engine.handle(session_id="s", text=f"q{i}", state="ask", needs=need)
                times.append(anyio.current_time())
                explained.append(ctx.explain())
                engine.reply("s", "ok")
            await anyio.sleep(think)

    anyio.run(main, backend_options={"loop_factory": VirtualClockLoop})
    return source, times, engine, explained


def test_think_times_are_learned_per_state_with_a_global_fallback() -> None:
    """
    A state's own lognormal once it has enough gaps; the global one before; nothing
    known at first.
    """
    think = ThinkTimes(min_samples=3)
    assert None is think.quantile("a", 0.5)
    for seconds in (10.0, 10.0, 10.0):
        think.observe("a", seconds)
    for seconds in (100.0, 100.0, 100.0):
        think.observe("b", seconds)
    assert 10.0 == pytest.approx(think.quantile("a", 0.5))
    assert 100.0 == pytest.approx(think.quantile("b", 0.9))
    assert 10.0 < think.quantile("unseen", 0.5) < 100.0  # type: ignore[operator]


def test_a_preload_starts_just_in_time() -> None:
    """
    Until think times are known, preloads start at once; then, the cache being
    crowded, at the reply plus the think time, less the load's latency and the
    margin, not before.
    """
    source, times, engine, _ = _run(
        think=20.0,
        latency=0.5,
        turns=8,
        needs=True,
        just_in_time=True,
        jit_quantile=0.5,
        jit_margin_s=1.0,
    )
    for i in range(1, 5):  # after turns 1..4 (gaps seen: 0..3)
        assert source.started_at[f"k{i}"] - times[i - 1] < 0.01
    start = source.started_at["k7"]  # forecast after the 7th turn (6 gaps seen)
    assert times[6] + 20.0 - 1.0 - 1.0 < start < times[6] + 20.0 - 1.0
    assert engine.metrics().deferred >= 2
    assert 7 == engine.metrics().hits  # every turn but the first: loaded before it came


def test_a_cache_with_room_preloads_at_once() -> None:
    """
    Just in time or not, a preload that evicts nothing starts as the forecast comes.
    """
    source, times, engine, _ = _run(
        think=20.0, latency=0.5, turns=8, needs=True, max_entries=256, just_in_time=True
    )
    for i in range(1, 8):
        assert source.started_at[f"k{i}"] - times[i - 1] < 0.01
    assert 0 == engine.metrics().deferred


def test_a_think_time_shorter_than_the_load_does_not_delay_it() -> None:
    """
    When the load takes longer than users think, the preload starts at once.
    """
    source, times, engine, _ = _run(
        think=2.0,
        latency=5.0,
        turns=8,
        prefix="x:",
        just_in_time=True,
        jit_quantile=0.5,
        jit_margin_s=0.5,
    )
    for i in range(1, 8):
        assert source.started_at[f"x:k{i}"] - times[i - 1] < 0.01
    assert 0 == engine.metrics().deferred


@pytest.mark.parametrize("just_in_time", [False, True])
def test_an_item_whose_ttl_ends_before_its_use_is_not_preloaded(just_in_time: bool) -> None:
    """
    Preloaded at once, a "db:" item (5 s TTL) would expire before the next request
    (20 s later): it is left out, counted and explained. Just in time it lives long
    enough, and is preloaded.
    """
    source, _, engine, explained = _run(
        think=20.0,
        latency=0.5,
        turns=8,
        prefix="db:",
        ttl_aware=True,
        just_in_time=just_in_time,
        jit_quantile=0.5,
    )
    skipped = engine.metrics().ttl_skipped
    if just_in_time:
        assert 0 == skipped
        assert "db:k7" in source.started_at
    else:
        assert skipped >= 2
        assert "db:k7" not in source.started_at
        assert any("skip db:k" in text and "TTL (5 s)" in text for text in explained)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"just_in_time": "yes"}, "preloader.just_in_time"),
        ({"ttl_aware": 1}, "preloader.ttl_aware"),
        ({"jit_quantile": 1.0}, "preloader.jit_quantile"),
        ({"jit_margin_s": -1.0}, "preloader.jit_margin_s"),
    ],
)
def test_bad_just_in_time_settings_name_the_key(values: dict[str, Any], key: str) -> None:
    """
    Each bad value is refused with its dotted key.
    """
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        replace(EngineConfig().preloader, **values)


def test_a_deferred_preload_is_explained() -> None:
    """
    The context of a request says which of its preloads were deferred and when they
    started, after the last answer.
    """
    _, _, _, explained = _run(
        think=20.0, latency=0.5, turns=8, needs=True, just_in_time=True, jit_quantile=0.5
    )
    line = next(x for x in explained[7].splitlines() if x.startswith("  defer k7"))
    # think time 20 s, less the load's expected latency (0.5 s and up) and the 1 s margin
    assert re.search(r"preloaded just in time, started 18\.\d s after the last answer", line)
    assert not any("defer" in text for text in explained[:2])  # no think times known yet


def test_wait_idle_waits_for_the_deferred_preloads() -> None:
    """
    ``wait_idle`` returns once the preloads waiting to start just in time have
    started and finished, on the virtual clock: not before their start time.
    """
    source = _TimedSource({f"k{i}": f"item {i}" for i in range(9)}, latency=0.5)
    base = EngineConfig()
    config = base.replace(
        preloader=replace(base.preloader, just_in_time=True, jit_quantile=0.5),
        cache=replace(base.cache, max_entries=3),
    )
    engine = PreloadEngine(config, sources={"kb": source}, forecaster=_NextKey(), offload=False)
    idle_at: list[float] = []

    async def main() -> None:
        async with engine:
            for i in range(8):
                await anyio.sleep_until(i * 20.0)
                await engine.handle(session_id="s", text=f"q{i}", state="ask", needs=[f"k{i}"])
                engine.reply("s", "ok")
            answered = anyio.current_time()
            await engine.wait_idle()
            idle_at.extend((answered, anyio.current_time()))

    anyio.run(main, backend_options={"loop_factory": VirtualClockLoop})
    answered, idle = idle_at
    assert answered + 18.0 < source.started_at["k8"] < idle
    assert engine.preloader.is_ready("k8")
    assert 0 == engine.metrics().queued + engine.metrics().in_flight
