"""
The engine serves each session of an experiment with its arm's configuration, names
the arm in the context, and records each session's and arm's outcomes.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preload import DictSource, EngineConfig, PreloadEngine
from preload.experiments import read_outcome_files, read_outcomes, write_outcomes
from preload.learning import NullForecaster

ITEMS = {
    "db:hotels": "Hotels in Lisbon: rooms by price, rating and distance to the station.",
    "db:trains": "Trains from Lisbon to Porto: departures, platforms and fares.",
}

CONFIG = {
    "experiments": {
        "name": "budget",
        "arms": {
            "control": {},
            "small": {"overlay": {"budget": {"total_tokens": 4000}}},
        },
    }
}


def _ids_by_arm(engine: PreloadEngine) -> dict[str, str]:
    """
    One session id of each arm.
    """
    out: dict[str, str] = {}
    for i in range(100):
        arm = engine.arm_of(f"s{i}")
        assert arm is not None
        out.setdefault(arm, f"s{i}")
    return out


async def test_a_session_is_served_with_its_arms_config() -> None:
    """
    A session of the "small" arm gets a 4,000-token window, one of the control the
    base's 8,000; the context and its explanation name the arm; the arm of a session
    stays the same on every request.
    """
    config = EngineConfig.from_dict(CONFIG)
    async with PreloadEngine(
        config, sources={"kb": DictSource(ITEMS)}, forecaster=NullForecaster()
    ) as engine:
        ids = _ids_by_arm(engine)
        small = await engine.handle(session_id=ids["small"], text="hotels", needs=["db:hotels"])
        again = await engine.handle(session_id=ids["small"], text="trains", needs=["db:trains"])
        base = await engine.handle(session_id=ids["control"], text="hotels", needs=["db:hotels"])
    assert (4000, 4000, 8000) == (small.budget, again.budget, base.budget)
    assert ("budget", "small", "control") == (small.experiment, small.arm, base.arm)
    assert "experiment budget: served by arm small" in small.explain()


async def test_outcomes_are_recorded_per_session_and_arm() -> None:
    """
    Turns, hit rate, tokens, recall of the declared needs, the share of the window
    the answer used and the task score join the session's outcome and its arm's
    counts; an ended session's outcome is kept.
    """
    config = EngineConfig.from_dict(CONFIG)
    async with PreloadEngine(
        config, sources={"kb": DictSource(ITEMS)}, forecaster=NullForecaster()
    ) as engine:
        ids = _ids_by_arm(engine)
        sid = ids["small"]
        ctx = await engine.handle(session_id=sid, text="hotels", needs=["db:hotels"])
        engine.feedback(sid, used=["db:hotels"], score=0.5)
        await engine.handle(session_id=sid, text="hotels again", needs=["db:hotels"])
        engine.feedback(sid, used=[], score=1.0)
        engine.end_session(sid)
        await engine.handle(session_id=ids["control"], text="trains", needs=["db:trains"])
        with pytest.raises(TypeError, match="score must be a number or None, not str"):
            engine.feedback(ids["control"], used=[], score="good")  # type: ignore[arg-type]
        ignored = engine.statistics().feedback_ignored
        engine.feedback(ids["control"], used=[], score=float("nan"))
        assert ignored + 1 == engine.statistics().feedback_ignored
        outcomes = {o.session_id: o for o in engine.experiment_outcomes()}
        stats = engine.arm_statistics()
    small = outcomes[sid]
    assert ("budget", "small", 2) == (small.experiment, small.arm, small.turns)
    assert (0.5, 1.0, 0.75, 0.5) == (small.hit_rate, small.recall, small.score, small.used_share)
    assert small.tokens_per_turn is not None and small.tokens_per_turn >= ctx.tokens / 2
    assert ("control", None, 0.0) == (  # judged, nothing used; the NaN score left out
        outcomes[ids["control"]].arm,
        outcomes[ids["control"]].score,
        outcomes[ids["control"]].used_share,
    )
    assert (1, 2, 2, 1.5) == (
        stats["small"].sessions,
        stats["small"].requests,
        stats["small"].scores,
        stats["small"].score_sum,
    )
    assert 1 == stats["control"].requests


async def test_without_experiment_nothing_is_assigned() -> None:
    """
    The default configuration runs no experiment: no arm, no outcomes.
    """
    async with PreloadEngine(
        EngineConfig(), sources={"kb": DictSource(ITEMS)}, forecaster=NullForecaster()
    ) as engine:
        ctx = await engine.handle(session_id="s", text="hotels", needs=["db:hotels"])
        assert (None, [], {}) == (
            engine.arm_of("s"),
            engine.experiment_outcomes(),
            engine.arm_statistics(),
        )
    assert ctx.arm is None and "experiment" not in ctx.explain()


async def test_arm_counters_export_to_prometheus() -> None:
    """
    ``arms=engine.arm_statistics`` exports each arm's counts with an ``arm`` label.
    """
    prometheus_client = pytest.importorskip("prometheus_client")
    from preload import PrometheusCollector

    async with PreloadEngine(
        EngineConfig.from_dict(CONFIG),
        sources={"kb": DictSource(ITEMS)},
        forecaster=NullForecaster(),
    ) as engine:
        ids = _ids_by_arm(engine)
        for _ in range(3):
            await engine.handle(session_id=ids["small"], text="hotels", needs=["db:hotels"])
        registry = prometheus_client.CollectorRegistry()
        registry.register(PrometheusCollector(engine.metrics, arms=engine.arm_statistics))
        text = prometheus_client.generate_latest(registry).decode()
    assert 'preload_arm_requests_total{arm="small"} 3.0' in text
    assert 'preload_arm_requests_total{arm="control"} 0.0' in text
    assert 'preload_arm_needs_in_window_total{arm="small"} 3.0' in text


async def test_a_turn_taken_back_and_served_again_counts_once() -> None:
    """
    A server takes a turn back when the store refused it, or to serve a client's
    retry again: the turns dropped leave the session's and the arm's counts, so the
    turn served again counts once; a first turn taken back neither ends the session
    (no outcome of it, its arm's sessions counted once) nor loses what it ran.
    """
    config = EngineConfig.from_dict(CONFIG)
    async with PreloadEngine(
        config, sources={"kb": DictSource(ITEMS)}, forecaster=NullForecaster()
    ) as engine:
        sid = _ids_by_arm(engine)["small"]
        await engine.handle(session_id=sid, text="hotels", needs=["db:hotels"])
        engine.restore(sid, [], start=0)  # a retry of the first request
        await engine.handle(session_id=sid, text="hotels", needs=["db:hotels"])
        engine.reply(sid, "Hotel Avenida.")
        await engine.handle(session_id=sid, text="trains", needs=["db:trains"])
        engine.restore(sid, [], start=1)  # the store refused the second turn
        await engine.handle(session_id=sid, text="trains", needs=["db:trains"])
        turns = engine.turns_of(sid)
        engine.restore(sid, turns[1:], start=1)  # the same turn synced back: kept
        outcomes = engine.experiment_outcomes()
        stats = engine.arm_statistics()["small"]
    assert [(sid, 2)] == [(o.session_id, o.turns) for o in outcomes]
    assert (1, 2, 2) == (stats.sessions, stats.requests, stats.misses + stats.hits)


async def test_a_session_counts_in_its_arm_where_it_began() -> None:
    """
    A session continued on another replica (its turns restored there) counts in its
    arm's sessions on the replica that served its first turn only, so that the
    replicas' counts add up to the sessions; its requests count where served.
    """
    config = EngineConfig.from_dict(CONFIG)
    sources = {"kb": DictSource(ITEMS)}
    async with (
        PreloadEngine(config, sources=sources, forecaster=NullForecaster()) as a,
        PreloadEngine(config, sources=sources, forecaster=NullForecaster()) as b,
    ):
        sid = _ids_by_arm(a)["small"]
        await a.handle(session_id=sid, text="hotels", needs=["db:hotels"])
        a.reply(sid, "Hotel Avenida.")
        b.restore(sid, a.turns_of(sid))
        await b.handle(session_id=sid, text="trains", needs=["db:trains"])
        on_a, on_b = a.arm_statistics()["small"], b.arm_statistics()["small"]
    assert (1, 1) == (on_a.sessions, on_a.requests)
    assert (0, 1) == (on_b.sessions, on_b.requests)


async def test_a_session_two_replicas_served_reports_as_one(tmp_path: Path) -> None:
    """
    Each replica writes the outcomes of the sessions it served; a session continued on
    another replica has a partial outcome in each file, and the report reads the two
    as one session with every request and feedback it had.
    """
    config = EngineConfig.from_dict(CONFIG)
    sources = {"kb": DictSource(ITEMS)}
    files = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    async with (
        PreloadEngine(config, sources=sources, forecaster=NullForecaster()) as a,
        PreloadEngine(config, sources=sources, forecaster=NullForecaster()) as b,
    ):
        sid = _ids_by_arm(a)["small"]
        await a.handle(session_id=sid, text="hotels", needs=["db:hotels"])
        a.feedback(sid, used=["db:hotels"], score=1.0)
        a.reply(sid, "Hotel Avenida.")
        b.restore(sid, a.turns_of(sid))
        await b.handle(session_id=sid, text="trains", needs=["db:trains"])
        await b.handle(session_id=sid, text="hotels again", needs=["db:hotels"])
        b.feedback(sid, used=[], score=0.0)
        for engine, path in zip((a, b), files, strict=True):
            write_outcomes(path, engine.experiment_outcomes())
    assert [1, 2] == [read_outcomes(path)[0].turns for path in files]
    (merged,) = read_outcome_files(files)
    assert ("small", 3, 0.5) == (merged.arm, merged.turns, merged.score)
    assert merged.counts is not None and (3, 2) == (merged.counts.needs, merged.counts.scores)


async def test_a_session_forgotten_and_taken_up_again_has_one_outcome(tmp_path: Path) -> None:
    """
    A session the engine forgot (for another, past ``max_sessions``) and then took up
    again has one outcome with all its requests, so that its file reports: the same
    session twice in one file is refused.
    """
    config = EngineConfig.from_dict(CONFIG)
    path = tmp_path / "outcomes.jsonl"
    async with PreloadEngine(
        config, sources={"kb": DictSource(ITEMS)}, forecaster=NullForecaster(), max_sessions=1
    ) as engine:
        for sid in ("s1", "s2", "s1", "s2", "s1"):
            await engine.handle(session_id=sid, text="hotels", needs=["db:hotels"])
        write_outcomes(path, engine.experiment_outcomes())
        arms = engine.arm_statistics()
    assert {"s1": 3, "s2": 2} == {o.session_id: o.turns for o in read_outcomes(path)}
    assert 5 == sum(arm.requests for arm in arms.values())


async def test_a_turn_served_again_under_its_request_id_counts_as_first_served() -> None:
    """
    A turn with a request id, taken back and served again under it, stays in the
    counts as it was first served: the arm's requests never go down (Prometheus
    exports them as counters), and the retry's hit (its need warm by then) does not
    replace the first serving's miss.
    """
    config = EngineConfig.from_dict(CONFIG)
    async with PreloadEngine(
        config, sources={"kb": DictSource(ITEMS)}, forecaster=NullForecaster()
    ) as engine:
        sid = _ids_by_arm(engine)["small"]
        await engine.handle(session_id=sid, text="hotels", needs=["db:hotels"], request_id="r1")
        engine.restore(sid, [], start=0)  # a retry of it
        taken_back = engine.arm_statistics()["small"].requests
        again = await engine.handle(
            session_id=sid, text="hotels", needs=["db:hotels"], request_id="r1"
        )
        stats = engine.arm_statistics()["small"]
        outcomes = engine.experiment_outcomes()
    assert (1, 1) == (taken_back, again.hits)
    assert (1, 1, 0) == (stats.requests, stats.misses, stats.hits)
    assert [(sid, 1, 0.0)] == [(o.session_id, o.turns, o.hit_rate) for o in outcomes]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["new", "plain", "retry", "refused"]), min_size=1, max_size=8))
def test_requests_count_once_whatever_is_served_again(steps: list[str]) -> None:
    """
    Whatever the order of new requests (with an id, or without one), retries (the last
    turn taken back and served again under its id) and changes refused (taken back,
    not served again): the engine counts every request once; the arm counts those
    with an id once, as first served, and those without one while their turn stands;
    the session counts once.
    """

    async def main() -> tuple[int, int, int, int]:
        config = EngineConfig.from_dict(CONFIG)
        async with PreloadEngine(
            config, sources={"kb": DictSource(ITEMS)}, forecaster=NullForecaster()
        ) as engine:
            sid = _ids_by_arm(engine)["small"]
            turns: list[str | None] = []  # the request ids of the session's turns
            for i, step in enumerate(steps):
                if step in ("new", "plain"):
                    turns.append(f"r{i}" if step == "new" else None)
                elif turns:
                    engine.restore(sid, [], start=len(turns) - 1)
                    dropped = turns.pop()
                    if step == "refused" or dropped is None:
                        continue  # not served again (a request without an id is new)
                    turns.append(dropped)
                else:
                    continue
                await engine.handle(
                    session_id=sid, text=f"hotels {i}", needs=["db:hotels"], request_id=turns[-1]
                )
            arm = engine.arm_statistics()["small"]
            standing = turns.count(None)  # requests without an id whose turn stands
            return engine.metrics().requests, arm.requests, standing, arm.sessions

    requests, arm_requests, standing, sessions = anyio.run(main)
    with_id = [step for step in steps if step == "new"]
    made = len(with_id) + steps.count("plain")
    assert (made, len(with_id) + standing, int(made > 0)) == (requests, arm_requests, sessions)
