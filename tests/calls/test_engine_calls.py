"""
engine.call and speculative calls, end to end with the real engine, cache, tokenizer
and graph's call forecaster; the call sources and predictors are the public test
doubles of preload.testing.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Any

import anyio
import pytest

from graph import CallForecaster
from graph import _calls_counts as graph_counts
from preload import DictSource, EngineConfig, PreloadEngine, Session, Turn, UnknownToolError
from preload.calls import MAX_CALLS_PER_TURN, ToolCall, call_key, in_session
from preload.engine._calls import LEARN_EVERY_TURNS
from preload.learning import EngineCallPredictor, read_only_tools
from preload.testing import ScriptedCallPredictor, ScriptedCallSource, ScriptedSource

FIND = "Restaurants:Find"
RESERVE = "Restaurants:Reserve"
SAN_JOSE = {"city": "San Jose", "cuisine": "Italian"}


def _engine(
    source: ScriptedCallSource,
    predictor: object = None,
    **calls: Any,
) -> PreloadEngine:
    config = EngineConfig()
    if calls:
        config = config.replace(calls=replace(config.calls, **calls))
    return PreloadEngine(
        config,
        sources={"kb": DictSource({"k": "text"})},
        call_sources=[source],
        call_predictor=predictor,  # type: ignore[arg-type]
    )


def _city_turn(
    t: float,
    text: str,
    state: str,
    city: str,
    system: str,
    *,
    name: str | None = None,
    read_only: bool = True,
) -> Turn:
    """
    A turn whose one call (of ``name``, by default the state's) is for a city.
    """
    call = ToolCall(name=name or state, args={"city": city}, read_only=read_only)
    return Turn(t=t, text=text, state=state, tool_calls=(call,), system=system)


async def test_a_read_only_result_is_shared_and_a_transactional_one_never() -> None:
    """
    Two sessions of a tenant make the same read-only call: the tool runs once. A call
    that is not read-only runs every time and is never cached.
    """
    source = ScriptedCallSource({FIND: True, RESERVE: False})
    async with _engine(source, speculate=False) as engine:
        for session in ("a", "b"):
            await engine.handle(session_id=session, text="italian in san jose")
            assert "Restaurants:Find answered" in await engine.call(session, FIND, SAN_JOSE)
            await engine.call(session, RESERVE, SAN_JOSE)
        stats = engine.call_statistics()
    assert 1 == source.calls[call_key(FIND, SAN_JOSE)]
    assert 2 == source.calls[call_key(RESERVE, SAN_JOSE)]
    assert (4, 2, 1, 1) == (stats.calls, stats.read_only_calls, stats.call_hits, stats.call_misses)


async def test_a_call_retried_under_its_call_id_is_not_run_again() -> None:
    """
    A transactional call retried under its ``call_id`` returns the recorded result
    without running the tool again; a call that failed was not recorded and runs
    again; an id given to another call (another tool, other arguments), or too long,
    is refused. Without an id, a call runs each time.
    """
    source = ScriptedCallSource({FIND: True, RESERVE: False})
    async with _engine(source, speculate=False) as engine:
        await engine.handle(session_id="s", text="book Rintaro")
        first = await engine.call("s", RESERVE, SAN_JOSE, call_id="c1")
        again = await engine.call("s", RESERVE, SAN_JOSE, call_id="c1")
        recorded = engine.repeated_call("s", "c1", RESERVE, SAN_JOSE)
        for other in ((FIND, SAN_JOSE), (RESERVE, {"city": "Napa"})):
            with pytest.raises(ValueError, match="call_id 'c1' was given to another call"):
                await engine.call("s", *other, call_id="c1")
        with pytest.raises(ValueError, match="call_id has 129 characters"):
            await engine.call("s", RESERVE, SAN_JOSE, call_id="c" * 129)
        source.fail[RESERVE] = RuntimeError("the booking desk is down")
        with pytest.raises(RuntimeError):
            await engine.call("s", RESERVE, {"city": "Napa"}, call_id="c2")
        del source.fail[RESERVE]
        await engine.call("s", RESERVE, {"city": "Napa"}, call_id="c2")
        await engine.call("s", RESERVE, SAN_JOSE)
        turn = engine.turns_of("s")[0]
    assert first == again == recorded
    assert 2 == source.calls[call_key(RESERVE, SAN_JOSE)]  # c1 once, and once without an id
    assert ["c1", "c2", None] == [c.get("call_id") for c in turn["tool_calls"]]


async def test_bad_calls_are_refused_naming_the_tool_or_the_argument() -> None:
    """
    A tool no call source knows, and arguments that are not JSON, are clear errors;
    nothing runs.
    """
    source = ScriptedCallSource({FIND: True})
    async with _engine(source) as engine:
        with pytest.raises(UnknownToolError, match=r"no call source knows the tool 'Nope'"):
            await engine.call("s", "Nope", {})
        with pytest.raises(TypeError, match=r"args\['when'\] is datetime"):
            import datetime

            await engine.call("s", FIND, {"when": datetime.datetime.now()})
        with pytest.raises(TypeError, match="session_id must be a str"):
            await engine.call(None, FIND, {})  # type: ignore[arg-type]
    assert [] == source.made


async def test_a_speculated_call_is_a_hit_and_its_explanation_says_why() -> None:
    """
    The predictor forecasts the call when the request arrives; the engine runs it in
    the background, and the agent's call is served from it (the tool ran once).
    A call speculated after the reply shows in the next context's explain().
    """
    source = ScriptedCallSource({FIND: True})
    predictor = ScriptedCallPredictor([(FIND, SAN_JOSE, 0.9)])
    async with _engine(source, predictor) as engine:
        await engine.handle(session_id="s", text="italian food in San Jose")
        await engine.wait_idle()
        assert 1 == source.calls[call_key(FIND, SAN_JOSE)]  # before the agent asked
        await engine.call("s", FIND, SAN_JOSE)
        engine.reply("s", "Here are three.")
        stats = engine.call_statistics()
        assert (1, 1, 1) == (stats.call_hits, stats.speculative, stats.speculative_used)
        assert 1 == source.calls[call_key(FIND, SAN_JOSE)]
        await engine.wait_idle()
        spoken = [c for c in engine.speculations_of("s") if c.moment == "request"]
        assert ["used"] == [c.status for c in spoken]
    predictor = ScriptedCallPredictor([(FIND, {"city": "Oslo"}, 0.9)], moments=frozenset({"reply"}))
    source = ScriptedCallSource({FIND: True})
    async with _engine(source, predictor, moments=("reply", "request")) as engine:
        await engine.handle(session_id="s", text="hi")
        engine.reply("s", "hello")
        await engine.wait_idle()
        ctx = await engine.handle(session_id="s", text="now Oslo")
    assert "call Restaurants:Find(city='Oslo') p=0.90 at the reply [pending; city from script]" in (
        ctx.explain()
    )


async def test_a_call_that_is_not_read_only_is_never_speculated() -> None:
    """
    However sure the predictor is, a tool not declared read-only (or unknown) never
    runs before the agent asks.
    """
    source = ScriptedCallSource({FIND: True, RESERVE: False})
    predictor = ScriptedCallPredictor(
        [(RESERVE, SAN_JOSE, 1.0), ("Unknown:Tool", {}, 1.0), (FIND, SAN_JOSE, 0.5)]
    )
    async with _engine(source, predictor, guesses=3, moments=("reply", "request")) as engine:
        for turn in range(3):
            await engine.handle(session_id="s", text=f"turn {turn}")
            await engine.wait_idle()  # the request's moment
            engine.reply("s", "ok")
            await engine.wait_idle()
        assert [] == [name for name, _ in source.made if name != FIND]
        await engine.call("s", RESERVE, SAN_JOSE)
    assert [FIND, RESERVE] == [name for name, _ in source.made]


async def test_speculation_keeps_to_its_per_turn_and_per_source_budgets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """
    Five likely calls, two a turn: two run and three are counted as skipped by the
    step's budget; with one call at a time per source, the second waits for the first
    to finish, the others counted as held back by the source's limit, which is logged
    once.
    """
    source = ScriptedCallSource({FIND: True}, gate=anyio.Event())
    guesses = [(FIND, {"city": c}, 0.9) for c in ("A", "B", "C", "D", "E")]
    async with _engine(source, ScriptedCallPredictor(guesses), guesses=5, max_per_turn=2) as e:
        await e.handle(session_id="s", text="go")
        await anyio.wait_all_tasks_blocked()
        assert 2 == len(source.made)
        stats = e.call_statistics()
        assert (2, 3, 3, 0) == (
            stats.speculative,
            stats.speculative_skipped,
            stats.speculative_skipped_step,
            stats.speculative_skipped_source,
        )
        assert source.gate is not None
        source.gate.set()
    assert "max_in_flight_per_source" not in caplog.text
    source = ScriptedCallSource({FIND: True}, gate=anyio.Event())
    predictor = ScriptedCallPredictor(guesses)
    async with _engine(source, predictor, guesses=5, max_in_flight_per_source=1) as e:
        await e.handle(session_id="s", text="go")
        await anyio.wait_all_tasks_blocked()
        assert 1 == len(source.made)
        stats = e.call_statistics()
        assert (4, 0, 0) == (
            stats.speculative_skipped_source,
            stats.speculative_skipped_step,
            stats.speculative_skipped_allowance,
        )
        assert source.gate is not None
        source.gate.set()
    told = [r for r in caplog.records if "max_in_flight_per_source (1)" in r.getMessage()]
    assert 1 == len(told)


async def test_speculation_keeps_to_its_allowance_per_read_only_call() -> None:
    """
    A predictor sure of forty calls a turn, at most half a speculative call per
    read-only call: the allowance (two calls' worth for a new engine: one call) runs
    out on the first turn; ten read-only calls of the agent then allow five more, and
    no other.
    """
    source = ScriptedCallSource({FIND: True})
    guesses = [(FIND, {"city": f"c{i}"}, 0.9) for i in range(40)]
    predictor = ScriptedCallPredictor(guesses, moments=frozenset({"request"}))
    config = {"guesses": 40, "max_per_turn": 40, "max_per_call": 0.5}
    async with _engine(source, predictor, **config) as engine:
        await engine.handle(session_id="s", text="go")
        await engine.wait_idle()
        first = engine.call_statistics()
        for i in range(10):
            await engine.call("s", FIND, {"city": f"made {i}"})
        await engine.handle(session_id="s", text="again")
        await engine.wait_idle()
        second = engine.call_statistics()
    assert (1, 39, 39) == (
        first.speculative,
        first.speculative_skipped,
        first.speculative_skipped_allowance,
    )
    assert (6, 10) == (second.speculative, second.read_only_calls)


async def test_the_agents_own_call_never_queues_behind_speculative_ones() -> None:
    """
    One worker for speculative calls, and it is busy with a call that hangs: the
    agent's own call of another tool still runs at once (the speculative limits bound
    speculation only), and it is a miss, not a wait.
    """
    lookup = "Restaurants:Lookup"
    source = ScriptedCallSource({FIND: True, lookup: True}, hang={FIND})
    predictor = ScriptedCallPredictor([(FIND, SAN_JOSE, 0.9)])
    async with _engine(source, predictor, workers=1, max_in_flight_per_source=1) as engine:
        await engine.handle(session_id="s", text="go")
        await anyio.wait_all_tasks_blocked()
        assert [FIND] == [name for name, _ in source.made]  # speculated, hanging
        assert "answered" in await engine.call("s", lookup, {"id": "7"}, deadline_s=5.0)
        stats = engine.call_statistics()
    assert (1, 1) == (stats.call_misses, stats.speculative)


async def test_a_requests_calls_are_speculated_as_it_arrives_not_after_its_context() -> None:
    """
    The request's context waits for a need that loads slowly; its likely call is
    already running meanwhile (the agent decides only once it has the context), and
    the agent's call after the context is a hit.
    """
    gate = anyio.Event()
    calls = ScriptedCallSource({FIND: True})
    config = replace(EngineConfig().calls, moments=("request",))
    engine = PreloadEngine(
        EngineConfig().replace(calls=config),
        sources={"kb": ScriptedSource({"k": "text"}, name="kb", gate=gate)},
        call_sources=[calls],
        call_predictor=ScriptedCallPredictor([(FIND, SAN_JOSE, 0.9)]),
    )
    async with engine, anyio.create_task_group() as tg:
        tg.start_soon(partial(engine.handle, session_id="s", text="italian", needs=["k"]))
        await anyio.wait_all_tasks_blocked()
        assert 1 == calls.calls[call_key(FIND, SAN_JOSE)]  # while the context still waits
        assert 0 == engine.metrics().requests
        gate.set()
        await engine.wait_idle()
        await engine.call("s", FIND, SAN_JOSE)
        assert (1, 1) == (engine.call_statistics().call_hits, engine.metrics().requests)


async def test_a_speculated_call_lost_before_its_use_runs_again() -> None:
    """
    A call speculated at one request and not made leaves the cache before the next
    request guesses it again: it runs again (the first run counts as wasted), and the
    agent's call is a hit.
    """
    source = ScriptedCallSource({FIND: True})
    async with _engine(source, ScriptedCallPredictor([(FIND, SAN_JOSE, 0.9)])) as engine:
        await engine.handle(session_id="s", text="italian?")
        await engine.wait_idle()
        engine.reply("s", "Where?")
        assert engine.cache is not None
        await engine.cache.clear()  # evicted
        await engine.handle(session_id="s", text="San Jose")
        await engine.wait_idle()
        await engine.call("s", FIND, SAN_JOSE)
        stats = engine.call_statistics()
    assert 2 == source.calls[call_key(FIND, SAN_JOSE)]
    assert (2, 1, 1) == (stats.speculative, stats.speculative_wasted, stats.call_hits)


async def test_a_failing_speculative_call_costs_the_request_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """
    A tool that fails when speculated: the failure is not cached, it is logged once,
    the source cools down, nothing is forecast to follow the failed calls, and the
    agent's own call still reaches the tool (and gets its error, as it would without
    the engine).
    """
    source = ScriptedCallSource({FIND: True}, fail={FIND: ConnectionError("backend down")})
    predictor = ScriptedCallPredictor([(FIND, {"city": c}, 0.9) for c in "ABCDEFGH"])
    config = {"guesses": 8, "max_per_turn": 8, "max_per_call": math.inf}
    with caplog.at_level(logging.DEBUG, logger="preload.calls"):
        async with _engine(source, predictor, **config) as engine:
            ctx = await engine.handle(session_id="s", text="go")
            await engine.wait_idle()
            assert 0 == ctx.misses
            failures = engine._calls.loader.statistics().failures
            assert source.name in engine._calls.loader.cooling()
            assert {} == engine._calls._ahead  # nothing follows a failed call, nor waits to
            made = len(source.made)
            with pytest.raises(ConnectionError, match="backend down"):
                await engine.call("s", FIND, {"city": "A"})
            assert made + 1 == len(source.made)  # asked directly, despite the cool-down
    assert failures >= 5
    warnings = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name.startswith("preload.calls")
    ]
    assert 1 == len(warnings)
    assert "tool 'Restaurants:Find' failed" in warnings[0].getMessage()


async def test_speculations_never_made_count_as_wasted() -> None:
    """
    A speculated call the session never makes is wasted when the session ends.
    """
    source = ScriptedCallSource({FIND: True})
    async with _engine(source, ScriptedCallPredictor([(FIND, SAN_JOSE, 0.9)])) as engine:
        await engine.handle(session_id="s", text="go")
        await engine.wait_idle()
        engine.end_session("s")
        stats = engine.call_statistics()
    assert (1, 0, 1) == (stats.speculative, stats.speculative_used, stats.speculative_wasted)


async def test_a_wrapped_tool_calls_through_the_engine_for_the_current_session() -> None:
    """
    engine.tool wraps an async function: called after handle in the same task, it
    goes through engine.call (cached, recorded in the turn); outside a session it says
    how to give one.
    """
    runs: list[str] = []

    async def weather(city: str, unit: str = "C") -> dict[str, object]:
        runs.append(city)
        return {"city": city, "unit": unit, "t": 21}

    async with _engine(ScriptedCallSource({})) as engine:
        forecast = engine.tool(weather, read_only=True)
        await engine.handle(session_id="s", text="weather in Oslo?")
        assert '{"city": "Oslo", "unit": "C", "t": 21}' == await forecast("Oslo")
        with in_session("other"):
            await forecast(city="Oslo")
        assert ["Oslo"] == runs  # the same call: one run
        assert weather.__name__ == forecast.__name__

    async def outside() -> None:
        with pytest.raises(LookupError, match="outside a session"):
            await forecast("Oslo")

    async with _engine(ScriptedCallSource({})) as engine:
        forecast = engine.tool(weather, read_only=True)
        await asyncio.create_task(outside(), context=contextvars.Context())  # a fresh task


async def test_a_wrapped_tool_runs_under_the_call_id_of_its_block_once() -> None:
    """
    In ``in_session(id, call_id=...)`` the first wrapped tool called makes its call
    under the id: the block entered again (a framework running the same call again)
    returns the recorded result without running the tool. A wrapped tool that the
    first one calls has no id of its own, and neither has a call after the block.
    """
    runs: list[str] = []

    async def book(hotel: str) -> str:
        runs.append(hotel)
        return f"{await note(hotel)}: booked {hotel}"

    async def log_it(hotel: str) -> str:
        runs.append(f"log {hotel}")
        return "noted"

    async with _engine(ScriptedCallSource({})) as engine:
        note = engine.tool(log_it, read_only=False)
        booking = engine.tool(book, read_only=False)
        await engine.handle(session_id="s", text="book Rintaro")
        for _ in range(2):
            with engine.session("s", call_id="framework-1"):
                assert "noted: booked Rintaro" == await booking("Rintaro")
        with in_session("s"):
            await booking("Rintaro")
        turn = engine.turns_of("s")[0]
    assert ["Rintaro", "log Rintaro"] * 2 == runs
    assert [("log_it", None), ("book", "framework-1"), ("log_it", None), ("book", None)] == [
        (c["name"], c.get("call_id")) for c in turn["tool_calls"]
    ]


class RunContext:
    """
    A framework's run context, as the engine tells it: by its type's name.
    """

    def __init__(self, tool_call_id: str, user: str) -> None:
        self.tool_call_id, self.user = tool_call_id, user


async def test_engine_tool_hands_a_run_context_to_the_tool_and_never_runs_it_ahead() -> None:
    """
    engine.tool on a function that takes a run context: called with one, the tool gets
    it, the call is recorded with the other arguments under the context's id, as not
    read-only (asked read-only, it is not shared: a second call runs again); the engine
    cannot run it without the wrapper.
    """
    runs: list[str] = []

    async def balance(ctx: RunContext, account: str) -> str:
        runs.append(ctx.user)
        return f"{ctx.user} {account}: 10 EUR"

    async with _engine(ScriptedCallSource({})) as engine:
        wrapped = engine.tool(balance, read_only=True)
        await engine.handle(session_id="s", text="my balance?")
        first = await wrapped(RunContext("c1", "u7"), "A1")
        with in_session("s"):
            await wrapped(RunContext("c2", "u8"), account="A1")
        with pytest.raises(RuntimeError, match="takes the framework's run context"):
            await engine.call("s", "balance", {"account": "A1"})
        calls = engine.turns_of("s")[0]["tool_calls"]
    assert "u7 A1: 10 EUR" == first and ["u7", "u8"] == runs
    assert [({"account": "A1"}, False, "c1"), ({"account": "A1"}, False, "c2")] == [
        (c["args"], c["read_only"], c["call_id"]) for c in calls
    ]


_CITIES = ["Lisbon", "Osaka", "Denver", "Hanoi", "Oslo", "Toronto"]
_CUISINES = ["Thai", "Italian", "Greek"]
#: A search in a combination no session of :func:`_end_search_session` made (they say
#: Osaka with Italian only).
_NEW = {"city": "Osaka", "cuisine": "Thai"}


async def _end_search_session(engine: PreloadEngine, i: int, said: str = "") -> None:
    """
    Session ``s<i>``: a search in the ``i``-th city and cuisine (``said`` after it), its
    call, the reply; then it ends, and the engine learns from it.
    """
    sid, args = f"s{i}", {"city": _CITIES[i % 6], "cuisine": _CUISINES[i % 3]}
    await engine.handle(
        session_id=sid,
        text=f"Find {args['cuisine']} restaurants in {args['city']}{said}",
        state=FIND,
    )
    await engine.call(sid, FIND, args)
    engine.reply(sid, f"Found some in {args['city']}{said}.")
    engine.end_session(sid)
    await engine.wait_idle()


async def _search_the_new(engine: PreloadEngine) -> None:
    await engine.handle(session_id="new", text="Find Thai restaurants in Osaka", state=FIND)
    await engine.wait_idle()
    await engine.call("new", FIND, _NEW)


async def test_the_engine_learns_calls_from_sessions_that_end() -> None:
    """
    With graph's call forecaster behind it, the engine learns from finished sessions
    that the search takes the city and the cuisine the user says: a new session's
    search, in a combination no session made, is then speculated and served as a hit.
    """
    source = ScriptedCallSource({FIND: True})
    # a threshold the variants of the training sessions' calls stay under
    async with _engine(source, EngineCallPredictor(), threshold=0.2, guesses=3) as engine:
        for i in range(24):
            await _end_search_session(engine, i)
        before = engine.call_statistics()
        await _search_the_new(engine)
        after = engine.call_statistics()
    assert 1 == source.calls[call_key(FIND, _NEW)]
    assert (before.speculative + 1, before.call_hits + 1) == (after.speculative, after.call_hits)


async def test_the_engine_bounds_the_words_its_call_forecaster_learns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    ``calls.max_vocabulary`` bounds the call forecaster the engine teaches with every
    session that ends, whatever the model it was given says (0: no bound): sessions
    that each say words no other says leave it holding no more at every prune, and it
    still learns what the sessions share.
    """
    from graph import _calls as calls

    monkeypatch.setattr(calls, "PRUNE_EVERY", 10)
    monkeypatch.setattr(graph_counts, "PRUNE_EVERY", 10)
    unbounded = EngineCallPredictor(CallForecaster(max_vocabulary=500))
    async with _engine(ScriptedCallSource({}), unbounded, max_vocabulary=0):
        assert unbounded.model.max_vocabulary is None
    given = EngineCallPredictor(CallForecaster(max_vocabulary=None))
    source = ScriptedCallSource({FIND: True})
    held = []
    async with _engine(source, given, threshold=0.2, guesses=3, max_vocabulary=150) as engine:
        assert 150 == given.model.max_vocabulary
        for i in range(40):
            await _end_search_session(engine, i, f", says Zq{i}x, K{i}w")
            if (i + 1) % 10 == 0:
                held.append(given.model.vocabulary_)
        before = engine.call_statistics()
        await _search_the_new(engine)
        after = engine.call_statistics()
    assert max(held) <= 150  # 165, 227, 287, 347 unbounded
    assert 1 == source.calls[call_key(FIND, _NEW)]  # run ahead, once
    assert before.call_hits + 1 == after.call_hits


