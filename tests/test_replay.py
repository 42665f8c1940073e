"""
Replay on the virtual clock: deterministic, and the oracle is the ceiling.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from preload import ConfigError, EngineConfig, InputError, LatencyConfig, Session, ToolCall, Turn
from preload.learning import OracleCallPredictor
from preload.replay import VirtualClockLoop, fit_strategies, generate_demo, replay
from preload.replay._replay import arrivals
from preload.replay._simulated import SimulatedCallSource
from preload.replay._strategies import strategy_config
from preload.replay._workers import _portable, _revive


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


def test_the_report_does_not_depend_on_the_hash_seed(tmp_path: Path) -> None:
    """
    ``preload simulate`` in two processes with different string hashing gives the same
    report (wall time aside): figures compared across runs and machines are the
    sessions', not the interpreter's.
    """
    import os

    reports = []
    for seed in ("1", "2"):
        out = tmp_path / f"report-{seed}.json"
        subprocess.run(
            [sys.executable, "-m", "preload", "simulate", "--limit", "40", "--strategies",
             "lru,engine", "--processes", "1", "--json", str(out)],
            env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, check=True,
        )  # fmt: skip
        report = json.loads(out.read_text())
        reports.append(_without_wall_times(report))
    assert reports[0] == reports[1]
    assert reports[0]["strategies"]["engine"]["call_hit_rate"] > 0


def _without_wall_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_wall_times(v) for k, v in value.items() if "wall" not in k}
    if isinstance(value, list):
        return [_without_wall_times(v) for v in value]
    return value


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


def test_speculated_calls_cut_the_wait_of_tool_calls() -> None:
    """
    On the demo's tool calls the oracle's speculation serves every read-only call from
    a result warm or in flight, and waits less than the reactive cache, which runs
    nothing ahead; the engine, learning online, speculates within its budget (the
    engine's own tests show that a call not declared read-only never runs ahead).
    """
    demo = generate_demo(60, seed=2)
    strategies = ["lru", "engine", "oracle"]
    report = replay(
        demo.sessions, demo.knowledge, EngineConfig(), strategies=strategies, processes=1
    )
    s = report.strategies
    read_only = sum(c.read_only for x in demo.sessions for t in x.turns for c in t.tool_calls)
    assert read_only == s["lru"].read_only_calls == s["oracle"].read_only_calls > 0
    assert 1.0 == s["oracle"].call_hit_rate
    assert s["oracle"].call_wait_p95_ms is not None and s["lru"].call_wait_p95_ms is not None
    assert s["oracle"].call_wait_p95_ms < s["lru"].call_wait_p95_ms
    assert 0.0 == s["lru"].speculative_calls
    engine = s["engine"]
    assert engine.speculative_calls is not None and 0 < engine.speculative_calls <= 2
    assert s["oracle"].turn_wait_p95_ms < s["lru"].turn_wait_p95_ms
    # the slowest tenth: the reactive cache's calls ran when asked; the oracle's joined
    # the calls it ran ahead (it runs every one)
    lru, oracle = s["lru"], s["oracle"]
    assert (lru.call_tail_ran, 0) == (math.ceil(read_only / 10), lru.call_tail_joined)
    assert oracle.call_tail_joined > 0 == oracle.call_tail_ran


def test_the_request_oracle_runs_every_call_as_its_request_arrives() -> None:
    """
    ``request_oracle`` knows every call but starts it only as its request arrives: it
    serves every read-only call from a result warm or in flight, none of them run after
    the reply, and the calls the agent's model decides on faster than the backend
    answers still wait, so it waits longer than the oracle, which starts them after
    the reply.
    """
    demo = generate_demo(60, seed=2)
    strategies = ["oracle", "request_oracle"]
    report = replay(
        demo.sessions, demo.knowledge, EngineConfig(), strategies=strategies, processes=1
    )
    oracle, at_request = report.strategies["oracle"], report.strategies["request_oracle"]
    assert 1.0 == at_request.call_hit_rate
    assert at_request.used_at_request > 0 == at_request.used_after_reply
    assert oracle.used_after_reply > 0
    assert oracle.call_wait_p95_ms is not None and at_request.call_wait_p95_ms is not None
    assert oracle.call_wait_p95_ms < at_request.call_wait_p95_ms


def test_the_said_oracle_runs_after_the_reply_only_the_calls_whose_values_were_said() -> None:
    """
    ``said_oracle`` forecasts after the reply only a call whose every value was said
    (whole words, any case) or given to an earlier call, a date or a boolean excused;
    a value first said in the request waits for it, and so does a value said only
    inside a longer word.
    """
    book = ToolCall(name="Restaurants:Book", args={"table": "A7"})
    find = ToolCall(
        name="Restaurants:Find", args={"city": "San Jose", "cuisine": "Italian"}, read_only=True
    )
    again = ToolCall(
        name="Restaurants:Find", args={"city": "San Jose", "cuisine": "Thai"}, read_only=True
    )
    table = {"table": "A7", "date": "2019-03-14", "outdoor": True}
    seats = ToolCall(name="Restaurants:Seats", args=table, read_only=True)
    inside = ToolCall(name="Restaurants:Find", args={"cuisine": "Ital"}, read_only=True)
    turns = (
        Turn(
            t=0.0, text="Italian food in san jose?", system="Lupa is Italian.", tool_calls=(book,)
        ),
        Turn(t=1.0, text="yes", system="Anything else?", tool_calls=(find,)),
        Turn(t=2.0, text="Thai instead", tool_calls=(again, seats, inside)),
    )
    sessions = {"s": Session(session_id="s", turns=turns)}
    oracle = OracleCallPredictor(sessions, said_first=True)
    history = [t.as_mapping() for t in turns]

    def names(upto: int, request: bool) -> list[dict[str, Any]]:
        req = history[upto] if request else None
        return [dict(g.args) for g in oracle.predict_calls("s", history[:upto], req, k=5)]

    assert [find.args] == names(1, request=False)
    assert [seats.args] == names(2, request=False)  # A7 given to a call, never said
    assert [again.args, seats.args, inside.args] == names(2, request=True)
    everything = OracleCallPredictor(sessions)
    assert 3 == len(everything.predict_calls("s", history[:2], None, k=5))


def test_the_said_oracle_counts_what_an_earlier_call_returned_as_said() -> None:
    """
    A value only an earlier call's result holds (the user id a lookup returned) was
    said to the agent: the call taking it may start after the reply.
    """
    lookup = ToolCall(name="Users:Find", args={"email": "a@b.c"}, read_only=True, result="u_17")
    account = ToolCall(name="Users:Get", args={"user_id": "u_17"}, read_only=True)
    turns = (
        Turn(t=0.0, text="my email is a@b.c", system="Found you.", tool_calls=(lookup,)),
        Turn(t=1.0, text="my account please", tool_calls=(account,)),
    )
    oracle = OracleCallPredictor({"s": Session(session_id="s", turns=turns)}, said_first=True)
    history = [t.as_mapping() for t in turns]
    assert [account.args] == [
        dict(g.args) for g in oracle.predict_calls("s", history[:1], None, k=5)
    ]
    history[0]["tool_calls"][0].pop("result")
    fresh = OracleCallPredictor({"s": Session(session_id="s", turns=turns)}, said_first=True)
    assert [] == fresh.predict_calls("s", history[:1], None, k=5)


def test_the_said_oracle_waits_between_the_oracle_and_the_request_oracle() -> None:
    """
    On the demo, ``said_oracle`` serves every read-only call ahead, some of them run
    after the reply (fewer than the oracle's), and its calls wait no longer than the
    request oracle's.
    """
    demo = generate_demo(60, seed=2)
    strategies = ["oracle", "request_oracle", "said_oracle"]
    report = replay(
        demo.sessions, demo.knowledge, EngineConfig(), strategies=strategies, processes=1
    )
    s = report.strategies
    said, oracle, at_request = s["said_oracle"], s["oracle"], s["request_oracle"]
    assert 1.0 == said.call_hit_rate
    assert 0 < said.used_after_reply < oracle.used_after_reply
    assert said.call_wait_p95_ms is not None and at_request.call_wait_p95_ms is not None
    assert said.call_wait_p95_ms <= at_request.call_wait_p95_ms


def _each_call(
    sessions: Sequence[Session], change: Callable[[ToolCall], ToolCall]
) -> list[Session]:
    """
    The sessions with ``change`` made to each of their tool calls.
    """
    return [
        replace(
            session,
            turns=tuple(
                replace(turn, tool_calls=tuple(map(change, turn.tool_calls)))
                for turn in session.turns
            ),
        )
        for session in sessions
    ]


def _sign_ins(n: int, seed: int) -> list[Session]:
    """
    Sessions whose first turn looks the user up by e-mail and opens the account with
    the id the lookup returned (no text says it), as an agent's loop does: two calls
    in one turn; the log records their results.
    """
    rng = random.Random(seed)
    sessions = []
    for i in range(n):
        user = f"{rng.choice(['ann', 'bo', 'cy', 'di'])}_{rng.randrange(10_000):04d}"
        email = f"{user.replace('_', '.')}@mail.com"
        calls = (
            ToolCall(name="Find", args={"email": email}, read_only=True, result=user),
            ToolCall(name="Account", args={"user_id": user}, read_only=True, result="{}"),
        )
        turns = (
            Turn(t=0.0, text=f"my email is {email}", state="auth", tool_calls=calls, system="ok"),
            Turn(t=20.0, text="thanks, bye", state="bye", system="bye"),
        )
        sessions.append(Session(session_id=f"s{seed}-{i}", turns=turns))
    return sessions


def test_the_agent_deciding_before_each_call_gives_the_next_calls_forecast_time() -> None:
    """
    With ``replay.agent_decides = "each_call"`` the agent's model decides again after
    the lookup's result: the account call with the id it returned, run after the lookup
    (the agent's, or the one run ahead as the request arrived), is ready or in flight
    when the agent asks for it, every time. Deciding once for the turn, the agent asks
    for it the moment the lookup returns: some account calls have not started, and the
    calls wait longer.
    """
    reports = {}
    for decides in ("each_call", "once"):
        config = EngineConfig()
        config = config.replace(replay=replace(config.replay, agent_decides=decides))
        report = replay(
            _sign_ins(40, 1), {}, config, strategies=["engine"], train=_sign_ins(80, 0), processes=1
        )
        reports[decides] = report.strategies["engine"]
    each, once = reports["each_call"], reports["once"]
    assert 40 == each.used_at_request == once.used_at_request  # every lookup: the e-mail said
    assert (40, 1.0) == (each.used_after_call, each.call_hit_rate)
    assert once.call_hit_rate is not None and once.call_hit_rate < 1.0
    assert once.call_tail_ran > 0 == each.call_tail_ran
    assert each.call_wait_p95_ms is not None and once.call_wait_p95_ms is not None
    assert each.call_wait_p95_ms < once.call_wait_p95_ms


def test_a_bad_agent_decides_is_refused() -> None:
    """
    ``replay.agent_decides`` is one of two words; another is refused, naming the key.
    """
    with pytest.raises(ConfigError, match="replay.agent_decides"):
        replace(EngineConfig().replay, agent_decides="sometimes")


def test_calls_with_typed_arguments_are_forecast_with_their_types() -> None:
    """
    Arguments that are JSON numbers, booleans and lists (not strings, as in the
    shipped data) keep their types: the oracle runs every read-only call ahead with the
    very arguments the agent then gives (a ``2`` made ``"2"`` would be another call), and
    the engine, whose forecaster learned the types, serves as many ahead as without
    them, give or take a forecast near the threshold (the extra arguments have the same
    value in every call). Typed values made strings would serve none.
    """
    demo = generate_demo(60, seed=2)

    def typed(call: ToolCall) -> ToolCall:
        extra = {"party": 2, "outdoor": True, "tags": ["quiet", "open"], "rating": 4.5}
        return replace(call, args={**call.args, **extra})

    sessions = _each_call(demo.sessions, typed)
    strategies = ["engine", "request_oracle"]
    report = replay(sessions, demo.knowledge, EngineConfig(), strategies=strategies, processes=1)
    plain = replay(demo.sessions, demo.knowledge, EngineConfig(), strategies=["engine"])
    engine, at_request = report.strategies["engine"], report.strategies["request_oracle"]
    assert 1.0 == at_request.call_hit_rate
    plain_hit = plain.strategies["engine"].call_hit_rate
    assert plain_hit is not None and engine.call_hit_rate is not None
    assert plain_hit > 0.1
    assert abs(engine.call_hit_rate - plain_hit) <= 0.01


def test_arguments_inside_an_object_argument_are_forecast_one_by_one() -> None:
    """
    A tool whose arguments sit inside an object (``{"query": {"city": ...}}``) is
    served ahead as often as with the same arguments at the top: each value inside is
    forecast on its own and the object put back together, rather than the whole
    object being one value that must have been seen before.
    """
    demo = generate_demo(60, seed=2)

    def inside(call: ToolCall) -> ToolCall:
        return replace(call, args={"query": dict(call.args)} if call.args else {})

    sessions = _each_call(demo.sessions, inside)
    report = replay(sessions, demo.knowledge, EngineConfig(), strategies=["engine"])
    plain = replay(demo.sessions, demo.knowledge, EngineConfig(), strategies=["engine"])
    engine = report.strategies["engine"]
    assert engine.call_hit_rate is not None and engine.call_hit_rate > 0.1
    assert plain.strategies["engine"].call_hit_rate == engine.call_hit_rate


def test_a_calls_latency_is_its_own_whatever_else_was_called() -> None:
    """
    The simulated backend draws a call's latency for the call itself: the same call
    takes the same time after other calls were made (a strategy's speculation does
    not shift the latencies of the agent's calls), different calls differ, and the
    replay's seed still decides them.
    """
    demo = generate_demo(10, seed=2)
    latency = EngineConfig().replay.latency_for("db")

    def backend(seed: int) -> SimulatedCallSource:
        return SimulatedCallSource(demo.sessions, latency, random.Random(seed))

    shown = json.dumps({"city": "San Jose"}, sort_keys=True)
    first = backend(3)
    alone = first.delay("Find", shown)
    second = backend(3)
    others = [second.delay("Find", json.dumps({"city": f"c{i}"})) for i in range(20)]
    assert second.delay("Find", shown) == alone
    assert len(set(others)) == len(others)
    assert backend(4).delay("Find", shown) != alone


async def test_the_backend_answers_a_call_with_the_result_its_log_recorded() -> None:
    """
    A call the sessions recorded a result for is answered with that result (so that
    the engine's forecasts read it, as they would a real tool's); another, with a text
    that says nothing a forecast could take for a value.
    """
    looked_up = ToolCall(name="Users:Find", args={"email": "a@b.c"}, read_only=True, result="u_1")
    turn = Turn(t=0, text="my email is a@b.c", tool_calls=(looked_up,))
    latency = LatencyConfig(distribution="constant", median_ms=1)
    backend = SimulatedCallSource(
        [Session(session_id="s", turns=(turn,))], latency, random.Random(0)
    )
    assert "u_1" == await backend.call("Users:Find", {"email": "a@b.c"})
    assert "(answered)" == await backend.call("Users:Find", {"email": "x@y.z"})


def test_a_backend_of_bounded_capacity_makes_calls_wait_their_turn() -> None:
    """
    With a capacity of one, three calls of one second made at once end one after the
    other, at 1, 2 and 3 s (virtual time, the replay's clock); without a bound, all at
    1 s.
    """
    sessions = [Session(session_id="s", turns=(Turn(t=0, text="x"),))]
    latency = LatencyConfig(distribution="constant", median_ms=1000)

    async def ends(capacity: int) -> list[float]:
        backend = SimulatedCallSource(sessions, latency, random.Random(0), capacity=capacity)
        start = anyio.current_time()
        ended: list[float] = []

        async def call(i: int) -> None:
            await backend.call("Find", {"i": i})
            ended.append(anyio.current_time() - start)

        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(call, i)
        return sorted(ended)

    def on_virtual_clock(capacity: int) -> list[float]:
        return anyio.run(ends, capacity, backend_options={"loop_factory": VirtualClockLoop})

    assert [1.0, 2.0, 3.0] == on_virtual_clock(1)
    assert [1.0, 1.0, 1.0] == on_virtual_clock(0)


def test_a_busy_backend_has_the_engine_run_fewer_calls_ahead() -> None:
    """
    The demo's calls on a backend that serves two calls at once: the engine's limit of
    calls run ahead falls as the backend slows (``calls.source_slowdown``, the default),
    so it holds guesses back as slow and runs fewer ahead than with a limit that does
    not fall, which holds none back as slow.
    """
    demo = generate_demo(200, seed=2)
    config = EngineConfig()

    def run(slowdown: float) -> Any:
        busy = config.replace(
            replay=replace(config.replay, call_capacity=2),
            calls=replace(config.calls, source_slowdown=slowdown),
        )
        report = replay(demo.sessions, demo.knowledge, busy, strategies=["engine"],
                        processes=1)  # fmt: skip
        return report.strategies["engine"]

    falling, fixed = run(1.5), run(0.0)
    assert falling.speculative_skipped_slow > 0 == fixed.speculative_skipped_slow
    assert falling.speculative_calls < fixed.speculative_calls


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
        "call_hit_rate",
        "call_wait_p50_ms",
        "call_wait_p95_ms",
        "speculative_calls",
        "speculative_wasted",
        "turn_wait_p95_ms",
        "prefix_reused_tokens",
        "input_cost_per_turn",
        "needs_in_window_recall",
        "deferred",
        "rejected",
        "preloads_lost",
        "ttl_skipped",
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


def _run(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """
    Run Python ``code`` in a fresh interpreter under a timeout; a hang fails the test.
    """
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_clock_lands_on_timers_at_any_time() -> None:
    """
    Far past 1.7e7 s, where a nanosecond added to the clock is lost to rounding, the
    clock still lands exactly on each timer (it used to spin at 100 % CPU); a sleep of
    math.inf alone is a deadlock reported as such, not a clock run to infinity.
    """
    code = """
import math, anyio
from preload.replay import VirtualClockLoop

async def main():
    for t in (1e8, 1e8 + 1e-9, 4e9, 1e15, 1e300):
        await anyio.sleep_until(t)
        print(anyio.current_time() == t)
    await anyio.sleep(1e-9)
    with anyio.move_on_after(5):
        await anyio.sleep(math.inf)
    print(anyio.current_time() == 1e300)

anyio.run(main, backend_options={"loop_factory": VirtualClockLoop})

async def forever():
    await anyio.sleep(math.inf)

try:
    anyio.run(forever, backend_options={"loop_factory": VirtualClockLoop})
except RuntimeError as exc:
    print(exc)
"""
    done = _run(code)
    assert "" == done.stderr
    assert ["True"] * 6 + [
        "virtual clock: every task waits and no timer is pending (deadlock)"
    ] == done.stdout.splitlines()


def test_a_tiny_arrival_rate_replays_past_1e8_virtual_seconds(tmp_path: Path) -> None:
    """
    ``[replay] arrival_rate = 1e-7`` spreads 20 demo sessions over 2.3e8 virtual
    seconds; the replay finishes (it used to hang) with finite figures.
    """
    config = tmp_path / "tiny.toml"
    config.write_text("[replay]\narrival_rate = 1e-7\n")
    out = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "preload",
            "simulate",
            "--config",
            str(config),
            "--limit",
            "20",
            "--strategies",
            "lru,engine",
            "--processes",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    report = json.loads(out.read_text())
    assert report["virtual_s"] > 1e8
    assert all(math.isfinite(r["p99_ms"]) for r in report["strategies"].values())


@pytest.mark.parametrize("rate", [1e-300, 5e-324])
def test_arrivals_beyond_the_clock_are_refused(rate: float) -> None:
    """
    A rate so small that sessions would start after 1e12 s (or at infinity) is
    refused, naming the key, before anything replays.
    """
    demo = generate_demo(20, seed=1)
    config = EngineConfig.from_dict({"replay": {"arrival_rate": rate}})
    with pytest.raises(ConfigError, match=r"replay\.arrival_rate.*raise it"):
        replay(demo.sessions, demo.knowledge, config, strategies=["lru"], processes=1)
    assert all(math.isfinite(t) for t in arrivals(300, 0.5, 0))


def test_a_strategy_named_twice_is_refused() -> None:
    """
    Each strategy replays once; naming one twice is an error, not a second run.
    """
    demo = generate_demo(3, seed=1)
    with pytest.raises(ConfigError, match="names a strategy twice"):
        replay(demo.sessions, demo.knowledge, strategies=["lru", "lru"], processes=1)


def test_each_turn_wait_is_kept_out_of_the_json() -> None:
    """
    The report keeps every turn's wait for the charts, the same in a worker process as
    here, and the JSON report stays DESIGN.md's contract.
    """
    demo = generate_demo(15, seed=2)
    here = replay(demo.sessions, demo.knowledge, strategies=["cold", "lru"], processes=1)
    forked = replay(demo.sessions, demo.knowledge, strategies=["cold", "lru"], processes=2)
    assert here.strategies == forked.strategies
    cold = here.strategies["cold"]
    assert cold.turns == len(cold.waits_ms) == here.turns
    assert cold.p50_ms == pytest.approx(float(np.percentile(cold.waits_ms, 50)), abs=1e-3)
    assert "waits_ms" not in json.dumps(here.to_json())


def test_an_error_in_a_worker_arrives_as_itself() -> None:
    """
    preload's errors build their message from several arguments; one raised in a
    worker process reaches the caller with its type, message and attributes.
    """
    error = _revive(_portable(ConfigError("replay.seed", "is odd", "c.toml")))
    assert isinstance(error, ConfigError)
    assert ("replay.seed", "c.toml") == (error.key, error.source)
    assert "c.toml: config key 'replay.seed': is odd" == str(error)


@pytest.mark.parametrize("processes", [1, 2])
def test_training_on_texts_it_cannot_learn_from_is_an_input_error(processes: int) -> None:
    """
    The engine names the states of turns without one from their texts; training
    sessions too small for that end in an InputError (it was a ValueError), from a
    worker process as from this one.
    """
    demo = generate_demo(2, seed=1)
    stateless = [
        replace(s, turns=tuple(replace(t, state=None) for t in s.turns)) for s in demo.sessions
    ]
    with pytest.raises(InputError, match="strategy 'engine' cannot learn to name states"):
        replay(
            demo.sessions,
            demo.knowledge,
            strategies=["engine", "lru"],
            train=stateless,
            processes=processes,
        )


def test_the_oracle_speculates_at_the_earliest_moment_whatever_the_engines_are() -> None:
    """
    The engine speculates at the configured moments (all three by default); the oracle,
    the ceiling, also after the reply whatever they are; strategies that forecast
    nothing never.
    """
    config = EngineConfig()
    assert ("reply", "request", "call") == strategy_config("engine", config).calls.moments
    config = config.replace(calls=replace(config.calls, moments=("request",)))
    assert ("request",) == strategy_config("engine", config).calls.moments
    assert ("reply", "request") == strategy_config("oracle", config).calls.moments
    assert ("reply", "request") == strategy_config("global_oracle", config).calls.moments
    assert ("request",) == strategy_config("request_oracle", config).calls.moments
    assert not strategy_config("lru", config).calls.speculate
    off = config.replace(calls=replace(config.calls, speculate=False))
    assert not strategy_config("oracle", off).calls.speculate


def test_strategies_fitted_once_replay_as_if_fitted_each_time() -> None:
    """
    Fitted once (fit_strategies), the learning strategies give every replay the
    figures a replay that fits its own gives, again and again: each replay learns
    online into its own copy, never into the fitted state.
    """
    train = generate_demo(30, seed=5).sessions
    demo = generate_demo(15, seed=6)
    strategies = ["markov1", "engine"]
    config = EngineConfig.from_dict({"replay": {"tenants": 2}})
    fitted = fit_strategies(train, config, strategies=strategies)
    assert {"markov1", "engine"} == set(fitted.forecasters)
    own = replay(
        demo.sessions, demo.knowledge, config, strategies=strategies, train=train, processes=1
    )
    once = [
        replay(
            demo.sessions, demo.knowledge, config, strategies=strategies, fitted=fitted, processes=1
        )
        for _ in range(2)
    ]
    for report in once:
        assert own.strategies == report.strategies
    assert own.strategies["engine"].top1 is not None
