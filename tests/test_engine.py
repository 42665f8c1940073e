"""
The engine end to end with real parts: tokenizer, aiocache, task groups.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import threading
import weakref
from typing import Any

import anyio
import pytest

from preload import (
    DictSource,
    EngineConfig,
    EngineForecaster,
    EngineStateError,
    InputTooLargeError,
    LimitsConfig,
    PreloadEngine,
    RequestsInFlight,
    RetrievalConfig,
    Session,
    TiktokenCounter,
    Turn,
)
from preload.compression import MultiLevelCompressor
from preload.engine._history import HISTORY_OFFLOAD_CHARS, INLINE_HISTORY_CHARS
from preload.engine._learner import Learner
from preload.history import CompressedConversation, PreparedExchange
from preload.learning import MarkovForecaster


def flights_sessions(n: int) -> list[Session]:
    """
    Sessions that always search flights, then book one.
    """
    turns = (
        Turn(t=0, state="Flights:Search", needs=("service:Flights", "intent:Flights:Search")),
        Turn(t=20, state="Flights:Book", needs=("service:Flights", "intent:Flights:Book")),
    )
    return [Session(session_id=f"s{i}", turns=turns) for i in range(n)]


async def test_handle_returns_context_within_budget(
    knowledge: dict[str, str], config: EngineConfig
) -> None:
    """
    A request gets its needs, the system prompt and the request, within budget.
    """
    async with PreloadEngine(config, sources={"kb": DictSource(knowledge)}) as engine:
        ctx = await engine.handle(
            session_id="s1",
            text="find me a flight",
            state="Flights:Search",
            needs=["service:Flights", "intent:Flights:Search", "nowhere:to-be-found"],
        )
    assert ctx.tokens + ctx.reserved <= config.budget.total_tokens
    keys = [item.key for item in ctx.items]
    assert {"system", "request", "service:Flights", "intent:Flights:Search"} == set(keys)
    assert ("nowhere:to-be-found",) == ctx.missing
    assert "find me a flight" in ctx.render()
    assert "needed this turn" in ctx.explain()
    assert 1 == engine.metrics().missing


async def test_background_forecast_preloads_the_next_turns_needs(
    knowledge: dict[str, str], config: EngineConfig
) -> None:
    """
    After a trained engine handles a search, it preloads the booking intent, so the
    next request hits it without a load on the request path.
    """
    forecaster = MarkovForecaster(1)
    forecaster.fit(flights_sessions(5))
    source = DictSource(knowledge)
    async with PreloadEngine(config, sources={"kb": source}, forecaster=forecaster) as engine:
        first = await engine.handle(
            session_id="a",
            text="flights to Oslo",
            state="Flights:Search",
            needs=["service:Flights", "intent:Flights:Search"],
        )
        await engine.wait_idle()
        forecast = engine.forecast_of("a")
        second = await engine.handle(
            session_id="a",
            text="book it",
            state="Flights:Book",
            needs=["service:Flights", "intent:Flights:Book"],
        )
        snapshot = engine.metrics()
    assert (0, 2) == (first.hits, first.misses)
    assert forecast is not None and "Flights:Book" == forecast.states[0][0]
    assert (2, 0) == (second.hits, second.misses)
    assert (1, 1) == (snapshot.preloads, snapshot.preloads_used)


async def test_closing_leaves_no_task_and_refuses_requests(
    knowledge: dict[str, str], config: EngineConfig
) -> None:
    """
    Leaving the engine cancels its background work; no task is left behind.
    """
    before = set(asyncio.all_tasks())
    engine = PreloadEngine(config, sources={"kb": DictSource(knowledge)})
    async with engine:
        await engine.handle(session_id="s", text="hi", needs=["service:Flights"])
    assert before == set(asyncio.all_tasks())
    with pytest.raises(EngineStateError, match="not open"):
        await engine.handle(session_id="s", text="again")
    with pytest.raises(EngineStateError, match="more than once"):
        async with engine:
            pass


async def test_unused_preloads_count_as_wasted(
    knowledge: dict[str, str], config: EngineConfig
) -> None:
    """
    A preload its session never uses counts as wasted when the session ends.
    """
    forecaster = MarkovForecaster(1)
    forecaster.fit(flights_sessions(3))
    async with PreloadEngine(
        config, sources={"kb": DictSource(knowledge)}, forecaster=forecaster
    ) as engine:
        await engine.handle(
            session_id="a", text="x", state="Flights:Search", needs=["service:Flights"]
        )
        await engine.wait_idle()
        engine.end_session("a")
        snapshot = engine.metrics()
    assert snapshot.preloads >= 1
    assert snapshot.preloads == snapshot.wasted


async def test_history_holds_each_exchange_once(
    knowledge: dict[str, str], config: EngineConfig
) -> None:
    """
    Earlier requests and replies reach the next context's history, each exactly once
    (the learner records each exchange in a worker thread while the user reads; an
    exchange it is still preparing when the next request comes is left out of that
    window, never recorded twice).
    """
    async with PreloadEngine(config, sources={"kb": DictSource(knowledge)}) as engine:
        await engine.handle(session_id="h", text="I want to fly to Osaka on May 3")
        engine.reply("h", "Which airport do you leave from?")
        await engine.wait_idle()  # the user reads the reply
        await engine.handle(session_id="h", text="From Lisbon, please")
        await engine.wait_idle()
        ctx = await engine.handle(session_id="h", text="Book the cheapest one")
    history = [item.text for item in ctx.items if item.category == "user_history"]
    assert 1 == len(history)
    assert 1 == history[0].count("fly to Osaka on May 3")
    assert 1 == history[0].count("Which airport do you leave from?")
    assert 1 == history[0].count("From Lisbon")


async def test_requests_without_state_are_named_from_their_text(
    knowledge: dict[str, str], config: EngineConfig
) -> None:
    """
    Trained on logs where some turns lack labels, the engine names the state of an
    unlabelled request from its words and forecasts from it.
    """

    def session(i: int, labelled: bool) -> Session:
        return Session(
            session_id=f"t{i}",
            turns=(
                Turn(
                    t=0,
                    text="search flights to Oslo",
                    needs=("service:Flights",),
                    state="Flights:Search" if labelled else None,
                ),
                Turn(
                    t=20,
                    text="book that flight now",
                    needs=("intent:Flights:Book",),
                    state="Flights:Book" if labelled else None,
                ),
            ),
        )

    forecaster = EngineForecaster(2)
    forecaster.fit([session(i, labelled=i % 2 == 0) for i in range(12)])
    assert "Flights:Search" == forecaster.encode("search cheap flights to Oslo")
    async with PreloadEngine(
        config, sources={"kb": DictSource(knowledge)}, forecaster=forecaster
    ) as engine:
        await engine.handle(session_id="u", text="search flights to Oslo please")
        await engine.wait_idle()
        forecast = engine.forecast_of("u")
    assert forecast is not None and "Flights:Book" == forecast.states[0][0]


async def test_an_async_summarizer_writes_the_summary_level(config: EngineConfig) -> None:
    """
    A user's async summarizer (an LLM call in production) replaces the summary level
    of what the preloader loads; the other levels stay computed.
    """
    calls: list[int] = []

    async def summarize(text: str, max_tokens: int) -> str:
        calls.append(max_tokens)
        return "Flights: search and book between cities."

    long_text = " ".join(
        f"Flight {n} leaves Lisbon at {n % 24:02d}:15 for Osaka and costs {100 + n} EUR."
        for n in range(40)
    )
    engine = PreloadEngine(
        config,
        sources={"kb": DictSource({"service:Flights": long_text})},
        compressor=MultiLevelCompressor(TiktokenCounter(), summarizer=summarize),
    )
    async with engine:
        await engine.handle(session_id="s", text="flights", needs=["service:Flights"])
        item = await engine.preloader.peek("service:Flights")
    assert item is not None and 1 == len(calls)
    assert "Flights: search and book between cities." == item.level("summary").text
    assert "full" == item.levels[0].name and len(item.levels) > 2


async def test_turns_the_learner_never_saw_reach_the_snapshot(
    knowledge: dict[str, str], config: EngineConfig
) -> None:
    """
    Requests that never yield to the loop fill the learner's bounded stream; the turns
    that did not fit are dropped, never waited for, and counted in the metrics.
    """
    no_search = config.replace(retrieval=RetrievalConfig(search=False))  # it would yield
    async with PreloadEngine(  # and so would recording the last request in a worker thread
        no_search,
        sources={"kb": DictSource(knowledge)},
        forecaster=MarkovForecaster(1),
        offload=False,
    ) as engine:
        for i in range(5000):
            await engine.handle(session_id=f"s{i % 50}", text="hi", state="Flights:Search")
        snapshot = engine.metrics()
    assert (5000, 5000 - 4096) == (snapshot.requests, snapshot.learner_drops)
    assert snapshot.learner_drops == engine.statistics().learner_drops


async def test_each_component_reports_its_own_statistics(
    knowledge: dict[str, str], config: EngineConfig
) -> None:
    """
    The engine counts requests, the preloader loads, the cache entries; the metrics
    snapshot is the three composed.
    """
    async with PreloadEngine(config, sources={"kb": DictSource(knowledge)}) as engine:
        for _ in range(2):
            await engine.handle(session_id="s", text="fly", needs=["service:Flights"])
        own, loads = engine.statistics(), engine.preloader.statistics()
        assert engine.cache is not None
        entries = engine.cache.statistics().entries
        snapshot = engine.metrics()
    assert (2, 1, 1) == (own.requests, own.hits, own.misses)
    assert (1, 0) == (loads.loads, loads.preloads)
    assert (2, 1, 1, 1) == (snapshot.requests, snapshot.hits, snapshot.loads, entries)
    assert entries == snapshot.cache_entries


async def test_wrong_arguments_are_refused_with_their_name(
    knowledge: dict[str, str], config: EngineConfig
) -> None:
    """
    One key passed as ``needs`` is not split into characters; ids and texts must be
    strings; nothing is recorded for a refused request.
    """
    async with PreloadEngine(config, sources={"kb": DictSource(knowledge)}) as engine:
        with pytest.raises(TypeError, match=r"needs must be a sequence of keys, not str"):
            await engine.handle(session_id="s", text="hi", needs="service:Media_2")
        with pytest.raises(TypeError, match="session_id must be a str, not NoneType"):
            await engine.handle(session_id=None, text="hi")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="session_id must be a str, not int"):
            await engine.handle(session_id=42, text="hi")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="session_id must not be empty"):
            await engine.handle(session_id="", text="hi")
        with pytest.raises(TypeError, match="text must be a str, not NoneType"):
            await engine.handle(session_id="s", text=None)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"needs\[1\] must be a string key, not int"):
            await engine.handle(session_id="s", text="hi", needs=["a", 1])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="text must be a str, not bytes"):
            engine.reply("s", b"bytes")  # type: ignore[arg-type]
        assert 0 == engine.metrics().requests


async def test_requests_and_replies_above_the_limits(knowledge: dict[str, str]) -> None:
    """
    A request text or a needs list above ``[limits]`` is refused naming the limit; a
    long reply is cut to its limit and counted.
    """
    config = EngineConfig.from_dict(
        {"limits": {"max_request_chars": 100, "max_reply_chars": 50, "max_needs": 2}}
    )
    async with PreloadEngine(config, sources={"kb": DictSource(knowledge)}) as engine:
        with pytest.raises(InputTooLargeError, match=r"limits.max_request_chars 100\b"):
            await engine.handle(session_id="s", text="x" * 101)
        with pytest.raises(InputTooLargeError, match="limits.max_needs 2"):
            await engine.handle(session_id="s", text="hi", needs=["a", "b", "c"])
        await engine.handle(session_id="s", text="x" * 100)
        engine.reply("s", "y" * 80)
        await engine.wait_idle()
        history = engine._sessions["s"].history
        snapshot = engine.metrics()
    assert (1, 1) == (snapshot.requests, snapshot.replies_truncated)
    assert history is not None and "y" * 50 in history.get_context(1000)
    assert "y" * 51 not in history.get_context(1000)


async def test_explain_names_missing_needs_and_verbatim_history(
    knowledge: dict[str, str], config: EngineConfig
) -> None:
    """
    ``explain()`` lists needs no source has; a history shown whole is labelled full;
    the response's share is not presented as the response buffer's maximum.
    """
    async with PreloadEngine(config, sources={"kb": DictSource(knowledge)}) as engine:
        await engine.handle(session_id="s", text="hello")
        engine.reply("s", "hi there")
        await engine.wait_idle()
        ctx = await engine.handle(session_id="s", text="more", needs=["no:such:item"])
    explained = ctx.explain()
    assert ("no:such:item",) == ctx.missing
    assert "  miss no:such:item: needed, but no source has it" in explained
    history = next(item for item in ctx.items if item.key == "history")
    assert "full" == history.level
    assert "kept for the response" not in explained
    assert f"the response keeps {ctx.reserved}" in explained


def _long_text(chars: int) -> str:
    """
    Distinct sentences with names and numbers: plenty of facts for the history.
    """
    names = ("Alice", "Bob", "Chen", "Dana", "Emeka", "Fatima", "Goran", "Hana")
    out = (
        f"{names[i % 8]} wants {i % 9 + 1} tickets for the museum at {i % 12 + 1}:{i % 50 + 10} "
        f"on day {i} for {i * 7 % 997} dollars."
        for i in range(chars // 40 + 1)
    )
    return " ".join(out)[:chars]


async def test_a_one_megabyte_message_does_not_hold_up_other_sessions(
    knowledge: dict[str, str],
) -> None:
    """
    While one session sends a 1 MB request and gets a 1 MB reply, requests of other
    sessions on the same event loop keep being served: the long exchange is cut,
    counted and recorded in a worker thread, never on the loop. (The other sessions
    are served by a second engine on the same loop so that the first can be drained;
    the loop is what they share. Bounds are generous: before, the loop stalled for
    seconds; ``simulations.large_message_bench`` prints the figures.)
    """
    big = _long_text(1_000_000)
    config = EngineConfig.from_dict(
        {"limits": {"max_request_chars": 1_000_000, "max_reply_chars": 1_000_000}}
    )
    source = DictSource(knowledge)
    engine = PreloadEngine(config, sources={"kb": source}, forecaster=MarkovForecaster(1))
    other = PreloadEngine(config, sources={"kb": source}, forecaster=MarkovForecaster(1))
    gaps: list[float] = []
    done = anyio.Event()
    async with engine, other:
        await other.handle(session_id="warm", text="hi", needs=["service:Flights"])

        async def others() -> None:
            last = anyio.current_time()
            while not done.is_set():
                await other.handle(session_id="o", text="hello", needs=["service:Flights"])
                await anyio.lowlevel.checkpoint()
                now = anyio.current_time()
                gaps.append(now - last)
                last = now

        async with anyio.create_task_group() as tg:
            tg.start_soon(others)
            await engine.handle(session_id="big", text=big, state="Flights:Search")
            engine.reply("big", big)
            await engine.wait_idle()
            after = await engine.handle(session_id="big", text="and then?")
            done.set()
    gaps.sort()
    assert len(gaps) >= 50
    assert gaps[int(len(gaps) * 0.99)] < 0.1, gaps[-5:]
    assert gaps[-1] < 1.0, gaps[-5:]
    history = next(item for item in after.items if item.key == "history")
    assert "Alice wants" in history.text


def _learning_order(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """
    The learner's events as it starts them ("turn s": session s's turn), into the list
    returned, beside what the test adds; the learner never gives up waiting for the
    requests in flight here.
    """
    monkeypatch.setattr(PreloadEngine, "LEARNER_YIELD_S", 60.0)
    order: list[str] = []
    learn = Learner._learn

    async def spy(self: Learner, kind: str, session_id: str) -> None:
        order.append(f"{kind} {session_id}")
        await learn(self, kind, session_id)

    monkeypatch.setattr(Learner, "_learn", spy)
    return order


async def _answer_while_checkpointing(engine: PreloadEngine, session_id: str) -> None:
    """
    A request and its reply, then every chance for the learner to run.
    """
    await engine.handle(session_id=session_id, text="find me a flight to Denver")
    engine.reply(session_id, "The Zephyr flight to Denver leaves on Friday.")
    for _ in range(50):
        await anyio.lowlevel.checkpoint()


async def test_the_learner_starts_nothing_while_a_request_is_in_flight(
    knowledge: dict[str, str], config: EngineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    While a request is in flight (``in_flight``, as a server wraps its route around
    ``handle``), the learner starts no new work, though it has every chance to run; it
    learns from the turn (answered by then) once the request is done.
    """
    order = _learning_order(monkeypatch)
    async with PreloadEngine(config, sources={"kb": DictSource(knowledge)}) as engine:
        with engine.in_flight():
            await _answer_while_checkpointing(engine, "s")
            order.append("served")
        await engine.wait_idle()
    assert ["served", "turn s"] == order[:2]  # the turn, answered by now