class _Learning(EngineCallPredictor):
    """
    The engine's call predictor, noting of each part of a session it learns from how
    many turns are new and how many came before them as their context.
    """

    def __init__(self) -> None:
        super().__init__()
        self.learned: list[tuple[int, int]] = []

    def observe_session(self, turns: Any, user: str | None, *, learned: int = 0) -> None:
        self.learned.append((len(turns) - learned, learned))
        super().observe_session(turns, user, learned=learned)


class _LearningWithoutContext(EngineCallPredictor):
    """
    A call predictor written before ``observe_session`` took ``learned``, noting how
    many turns each part it learns from has.
    """

    def __init__(self) -> None:
        super().__init__()
        self.learned: list[int] = []

    def observe_session(self, turns: Any, user: str | None) -> None:  # type: ignore[override]
        self.learned.append(len(turns))
        super().observe_session(turns, user)


async def _long_session(engine: PreloadEngine) -> None:
    """
    A session that goes on for ``LEARN_EVERY_TURNS + 3`` answered searches, each in a
    city and cuisine of its own.
    """
    cities = ["Lisbon", "Osaka", "Denver", "Hanoi", "Oslo", "Toronto"]
    cuisines = ["Thai", "Italian", "Greek"]
    for i in range(LEARN_EVERY_TURNS + 3):
        args = {"city": cities[i % 6], "cuisine": cuisines[i % 3]}
        text = f"Find {args['cuisine']} restaurants in {args['city']}"
        await engine.handle(session_id="long", text=text, state=FIND)
        await engine.call("long", FIND, args)
        engine.reply("long", f"Found some in {args['city']}.")
        await engine.wait_idle()


