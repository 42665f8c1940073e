"""
Swap under pressure: tenants sharing one cache smaller than their working set,
value-aware eviction and admission, the global oracle, and the provider's prompt cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from preload import ConfigError, DictSource, EngineConfig, PreloadEngine
from preload._config import PricingConfig
from preload.caches import Demand, MemoryCache
from preload.caches._index import EntryIndex
from preload.cli import main
from preload.learning import Forecast
from preload.loading._ledger import SURVIVAL_WEIGHT, PreloadLedger
from preload.replay import generate_demo, replay
from preload.replay._tenants import (
    BeladyValue,
    _measure,
    tenant_of,
    with_capacity,
    working_set,
)
from preload.testing import ScriptedSource
from preload.window._prompt_cache import Charge, PromptCache, SessionPrefix


class _Values:
    """
    Fixed entry values, for the index.
    """

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values

    def value(self, key: str) -> float:
        """
        The value of ``key`` (0 when unknown).
        """
        return self.values.get(key, 0.0)


def test_demand_pools_the_live_sessions_forecasts() -> None:
    """
    An entry's worth is its chance of use, 1 - prod(1 - p) over the sessions
    forecasting it (every hit alike, whatever the load time it saves); a session
    that ends or forecasts again takes its part away, a certain use included.
    """
    demand = Demand()
    demand.forecast("s1", {"a": (0.5, 2.0), "b": (1.0, 1.0)})
    demand.forecast("s2", {"a": (0.5, 2.0), "b": (0.5, 1.0)})
    assert 0.75 == pytest.approx(demand.chance("a"))
    assert 0.75 == pytest.approx(demand.value("a"))
    assert (2.0, 1.0) == (demand.saved("a"), demand.saved("b"))
    assert 1.0 == demand.chance("b")
    demand.end("s1")
    assert (0.5, 0.5) == pytest.approx((demand.chance("a"), demand.chance("b")))
    demand.forecast("s2", {})
    assert (0.0, 0.0, 0) == (demand.value("a"), demand.value("b"), len(demand))


def test_value_aware_eviction_drops_the_least_valuable_and_refuses_a_weak_preload() -> None:
    """
    Of the least recently used entries, the one worth least goes (ties: the oldest);
    a preload worth less than everything held is not kept; without values it is LRU.
    """
    values = _Values({"a": 3.0, "b": 0.0, "c": 2.0, "d": 1.0})
    index = EntryIndex(max_entries=3, value=values, sample=8)
    for key in ("a", "b", "c"):
        index.add(key, 1, ttl=None)
    index.add("d", 1, ttl=None, unread=True)
    assert "b" == index.evict()  # worth 0, though not the oldest
    assert None is index.evict()
    values.values["e"] = 0.5
    assert not index.admits("e")
    index.add("e", 1, ttl=None, unread=True)
    assert "e" == index.evict()
    assert (1, 1, 1) == (index.evictions, index.rejected, index.evicted_unused)
    lru = EntryIndex(max_entries=1)
    lru.add("x", 1, ttl=None)
    lru.add("y", 1, ttl=None, unread=True)
    assert "x" == lru.evict()


async def test_a_value_aware_memory_cache_keeps_what_sessions_forecast() -> None:
    """
    With ``cache.eviction = "value"`` the cache's demand decides: an entry a live
    session forecasts outlives an older one nobody wants, and a newer one nobody
    wants.
    """
    cache = MemoryCache(EngineConfig().cache.__class__(max_entries=2, eviction="value"))
    assert cache.demand is not None
    cache.demand.forecast("s1", {"wanted": (0.9, 0.5)})
    await cache.set("wanted", "w")
    await cache.set("other", "o")
    await cache.set("newest", "n")
    assert ("wanted" in cache, "other" in cache, "newest" in cache) == (True, False, True)
    await cache.set("last", "l", preload=True)
    assert "wanted" in cache
    assert cache.admits("wanted")


async def test_belady_values_the_soonest_use_highest() -> None:
    """
    The global oracle's value grows as the next use nears and is 0 for an entry
    never used again.
    """
    now = anyio.current_time()
    belady = BeladyValue({"soon": [now + 1.0], "later": [now + 50.0], "past": [now - 5.0]})
    assert belady.value("soon") > belady.value("later") > belady.value("past") == 0.0
    assert 0.0 == belady.value("unknown")


def test_the_prompt_cache_reads_a_shared_prefix_and_prices_it() -> None:
    """
    The second prompt reads the segments it shares with the first from the cache
    once they reach the minimum prefix; a change in the first segment invalidates
    everything after it; a prefix expires after the TTL; the price follows.
    """
    pricing = PricingConfig(
        input=1.0, cached_input=0.1, cache_write=1.25, min_prefix_tokens=100, cache_ttl_s=60.0
    )
    cache = PromptCache()
    mine = SessionPrefix()
    prompt = [("system", 80), ("item", 40), ("request", 10)]
    first = cache.charge(prompt, volatile=1, now=0.0, pricing=pricing, session=mine)
    assert (0, 120, 10) == (first.reused, first.written, first.uncached)
    second = cache.charge(prompt, volatile=1, now=10.0, pricing=pricing)
    assert (120, 0, 10) == (second.reused, second.written, second.uncached)
    assert (120 * 0.1 + 10) / 1e6 == pytest.approx(second.cost)
    assert 40 == mine.cached_after(1, 10.0, pricing)
    changed = [("system2", 80), ("item", 40), ("request", 10)]
    third = cache.charge(changed, volatile=1, now=20.0, pricing=pricing)
    assert 0 == third.reused
    late = cache.charge(changed, volatile=1, now=200.0, pricing=pricing)
    assert 0 == late.reused
    short = PromptCache().charge([("a", 50), ("r", 5)], volatile=1, now=0.0, pricing=pricing)
    assert (0, 0, 55) == (short.reused, short.written, short.uncached)


def test_the_prompt_cache_is_shared_by_the_tenants_sessions() -> None:
    """
    A prefix another session of the tenant wrote is read (not only the session's
    own last one); two prefixes that part after the first segment both stay cached;
    a read keeps a prefix alive past its TTL; expired prefixes are swept away.
    """
    pricing = PricingConfig(
        input=1.0, cached_input=0.1, cache_write=1.25, min_prefix_tokens=100, cache_ttl_s=60.0
    )
    cache = PromptCache()
    a = [("system", 60), ("tenant", 60), ("a", 30), ("request", 5)]
    b = [("system", 60), ("tenant", 60), ("b", 30), ("request", 5)]
    assert 0 == cache.charge(a, volatile=1, now=0.0, pricing=pricing).reused
    assert (120, 30) == _read_write(cache.charge(b, volatile=1, now=1.0, pricing=pricing))
    assert (150, 0) == _read_write(cache.charge(a, volatile=1, now=50.0, pricing=pricing))
    # b's own segment was last used at 1 s: only the shared part is still cached
    assert (120, 30) == _read_write(cache.charge(b, volatile=1, now=100.0, pricing=pricing))
    nodes = len(cache)
    for i in range(1100):  # far later, many different prompts: the old ones are swept
        cache.charge([(f"p{i}", 100), ("r", 5)], volatile=1, now=1000.0 + i, pricing=pricing)
    assert nodes < len(cache) < 200  # the last minute's (TTL), and a few since the sweep


def _read_write(charge: Charge) -> tuple[int, int]:
    return charge.reused, charge.written


@pytest.mark.parametrize(
    ("section", "values", "key"),
    [
        ("replay", {"tenants": 0}, "replay.tenants"),
        ("cache", {"max_entries": 0}, "cache.max_entries"),
        ("cache", {"max_bytes": -1}, "cache.max_bytes"),
        ("cache", {"eviction_sample": 0}, "cache.eviction_sample"),
        ("pricing", {"input": -1.0}, "pricing.input"),
        ("pricing", {"cache_write": -0.5}, "pricing.cache_write"),
        ("pricing", {"input": 1.0, "cached_input": 2.0}, "pricing.cached_input"),
        ("swap", {"layout": "random"}, "swap.layout"),
        ("swap", {"tenant_tokens": -1}, "swap.tenant_tokens"),
        ("swap", {"tenant_tokens": 500, "layout": "category"}, "swap.tenant_tokens"),
        ("swap", {"tenant_min_share": 1.5}, "swap.tenant_min_share"),
        ("swap", {"tenant_refresh": 0}, "swap.tenant_refresh"),
        ("preloader", {"just_in_time": "on"}, "preloader.just_in_time"),
        ("preloader", {"jit_quantile": 0.0}, "preloader.jit_quantile"),
        ("preloader", {"jit_margin_s": -2.0}, "preloader.jit_margin_s"),
        ("preloader", {"ttl_aware": "yes"}, "preloader.ttl_aware"),
    ],
)
def test_bad_pressure_settings_name_the_key(
    section: str, values: dict[str, object], key: str
) -> None:
    """
    A capacity of 0 or below, a tenant count below 1, a negative price or a cached
    price above the input price is refused naming the key; so are bad tenant-layer
    and just-in-time settings.
    """
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        EngineConfig.from_dict({section: values})


@pytest.mark.parametrize("capacity", [0.0, -0.5])
def test_a_capacity_of_zero_or_below_is_refused(capacity: float) -> None:
    """
    ``replay(capacity=...)`` names the key; so does ``tenants`` below 1.
    """
    demo = generate_demo(5, seed=1)
    with pytest.raises(ConfigError, match="capacity"):
        replay(demo.sessions, demo.knowledge, strategies=["lru"], capacity=capacity)
    with pytest.raises(ConfigError, match="tenants"):
        replay(demo.sessions, demo.knowledge, strategies=["lru"], tenants=0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenants", "0"], "argument --tenants: must be 1 or more, got 0"),
        (["--capacity", "0"], "argument --capacity: must be a positive fraction"),
        (["--capacity", "-1"], "argument --capacity: must be a positive fraction"),
        (["--strategies", "global"], "argument --strategies: unknown strategy 'global'"),
    ],
)
def test_simulate_names_a_bad_pressure_argument(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    The command refuses the argument with one line naming it and exit code 2.
    """
    assert 2 == main(["simulate", *args])
    assert message in " ".join(capsys.readouterr().err.split())