async def test_engines_sharing_their_requests_in_flight_learn_after_any_request(
    knowledge: dict[str, str], config: EngineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Two engines of one process (a server's tenants) that share their requests in
    flight: while a request of the first is in flight, the second's learner starts
    nothing for its own answered turn; it learns once the request is done. Each with
    its own, the second learns at once.
    """
    order = _learning_order(monkeypatch)
    for shared in (RequestsInFlight(), None):
        order.clear()
        a = PreloadEngine(config, sources={"kb": DictSource(knowledge)}, requests_in_flight=shared)
        b = PreloadEngine(config, sources={"kb": DictSource(knowledge)}, requests_in_flight=shared)
        async with a, b:
            with a.in_flight():
                await _answer_while_checkpointing(b, "b")
                order.append("a served")
            await b.wait_idle()
        expected = ["a served", "turn b"] if shared else ["turn b", "a served"]
        assert expected == order[:2]


async def test_a_reply_joins_the_history_read_before_it_came(
    knowledge: dict[str, str], config: EngineConfig
) -> None:
    """
    ``engine.history`` read mid-turn holds the request without an answer; the reply
    that comes after joins it (the history is rebuilt from the turns), in the next
    read and in the next window.
    """
    async with PreloadEngine(config, sources={"kb": DictSource(knowledge)}) as engine:
        await engine.handle(session_id="s", text="find me a flight to Denver")
        assert "User: find me a flight to Denver" == engine.history("s")
        engine.reply("s", "The Zephyr leaves on Friday.")
        await engine.wait_idle()
        read = engine.history("s")
        after = await engine.handle(session_id="s", text="book it")
    expected = "User: find me a flight to Denver\nAssistant: The Zephyr leaves on Friday."
    assert expected == read
    assert expected == next(item.text for item in after.items if item.key == "history")


async def test_a_request_records_the_exchange_the_learner_has_not_yet_off_the_loop(
    knowledge: dict[str, str], config: EngineConfig, prepare_threads: list[int]
) -> None:
    """
    A request that arrives right after a reply (before the learner ran) still finds
    that exchange in its window, and the exchange, longer than a request prepares on
    the loop (``INLINE_HISTORY_CHARS``), was prepared in a worker thread.
    """
    loop_thread = threading.get_ident()
    async with PreloadEngine(config, sources={"kb": DictSource(knowledge)}) as engine:
        await engine.handle(session_id="s", text="find me a flight to Denver")
        reply = "The Zephyr flight to Denver leaves on Friday." + " It has seats." * 40
        assert len(reply) > INLINE_HISTORY_CHARS
        engine.reply("s", reply)
        after = await engine.handle(session_id="s", text="book it")  # the learner has not run
    history = next(item for item in after.items if item.key == "history")
    assert "Zephyr" in history.text
    assert prepare_threads and loop_thread not in prepare_threads


async def test_the_learner_enters_an_exchange_off_the_loop_and_a_request_waits_for_it(
    knowledge: dict[str, str], config: EngineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The learner prepares and enters an answered exchange in its worker thread. A
    request of the session that comes meanwhile waits until it is entered (it never
    reads the history half entered) and finds it in its window. A long exchange is
    entered on the loop, where no request waits for it.
    """
    entered, release = threading.Event(), threading.Event()
    threads: list[bool] = []  # whether each exchange was entered in a worker thread
    add = CompressedConversation.add_prepared

    def held(
        conversation: CompressedConversation, prepared: PreparedExchange, *, score: bool = True
    ) -> None:
        threads.append(threading.current_thread() is not threading.main_thread())
        if threads[-1] and not release.is_set():
            entered.set()
            release.wait()
        add(conversation, prepared, score=score)

    monkeypatch.setattr(CompressedConversation, "add_prepared", held)
    got: dict[str, Any] = {}
    async with PreloadEngine(config, sources={"kb": DictSource(knowledge)}) as engine:
        try:
            await engine.handle(session_id="s", text="find me a flight to Denver")
            engine.reply("s", "The Zephyr flight to Denver leaves on Friday.")
            with anyio.fail_after(30):
                assert await anyio.to_thread.run_sync(entered.wait, 30), "never entered"
                async with anyio.create_task_group() as tg:

                    async def ask() -> None:
                        got["after"] = await engine.handle(session_id="s", text="book it")

                    tg.start_soon(ask)
                    await anyio.wait_all_tasks_blocked()
                    served_before = "after" in got
                    release.set()
        finally:
            release.set()
        await engine.handle(session_id="long", text="a long one")
        engine.reply("long", "Seats are free. " * (HISTORY_OFFLOAD_CHARS // 16 + 1))
        await engine.wait_idle()
    history = next(item for item in got["after"].items if item.key == "history")
    assert not served_before and "Zephyr" in history.text
    assert [True, False] == threads


class _HeldLearner:
    """
    Holds the learner's history thread: preparing an exchange whose request holds
    ``word`` waits (in that worker thread) until :attr:`release` is set;
    :attr:`entered` is set once it waits. ``started`` gets the requests of the
    other exchanges as their preparing begins, ``threads`` whether it was in a worker
    thread.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, word: str) -> None:
        self.word = word
        self.entered = threading.Event()
        self.release = threading.Event()
        self.started: list[str] = []
        self.threads: list[bool] = []  # whether each of those was in a worker thread
        self.on_start: list[anyio.Event] = []
        prepare = CompressedConversation.prepare

        def held(conversation: CompressedConversation, user: str, agent: str = "") -> Any:
            if word in user:
                self.entered.set()
                self.release.wait()
            else:
                self.started.append(user)
                self.threads.append(threading.current_thread() is not threading.main_thread())
                for event in self.on_start:
                    if self.threads[-1]:
                        anyio.from_thread.run_sync(event.set)
                    else:
                        event.set()
            return prepare(conversation, user, agent)

        monkeypatch.setattr(CompressedConversation, "prepare", held)

    async def hold(self, engine: PreloadEngine) -> None:
        """
        Make the learner prepare session ``held``'s exchange, and wait until it is
        stuck in it.
        """
        await engine.handle(session_id="held", text=f"a cabin in {self.word}")
        engine.reply("held", "Two cabins are free.")
        assert await anyio.to_thread.run_sync(self.entered.wait, 30), "the learner never got there"


async def test_a_reply_while_the_learner_looks_for_exchanges_keeps_the_history(
    knowledge: dict[str, str], config: EngineConfig
) -> None:
    """
    The learner looking for an exchange to record while the last request waits for its
    reply takes no lock, so the reply that comes meanwhile joins the history as the
    next exchange: the history is not rebuilt from the turns (it was, a fifth of the
    turns of a long session).
    """
    async with PreloadEngine(config, sources={"kb": DictSource(knowledge)}) as engine:
        await engine.handle(session_id="s", text="a table in Oakland")
        engine.reply("s", "Rintaro has one at 7 pm.")
        await engine.wait_idle()
        await engine.handle(session_id="s", text="book it")
        await engine.wait_idle()
        session = engine._sessions["s"]
        history = session.history
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine._histories.record, session)
            await anyio.lowlevel.checkpoint()  # the learner's look, up to its first wait
            engine.reply("s", "Booked.")
        await engine.wait_idle()
        assert history is not None and session.history is history
        assert "Booked." in engine.history("s") and "Rintaro" in engine.history("s")


async def test_a_turn_restored_while_its_exchange_is_recorded_replaces_it_in_the_history(
    knowledge: dict[str, str], config: EngineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The learner is recording a session's exchange in its worker thread when the
    session's turns are restored with another version of that turn (the store's, after
    a write of this replica was refused): the history is rebuilt from the restored
    turn, and the exchange that was being recorded is not in it.
    """
    learner = _HeldLearner(monkeypatch, "Aspen")
    async with PreloadEngine(config, sources={"kb": DictSource(knowledge)}) as engine:
        try:
            with anyio.fail_after(30):
                await learner.hold(engine)
            engine.restore("held", [{"text": "a cabin in Vail", "system": "One is free."}])
        finally:
            learner.release.set()
        await engine.wait_idle()
        after = await engine.handle(session_id="held", text="book it")
    history = next(item for item in after.items if item.key == "history")
    assert "Vail" in history.text and "Aspen" not in history.text


@pytest.mark.parametrize("extra", [0, INLINE_HISTORY_CHARS])
async def test_a_request_catching_up_never_queues_behind_the_learner(
    knowledge: dict[str, str], config: EngineConfig, monkeypatch: pytest.MonkeyPatch, extra: int
) -> None:
    """
    While the learner's history thread is busy with another session's exchange (held
    here until the end), a request that must record its own session's last exchange
    first prepares it itself and is served: it does not wait for the learner. A short
    exchange is prepared on the loop (cheaper than a thread hop), a longer one
    (``extra`` characters more) in the requests' worker thread.
    """
    learner = _HeldLearner(monkeypatch, "Aspen")
    reply = "The Zephyr flight to Denver leaves on Friday." + " It has seats." * (extra // 14)
    async with PreloadEngine(config, sources={"kb": DictSource(knowledge)}) as engine:
        try:
            await learner.hold(engine)
            await engine.handle(session_id="s", text="find me a flight to Denver")
            engine.reply("s", reply)
            with anyio.fail_after(30):  # a guard: before, this waited for the release
                after = await engine.handle(session_id="s", text="book it")
            held = not learner.release.is_set()
        finally:
            learner.release.set()
    history = next(item for item in after.items if item.key == "history")
    assert "Zephyr" in history.text
    assert held and ["find me a flight to Denver"] == learner.started
    assert [extra > 0] == learner.threads


async def test_a_request_catches_up_while_its_needs_load(
    knowledge: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A request's history catch-up runs while its needs are read: here the need's
    source answers only once the exchange is being prepared (the learner's history
    thread held on another session, so the request's own catch-up is the one), and
    the request gets both the item and the exchange in its window.
    """
    learner = _HeldLearner(monkeypatch, "Aspen")
    preparing = anyio.Event()
    learner.on_start.append(preparing)

    class AfterPreparing:
        name = "slow"

        def __contains__(self, key: object) -> bool:
            return key == "db:trains"

        async def fetch(self, key: str) -> str:
            await preparing.wait()
            return "Trains leave Denver at 9 and 17."

    config = EngineConfig.from_dict({"preloader": {"request_deadline_s": 60.0}})
    sources = {"kb": DictSource(knowledge), "slow": AfterPreparing()}
    async with PreloadEngine(config, sources=sources) as engine:
        try:
            await learner.hold(engine)
            await engine.handle(session_id="s", text="find me a flight to Denver")
            engine.reply("s", "The Zephyr flight to Denver leaves on Friday.")
            with anyio.fail_after(30):  # a guard: before, the need waited for its deadline
                after = await engine.handle(session_id="s", text="or a train?", needs=["db:trains"])
        finally:
            learner.release.set()
    keys = {item.key: item.text for item in after.items}
    assert "Trains leave Denver" in keys["db:trains"] and "Zephyr" in keys["history"]
    assert () == after.missing


async def test_history_gives_the_sessions_exchanges_within_tokens(
    knowledge: dict[str, str], config: EngineConfig
) -> None:
    """
    ``history`` holds the session's exchanges, the unanswered request included, cut
    to the tokens asked for; another session's history is empty.
    """
    async with PreloadEngine(config, sources={"kb": DictSource(knowledge)}) as engine:
        await engine.handle(session_id="s1", text="find me a flight to Denver")
        engine.reply("s1", "I found three flights to Denver on Friday.")
        await engine.handle(session_id="s1", text="the cheapest one please")
        await engine.wait_idle()
        whole = engine.history("s1")
        short = engine.history("s1", available_tokens=8)
        assert "" == engine.history("s2")
    assert "Denver" in whole and "cheapest" in whole
    assert TiktokenCounter().count(short) <= 8 < TiktokenCounter().count(whole)


async def test_restore_continues_a_session_another_replica_served(
    knowledge: dict[str, str], config: EngineConfig
) -> None:
    """
    Turns given by ``turns_of`` on one engine and ``restore`` on another make the
    second continue the session: its history holds the first engine's exchanges,
    and a turn that changed since it was recorded rebuilds the history.
    """
    sources = {"kb": DictSource(knowledge)}
    async with (
        PreloadEngine(config, sources=sources) as a,
        PreloadEngine(config, sources=sources) as b,
    ):
        await a.handle(session_id="s", text="a table for two in Oakland", needs=["service:Flights"])
        a.reply("s", "Rintaro has a table at 7 pm.")
        b.restore("s", a.turns_of("s"), user="u")
        await b.handle(session_id="s", text="book it")
        assert ["a table for two in Oakland", "book it"] == [t["text"] for t in b.turns_of("s")]
        assert ["book it"] == [t["text"] for t in b.turns_of("s", -1)]  # the last alone
        assert "Rintaro" in b.history("s")
        assert ["service:Flights"] == b.turns_of("s")[0]["needs"]
        changed = {**b.turns_of("s")[0], "system": "Nothing is free in Oakland tonight."}
        b.restore("s", [changed], start=0)
        assert "Rintaro" not in b.history("s") and "Nothing is free" in b.history("s")
        with pytest.raises(ValueError, match="past session 's'"):
            b.restore("s", [], start=5)


async def test_a_long_session_keeps_its_last_turns_and_their_history(
    knowledge: dict[str, str], config: EngineConfig
) -> None:
    """
    With ``limits.max_session_turns`` 3, the engine keeps a session's last three
    turns once its history recorded the older ones: their facts stay in the history,
    turn indexes count every turn the session had, and another engine can take the
    session up from its last turns.
    """
    small = dataclasses.replace(config, limits=LimitsConfig(max_session_turns=3))
    sources = {"kb": DictSource(knowledge)}
    texts = [f"turn {i}" for i in range(6)]
    async with (
        PreloadEngine(small, sources=sources) as a,
        PreloadEngine(small, sources=sources) as b,
    ):
        for i, text in enumerate(texts):
            await a.handle(session_id="s", text=text)
            a.reply("s", "Rintaro has a table at 7 pm." if i == 0 else f"reply {i}")
            await a.wait_idle()  # the learner recorded the exchange
        kept = a.turns_of("s")
        assert texts[3:] == [t["text"] for t in kept]
        assert texts[4:] == [t["text"] for t in a.turns_of("s", 4)]  # counted from turn 0
        assert ["turn 5"] == [t["text"] for t in a.turns_of("s", -1)]
        assert "Rintaro" in a.history("s")  # turn 0 went, its exchange did not
        a.restore("s", [{**kept[-1], "system": "reply five, again"}], start=-1)
        given = [{"text": f"turn {i}"} for i in range(1, 3)] + a.turns_of("s")
        a.restore("s", given, start=1)  # turns 1 and 2 went: passed over
        assert ["reply 3", "reply 4", "reply five, again"] == [t["system"] for t in a.turns_of("s")]
        with pytest.raises(ValueError, match="past session 's'"):
            a.restore("s", [], start=7)
        b.restore("s", a.turns_of("s", 4), start=4)  # the last turns of a stored session
        await b.handle(session_id="s", text="turn 6")
        assert ["turn 5", "turn 6"] == [t["text"] for t in b.turns_of("s", 5)]
        assert "reply 4" in b.history("s")


async def test_a_request_served_again_under_its_id_is_counted_once(
    knowledge: dict[str, str], config: EngineConfig
) -> None:
    """
    A request taken back and served again under the same ``request_id`` (a retry)
    is not counted again in the metrics, though its needs are warm now; nor is one
    another replica served, its turn restored with its id. Without an id, or under
    a new one, a request counts.
    """
    sources = {"kb": DictSource(knowledge)}
    async with (
        PreloadEngine(config, sources=sources) as a,
        PreloadEngine(config, sources=sources) as b,
    ):
        need = ["service:Flights"]
        await a.handle(session_id="s", text="flights to Denver", needs=need, request_id="r1")
        a.restore("s", [], start=0)  # the store refused it: taken back, served again
        again = await a.handle(
            session_id="s", text="flights to Denver", needs=need, request_id="r1"
        )
        assert "r1" == a.turns_of("s")[0]["request_id"]
        b.restore("s", a.turns_of("s"))
        b.restore("s", [], start=0)  # a retry of r1 reaches B: B never counted it
        await b.handle(session_id="s", text="flights to Denver", needs=need, request_id="r1")
        await b.handle(session_id="s", text="the cheapest", needs=need, request_id="r2")
        await b.handle(session_id="s", text="and the return", needs=need)
        first, second = a.metrics(), b.metrics()
        with pytest.raises(ValueError, match="request_id has 129 characters"):
            await a.handle(session_id="s", text="hi", request_id="x" * 129)
        with pytest.raises(TypeError, match="request_id"):
            await a.handle(session_id="s", text="hi", request_id=7)  # type: ignore[arg-type]
    assert (1, 1) == (again.hits, first.requests)
    assert (1, 0, 1) == (first.misses, first.hits, first.loads)
    assert (2, 2, 0) == (second.requests, second.hits, second.misses)


@pytest.mark.parametrize("record", [True, False])
async def test_restored_turns_are_recorded_in_the_background_when_asked(
    knowledge: dict[str, str], config: EngineConfig, record: bool
) -> None:
    """
    Turns restored with ``record`` join the history in the background (the learner
    records them before its next event), so the next request has none left to record
    itself; without it, that request records them (``history_catch_ups``).
    """
    sources = {"kb": DictSource(knowledge)}
    async with (
        PreloadEngine(config, sources=sources) as a,
        PreloadEngine(config, sources=sources) as b,
    ):
        await a.handle(session_id="s", text="a table for two in Oakland")
        a.reply("s", "Rintaro has a table at 7 pm.")
        await b.handle(session_id="s", text="a table for two in Oakland")
        await b.wait_idle()  # its learner done with the turn: the reply came to A
        b.restore("s", a.turns_of("s"), record=record)
        await b.wait_idle()
        context = await b.handle(session_id="s", text="book it")
        assert "Rintaro" in context.render()
        assert (0 if record else 1) == b.statistics().history_catch_ups
        assert b.metrics().history_catch_ups == b.statistics().history_catch_ups


async def test_a_session_whose_turns_were_taken_back_does_not_stop_the_learner(
    knowledge: dict[str, str], config: EngineConfig
) -> None:
    """
    A turn taken back (``restore`` to none: a server whose store refused the write)
    while its event waits for the learner leaves the engine serving: the learner skips
    it, and the next requests are served and learned from.
    """
    async with PreloadEngine(config, sources={"kb": DictSource(knowledge)}) as engine:
        await engine.handle(session_id="gone", text="find me a flight")
        engine.restore("gone", [], start=0)  # before the learner sees the turn
        await engine.wait_idle()
        for _ in range(2):
            await engine.handle(session_id="next", text="a flight", state="Flights:Search")
        await engine.wait_idle()
        assert engine.forecast_of("next") is not None
        assert [] == engine.turns_of("gone")


async def test_a_request_after_a_restore_of_many_turns_scores_the_history_once(
    knowledge: dict[str, str], config: EngineConfig, scorings: list[int]
) -> None:
    """
    Sixty turns restored at once (a stored history seeding a restarted engine) are
    recorded by the next request with their facts scored once, not once a turn: each
    scoring grows with the facts so far, so the catch-up grew with the square of the
    turns. The window's history holds the first turn's fact.
    """
    cities = ["Lisbon", "Osaka", "Denver", "Hanoi", "Quito", "Perth"]
    turns = [
        {
            "text": f"Turn {i}: what is the weather in {cities[i % 6]} on day {i}? "
            + ("My booking reference is QX-4471. " if i == 0 else "")
            + "We travel with two children and a dog, and need a quiet hotel room.",
            "system": f"In {cities[i % 6]} on day {i} it will be {10 + i % 15} C and dry.",
        }
        for i in range(60)
    ]
    async with PreloadEngine(config, sources={"kb": DictSource(knowledge)}) as engine:
        engine.restore("s", turns)
        context = await engine.handle(session_id="s", text="and on the way back?")
    history = next(item for item in context.items if item.key == "history")
    assert 1 == len(scorings)
    assert "QX-4471" in history.text


async def test_a_closed_engine_goes_with_its_forecaster_by_reference_counting() -> None:
    """
    Once closed and let go of, an engine that learned goes at once with its forecaster
    (its graphs), not at the cycle collector's next pass: a server that opens and
    closes engines would otherwise hold every closed one's models until then (its parts
    hold no method bound to it, and its learner lets go of them after its task, whose
    cancellation's traceback keeps it in a cycle).
    """
    forecaster = EngineForecaster.from_config(EngineConfig())
    engine = PreloadEngine(sources={"kb": DictSource({"k": "an item"})}, forecaster=forecaster)
    async with engine:
        for n in range(3):
            await engine.handle(session_id=f"s{n}", text="a hotel in Lisbon", needs=["k"])
            engine.reply(f"s{n}", "Hotel Avenida is free.")
            engine.end_session(f"s{n}")
        await engine.wait_idle()
        learned = engine.metrics().requests
    gone = [weakref.ref(engine), weakref.ref(forecaster)]
    was = gc.isenabled()
    gc.disable()
    try:
        del engine, forecaster
        assert [None, None] == [ref() for ref in gone]
    finally:
        if was:
            gc.enable()
    assert 3 == learned