async def test_the_engine_learns_calls_from_a_session_that_goes_on() -> None:
    """
    A session that goes on teaches the call predictor every ``LEARN_EVERY_TURNS``
    answered turns: a new session's search, in a combination the long one never
    made, is then speculated and served as a hit. Its end teaches only the turns
    learned from since, with those before them handed over as their context.
    """
    source = ScriptedCallSource({FIND: True})
    predictor = _Learning()
    async with _engine(source, predictor, threshold=0.2, guesses=3) as engine:
        await _long_session(engine)
        assert predictor.learned == [(LEARN_EVERY_TURNS, 0)]
        before = engine.call_statistics()
        new = {"city": "Osaka", "cuisine": "Thai"}  # said Osaka with Italian only
        await engine.handle(session_id="new", text="Find Thai restaurants in Osaka", state=FIND)
        await engine.wait_idle()
        await engine.call("new", FIND, new)
        after = engine.call_statistics()
        engine.end_session("long")
        await engine.wait_idle()
    assert (before.speculative + 1, before.call_hits + 1) == (after.speculative, after.call_hits)
    assert predictor.learned == [(LEARN_EVERY_TURNS, 0), (3, LEARN_EVERY_TURNS)]
    assert 1 == predictor.model.n_sessions_  # the long one, counted once