def test_tenants_share_one_cache_under_pressure() -> None:
    """
    Sessions spread over tenants by a stable hash; the cache sized to 5 % of the
    working set (every tenant's own copy counted) holds far less than at 100 %;
    the global oracle is the ceiling of the shared cache, and every strategy
    reports the prompt-cache keys.
    """
    demo = generate_demo(60, seed=4)
    assert [tenant_of(s.session_id, 4) for s in demo.sessions] == [
        tenant_of(s.session_id, 4) for s in demo.sessions
    ]
    assert len({tenant_of(s.session_id, 4) for s in demo.sessions}) == 4
    config = EngineConfig.from_dict({"replay": {"tenants": 4}})
    knowledge = DictSource(demo.knowledge, name="kb")
    one, _ = working_set(demo.sessions, knowledge, EngineConfig())
    many, size = working_set(demo.sessions, knowledge, config)
    assert one < many and size > 0
    tiny = with_capacity(config, 0.0001, demo.sessions, knowledge)
    assert 1 == tiny.cache.max_entries
    assert tiny.cache.max_bytes == _measure(demo.sessions, knowledge, config)[2]  # the largest
    strategies = ["lru", "oracle", "global_oracle"]
    small = replay(
        demo.sessions, demo.knowledge, config, strategies=strategies, capacity=0.05, processes=1
    )
    whole = replay(
        demo.sessions, demo.knowledge, config, strategies=strategies, capacity=1.0, processes=1
    )
    s, w = small.strategies, whole.strategies
    assert s["lru"].hit_rate < w["lru"].hit_rate
    assert s["global_oracle"].hit_rate >= s["oracle"].hit_rate
    assert s["global_oracle"].hit_rate > s["lru"].hit_rate
    for report in (*s.values(), *w.values()):
        assert report.input_cost_per_turn > 0
        assert report.needs_in_window_recall is not None


