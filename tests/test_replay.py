"""
Replay on the virtual clock: deterministic, and the oracle is the ceiling.
"""

from __future__ import annotations

import pytest

from preload import ConfigError, EngineConfig
from preload.replay import generate_demo, replay


def test_same_seed_gives_the_same_report() -> None:
    """
    Two replays with one seed give identical figures (wall time aside).
    """
    demo = generate_demo(40, seed=3)
    runs = [
        replay(demo.sessions, demo.knowledge, strategies=["lru", "engine"], seed=7, processes=1)
        for _ in range(2)
    ]
    assert runs[0].strategies == runs[1].strategies
    assert runs[0].virtual_s == runs[1].virtual_s


def test_strategies_rank_as_expected_on_the_demo() -> None:
    """
    Loading on demand never hits; the oracle hits at least as often as the engine,
    and the engine beats the reactive cache.
    """
    demo = generate_demo(120, seed=1)
    report = replay(demo.sessions, demo.knowledge, EngineConfig(), processes=2)
    s = report.strategies
    assert 0.0 == s["cold"].hit_rate
    assert s["oracle"].hit_rate >= s["engine"].hit_rate > s["lru"].hit_rate
    assert s["cold"].p95_ms > s["engine"].p95_ms
    assert s["engine"].top1 is not None and s["lru"].top1 is None
    assert report.turns == sum(r.turns for r in s.values()) / len(s)


def test_report_json_has_exactly_the_contract_keys() -> None:
    """
    The JSON report holds exactly DESIGN.md's keys.
    """
    demo = generate_demo(10)
    data = replay(demo.sessions, demo.knowledge, strategies=["cold", "markov1"], processes=1)
    out = data.to_json()
    assert {"dataset", "strategies", "wall_s", "virtual_s"} == set(out)
    assert {"name", "sessions", "turns", "states", "needs"} == set(out["dataset"])
    keys = {
        "hit_rate",
        "wasted_ratio",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "tokens_per_turn",
        "top1",
        "top3",
        "loads",
        "preloads",
    }
    assert all(keys == set(v) for v in out["strategies"].values())
    assert None is out["strategies"]["cold"]["top1"]


def test_a_replay_refuses_a_shared_cache_backend() -> None:
    """
    A replay keeps each strategy's cache in memory on the virtual clock; asking for
    Redis is refused up front, naming the key, instead of being silently ignored.
    """
    demo = generate_demo(5, seed=1)
    config = EngineConfig.from_dict({"cache": {"backend": "redis"}})
    with pytest.raises(ConfigError, match="cache.backend"):
        replay(demo.sessions, demo.knowledge, config, strategies=["lru"], processes=1)