async def test_the_call_statistics_tell_the_word_counts_the_predictor_learned() -> None:
    """
    After each part of a session it learns from, the engine reads the word counts its
    call predictor holds (``learned_word_counts``): none before, those of the first
    part, more once the session's end taught it the rest. A predictor that does not
    tell them leaves the gauge at 0.
    """
    predictor = _Learning()
    async with _engine(ScriptedCallSource({FIND: True}), predictor) as engine:
        before = engine.call_statistics().learned_word_counts
        await _long_session(engine)
        first = engine.call_statistics().learned_word_counts
        assert first == predictor.model.vocabulary_
        engine.end_session("long")
        await engine.wait_idle()
        after = engine.call_statistics().learned_word_counts
    assert 0 == before < first < after == predictor.word_counts()
    silent = _Silent()
    async with _engine(ScriptedCallSource({FIND: True}), silent) as engine:
        await _long_session(engine)
        assert 0 == engine.call_statistics().learned_word_counts
    assert 1 == silent.parts


class _Silent:
    """
    A call predictor that learns and forecasts as the engine's does, and does not
    tell its word counts; it counts the parts it learned from.
    """

    def __init__(self) -> None:
        self.inner = EngineCallPredictor()
        self.parts = 0

    def predict_calls(self, session_id: str, history: Any, request: Any, *, k: int) -> Any:
        return self.inner.predict_calls(session_id, history, request, k=k)

    def observe_session(self, turns: Any, user: str | None, *, learned: int = 0) -> None:
        self.parts += 1
        self.inner.observe_session(turns, user, learned=learned)