async def test_the_engine_learns_the_tenant_layer_in_its_learner() -> None:
    """
    Through the engine, the tenant-wide layer learns from the windows in the learner
    (after the answers left): once most sessions held an item, a new session's window
    starts with it right after the system prompt.
    """
    from preload import PreloadEngine
    from preload.learning import NullForecaster

    knowledge = {"db:common": "Shared hotel rules for every guest. " * 8, "db:own": "Own."}
    config = EngineConfig.from_dict(
        {"swap": {"tenant_tokens": 500, "tenant_min_share": 0.5, "tenant_refresh": 2}}
    )
    async with PreloadEngine(
        config, sources={"kb": DictSource(knowledge)}, forecaster=NullForecaster()
    ) as engine:
        before = await engine.handle(session_id="s0", text="hi", needs=["db:common"])
        for i in range(1, 5):
            await engine.handle(session_id=f"s{i}", text="hi", needs=["db:common"])
        await engine.wait_idle()
        after = await engine.handle(session_id="new", text="hi", needs=["db:own"])
    assert not any(item.shared for item in before.items)
    assert ["system", "db:common"] == [item.key for item in after.items][:2]
    assert after.items[1].shared


class _Scripted:
    """
    Forecasts what the test sets in ``needs``, again after each reply.
    """

    predicts_states = False
    uses_reply = True

    def __init__(self) -> None:
        self.needs: tuple[tuple[str, float], ...] = ()

    def fit(self, sessions: object) -> None:
        """
        Nothing to learn.
        """

    def observe(self, turns: object, user: str | None) -> None:
        """
        Nothing to learn.
        """

    def forecast(self, turns: object, user: str | None, session_id: str) -> Forecast:
        """
        The needs the test set.
        """
        return Forecast(needs=self.needs)


