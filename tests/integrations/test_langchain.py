"""
LangChain v1 end to end: ``create_agent`` with ``PreloadMiddleware`` and a wrapped
tool, driven by ``GenericFakeChatModel`` through the agent's own graph on a real
engine; and ``CompressedChatMessageHistory``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, AgentState
from langchain.agents.structured_output import ToolStrategy
from langchain.tools import ToolRuntime
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import StructuredTool
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel

from preload import CompressedConversation, PreloadEngine, TiktokenCounter
from preload.integrations import CONTEXT_HEADER, HISTORY_HEADER, tool
from preload.integrations.langchain import CompressedChatMessageHistory, PreloadMiddleware

KNOWLEDGE_TEXTS = (
    "Weather service WX-7: forecasts by city and date, in Celsius.",
    "Hotels service: search by city, price band and rating.",
)


class _Model(GenericFakeChatModel):
    """
    LangChain's fake chat model, recording what it receives; tools are bound as they
    are (the scripted messages make the calls).
    """

    seen: list[list[BaseMessage]]

    def bind_tools(self, tools: Any, **kwargs: Any) -> _Model:  # type: ignore[override]
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


def _script(turns: int, city: str = "Paris", day: str = "today") -> Iterator[AIMessage]:
    """
    Each turn: a forecast call, then the answer.
    """
    for i in range(turns):
        call = {"name": "forecast", "args": {"city": city, "day": day}, "id": f"call-{i}"}
        yield AIMessage("", tool_calls=[call])
        yield AIMessage(f"It will be mild in {city} {day}.")


def _agent(engine: PreloadEngine, backend: Any, model: _Model, **options: Any) -> Any:
    forecast = StructuredTool.from_function(
        coroutine=tool(engine, backend.forecast, read_only=True), name="forecast"
    )
    return create_agent(
        model,
        tools=[forecast],
        system_prompt="You plan trips.",
        middleware=[PreloadMiddleware(engine, **options)],
        checkpointer=InMemorySaver(),
    )


def _texts(messages: list[BaseMessage]) -> list[str]:
    texts = [str(m.text) for m in messages]
    texts.extend(str(c["args"]) for m in messages if isinstance(m, AIMessage) for c in m.tool_calls)
    return texts


def _assert_calls_whole(messages: list[BaseMessage]) -> None:
    calls = {c["id"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    results = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    assert results <= calls
    assert len(calls - results) <= 1


def _config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


async def test_the_model_receives_the_engines_context(
    make_engine: Callable[[], PreloadEngine], backend: Any, needs: Callable[[str], list[str]]
) -> None:
    """
    The model's system message holds the agent's prompt and the engine's context; the
    session is the thread.
    """
    async with make_engine() as engine:
        model = _Model(messages=_script(1), seen=[])
        agent = _agent(engine, backend, model, needs=needs)
        state = await agent.ainvoke(
            {"messages": [HumanMessage("Weather in Paris?")]}, _config("t1")
        )
        assert "It will be mild in Paris today." == state["messages"][-1].text
        system = model.seen[0][0]
        assert isinstance(system, SystemMessage)
        assert "You plan trips." in system.text
        assert CONTEXT_HEADER in system.text
        assert "Weather service WX-7" in system.text
        await engine.wait_idle()
        assert "It will be mild in Paris today." in engine.history("t1")


async def test_the_history_stays_within_the_budget_across_20_turns(
    make_engine: Callable[[], PreloadEngine],
    backend: Any,
    needs: Callable[[str], list[str]],
    texts: list[str],
    counter: TiktokenCounter,
    history_budget: int,
) -> None:
    """
    Over twenty turns on one thread, whose messages outgrow the history budget, every
    model call gets the system message and the current turn whole, within the budget,
    with the first turn's fact kept and no tool call split from its result.
    """
    async with make_engine() as engine:
        model = _Model(messages=_script(20), seen=[])
        agent = _agent(engine, backend, model, needs=needs)
        for text in texts:
            state = await agent.ainvoke({"messages": [HumanMessage(text)]}, _config("t20"))
            await engine.wait_idle()
        assert 40 == len(model.seen)
        raw = sum(counter.count(t) for t in _texts(state["messages"]))
        assert raw > history_budget
        room = history_budget + sum(counter.count(t) for t in KNOWLEDGE_TEXTS) + 64
        for messages in model.seen:
            humans = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
            assert [1] == humans  # the system message, then the current turn
            assert counter.count(messages[0].text) <= room
            total = sum(counter.count(t) for t in _texts(messages))
            assert total <= engine.config.budget.total_tokens
            _assert_calls_whole(messages)
        last = model.seen[-1][0].text
        assert "QX-4471" in last
        assert texts[0] not in last


async def test_a_read_only_tool_is_served_warm_on_the_second_turn(
    make_engine: Callable[[], PreloadEngine], backend: Any
) -> None:
    """
    The second turn's call of the wrapped read-only tool is an engine hit; the tool
    ran once.
    """
    async with make_engine() as engine:
        agent = _agent(engine, backend, _Model(messages=_script(2), seen=[]))
        for text in ("Weather in Paris today?", "Again, please?"):
            await agent.ainvoke({"messages": [HumanMessage(text)]}, _config("warm"))
            await engine.wait_idle()
        assert {("Paris", "today"): 1} == dict(backend.runs)
        stats = engine.call_statistics()
        assert (2, 1, 1) == (stats.calls, stats.call_misses, stats.call_hits)


async def test_closing_the_engine_mid_conversation_degrades(
    make_engine: Callable[[], PreloadEngine],
    backend: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """
    After the engine closes, the agent keeps answering with the thread's messages as
    they are; the tool runs directly; the log says so once.
    """
    model = _Model(messages=_script(3), seen=[])
    async with make_engine() as engine:
        agent = _agent(engine, backend, model)
        await agent.ainvoke({"messages": [HumanMessage("Weather in Paris?")]}, _config("c"))
    with caplog.at_level(logging.DEBUG, logger="preload.integrations"):
        for text in ("And tomorrow?", "And after?"):
            state = await agent.ainvoke({"messages": [HumanMessage(text)]}, _config("c"))
    assert 1 == len([r for r in caplog.records if r.levelno == logging.WARNING])
    assert "It will be mild in Paris today." == state["messages"][-1].text
    assert 3 == backend.runs[("Paris", "today")]
    last = model.seen[-1]
    assert CONTEXT_HEADER not in last[0].text
    assert 3 == len([m for m in last if isinstance(m, HumanMessage)])  # the whole thread


def test_the_chat_history_keeps_a_budget_in_tokens(
    counter: TiktokenCounter, texts: list[str]
) -> None:
    """
    The chat message history gives the compressed history within its budget as one
    system message; an exchange under way (a call without its answer yet) stays whole
    after it; the first turn's fact is kept.
    """
    history = CompressedChatMessageHistory(1500, counter=counter)
    for i, text in enumerate(texts):
        call = {"name": "forecast", "args": {"city": "Oslo", "day": str(i)}, "id": f"c{i}"}
        history.add_messages(
            [
                HumanMessage(text),
                AIMessage("", tool_calls=[call]),
                ToolMessage(f"Oslo on {i}: 21 C", tool_call_id=f"c{i}"),
                AIMessage(f"Mild, day {i}."),
            ]
        )
    call = {"name": "forecast", "args": {"city": "Oslo", "day": "x"}, "id": "open"}
    history.add_messages([HumanMessage("And next week?"), AIMessage("", tool_calls=[call])])
    assert history.conversation.tokens > 1500  # more than the budget holds whole
    messages = history.messages
    assert isinstance(messages[0], SystemMessage)
    assert messages[0].text.startswith(HISTORY_HEADER)
    assert counter.count(messages[0].text) <= 1500 + counter.count(HISTORY_HEADER) + 1
    assert "QX-4471" in messages[0].text
    assert [HumanMessage, AIMessage] == [type(m) for m in messages[1:]]
    history.clear()
    assert [] == history.messages
    assert isinstance(history.conversation, CompressedConversation)


async def test_the_chat_history_records_off_the_event_loop(counter: TiktokenCounter) -> None:
    """
    ``aadd_messages`` and ``aget_messages`` (LangChain's defaults: a worker thread)
    record the exchange and give it back.
    """
    history = CompressedChatMessageHistory(400, counter=counter)
    await history.aadd_messages([HumanMessage("Book Rintaro for 4 at 7 pm"), AIMessage("Done.")])
    messages = await history.aget_messages()
    assert "Rintaro" in messages[0].text


class _CrashAfterTool(AgentMiddleware[AgentState[Any], Any, Any]):
    """
    Fails the tools step once, after the tool ran and before the step is checkpointed:
    what a worker that dies mid-step does to a LangGraph run.
    """

    def __init__(self) -> None:
        super().__init__()
        self.crashed = False

    async def awrap_tool_call(self, request: Any, handler: Any) -> Any:
        result = await handler(request)
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("the worker died after the tool ran")
        return result


async def test_a_restarted_engine_is_seeded_from_the_threads_checkpoint(
    make_engine: Callable[[], PreloadEngine], backend: Any
) -> None:
    """
    The application restarts (a new engine, a new agent, the same checkpointer) and
    the thread goes on: the engine, which has no turns of the thread, is seeded from
    its messages, so the next turn's model sees the earlier request, the tool's result
    and the reply in the engine's history, which takes the place of the earlier
    messages.
    """
    checkpointer = InMemorySaver()

    def build(engine: PreloadEngine, model: _Model) -> Any:
        forecast = StructuredTool.from_function(
            coroutine=tool(engine, backend.forecast, read_only=True), name="forecast"
        )
        return create_agent(
            model,
            tools=[forecast],
            middleware=[PreloadMiddleware(engine)],
            checkpointer=checkpointer,
        )

    async with make_engine() as engine:
        agent = build(engine, _Model(messages=_script(1), seen=[]))
        await agent.ainvoke({"messages": [HumanMessage("Weather in Paris?")]}, _config("k"))
    async with make_engine() as restarted:
        model = _Model(messages=_script(1, day="tomorrow"), seen=[])
        agent = build(restarted, model)
        await agent.ainvoke({"messages": [HumanMessage("And tomorrow?")]}, _config("k"))
        seen = "\n".join(_texts(model.seen[0]))
        assert "Weather in Paris?" in seen
        assert '[forecast({"city": "Paris", "day": "today"}) -> Paris on today: 21 C' in seen
        assert "It will be mild in Paris today." in seen
        await restarted.wait_idle()
        turns = restarted.turns_of("k")
        assert ["Weather in Paris?", "And tomorrow?"] == [t["text"] for t in turns]
        assert [("forecast", "call-0")] == [
            (c["name"], c["call_id"]) for c in turns[0]["tool_calls"]
        ]


class _Verdict(BaseModel):
    city: str
    coat: bool


async def test_a_structured_response_is_the_reply_live_and_seeded(
    make_engine: Callable[[], PreloadEngine],
) -> None:
    """
    A turn answered through ``response_format`` (its schema's tool call) records the
    structured response, as JSON of its fields, as its reply, not the answer of the
    turn before; after a restart the thread's messages seed the same turns, the
    schema's call no tool call.
    """
    checkpointer = InMemorySaver()

    def build(engine: PreloadEngine, answers: list[AIMessage]) -> Any:
        return create_agent(
            _Model(messages=iter(answers), seen=[]),
            tools=[],
            response_format=ToolStrategy(_Verdict),
            middleware=[PreloadMiddleware(engine)],
            checkpointer=checkpointer,
        )

    verdict = {"name": "_Verdict", "args": {"city": "Oslo", "coat": True}, "id": "v-1"}
    async with make_engine() as engine:
        agent = build(engine, [AIMessage("Hello."), AIMessage("", tool_calls=[verdict])])
        await agent.ainvoke({"messages": [HumanMessage("Hi")]}, _config("s"))
        await agent.ainvoke({"messages": [HumanMessage("Coat in Oslo?")]}, _config("s"))
        await engine.wait_idle()
        live = engine.turns_of("s")
    assert [t["system"] for t in live] == ["Hello.", '{"city": "Oslo", "coat": true}']
    async with make_engine() as restarted:
        agent = build(restarted, [AIMessage("Bye.")])
        await agent.ainvoke({"messages": [HumanMessage("Thanks")]}, _config("s"))
        await restarted.wait_idle()
        seeded = restarted.turns_of("s")
    untimed = [{k: v for k, v in turn.items() if k != "at"} for turn in live]
    assert seeded[:2] == untimed  # the thread's messages say what, not when
    assert seeded[2]["system"] == "Bye."


@pytest.mark.parametrize("wrapped", [True, False])
@pytest.mark.parametrize("built_again", [False, True])
async def test_a_run_resumed_after_a_crash_does_not_book_twice(
    make_engine: Callable[[], PreloadEngine], backend: Any, wrapped: bool, built_again: bool
) -> None:
    """
    The booking tool (not read-only) runs under LangChain's tool-call id: when the run
    fails after the booking and resumes from its checkpoint, LangGraph runs the same
    call again and gets the recorded result; the hotel is booked once. So with a tool
    that is not wrapped: the middleware records its call once the tool returned (the
    crash comes after that: it is the outer middleware) and, on the resumed run,
    returns the recorded result without running it. So too when the resumed run is
    served by an agent built again (a new middleware, as an application that builds
    its agent per call has): the engine's turn goes on, no second request, and the
    resumed run's answer is its reply.
    """
    call = {"name": "book", "args": {"hotel": "Rintaro", "day": "friday"}, "id": "call-b1"}
    script = iter([AIMessage("", tool_calls=[call]), AIMessage("Booked.")])
    checkpointer, crash = InMemorySaver(), _CrashAfterTool()
    async with make_engine() as engine:
        function = tool(engine, backend.book, read_only=False) if wrapped else backend.book
        book = StructuredTool.from_function(coroutine=function, name="book")

        def build() -> Any:
            return create_agent(
                _Model(messages=script, seen=[]),
                tools=[book],
                middleware=[crash, PreloadMiddleware(engine)],
                checkpointer=checkpointer,
            )

        agent = build()
        with pytest.raises(RuntimeError, match="the worker died"):
            await agent.ainvoke({"messages": [HumanMessage("Book Rintaro")]}, _config("b"))
        resumed = build() if built_again else agent
        state = await resumed.ainvoke(None, _config("b"))
        assert "Booked." == state["messages"][-1].text
        results = [m.text for m in state["messages"] if isinstance(m, ToolMessage)]
        assert ["booked Rintaro for friday: reference B-1"] == results
        assert {("Rintaro", "friday"): 1} == dict(backend.bookings)
        await engine.wait_idle()
        (turn,) = engine.turns_of("b")
        assert ("Book Rintaro", "Booked.") == (turn["text"], turn["system"])
        assert [("book", "call-b1")] == [(c["name"], c["call_id"]) for c in turn["tool_calls"]]


async def test_an_id_the_model_gave_to_another_call_is_left_out(
    make_engine: Callable[[], PreloadEngine], backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """
    A model that gives one id to two different calls of a turn: both bookings run,
    the second without the id, and the log says so.
    """
    calls = [
        {"name": "book", "args": {"hotel": hotel, "day": "friday"}, "id": "dup"}
        for hotel in ("Rintaro", "Hoshi")
    ]
    script = iter([AIMessage("", tool_calls=[c]) for c in calls] + [AIMessage("Booked both.")])
    async with make_engine() as engine:
        book = StructuredTool.from_function(
            coroutine=tool(engine, backend.book, read_only=False), name="book"
        )
        agent = create_agent(
            _Model(messages=script, seen=[]), tools=[book], middleware=[PreloadMiddleware(engine)]
        )
        with caplog.at_level(logging.WARNING, logger="preload.integrations"):
            state = await agent.ainvoke({"messages": [HumanMessage("Book both")]}, _config("d"))
        assert "Booked both." == state["messages"][-1].text
        assert {("Rintaro", "friday"): 1, ("Hoshi", "friday"): 1} == dict(backend.bookings)
        (record,) = caplog.records
        assert "the call runs without the framework's id: call_id 'dup' was given to another" in (
            record.getMessage()
        )
        calls_made = engine.turns_of("d", 0)[0]["tool_calls"]
        assert ["dup", None] == [c.get("call_id") for c in calls_made]


async def test_a_tool_that_takes_the_runtime_goes_through_the_engine_unshared(
    make_engine: Callable[[], PreloadEngine], backend: Any
) -> None:
    """
    A tool that takes LangChain's ``ToolRuntime`` gets it from LangChain (the model sees
    only its other arguments); the engine records each call with those arguments under
    its id, as not read-only: the same call on the next turn runs again, since its
    result may depend on the runtime.
    """
    seen: list[str | None] = []

    async def forecast(city: str, day: str, runtime: ToolRuntime) -> str:
        """
        The weather forecast for a city on a day.
        """
        seen.append(runtime.tool_call_id)
        return await backend.forecast(city, day)

    async with make_engine() as engine:
        wrapped = StructuredTool.from_function(
            coroutine=tool(engine, forecast, read_only=True), name="forecast"
        )
        assert {"city", "day"} == set(wrapped.args)
        agent = create_agent(
            _Model(messages=_script(2), seen=[]),
            tools=[wrapped],
            middleware=[PreloadMiddleware(engine)],
            checkpointer=InMemorySaver(),
        )
        for text in ("Weather in Paris today?", "Again, please?"):
            await agent.ainvoke({"messages": [HumanMessage(text)]}, _config("rt"))
            await engine.wait_idle()
        assert ["call-0", "call-1"] == seen
        assert {("Paris", "today"): 2} == dict(backend.runs)
        calls = [turn["tool_calls"][0] for turn in engine.turns_of("rt")]
        assert [({"city": "Paris", "day": "today"}, False, f"call-{i}") for i in range(2)] == [
            (c["args"], c["read_only"], c["call_id"]) for c in calls
        ]