async def test_a_predictor_that_takes_no_context_gets_the_new_turns_alone() -> None:
    """
    A call predictor whose ``observe_session`` takes no ``learned`` learns from a
    session that goes on as before: each part is the new turns alone.
    """
    predictor = _LearningWithoutContext()
    async with _engine(ScriptedCallSource({FIND: True}), predictor) as engine:
        await _long_session(engine)
        engine.end_session("long")
        await engine.wait_idle()
    assert predictor.learned == [LEARN_EVERY_TURNS, 3]


async def test_calls_recorded_as_not_read_only_do_not_stop_a_read_only_tools_forecast() -> None:
    """
    Most sessions' searches come to the engine as recorded calls, not read-only (a
    stored agent history seeding it, say): the engine's own predictor still forecasts
    the search, since its source declares it read-only, and the next session's search
    is served ahead.
    """
    source = ScriptedCallSource({FIND: True})
    cities = ["Lisbon", "Osaka", "Denver", "Hanoi", "Oslo", "Toronto"]
    async with _engine(source, threshold=0.2, guesses=3) as engine:
        for i in range(24):
            sid, args = f"s{i}", {"city": cities[i % 6]}
            await engine.handle(session_id=sid, text=f"Find one in {args['city']}", state=FIND)
            if i % 4:
                assert engine.record_call(sid, FIND, args, f"found one in {args['city']}")
            else:
                await engine.call(sid, FIND, args)
            engine.reply(sid, f"Found one in {args['city']}.")
            engine.end_session(sid)
            await engine.wait_idle()
        before = engine.call_statistics()
        await engine.handle(session_id="new", text="Find one in Osaka", state=FIND)
        await engine.wait_idle()
        await engine.call("new", FIND, {"city": "Osaka"})
        after = engine.call_statistics()
    assert (before.call_hits + 1) == after.call_hits


class _Accounts(ScriptedCallSource):
    """
    A user lookup whose result is the user's id (made from the e-mail address), and
    an account call by that id.
    """

    def __init__(self) -> None:
        super().__init__({"Users:Find": True, "Users:Get": True})

    async def call(self, name: str, args: Mapping[str, Any]) -> str:
        answer = await super().call(name, args)
        if name == "Users:Find":
            return str(args["email"]).split("@")[0].replace(".", "_")
        return answer


async def test_a_value_an_earlier_calls_result_gave_is_speculated() -> None:
    """
    The engine records each call's result in its turn, and the call forecaster learns
    from ended sessions that the account call takes the id the lookup returned: in a
    new session, that id, which no text says, is run ahead and served as a hit.
    """
    source = _Accounts()
    async with _engine(source, EngineCallPredictor(), threshold=0.2, guesses=3) as engine:
        for i in range(30):
            sid, email = f"s{i}", f"user.{i:04d}@mail.com"
            await engine.handle(session_id=sid, text=f"my email is {email}", state="Auth")
            await engine.call(sid, "Users:Find", {"email": email})
            engine.reply(sid, "Found you.")
            await engine.handle(session_id=sid, text="check my account", state="Account")
            await engine.call(sid, "Users:Get", {"user_id": f"user_{i:04d}"})
            engine.reply(sid, "Here it is.")
            engine.end_session(sid)
            await engine.wait_idle()
        await engine.handle(session_id="new", text="my email is zed.9999@mail.com", state="Auth")
        await engine.call("new", "Users:Find", {"email": "zed.9999@mail.com"})
        engine.reply("new", "Found you.")
        before = engine.call_statistics()
        await engine.handle(session_id="new", text="check my account", state="Account")
        await engine.wait_idle()
        await engine.call("new", "Users:Get", {"user_id": "zed_9999"})
        after = engine.call_statistics()
        [speculated] = [c for c in engine.speculations_of("new") if c.name == "Users:Get"]
    assert 1 == source.calls[call_key("Users:Get", {"user_id": "zed_9999"})]
    assert before.call_hits + 1 == after.call_hits
    assert "result" == speculated.evidence["user_id"]


async def _sign_ins(engine: PreloadEngine) -> None:
    """
    Thirty sessions that look the user up by the e-mail said and open the account by
    the id the lookup returned, in one turn, learned from as they end.
    """
    for i in range(30):
        sid, email = f"s{i}", f"user.{i:04d}@mail.com"
        await engine.handle(session_id=sid, text=f"my email is {email}", state="Auth")
        await engine.call(sid, "Users:Find", {"email": email})
        await engine.call(sid, "Users:Get", {"user_id": f"user_{i:04d}"})
        engine.reply(sid, "Here is your account.")
        engine.end_session(sid)
        await engine.wait_idle()


async def test_a_call_run_ahead_that_returned_is_followed_before_the_agent_makes_it() -> None:
    """
    The lookup, run ahead as the request arrives (the e-mail is said), returns before
    the agent asks for it: the account call with the id it returned runs at once, as
    if the agent had made the lookup, with the lookup's probability times its own.
    The agent's two calls are then hits, and each tool ran once.
    """
    source = _Accounts()
    async with _engine(source, EngineCallPredictor(), threshold=0.2, guesses=3) as engine:
        await _sign_ins(engine)
        await engine.handle(session_id="new", text="my email is zed.9999@mail.com", state="Auth")
        await engine.wait_idle()
        ran = dict(source.calls)
        ahead = {c.name: c for c in engine.speculations_of("new")}
        before = engine.call_statistics()
        await engine.call("new", "Users:Find", {"email": "zed.9999@mail.com"})
        await engine.call("new", "Users:Get", {"user_id": "zed_9999"})
        after = engine.call_statistics()
    find = call_key("Users:Find", {"email": "zed.9999@mail.com"})
    get = call_key("Users:Get", {"user_id": "zed_9999"})
    assert (1, 1) == (ran[find], ran[get])  # before the agent made either
    assert (1, 1) == (source.calls[find], source.calls[get])
    lookup, account = ahead["Users:Find"], ahead["Users:Get"]
    assert ("request", "call") == (lookup.moment, account.moment)
    assert account.p <= lookup.p and "result" == account.evidence["user_id"]
    assert (2, 2) == (
        after.call_hits - before.call_hits,
        after.speculative_used - before.speculative_used,
    )


async def test_a_call_run_ahead_is_followed_even_before_its_requests_turn_is_recorded() -> None:
    """
    The request's context waits on a slow source; the lookup run ahead as it arrived
    returns meanwhile, before the request's turn is recorded: the account call that
    follows it runs all the same, from the request as it was asked.
    """
    gate = anyio.Event()
    ran_account = anyio.Event()

    class Tracked(_Accounts):
        async def call(self, name: str, args: Mapping[str, Any]) -> str:
            answer = await super().call(name, args)
            if name == "Users:Get" and args.get("user_id") == "zed_9999":
                ran_account.set()
            return answer

    source = Tracked()
    engine = PreloadEngine(
        replace(EngineConfig(), calls=replace(EngineConfig().calls, threshold=0.2, guesses=3)),
        sources={"kb": ScriptedSource({"doc": "text"}, gate=gate)},
        call_sources=[source],
        call_predictor=EngineCallPredictor(),
    )
    async with engine, anyio.create_task_group() as tg:
        await _sign_ins(engine)
        tg.start_soon(
            partial(
                engine.handle,
                session_id="new",
                text="my email is zed.9999@mail.com",
                state="Auth",
                needs=["doc"],
            )
        )
        with anyio.fail_after(10):
            await ran_account.wait()  # the request still waits for its context
        assert not engine._sessions["new"].turns
        gate.set()
    assert 1 == source.calls[call_key("Users:Get", {"user_id": "zed_9999"})]


