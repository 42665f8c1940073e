"""
The engine inside a Pydantic AI agent, offline: ``FunctionModel`` stands in for the LLM
and prints what it received, for three turns of a recorded session.

    pip install -e ".[pydantic-ai]" && python examples/pydantic_ai_agent.py
"""

# ruff: noqa: T201 - an example prints what the model received

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from preload import JsonlKnowledgeSource, PreloadEngine, read_sessions
from preload.integrations import tool
from preload.integrations.pydantic_ai import PreloadCapability

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


def model(replies: list[str]) -> FunctionModel:
    """
    The recorded agent as the model: it looks movies up once, then gives the recorded
    reply; it prints what it received.
    """

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        print(f"--- the model received {len(messages)} message(s):")
        for message in messages:
            for part in message.parts:
                print(f"  [{type(part).__name__}] {show(str(getattr(part, 'content', part)))}")
        if len(messages) == 1 and "movie" in str(messages[-1].parts[-1]).lower():
            return ModelResponse(parts=[ToolCallPart("find_movies", {"genre": "Drama"})])
        return ModelResponse(parts=[TextPart(replies.pop(0))])

    return FunctionModel(answer)


async def main() -> None:
    session = read_sessions(DATA / "session.jsonl")[0][0]
    turns = session.turns[:3]
    needs = {turn.text: list(turn.needs) for turn in turns}
    sources = {"kb": JsonlKnowledgeSource(DATA / "knowledge.jsonl")}
    async with PreloadEngine(sources=sources) as engine:
        agent = Agent(
            model([turn.system or "" for turn in turns]),
            system_prompt="You help people find and rent movies.",
            capabilities=[
                PreloadCapability(engine, session_id=session.session_id, needs=needs.get)
            ],
            tools=[tool(engine, find_movies, read_only=True)],
        )
        history: list[ModelMessage] = []
        for turn in turns:
            print(f"\n=== user: {turn.text}")
            result = await agent.run(turn.text, message_history=history)
            history = result.all_messages()
            print(f"=== agent: {result.output}")
            await engine.wait_idle()


if __name__ == "__main__":
    asyncio.run(main())
