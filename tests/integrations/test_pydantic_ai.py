"""
Pydantic AI end to end: an ``Agent`` with ``PreloadCapability`` and a wrapped tool,
driven by ``FunctionModel`` through the agent's own loop, on a real engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.tools import RunContext

from preload import DictSource, EngineConfig, PreloadEngine, TiktokenCounter
from preload.integrations import CONTEXT_HEADER, tool
from preload.integrations.pydantic_ai import PreloadCapability, current_turn

pytest.importorskip("pydantic_ai")

Seen = list[list[ModelMessage]]

#: The knowledge items the requests need (the conftest's knowledge base).
KNOWLEDGE_TEXTS = (
    "Weather service WX-7: forecasts by city and date, in Celsius.",
    "Hotels service: search by city, price band and rating.",
)


def _model(seen: Seen, city: str = "Paris", day: str = "today") -> FunctionModel:
    """
    A model that records what it receives, calls the forecast tool once a turn, then
    answers.
    """

    async def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(list(messages))
        last = messages[-1]
        if any(isinstance(part, ToolReturnPart) for part in last.parts):
            return ModelResponse(parts=[TextPart(f"It will be mild in {city} {day}.")])
        return ModelResponse(parts=[ToolCallPart("forecast", {"city": city, "day": day})])

    return FunctionModel(answer)


def _texts(messages: list[ModelMessage]) -> list[str]:
    """
    Every text a model received, tool calls and results included.
    """
    texts: list[str] = []
    for message in messages:
        for part in message.parts:
            if isinstance(part, ToolCallPart):
                texts.append(part.args_as_json_str())
            elif isinstance(part, ToolReturnPart):
                texts.append(part.model_response_str())
            elif isinstance(part, SystemPromptPart | UserPromptPart | TextPart):
                texts.append(str(part.content))
    return texts


def _assert_calls_whole(messages: list[ModelMessage]) -> None:
    """
    Every tool result the model received comes with its call, and every call with its
    result (the turn's last call may wait for it).
    """
    calls = {p.tool_call_id for m in messages for p in m.parts if isinstance(p, ToolCallPart)}
    results = {p.tool_call_id for m in messages for p in m.parts if isinstance(p, ToolReturnPart)}
    assert results <= calls
    assert len(calls - results) <= 1


async def test_the_model_receives_the_engines_context(
    make_engine: Callable[[], PreloadEngine], backend: Any, needs: Callable[[str], list[str]]
) -> None:
    """
    The first model request of a run holds the engine's context: the knowledge the
    request needs, under the context header.
    """
    async with make_engine() as engine:
        seen: Seen = []
        agent = Agent(
            _model(seen),
            capabilities=[PreloadCapability(engine, session_id="s1", needs=needs)],
            tools=[tool(engine, backend.forecast, read_only=True)],
        )
        result = await agent.run("What is the weather in Paris today?")
        assert "It will be mild in Paris today." == result.output
        first = "\n".join(_texts(seen[0]))
        assert CONTEXT_HEADER in first
        assert "Weather service WX-7" in first


async def test_the_history_stays_within_the_budget_across_20_turns(
    make_engine: Callable[[], PreloadEngine],
    backend: Any,
    needs: Callable[[str], list[str]],
    texts: list[str],
    counter: TiktokenCounter,
    history_budget: int,
) -> None:
    """
    Over twenty turns whose messages outgrow the history budget, every model request
    fits the engine's budget, the earlier turns arrive compressed (the first turn's
    fact is still there, its words are not), and no tool call is split from its result.
    """
    async with make_engine() as engine:
        seen: Seen = []
        agent = Agent(
            _model(seen),
            system_prompt="You plan trips.",
            capabilities=[PreloadCapability(engine, session_id="s20", needs=needs)],
            tools=[tool(engine, backend.forecast, read_only=True)],
        )
        history: list[ModelMessage] = []
        for text in texts:
            result = await agent.run(text, message_history=history)
            history = result.all_messages()
            await engine.wait_idle()
        assert 40 == len(seen)
        raw = sum(counter.count(t) for t in _texts(history))
        assert raw > history_budget  # the whole conversation would not fit
        room = history_budget + sum(counter.count(t) for t in KNOWLEDGE_TEXTS) + 64
        for messages in seen:
            start = current_turn(messages)
            assert start is not None
            before = sum(counter.count(t) for t in _texts(messages[:start]))
            assert before <= room  # the history, the knowledge and the system prompt
            total = sum(counter.count(t) for t in _texts(messages))
            assert total <= engine.config.budget.total_tokens
            _assert_calls_whole(messages)
        last = "\n".join(_texts(seen[-1]))
        assert "QX-4471" in last  # the first turn's fact, kept
        assert texts[0] not in last  # but not its words verbatim
        assert "You plan trips." in last  # the agent's own system prompt stays


async def test_a_read_only_tool_is_served_warm_on_the_second_turn(
    make_engine: Callable[[], PreloadEngine], backend: Any, needs: Callable[[str], list[str]]
) -> None:
    """
    The second turn's call of a wrapped read-only tool is served by the engine (a hit)
    without running the tool again.
    """
    async with make_engine() as engine:
        seen: Seen = []
        agent = Agent(
            _model(seen),
            capabilities=[PreloadCapability(engine, session_id="warm", needs=needs)],
            tools=[tool(engine, backend.forecast, read_only=True)],
        )
        first = await agent.run("Weather in Paris today?")
        await engine.wait_idle()
        await agent.run("And once more, please?", message_history=first.all_messages())
        assert {("Paris", "today"): 1} == dict(backend.runs)
        stats = engine.call_statistics()
        assert (2, 1, 1) == (stats.calls, stats.call_misses, stats.call_hits)


async def test_closing_the_engine_mid_conversation_degrades(
    backend: Any, needs: Callable[[str], list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    """
    After the engine closes, the agent keeps running: the model gets the messages it
    would get without the engine, the tool runs directly, and the log says so once.
    """
    seen: Seen = []
    async with PreloadEngine(EngineConfig(), sources={"kb": DictSource({})}) as engine:
        agent = Agent(
            _model(seen),
            capabilities=[PreloadCapability(engine, session_id="closing", needs=needs)],
            tools=[tool(engine, backend.forecast, read_only=True)],
        )
        result = await agent.run("Weather in Paris today?")
    with caplog.at_level(logging.DEBUG, logger="preload.integrations"):
        for text in ("And tomorrow?", "And the day after?"):
            result = await agent.run(text, message_history=result.all_messages())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert 1 == len(warnings)
    assert "said once" in warnings[0].getMessage()
    assert "It will be mild in Paris today." == result.output
    assert 3 == backend.runs[("Paris", "today")]
    degraded = seen[-1]
    assert CONTEXT_HEADER not in "\n".join(_texts(degraded))
    start = current_turn(degraded)
    assert start is not None and start > 0  # the earlier messages, as they were


async def test_the_reply_joins_the_engines_history(
    make_engine: Callable[[], PreloadEngine], backend: Any
) -> None:
    """
    The run's output is recorded as the reply, in the background: after the engine is
    idle, the session's history holds the exchange.
    """
    async with make_engine() as engine:
        seen: Seen = []
        agent = Agent(
            _model(seen, city="Oslo"),
            capabilities=[PreloadCapability(engine, session_id="reply")],
            tools=[tool(engine, backend.forecast, read_only=True)],
        )
        await agent.run("Weather in Oslo?")
        await engine.wait_idle()
        history = engine.history("reply")
        assert "Weather in Oslo?" in history
        assert "It will be mild in Oslo today." in history
        assert all(isinstance(m, ModelRequest | ModelResponse) for m in seen[0])


async def test_a_later_turns_model_sees_what_an_earlier_turns_tool_returned(
    make_engine: Callable[[], PreloadEngine], backend: Any
) -> None:
    """
    The engine's history, which takes the place of the earlier messages, holds the
    earlier turn's tool call with its result, not only the reply that followed it
    ("21 C" is in the result alone).
    """
    async with make_engine() as engine:
        seen: Seen = []
        agent = Agent(
            _model(seen, city="Oslo"),
            capabilities=[PreloadCapability(engine, session_id="earlier")],
            tools=[tool(engine, backend.forecast, read_only=True)],
        )
        first = await agent.run("Weather in Oslo?")
        await engine.wait_idle()
        assert "21 C" not in first.output
        before = len(seen)
        await agent.run("Should I take a coat?", message_history=first.all_messages())
        later = "\n".join(_texts(seen[before]))
        assert '[forecast({"city": "Oslo", "day": "today"}) -> Oslo on today: 21 C' in later
        _assert_calls_whole(seen[before])


async def test_a_restarted_engine_is_seeded_from_the_message_history(
    make_engine: Callable[[], PreloadEngine], backend: Any
) -> None:
    """
    The application restarts (a new engine) and goes on with the stored message
    history: the engine, which has no turns of the session, is seeded from it, so the
    next turn's model sees the earlier request, the tool's result and the reply in the
    engine's history, which takes the place of the earlier messages. A session the
    engine knows is not seeded again.
    """
    async with make_engine() as engine:
        agent = Agent(
            _model([], city="Oslo"),
            capabilities=[PreloadCapability(engine, session_id="kept")],
            tools=[tool(engine, backend.forecast, read_only=True)],
        )
        first = await agent.run("Weather in Oslo?")
    stored = first.all_messages()
    async with make_engine() as restarted:
        seen: Seen = []
        agent = Agent(
            _model(seen, city="Oslo"),
            capabilities=[PreloadCapability(restarted, session_id="kept")],
            tools=[tool(restarted, backend.forecast, read_only=True)],
        )
        second = await agent.run("Should I take a coat?", message_history=stored)
        later = "\n".join(_texts(seen[0]))
        assert "Weather in Oslo?" in later
        assert '[forecast({"city": "Oslo", "day": "today"}) -> Oslo on today: 21 C' in later
        assert "It will be mild in Oslo today." in later
        await agent.run("Thanks!", message_history=second.all_messages())
        await restarted.wait_idle()
        turns = restarted.turns_of("kept")
        assert ["Weather in Oslo?", "Should I take a coat?", "Thanks!"] == [
            t["text"] for t in turns
        ]
        (call,) = turns[0]["tool_calls"]
        assert ("forecast", "Oslo on today: 21 C, light wind") == (call["name"], call["result"])
        assert "It will be mild in Oslo today." == turns[0]["system"]


class _Verdict(BaseModel):
    city: str
    coat: bool


async def test_a_structured_output_is_the_reply_live_and_seeded(
    make_engine: Callable[[], PreloadEngine],
) -> None:
    """
    An agent with a structured output answers through its output tool: the run's
    output is the turn's reply, as its fields, and after a restart the history seeds
    the same turn (the output tool's arguments the reply, no call of it).
    """

    async def decide(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        (output,) = info.output_tools
        return ModelResponse(parts=[ToolCallPart(output.name, {"city": "Oslo", "coat": True})])

    def agent(engine: PreloadEngine) -> Agent[None, _Verdict]:
        capability = PreloadCapability[None](engine, session_id="kept")
        return Agent(FunctionModel(decide), output_type=_Verdict, capabilities=[capability])

    async with make_engine() as engine:
        stored = (await agent(engine).run("Coat in Oslo?")).all_messages()
        await engine.wait_idle()
        (live,) = engine.turns_of("kept")
    async with make_engine() as restarted:
        await agent(restarted).run("And tomorrow?", message_history=stored)
        await restarted.wait_idle()
        seeded = restarted.turns_of("kept")[0]
    assert live["system"] == '{"city": "Oslo", "coat": true}'
    assert (seeded["text"], seeded["system"]) == ("Coat in Oslo?", live["system"])
    assert "tool_calls" not in seeded


@dataclass
class _CrashAfterTool(AbstractCapability[Any]):
    """
    Fails the run once, after a tool ran and before its result reached the model:
    what a worker that dies mid-run does.
    """

    crashed: list[str] = field(default_factory=list)

    async def wrap_tool_execute(
        self, ctx: Any, *, call: ToolCallPart, tool_def: Any, args: Any, handler: Any
    ) -> Any:
        result = await handler(args)
        if not self.crashed:
            self.crashed.append(call.tool_call_id)
            raise RuntimeError("the worker died after the tool ran")
        return result


@dataclass
class _Deps:
    """
    What a tool that takes the run context finds in it.
    """

    backend: Any


@pytest.mark.parametrize("kind", ["wrapped", "run context", "not wrapped"])
async def test_a_run_resumed_after_a_crash_does_not_book_twice(
    make_engine: Callable[[], PreloadEngine],
    backend: Any,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    """
    The booking tool (not read-only) runs under Pydantic AI's tool-call id: a run
    resumed from the messages kept before the crash (ending with the model's call)
    makes the same call again and gets the recorded result; the hotel is booked once,
    and the session has one turn, answered by the resumed run. So does a booking tool
    that takes the run context (its dependencies hold the backend): the engine records
    its call with the other arguments, not read-only, and nothing is logged. So does a
    tool that is not wrapped: the capability records its call once the tool returned
    (the crash comes after that: it is the outer capability), and on the resumed run
    returns the recorded result without running it.
    """

    async def book(ctx: RunContext[_Deps], hotel: str, day: str) -> str:
        """
        Book a room in a hotel for a night.
        """
        return str(await ctx.deps.backend.book(hotel, day))

    responses: list[ModelResponse] = []

    async def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if any(isinstance(part, ToolReturnPart) for part in messages[-1].parts):
            return ModelResponse(parts=[TextPart("Booked.")])
        responses.append(
            ModelResponse(parts=[ToolCallPart("book", {"hotel": "Rintaro", "day": "friday"})])
        )
        return responses[-1]

    async with make_engine() as engine:
        crash = _CrashAfterTool()
        agent = Agent(
            FunctionModel(answer),
            capabilities=[crash, PreloadCapability(engine, session_id="b")],
            tools=[
                backend.book
                if kind == "not wrapped"
                else tool(engine, book if kind == "run context" else backend.book, read_only=False)
            ],
            deps_type=_Deps,
        )
        deps = _Deps(backend)
        with (
            caplog.at_level(logging.INFO, logger="preload.integrations"),
            pytest.raises(RuntimeError, match="the worker died"),
        ):
            await agent.run("Book Rintaro for friday", deps=deps)
        kept = [ModelRequest(parts=[UserPromptPart("Book Rintaro for friday")]), *responses]
        with caplog.at_level(logging.INFO, logger="preload.integrations"):
            result = await agent.run(message_history=kept, deps=deps)
        assert [] == caplog.records
        assert "Booked." == result.output
        returned = [
            p.content
            for m in result.all_messages()
            for p in m.parts
            if isinstance(p, ToolReturnPart)
        ]
        assert ["booked Rintaro for friday: reference B-1"] == returned
        assert {("Rintaro", "friday"): 1} == dict(backend.bookings)
        await engine.wait_idle()
        (turn,) = engine.turns_of("b")  # the resumed run is no second request
        assert "Booked." == turn["system"]
        (call,) = turn["tool_calls"]
        assert ("book", crash.crashed[0]) == (call["name"], call["call_id"])
        assert ({"hotel": "Rintaro", "day": "friday"}, False) == (call["args"], call["read_only"])