async def test_after_a_call_the_next_one_is_run_with_what_it_returned() -> None:
    """
    The agent looks the user up and opens the account in one turn, by the id the
    lookup returned. Learning from ended sessions, the call forecaster learns that the
    account call follows the lookup: in a new session, once the lookup returns, the
    account call with that id (which no text says) runs before the agent asks for it,
    is served as a hit, and is counted and explained as run after a call.
    """
    source = _Accounts()
    async with _engine(source, EngineCallPredictor(), threshold=0.2, guesses=3) as engine:
        await _sign_ins(engine)
        await engine.handle(session_id="new", text="sign me in", state="Auth")
        await engine.call("new", "Users:Find", {"email": "zed.9999@mail.com"})
        await engine.wait_idle()
        ran = source.calls[call_key("Users:Get", {"user_id": "zed_9999"})]
        before = engine.call_statistics()
        await engine.call("new", "Users:Get", {"user_id": "zed_9999"})
        after = engine.call_statistics()
        [speculated] = [c for c in engine.speculations_of("new") if c.name == "Users:Get"]
    assert 1 == ran  # before the agent asked
    assert 1 == source.calls[call_key("Users:Get", {"user_id": "zed_9999"})]
    assert (before.call_hits + 1, before.used_after_call + 1) == (
        after.call_hits,
        after.used_after_call,
    )
    assert ("call", "result") == (speculated.moment, speculated.evidence["user_id"])
    assert "after a call [used" in speculated.describe()


async def test_each_call_of_the_agent_starts_the_speculation_budget_afresh() -> None:
    """
    With ``max_per_turn = 1``, the request's guess runs, and after the agent's call
    the next guess runs too (a step of the agent has its own budget); a call recorded
    once the turn was answered starts no forecast.
    """
    other = {"city": "Fresno", "cuisine": "Thai"}
    source = ScriptedCallSource({FIND: True})
    predictor = ScriptedCallPredictor(
        [(FIND, SAN_JOSE, 0.9), (FIND, other, 0.8)], moments=frozenset({"request", "call"})
    )
    async with _engine(source, predictor, max_per_turn=1) as engine:
        await engine.handle(session_id="s", text="italian in san jose")
        await engine.wait_idle()
        assert (
            1 == source.calls[call_key(FIND, SAN_JOSE)] and 0 == source.calls[call_key(FIND, other)]
        )
        await engine.call("s", FIND, SAN_JOSE)
        await engine.wait_idle()
        assert 1 == source.calls[call_key(FIND, other)]
        engine.reply("s", "Here they are.")
        await engine.wait_idle()  # the forecast after the reply
        asked = len(predictor.asked)
        assert engine.record_call("s", "Elsewhere", {}, "made without the engine")
        await engine.wait_idle()
        assert asked == len(predictor.asked)
        moments = [c.moment for c in engine.speculations_of("s")]
    assert ["request", "call"] == moments


async def test_a_forecast_after_a_call_the_reply_overtook_is_not_made() -> None:
    """
    The forecast after a call reads the turn in the background: when the reply came
    first (the agent answered at once), the turn's next calls are not forecast.
    """
    source = ScriptedCallSource({FIND: True})
    predictor = ScriptedCallPredictor([(FIND, SAN_JOSE, 0.9)], moments=frozenset({"call"}))
    async with _engine(source, predictor, moments=("call",)) as engine:
        await engine.handle(session_id="s", text="italian in san jose")
        await engine.call("s", FIND, {"city": "Oslo"})
        engine.reply("s", "Here they are.")  # before the forecast's task ran
        await engine.wait_idle()
        answered = len(predictor.asked)
        await engine.handle(session_id="s", text="and in san jose?")
        await engine.call("s", FIND, {"city": "Oslo"})
        await engine.wait_idle()
    assert 0 == answered < len(predictor.asked)  # asked once the turn was not answered
    assert 1 == source.calls[call_key(FIND, SAN_JOSE)]


@pytest.mark.parametrize("moments", [("reply", "request"), ("call",)])
async def test_the_forecast_after_a_call_runs_only_when_configured(
    moments: tuple[str, ...],
) -> None:
    """
    Without ``call`` among ``calls.moments`` the predictor is never asked after a call;
    with it alone, only then, and with the calls made so far (their results too).
    """
    source = ScriptedCallSource({FIND: True})
    predictor = ScriptedCallPredictor([(FIND, SAN_JOSE, 0.9)])
    seen: list[Any] = []
    ask = predictor.predict_calls

    def spy(session_id: str, history: Any, request: Any, *, k: int) -> Any:
        seen.append(None if request is None else request.get("tool_calls"))
        return ask(session_id, history, request, k=k)

    predictor.predict_calls = spy  # type: ignore[method-assign]
    async with _engine(source, predictor, moments=moments) as engine:
        await engine.handle(session_id="s", text="italian in san jose")
        await engine.call("s", FIND, SAN_JOSE)
        await engine.wait_idle()
        engine.reply("s", "Here they are.")
        await engine.wait_idle()
    after_calls = [made for made in seen if made]
    if "call" in moments:
        assert 1 == len(seen) == len(after_calls)
        [[made]] = after_calls
        assert (FIND, SAN_JOSE) == (made["name"], made["args"])
        assert "Restaurants:Find answered" in made["result"]
    else:
        assert [] == after_calls and 2 == len(seen)


async def test_a_search_query_the_request_gives_whole_is_speculated() -> None:
    """
    An agent that hands the user's question to its search tool as written: the call
    forecaster learns it from ended sessions, and a new question is searched for
    the moment it arrives, its call then a hit with the request as its evidence.
    """
    search = "Help:Search"
    source = ScriptedCallSource({search: True})
    topics = ["refund", "parcel", "invoice", "coupon", "warranty", "password"]
    async with _engine(source, EngineCallPredictor(), threshold=0.2, guesses=3) as engine:
        for i in range(30):
            sid, text = f"s{i}", f"How long does my {topics[i % 6]} take, case {i}?"
            await engine.handle(session_id=sid, text=text, state="Ask")
            await engine.call(sid, search, {"query": text})
            engine.reply(sid, "Here is what I found.")
            engine.end_session(sid)
            await engine.wait_idle()
        question = "Why was my card declined twice today?"
        before = engine.call_statistics()
        await engine.handle(session_id="new", text=question, state="Ask")
        await engine.wait_idle()
        await engine.call("new", search, {"query": question})
        after = engine.call_statistics()
        [speculated] = engine.speculations_of("new")
    assert 1 == source.calls[call_key(search, {"query": question})]
    assert before.call_hits + 1 == after.call_hits
    assert "request" == speculated.evidence["query"]


