"""
The engine behind an OpenAI Agents SDK session, offline: a small fake ``Model`` stands
in for the LLM and prints what it received, for three turns of a recorded session.

    pip install -e ".[openai-agents]" && python examples/openai_agents_session.py
"""

# ruff: noqa: T201 - an example prints what the model received

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agents import Agent, RunConfig, Runner, function_tool, set_tracing_disabled
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from preload import JsonlKnowledgeSource, PreloadEngine, read_sessions
from preload.integrations import tool
from preload.integrations.openai_agents import PreloadSession, item_text

DATA = Path(__file__).parent / "data"


def show(text: str) -> str:
    """
    A received text on one line: its start, and the context's sections when it has them.
    """
    sections = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    short = text.replace("\n", " / ")
    short = short if len(short) <= 160 else short[:160] + " ..."
    return short + (f"  [sections: {', '.join(sections)}]" if sections else "")


async def find_movies(genre: str, director: str = "", actors: str = "") -> str:
    """
    Movies to watch by genre and, optionally, director or actors.
    """
    return "1 movie: Supa Modo" if genre == "Drama" else "no movies"


class RecordedModel(Model):
    """
    The recorded agent as a model: a movie search on the first turn, then the recorded
    replies; it prints what it received.
    """

    def __init__(self, replies: list[str]) -> None:
        self.replies = replies
        self.searched = False

    async def get_response(
        self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any
    ) -> ModelResponse:
        items: list[Mapping[str, Any]] = [input] if isinstance(input, str) else list(input)
        print(f"--- the model received {len(items)} item(s), instructions {system_instructions!r}:")
        for item in items:
            kind = item.get("role") or item.get("type")
            print(f"  [{kind}] {show(item_text(item) or str(item.get('output', '')))}")  # type: ignore[arg-type]
        if not self.searched:
            self.searched = True
            call = ResponseFunctionToolCall(
                type="function_call",
                call_id="c1",
                name="find_movies",
                arguments='{"genre": "Drama"}',
            )
            return ModelResponse(output=[call], usage=Usage(), response_id=None)
        text = ResponseOutputText(type="output_text", text=self.replies.pop(0), annotations=[])
        message = ResponseOutputMessage(
            id="m", type="message", role="assistant", status="completed", content=[text]
        )
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


async def main() -> None:
    set_tracing_disabled(True)  # offline
    recorded = read_sessions(DATA / "session.jsonl")[0][0]
    turns = recorded.turns[:3]
    needs = {turn.text: list(turn.needs) for turn in turns}
    sources = {"kb": JsonlKnowledgeSource(DATA / "knowledge.jsonl")}
    async with PreloadEngine(sources=sources) as engine:
        session = PreloadSession(engine, recorded.session_id, needs=needs.get)
        config = RunConfig(call_model_input_filter=session.input_filter)
        agent = Agent(
            name="movies",
            instructions="You help people find and rent movies.",
            model=RecordedModel([turn.system or "" for turn in turns]),
            tools=[function_tool(tool(engine, find_movies, read_only=True))],
        )
        for turn in turns:
            print(f"\n=== user: {turn.text}")
            result = await Runner.run(agent, turn.text, session=session, run_config=config)
            print(f"=== agent: {result.final_output}")
            await engine.wait_idle()
        history = await session.get_items()
        print(f"\n=== the session's history now: {show(item_text(history[0]))}")


if __name__ == "__main__":
    asyncio.run(main())