def _squeezed(forecaster: _Scripted, max_entries: int = 1) -> tuple[PreloadEngine, ScriptedSource]:
    """
    An engine over a scripted source whose cache holds ``max_entries`` entries.
    """
    source = ScriptedSource({k: f"item {k}" for k in ("a", "b", "c", "x")}, name="kb")
    config = EngineConfig.from_dict({"cache": {"max_entries": max_entries}})
    return PreloadEngine(config, sources={"kb": source}, forecaster=forecaster), source


async def test_a_preload_lost_before_its_use_is_counted_and_not_made_again_that_turn() -> None:
    """
    A preload evicted by another session's load before its own session needed it is
    lost: counted (wasted, as it was never read), and the survival falls; a forecast made again before
    that session's next request (after the reply) does not preload it again, where
    it would only evict and be evicted; the next turn's forecast may.
    """
    forecaster = _Scripted()
    engine, source = _squeezed(forecaster)
    async with engine:
        forecaster.needs = (("a", 0.9),)
        await engine.handle(session_id="s1", text="q", needs=[])
        await engine.wait_idle()
        assert 1 == source.calls["a"] and engine.preloader.is_ready("a")
        forecaster.needs = ()
        await engine.handle(session_id="s2", text="q", needs=["x"])  # evicts "a"
        await engine.wait_idle()
        forecaster.needs = (("a", 0.9),)
        engine.reply("s1", "answer")  # forecasts "a" again: not preloaded again
        await engine.wait_idle()
        assert 1 == source.calls["a"]
        ctx = await engine.handle(session_id="s1", text="q", needs=["a"])
        await engine.wait_idle()
        snapshot = engine.metrics()
        assert (1, 0, 1) == (ctx.misses, snapshot.preloads_used, snapshot.preloads_lost)
        assert engine.preloader.survival < 1.0
        engine.end_session("s1")
        assert 1 == engine.metrics().wasted