async def test_a_call_joins_the_history_of_its_turn() -> None:
    """
    The call and its result are recorded on the turn, so the call forecaster sees
    them, and the history a later request's window holds has the call with its
    result between the request and the reply.
    """
    source = ScriptedCallSource({FIND: True})
    predictor = ScriptedCallPredictor([])
    async with _engine(source, predictor) as engine:
        await engine.handle(session_id="s", text="italian please")
        result = await engine.call("s", FIND, SAN_JOSE)
        engine.reply("s", "Found one.")
        later = await engine.handle(session_id="s", text="book it")
        engine.end_session("s")
        await engine.wait_idle()
    history = next(item.text for item in later.items if item.key == "history")
    line = f'[{FIND}({{"city": "San Jose", "cuisine": "Italian"}}) -> {result}]'
    assert f"User: italian please\nAssistant: {line}\nFound one." == history
    [[turn, _]] = predictor.observed
    assert [ToolCall(name=FIND, args=SAN_JOSE, read_only=True).as_mapping()] == [
        {k: v for k, v in c.items() if k != "result"} for c in turn["tool_calls"]
    ]
    assert "Restaurants:Find answered" in turn["tool_calls"][0]["result"]


async def test_an_exchange_long_for_its_calls_result_is_prepared_off_the_loop(
    prepare_threads: list[int],
) -> None:
    """
    A short request and reply whose call returned a long result make a long exchange:
    the request right after it prepares it in a worker thread, not on the loop.
    """
    loop_thread = threading.get_ident()

    async def seats(flight: str) -> str:
        return f"{flight}: " + "window seat free, " * 60

    async with _engine(ScriptedCallSource({})) as engine:
        wrapped = engine.tool(seats, read_only=True)
        await engine.handle(session_id="s", text="seats on ZX1?")
        with engine.session("s"):
            await wrapped("ZX1")
        engine.reply("s", "Yes.")
        after = await engine.handle(session_id="s", text="book one")  # the learner has not run
    history = next(item.text for item in after.items if item.key == "history")
    assert '[seats({"flight": "ZX1"}) -> ZX1: window seat free' in history
    assert prepare_threads and loop_thread not in prepare_threads


async def test_a_call_made_without_the_engine_is_recorded_once_and_never_run() -> None:
    """
    ``record_call`` puts a call of a tool no source knows in the turn (not read-only)
    and so in the next window's history; under an id the turn holds it is not
    recorded again, and another call under that id is refused. ``knows_tool`` tells
    a tool a source knows (``engine.call`` runs and records it).
    """
    source = ScriptedCallSource({FIND: True})
    async with _engine(source, ScriptedCallPredictor([])) as engine:
        assert not engine.record_call("s", "lookup", {"email": "a@b.c"}, "user_42")  # no turn
        await engine.handle(session_id="s", text="my mail is a@b.c")
        assert engine.record_call("s", "lookup", {"email": "a@b.c"}, "user_42", call_id="c1")
        assert not engine.record_call("s", "lookup", {"email": "a@b.c"}, "user_42", call_id="c1")
        with pytest.raises(ValueError, match="call_id 'c1' was given to another call"):
            engine.record_call("s", "lookup", {"email": "x@y.z"}, "user_7", call_id="c1")
        assert (True, False) == (engine.knows_tool(FIND), engine.knows_tool("lookup"))
        with pytest.raises(TypeError, match="result must be a str"):
            engine.record_call("s", "lookup", {}, 42)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            engine.record_call("s", "lookup", {"when": object()}, "x")
        engine.reply("s", "Found you.")
        later = await engine.handle(session_id="s", text="my orders?")
        [turn, _] = engine.turns_of("s")
    assert [
        {
            "name": "lookup",
            "args": {"email": "a@b.c"},
            "read_only": False,
            "call_id": "c1",
            "result": "user_42",
        }
    ] == turn["tool_calls"]
    history = next(item.text for item in later.items if item.key == "history")
    assert '[lookup({"email": "a@b.c"}) -> user_42]' in history


async def test_a_turn_records_at_most_max_calls_per_turn_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """
    A turn keeps its first ``MAX_CALLS_PER_TURN`` calls: later ones still run and
    return their result, but are not recorded; a warning says so once.
    """
    source = ScriptedCallSource({FIND: True})
    async with _engine(source) as engine:
        await engine.handle(session_id="s", text="every city")
        with caplog.at_level(logging.WARNING, logger="preload.engine"):
            results = [
                await engine.call("s", FIND, {"city": f"c{i}"}, call_id=f"id{i}")
                for i in range(MAX_CALLS_PER_TURN + 3)
            ]
            assert not engine.record_call("s", "lookup", {}, "x")
        (turn,) = engine.turns_of("s")
    assert MAX_CALLS_PER_TURN + 3 == len(set(results))
    assert [f"id{i}" for i in range(MAX_CALLS_PER_TURN)] == [
        c["call_id"] for c in turn["tool_calls"]
    ]
    (record,) = caplog.records
    assert f"more than {MAX_CALLS_PER_TURN} tool calls" in record.getMessage()


async def test_a_call_recorded_after_the_reply_joins_the_history() -> None:
    """
    A call recorded once its turn's exchange is in the history (after the reply) is
    in the next window's history, between the request and the reply.
    """
    async with _engine(ScriptedCallSource({})) as engine:
        await engine.handle(session_id="s", text="rate Supa Modo")
        engine.reply("s", "Done.")
        await engine.wait_idle()  # the exchange is in the history
        engine.record_call("s", "rate", {"movie": "Supa Modo"}, "4.5 stars")
        later = await engine.handle(session_id="s", text="and another?")
    history = next(item.text for item in later.items if item.key == "history")
    line = '[rate({"movie": "Supa Modo"}) -> 4.5 stars]'
    assert f"User: rate Supa Modo\nAssistant: {line}\nDone." == history


async def test_a_turn_restored_with_other_calls_is_recorded_again() -> None:
    """
    The history rebuilds a recorded exchange whose turn comes back with the same
    request and reply but other calls (another replica's version of it).
    """
    async with _engine(ScriptedCallSource({})) as engine:
        await engine.handle(session_id="s", text="my mail is a@b.c")
        engine.record_call("s", "lookup", {"email": "a@b.c"}, "user_42")
        engine.reply("s", "Found you.")
        await engine.wait_idle()  # the exchange is recorded
        [turn] = engine.turns_of("s")
        turn["tool_calls"][0]["result"] = "user_43"
        engine.restore("s", [turn])
        later = await engine.handle(session_id="s", text="my orders?")
    history = next(item.text for item in later.items if item.key == "history")
    assert "user_43" in history and "user_42" not in history


def test_sessions_read_their_tool_calls() -> None:
    """
    A Turn's tool_calls survive as_mapping.
    """
    turn = Turn(t=0, text="x", tool_calls=(ToolCall(name=FIND, args=SAN_JOSE, read_only=True),))
    session = Session(session_id="s", turns=(turn,))
    assert [{"name": FIND, "args": SAN_JOSE, "read_only": True}] == (
        session.as_mapping()["turns"][0]["tool_calls"]
    )


