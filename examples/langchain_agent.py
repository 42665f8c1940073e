"""
The engine inside a LangChain v1 agent (``create_agent``), offline:
``GenericFakeChatModel`` stands in for the LLM and prints what it received, for three
turns of a recorded session on one thread.

    pip install -e ".[langchain]" && python examples/langchain_agent.py
"""

# ruff: noqa: T201 - an example prints what the model received

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import StructuredTool
from langgraph.checkpoint.memory import InMemorySaver

from preload import JsonlKnowledgeSource, PreloadEngine, read_sessions
from preload.integrations import tool
from preload.integrations.langchain import PreloadMiddleware

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


class PrintingModel(GenericFakeChatModel):
    """
    LangChain's fake chat model, printing what it receives.
    """

    def bind_tools(self, tools: Any, **kwargs: Any) -> PrintingModel:  # type: ignore[override]
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        print(f"--- the model received {len(messages)} message(s):")
        for message in messages:
            calls = getattr(message, "tool_calls", None)
            print(f"  [{type(message).__name__}] {show(message.text)}{calls or ''}")
        return super()._generate(messages, *args, **kwargs)


def script(replies: list[str]) -> Iterator[AIMessage]:
    """
    The recorded agent: a movie search on the first turn, then the recorded replies.
    """
    call = {"name": "find_movies", "args": {"genre": "Drama"}, "id": "call-1"}
    yield AIMessage("", tool_calls=[call])
    yield from (AIMessage(reply) for reply in replies)


async def main() -> None:
    session = read_sessions(DATA / "session.jsonl")[0][0]
    turns = session.turns[:3]
    needs = {turn.text: list(turn.needs) for turn in turns}
    sources = {"kb": JsonlKnowledgeSource(DATA / "knowledge.jsonl")}
    async with PreloadEngine(sources=sources) as engine:
        movies = StructuredTool.from_function(
            coroutine=tool(engine, find_movies, read_only=True), name="find_movies"
        )
        agent = create_agent(
            PrintingModel(messages=script([turn.system or "" for turn in turns])),
            tools=[movies],
            system_prompt="You help people find and rent movies.",
            middleware=[PreloadMiddleware(engine, needs=needs.get)],
            checkpointer=InMemorySaver(),
        )
        config: Any = {"configurable": {"thread_id": session.session_id}}
        for turn in turns:
            print(f"\n=== user: {turn.text}")
            state = await agent.ainvoke({"messages": [HumanMessage(turn.text)]}, config)
            print(f"=== agent: {state['messages'][-1].text}")
            await engine.wait_idle()


if __name__ == "__main__":
    asyncio.run(main())