async def test_under_pressure_only_the_likeliest_need_is_preloaded() -> None:
    """
    A preload is worth its chance of use times the share of needed preloads that
    survived until their use: when few survive, only the forecast's likeliest need
    (kept on its own chance, so that the survival keeps being measured) clears the
    value threshold.
    """
    forecaster = _Scripted()
    engine, source = _squeezed(forecaster, max_entries=8)
    async with engine:
        engine.preloader._ledger.survival = 0.1
        forecaster.needs = (("a", 0.9), ("b", 0.8), ("c", 0.5))
        await engine.handle(session_id="s1", text="q", needs=[])
        await engine.wait_idle()
        assert (1, 0, 0) == (source.calls["a"], source.calls["b"], source.calls["c"])
        engine.preloader._ledger.survival = 1.0
        engine.reply("s1", "answer")
        await engine.wait_idle()
        assert (1, 1, 1) == (source.calls["a"], source.calls["b"], source.calls["c"])


def test_the_survival_is_a_moving_share_of_needed_preloads_still_there() -> None:
    """
    Each needed preload moves the survival toward 1 when it was read, toward 0 when
    it was lost; a need that was not preloaded for the session moves nothing.
    """
    ledger = PreloadLedger()
    ledger.loaded("a", {"s"})
    ledger.loaded("b", {"s"})
    assert not ledger.lose("s", "c") and not ledger.lose("t", "a")
    assert 1.0 == ledger.survival
    assert ledger.lose("s", "a")
    assert 1.0 - SURVIVAL_WEIGHT == pytest.approx(ledger.survival)
    assert not ledger.lose("s", "a")  # found lost once
    assert ledger.read("s", "b")
    assert (1, 1, 0) == (ledger.used, ledger.lost, ledger.wasted)
    assert 1.0 - SURVIVAL_WEIGHT < ledger.survival < 1.0
    ledger.loaded("a", {"s"})  # preloaded again: this preload's outcome counts
    assert ledger.lose("s", "a")
    assert 2 == ledger.lost
    ledger.end("s")  # the lost preload, never read, is wasted as before
    assert 1 == ledger.wasted


def test_admission_counts_the_bytes_bound_and_the_survival() -> None:
    """
    A cache full by bytes (not by entries) has no room either; a preload is admitted
    only when its worth, times the chance it survives until its use, reaches the
    weakest entry's it would evict.
    """
    values = _Values({"a": 1.0, "b": 1.0, "new": 2.0})
    index = EntryIndex(max_entries=10, max_bytes=100, value=values, sample=8)
    index.add("a", 50, ttl=None)
    assert index.admits("weak")  # room for one more of the mean size
    index.add("b", 50, ttl=None)
    assert not index.admits("weak")  # full by bytes: worth 0 against 1
    assert index.admits("new")
    assert not index.admits("new", 0.4)  # 2 x 0.4 < 1


def test_simulate_reports_the_preloads_held_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    Under pressure the command's report says, per strategy, the preloads deferred,
    rejected by the value-aware cache, lost before their use and left out for their
    TTL; the JSON report has them as keys.
    """
    config = tmp_path / "pressure.toml"
    config.write_text(
        '[cache]\neviction = "value"\n[preloader]\njust_in_time = true\nttl_aware = true\n'
    )
    out = tmp_path / "report.json"
    args = ["simulate", "--limit", "40", "--tenants", "4", "--capacity", "0.05"]
    args += ["--config", str(config), "--strategies", "lru,engine", "--processes", "1"]
    assert 0 == main([*args, "--json", str(out)])
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("preloads "))
    assert "engine " in line and " deferred, " in line and " rejected, " in line
    engine = json.loads(out.read_text())["strategies"]["engine"]
    assert engine["deferred"] > 0 and engine["preloads_lost"] > 0
    assert {"rejected", "ttl_skipped"} <= set(engine)