async def test_a_learned_transactional_call_is_never_run_ahead() -> None:
    """
    A predictor trained on sessions where every search is followed by a reservation
    with the same arguments would guess the reservation; the engine never runs it
    before the agent does.
    """
    train = [
        Session(
            session_id=f"t{i}",
            turns=(
                _city_turn(0, f"Find Thai in {city}", FIND, city, f"Found one in {city}. Book it?"),
                _city_turn(20, "Yes, book it", RESERVE, city, "Booked.", read_only=False),
            ),
        )
        for i, city in enumerate(["Lisbon", "Osaka", "Denver", "Hanoi"] * 10)
    ]
    source = ScriptedCallSource({FIND: True, RESERVE: False})
    predictor = EngineCallPredictor().fit(train)
    first = train[0].turns[0].as_mapping()
    unfiltered = predictor.model.predict([first], None, k=3, read_only=False)
    assert RESERVE in [g.name for g in unfiltered]  # what a careless engine would run
    async with _engine(source, predictor, threshold=0.0) as engine:
        for turn in train[0].turns:
            await engine.handle(session_id="s", text=turn.text, state=turn.state)
            await engine.wait_idle()
            for call in turn.tool_calls:
                await engine.call("s", call.name, call.args)
            assert turn.system is not None
            engine.reply("s", turn.system)
            await engine.wait_idle()
    assert 1 == sum(name == RESERVE for name, _ in source.made)  # the agent's own
    assert engine.call_statistics().call_hits == 1  # the search was speculated


async def test_a_predictor_told_the_tenants_tools_forecasts_those() -> None:
    """
    A model fitted on two tenants' logs, with room for one name a turn, forecasts the
    tool most searches used, which this tenant lacks: nothing is run ahead. Told the
    tenant's read-only tools, it forecasts the one the tenant has, and the agent's call
    is served ahead.
    """
    cafes = "Cafes:Find"
    train = [
        Session(
            session_id=f"t{i}",
            turns=(
                _city_turn(
                    0,
                    f"Find one in {city}",
                    FIND,
                    city,
                    "Found one.",
                    name=cafes if i % 3 == 0 else FIND,
                ),
            ),
        )
        for i, city in enumerate(["Lisbon", "Osaka", "Denver", "Hanoi"] * 15)
    ]
    hits = []
    for told in (False, True):
        source = ScriptedCallSource({cafes: True})
        predictor = EngineCallPredictor(
            CallForecaster(max_names=1), tools=read_only_tools([source]) if told else None
        ).fit(train)
        async with _engine(source, predictor, threshold=0.0) as engine:
            await engine.handle(session_id="s", text="Find one in Osaka", state=FIND)
            await engine.wait_idle()
            await engine.call("s", cafes, {"city": "Osaka"})
            hits.append(engine.call_statistics().call_hits)
    assert [0, 1] == hits


async def test_a_hanging_speculative_call_holds_up_nothing() -> None:
    """
    A tool that never answers when run ahead: the next requests are served, and
    closing the engine cancels the call instead of waiting for it.
    """
    source = ScriptedCallSource({FIND: True}, hang={FIND})
    async with _engine(source, ScriptedCallPredictor([(FIND, SAN_JOSE, 0.9)])) as engine:
        await engine.handle(session_id="s", text="go")
        await anyio.wait_all_tasks_blocked()
        assert 1 == len(source.made)  # running, and hanging
        for turn in range(3):
            ctx = await engine.handle(session_id="s", text=f"again {turn}")
            assert 0 == ctx.misses
        assert 1 == engine._calls.loader.in_flight
    assert 1 == len(source.made)


@pytest.mark.parametrize("moments", [("request",), ("reply",), ("reply", "request")])
async def test_speculation_runs_at_the_configured_moments(moments: tuple[str, ...]) -> None:
    """
    calls.moments chooses when the engine asks; each used speculation is counted by
    the moment it was run at.
    """
    source = ScriptedCallSource({FIND: True})
    predictor = ScriptedCallPredictor([(FIND, SAN_JOSE, 0.9)])
    async with _engine(source, predictor, moments=moments) as engine:
        await engine.handle(session_id="s", text="hi")
        await engine.wait_idle()
        engine.reply("s", "hello")
        await engine.wait_idle()
        await engine.handle(session_id="s", text="italian in san jose")
        await engine.call("s", FIND, SAN_JOSE)
        stats = engine.call_statistics()
    asked = {"request" if request else "reply" for _, _, request in predictor.asked}
    assert set(moments) == asked
    first = "request" if "request" in moments else "reply"
    assert (1, first == "reply", first == "request") == (
        stats.speculative_used,
        stats.used_after_reply,
        stats.used_at_request,
    )


@pytest.mark.parametrize(("reply_threshold", "run"), [(0.2, 0), (0.05, 1)])
async def test_a_guess_after_the_reply_needs_the_reply_threshold(
    reply_threshold: float, run: int
) -> None:
    """
    After the reply a guess runs only from calls.reply_threshold on (as the request
    arrives, from calls.threshold on): a guess of p 0.1 runs at the request, but after
    the reply only under a lower bar.
    """
    source = ScriptedCallSource({FIND: True})
    predictor = ScriptedCallPredictor([(FIND, SAN_JOSE, 0.1)], moments=frozenset({"reply"}))
    async with _engine(source, predictor, reply_threshold=reply_threshold) as engine:
        await engine.handle(session_id="s", text="hi")
        engine.reply("s", "hello")
        await engine.wait_idle()
        assert run == engine.call_statistics().speculative
    anytime = ScriptedCallPredictor([(FIND, SAN_JOSE, 0.1)], moments=frozenset({"request"}))
    async with _engine(ScriptedCallSource({FIND: True}), anytime) as engine:
        await engine.handle(session_id="s", text="hi")
        await engine.wait_idle()
        assert 1 == engine.call_statistics().speculative


async def test_nothing_is_forecast_for_speculation_when_no_call_could_run() -> None:
    """
    An engine with documents only (no call source, no tool) never asks its call
    predictor on a request or after a reply: no guess could run. A tool registered
    later makes the next request ask.
    """
    predictor = ScriptedCallPredictor([(FIND, SAN_JOSE, 0.9)])
    config = EngineConfig()
    config = config.replace(calls=replace(config.calls, moments=("reply", "request")))
    engine = PreloadEngine(
        config,
        sources={"kb": DictSource({"k": "text"})},
        call_predictor=predictor,  # type: ignore[arg-type]
    )
    async with engine:
        await engine.handle(session_id="s", text="italian in san jose")
        engine.reply("s", "here are some")
        await engine.wait_idle()
        assert [] == predictor.asked

        async def find(city: str, cuisine: str) -> str:
            return f"{cuisine} in {city}"

        engine.tool(find, name=FIND, read_only=True)
        await engine.handle(session_id="s", text="and in oslo?")
        await engine.wait_idle()
        assert [("s", 1, True)] == predictor.asked
