"""
OpenAI Agents SDK end to end: ``Runner.run`` with a ``PreloadSession`` and its input
filter, a wrapped tool and a small fake ``Model``, on a real engine.
"""

from __future__ import annotations

import json
import logging
import statistics
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from agents import (
    Agent,
    RunConfig,
    RunContextWrapper,
    Runner,
    SQLiteSession,
    function_tool,
    set_tracing_disabled,
)
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from preload import DictSource, EngineConfig, PreloadEngine, TiktokenCounter
from preload.integrations import CONTEXT_HEADER, HISTORY_HEADER, tool
from preload.integrations.openai_agents import PreloadSession, item_text

from .conftest import KNOWLEDGE

KNOWLEDGE_TEXTS = (
    "Weather service WX-7: forecasts by city and date, in Celsius.",
    "Hotels service: search by city, price band and rating.",
)


@pytest.fixture(autouse=True)
def _no_tracing() -> None:
    """
    The SDK's tracing off: nothing leaves the machine.
    """
    set_tracing_disabled(True)


class _Model(Model):
    """
    A fake model: records its input; calls the forecast tool, then answers.
    """

    def __init__(self, city: str = "Paris", day: str = "today") -> None:
        self.city, self.day = city, day
        self.seen: list[list[Mapping[str, Any]]] = []

    async def get_response(
        self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any
    ) -> ModelResponse:
        items = [input] if isinstance(input, str) else list(input)
        self.seen.append(items)
        n = len(self.seen)
        if items and items[-1].get("type") == "function_call_output":
            text = f"It will be mild in {self.city} {self.day}."
            out: list[Any] = [
                ResponseOutputMessage(
                    id=f"m{n}",
                    type="message",
                    role="assistant",
                    status="completed",
                    content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
                )
            ]
        else:
            args = json.dumps({"city": self.city, "day": self.day})
            out = [
                ResponseFunctionToolCall(
                    type="function_call", call_id=f"c{n}", name="forecast", arguments=args
                )
            ]
        return ModelResponse(output=out, usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def _agent(engine: PreloadEngine, backend: Any, model: _Model) -> Agent[Any]:
    forecast = function_tool(tool(engine, backend.forecast, read_only=True))
    return Agent(name="planner", instructions="You plan trips.", model=model, tools=[forecast])


def _texts(items: list[Mapping[str, Any]]) -> list[str]:
    texts = [item_text(item) for item in items]  # type: ignore[arg-type]
    texts.extend(str(item.get("arguments") or item.get("output") or "") for item in items)
    return texts


def _assert_calls_whole(items: list[Mapping[str, Any]]) -> None:
    calls = {i["call_id"] for i in items if i.get("type") == "function_call"}
    results = {i["call_id"] for i in items if i.get("type") == "function_call_output"}
    assert results <= calls
    assert len(calls - results) <= 1


async def test_the_model_receives_the_engines_context(
    make_engine: Callable[[], PreloadEngine], backend: Any, needs: Callable[[str], list[str]]
) -> None:
    """
    Every model call of the run gets the engine's context, then the turn's items.
    """
    async with make_engine() as engine:
        model = _Model()
        session = PreloadSession(engine, "o1", needs=needs)
        config = RunConfig(call_model_input_filter=session.input_filter)
        agent = _agent(engine, backend, model)
        result = await Runner.run(agent, "Weather in Paris?", session=session, run_config=config)
        assert "It will be mild in Paris today." == result.final_output
        for items in model.seen:
            assert CONTEXT_HEADER in item_text(items[0])  # type: ignore[arg-type]
            assert "Weather service WX-7" in item_text(items[0])  # type: ignore[arg-type]
        await engine.wait_idle()
        assert "It will be mild in Paris today." in engine.history("o1")


async def test_the_history_stays_within_the_budget_across_20_turns(
    make_engine: Callable[[], PreloadEngine],
    backend: Any,
    needs: Callable[[str], list[str]],
    texts: list[str],
    counter: TiktokenCounter,
    history_budget: int,
) -> None:
    """
    Over twenty runs on one session, ``get_items`` gives the history compressed within
    the budget and every model call gets the context and the turn whole, within the
    budget, with the first turn's fact kept and no call split from its output.
    """
    async with make_engine() as engine:
        model = _Model()
        session = PreloadSession(engine, "o20", needs=needs)
        config = RunConfig(call_model_input_filter=session.input_filter)
        agent = _agent(engine, backend, model)
        for text in texts:
            await Runner.run(agent, text, session=session, run_config=config)
            await engine.wait_idle()
        assert 40 == len(model.seen)
        assert sum(counter.count(t) for t in _texts(session.items)) > history_budget  # type: ignore[arg-type]
        items = await session.get_items()
        assert 1 == len(items)
        assert item_text(items[0]).startswith(HISTORY_HEADER)
        assert counter.count(item_text(items[0])) <= history_budget + 16
        room = history_budget + sum(counter.count(t) for t in KNOWLEDGE_TEXTS) + 64
        for seen in model.seen:
            assert counter.count(item_text(seen[0])) <= room  # type: ignore[arg-type]
            assert 1 == len([i for i in seen if i.get("role") == "user"])
            total = sum(counter.count(t) for t in _texts(seen))
            assert total <= engine.config.budget.total_tokens
            _assert_calls_whole(seen)
        last = item_text(model.seen[-1][0])  # type: ignore[arg-type]
        assert "QX-4471" in last
        assert texts[0] not in last
        assert texts[-1] == (await session.get_items(limit=4))[0]["content"]  # raw tails


async def test_a_read_only_tool_is_served_warm_on_the_second_turn(
    make_engine: Callable[[], PreloadEngine], backend: Any
) -> None:
    """
    The second run's call of the wrapped read-only tool is an engine hit; the tool ran
    once.
    """
    async with make_engine() as engine:
        session = PreloadSession(engine, "warm")
        config = RunConfig(call_model_input_filter=session.input_filter)
        agent = _agent(engine, backend, _Model())
        for text in ("Weather in Paris today?", "Again, please?"):
            await Runner.run(agent, text, session=session, run_config=config)
            await engine.wait_idle()
        assert {("Paris", "today"): 1} == dict(backend.runs)
        stats = engine.call_statistics()
        assert (2, 1, 1) == (stats.calls, stats.call_misses, stats.call_hits)
        calls = [[c["name"] for c in turn["tool_calls"]] for turn in engine.turns_of("warm")]
        assert [["forecast"], ["forecast"]] == calls  # by the engine, not again from the items


async def test_a_tool_that_takes_the_run_context_goes_through_the_engine_unshared(
    make_engine: Callable[[], PreloadEngine], backend: Any
) -> None:
    """
    A tool that takes the SDK's ``RunContextWrapper`` gets it from the SDK (with the
    run's context object) and the model sees only its other arguments; the engine
    records each call with those arguments, under the id the SDK's ``ToolContext``
    gives, as not read-only: the same call on the next run runs again, since its result
    may depend on that context.
    """
    contexts: list[Any] = []

    async def forecast(ctx: RunContextWrapper[dict[str, str]], city: str, day: str) -> str:
        """
        The weather forecast for a city on a day.
        """
        contexts.append(ctx.context)
        return await backend.forecast(city, day)

    async with make_engine() as engine:
        wrapped = function_tool(tool(engine, forecast, read_only=True))
        assert {"city", "day"} == set(wrapped.params_json_schema["properties"])
        agent = Agent(name="planner", model=_Model(), tools=[wrapped])
        session = PreloadSession(engine, "ctx")
        config = RunConfig(call_model_input_filter=session.input_filter)
        for text in ("Weather in Paris today?", "Again, please?"):
            await Runner.run(
                agent, text, session=session, run_config=config, context={"user": "u7"}
            )
            await engine.wait_idle()
        assert [{"user": "u7"}] * 2 == contexts
        assert {("Paris", "today"): 2} == dict(backend.runs)
        calls = [call for turn in engine.turns_of("ctx") for call in turn["tool_calls"]]
        assert [({"city": "Paris", "day": "today"}, False, i) for i in ("c1", "c3")] == [
            (c["args"], c["read_only"], c["call_id"]) for c in calls
        ]  # the ids the model gave, from the SDK's ToolContext


async def test_a_tool_that_is_not_wrapped_is_recorded_from_the_sessions_items(
    make_engine: Callable[[], PreloadEngine], backend: Any
) -> None:
    """
    The SDK has no hook around a tool, so the session records the calls of a tool
    that is not wrapped from the items the run adds (the call, then its output): the
    turn holds it under the model's id, and the next run's context has its result.
    """

    async def forecast(city: str, day: str) -> str:
        """
        The weather forecast for a city on a day.
        """
        return await backend.forecast(city, day)

    async with make_engine() as engine:
        model = _Model()
        agent = Agent(name="planner", model=model, tools=[function_tool(forecast)])
        session = PreloadSession(engine, "plain")
        config = RunConfig(call_model_input_filter=session.input_filter)
        for text in ("Weather in Paris today?", "Should I take a coat?"):
            await Runner.run(agent, text, session=session, run_config=config)
            await engine.wait_idle()
        first = engine.turns_of("plain")[0]
    expected = {
        "name": "forecast",
        "args": {"city": "Paris", "day": "today"},
        "read_only": False,
        "call_id": "c1",
        "result": "Paris on today: 21 C, light wind",
    }
    assert [expected] == first["tool_calls"]
    later = item_text(model.seen[2][0])  # type: ignore[arg-type]
    assert '[forecast({"city": "Paris", "day": "today"}) -> Paris on today: 21 C' in later


async def test_closing_the_engine_mid_conversation_degrades(
    make_engine: Callable[[], PreloadEngine],
    backend: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """
    After the engine closes, runs go on with the session's items as a plain session
    gives them; the tool runs directly; the log says so once.
    """
    model = _Model()
    async with make_engine() as engine:
        session = PreloadSession(engine, "closing")
        config = RunConfig(call_model_input_filter=session.input_filter)
        agent = _agent(engine, backend, model)
        await Runner.run(agent, "Weather in Paris?", session=session, run_config=config)
    with caplog.at_level(logging.DEBUG, logger="preload.integrations"):
        for text in ("And tomorrow?", "And after?"):
            result = await Runner.run(agent, text, session=session, run_config=config)
        await session.clear_session()
    assert 1 == len([r for r in caplog.records if r.levelno == logging.WARNING])
    assert "It will be mild in Paris today." == result.final_output
    assert 3 == backend.runs[("Paris", "today")]
    last = model.seen[-1]
    assert CONTEXT_HEADER not in "\n".join(_texts(last))
    assert 3 == len([i for i in last if i.get("role") == "user"])  # the items, as they were
    assert [] == await session.get_items()


async def test_pop_item_and_clear_session(make_engine: Callable[[], PreloadEngine]) -> None:
    """
    ``pop_item`` gives back the latest item; ``clear_session`` forgets the items and
    ends the engine's session.
    """
    async with make_engine() as engine:
        session = PreloadSession(engine, "pop")
        await session.add_items([{"role": "user", "content": "Find me a drama"}])
        assert "Find me a drama" == (await session.pop_item() or {}).get("content")
        assert await session.pop_item() is None
        await session.add_items([{"role": "user", "content": "Find me a drama"}])
        await session.clear_session()
        assert [] == await session.get_items()
        assert "" == engine.history("pop")


async def test_pop_item_takes_the_turn_back_from_the_engine(
    make_engine: Callable[[], PreloadEngine],
) -> None:
    """
    Popping an assistant message cuts it from the engine's reply; popping the turn's
    request takes the turn out of the engine's history, the earlier turn kept whole.
    """
    async with make_engine() as engine:
        session = PreloadSession(engine, "undo")
        await session.add_items([{"role": "user", "content": "Find me a drama"}])
        await session.add_items([{"role": "assistant", "content": "Try Vertigo tonight."}])
        await session.add_items([{"role": "user", "content": "Something with Zorro"}])
        await session.add_items([{"role": "assistant", "content": "Zorro plays at nine."}])
        assert "Zorro plays at nine." == (await session.pop_item() or {}).get("content")
        assert engine.turns_of("undo")[-1]["system"] is None
        assert "Zorro plays" not in engine.history("undo")
        assert "Something with Zorro" == (await session.pop_item() or {}).get("content")
        assert ["Find me a drama"] == [t["text"] for t in engine.turns_of("undo")]
        history = engine.history("undo")
        assert "Zorro" not in history and "Vertigo" in history
        assert [] == [i for i in await session.get_items() if i.get("role") == "user"]


async def test_a_stored_history_seeds_a_session_the_engine_has_not_seen(
    make_engine: Callable[[], PreloadEngine], backend: Any, tmp_path: Any
) -> None:
    """
    A restarted application: a fresh engine and a session over the SDK's SQLite store
    that kept the first run's items. The stored turn seeds the engine, whose context
    for the next request holds it; the store keeps both runs' items.
    """
    db = tmp_path / "sessions.db"
    async with make_engine() as engine:
        session = PreloadSession(engine, "kept", store=SQLiteSession("kept", db))
        config = RunConfig(call_model_input_filter=session.input_filter)
        await Runner.run(
            _agent(engine, backend, _Model()),
            "Weather in Paris?",
            session=session,
            run_config=config,
        )
    async with make_engine() as engine:
        assert [] == engine.turns_of("kept")
        model = _Model("Oslo", "tomorrow")
        session = PreloadSession(engine, "kept", store=SQLiteSession("kept", db))
        config = RunConfig(call_model_input_filter=session.input_filter)
        result = await Runner.run(
            _agent(engine, backend, model), "And Oslo?", session=session, run_config=config
        )
        assert "It will be mild in Oslo tomorrow." == result.final_output
        turns = engine.turns_of("kept")
        assert ["Weather in Paris?", "And Oslo?"] == [t["text"] for t in turns]
        assert "It will be mild in Paris today." == turns[0]["system"]
        seeded = [(c["name"], c["call_id"], c["result"]) for c in turns[0]["tool_calls"]]
        assert [("forecast", "c1", "Paris on today: 21 C, light wind")] == seeded
        context = item_text(model.seen[0][0])  # type: ignore[arg-type]
        assert CONTEXT_HEADER in context and "Weather in Paris?" in context
        await engine.wait_idle()
        assert "It will be mild in Paris today." in engine.history("kept")
    stored = await SQLiteSession("kept", db).get_items()
    assert ["Weather in Paris?", "And Oslo?"] == [
        item_text(i) for i in stored if i.get("role") == "user"
    ]
    assert stored == session.items


async def test_a_stored_history_leaves_a_session_the_engine_knows(
    make_engine: Callable[[], PreloadEngine],
) -> None:
    """
    When the engine already has turns for the session, the store's items do not
    replace them; items added, popped and cleared go to the store as well.
    """
    store = SQLiteSession("both")
    await store.add_items([{"role": "user", "content": "An old request"}])
    async with make_engine() as engine:
        await PreloadSession(engine, "both").add_items([{"role": "user", "content": "Live one"}])
        session = PreloadSession(engine, "both", store=store)
        assert "An old request" == item_text((await session.get_items(limit=1))[0])
        assert ["Live one"] == [t["text"] for t in engine.turns_of("both")]
        await session.add_items([{"role": "assistant", "content": "Noted."}])
        assert ["An old request", "Noted."] == [item_text(i) for i in await store.get_items()]
        assert "Noted." == item_text(await session.pop_item() or {})  # type: ignore[arg-type]
        assert ["An old request"] == [item_text(i) for i in await store.get_items()]
        await session.clear_session()
        assert [] == await store.get_items()
        assert [] == engine.turns_of("both")


async def test_a_stored_history_seeds_nothing_when_the_engine_is_closed(
    make_engine: Callable[[], PreloadEngine], caplog: pytest.LogCaptureFixture
) -> None:
    """
    With the engine closed, the stored items are given as a plain session gives them
    and the failure to seed is logged, never raised.
    """
    store = SQLiteSession("shut")
    await store.add_items([{"role": "user", "content": "Find me a drama"}])
    engine = make_engine()
    session = PreloadSession(engine, "shut", store=store)
    with caplog.at_level(logging.WARNING, logger="preload.integrations"):
        items = await session.get_items()
    assert ["Find me a drama"] == [item_text(i) for i in items]
    assert any("seed the session" in r.getMessage() for r in caplog.records)


class _LoopTokenizer(TiktokenCounter):
    """
    The real tokenizer, noting how many characters it tokenizes on the event loop's
    thread (the hot path), where a count not in its cache costs a tokenization.
    """

    def __init__(self) -> None:
        super().__init__()
        self.loop_chars = 0

    def count(self, text: str) -> int:
        if threading.current_thread() is threading.main_thread() and text not in self._cache:
            self.loop_chars += len(text)
        return super().count(text)


async def test_token_counts_on_the_hot_path_stay_flat_as_the_history_grows(
    backend: Any, needs: Callable[[str], list[str]], texts: list[str], history_budget: int
) -> None:
    """
    Counting tokens on the event loop costs a turn at most about its history budget's
    text, not its whole history: the parts of the history are counted once (the
    counter's cache), the joined text is estimated from them, and exchanges are counted
    in the worker thread that records them. Once the history overflows its budget, what
    a turn tokenizes on the loop stops growing, though the history keeps growing.
    """
    counter = _LoopTokenizer()
    engine = PreloadEngine(EngineConfig(), sources={"kb": DictSource(KNOWLEDGE)}, counter=counter)
    async with engine:
        session = PreloadSession(engine, "flat", needs=needs)
        config = RunConfig(call_model_input_filter=session.input_filter)
        agent = _agent(engine, backend, _Model())
        per_turn = []
        for text in texts:
            before = counter.loop_chars
            await Runner.run(agent, text, session=session, run_config=config)
            await engine.wait_idle()
            per_turn.append(counter.loop_chars - before)
    budget_chars = 4 * history_budget  # about four characters a token
    assert max(per_turn) <= 3 * budget_chars
    assert statistics.median(per_turn[-5:]) <= 1.25 * statistics.median(per_turn[12:15])
