"""
What every adapter shares, without a framework: a wrapped tool under the call id its
block sets, and the ids it cannot use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from preload.calls import MAX_CALLS_PER_TURN
from preload.integrations import tool
from preload.integrations._common import MAX_SEEDED_TURNS, EngineLink

if TYPE_CHECKING:
    from preload import PreloadEngine


@pytest.mark.parametrize(
    ("call_id", "said"),
    [("x" * 129, "call_id has 129 characters, above 128"), (7, "call_id must be a string")],
)
async def test_an_id_it_cannot_use_is_said_and_the_call_runs_without_it(
    make_engine: Callable[[], PreloadEngine],
    backend: Any,
    caplog: pytest.LogCaptureFixture,
    call_id: Any,
    said: str,
) -> None:
    """
    An id too long, or no string, is said in a warning; the booking goes through the
    engine without it (recorded in the turn, run once).
    """
    async with make_engine() as engine:
        book = tool(engine, backend.book, read_only=False)
        await engine.handle(session_id="s", text="Book Rintaro")
        with (
            caplog.at_level(logging.WARNING, logger="preload.integrations"),
            engine.session("s", call_id=call_id),
        ):
            assert "booked Rintaro for friday" in await book("Rintaro", "friday")
        (record,) = caplog.records
        assert said in record.getMessage()
        (done,) = engine.turns_of("s")[0]["tool_calls"]
        assert ("book", None) == (done["name"], done.get("call_id"))
        assert {("Rintaro", "friday"): 1} == dict(backend.bookings)


class RunContext:
    """
    A framework's run context, as far as the wrapper can tell: by its type's name.
    """

    def __init__(self, tool_call_id: str) -> None:
        self.tool_call_id = tool_call_id


async def test_a_tool_that_takes_a_run_context_runs_with_the_one_it_was_called_with(
    make_engine: Callable[[], PreloadEngine], backend: Any
) -> None:
    """
    The wrapped tool hands the engine the context it was called with, and the call its
    other arguments, under the context's ``tool_call_id``; called again with it, the
    recorded result comes back. The engine cannot run it on its own: ``engine.call``
    without the wrapper is refused, naming the tool.
    """
    seen: list[RunContext] = []

    async def book(ctx: RunContext, hotel: str, day: str) -> str:
        seen.append(ctx)
        return str(await backend.book(hotel, day))

    async with make_engine() as engine:
        wrapped = tool(engine, book, read_only=True)
        await engine.handle(session_id="s", text="Book Rintaro")
        context = RunContext("call-7")
        with engine.session("s"):
            first = await wrapped(context, "Rintaro", day="friday")
            again = await wrapped(context, "Rintaro", day="friday")
        with pytest.raises(RuntimeError, match="tool 'book' takes the framework's run context"):
            await engine.call("s", "book", {"hotel": "Rintaro", "day": "friday"})
        (done,) = engine.turns_of("s")[0]["tool_calls"]
    assert first == again and [context] == seen
    assert ({"hotel": "Rintaro", "day": "friday"}, False, "call-7") == (
        done["args"],
        done["read_only"],
        done["call_id"],
    )


async def test_a_wrapped_tool_called_by_another_takes_no_id(
    make_engine: Callable[[], PreloadEngine], backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """
    A tool that takes the run context and hands it on to another wrapped tool: the
    outer call is made under the context's id, the inner one under none (not under the
    outer's id, which the engine would refuse), and nothing is logged.
    """

    async def note(ctx: RunContext, hotel: str) -> str:
        return f"noted {hotel}"

    async def book(ctx: RunContext, hotel: str, day: str) -> str:
        return f"{await noting(ctx, hotel)}; {await backend.book(hotel, day)}"

    async with make_engine() as engine:
        noting = tool(engine, note, read_only=False)
        booking = tool(engine, book, read_only=False)
        await engine.handle(session_id="s", text="Book Rintaro")
        with caplog.at_level(logging.INFO, logger="preload.integrations"), engine.session("s"):
            assert (await booking(RunContext("call-9"), "Rintaro", "friday")).startswith("noted")
        calls = engine.turns_of("s")[0]["tool_calls"]
    assert [] == caplog.records
    assert [("note", None), ("book", "call-9")] == [(c["name"], c.get("call_id")) for c in calls]


async def test_a_call_made_without_the_engine_is_recorded_and_degrades_quietly(
    make_engine: Callable[[], PreloadEngine], caplog: pytest.LogCaptureFixture
) -> None:
    """
    ``EngineLink.record_call`` records a call of a tool the engine does not run under
    the framework's id; an id it cannot take (too long, or another call's) is left
    out; arguments the engine refuses are said at INFO, not as the engine's failure;
    ``recorded`` gives the result back under the id, and None for another call's id.
    """
    async with make_engine() as engine:
        link = EngineLink(engine, adapter="test")
        await engine.handle(session_id="s", text="my mail is a@b.c")
        link.record_call("s", "lookup", {"email": "a@b.c"}, "user_42", "c1")
        link.record_call("s", "lookup", {"email": "x@y.z"}, "user_7", "c1")  # another's id
        link.record_call("s", "notes", {}, "none", "x" * 129)
        with caplog.at_level(logging.INFO, logger="preload.integrations"):
            link.record_call("s", "lookup", {"email": "e" * 20_000}, "?", "c2")
        assert "user_42" == link.recorded("s", "c1", "lookup", {"email": "a@b.c"})
        assert link.recorded("s", "c1", "lookup", {"email": "q@r.s"}) is None
        assert link.recorded("s", "c1", "lookup", {"email": object()}) is None  # not JSON
        calls = engine.turns_of("s")[0]["tool_calls"]
    assert [("lookup", "c1"), ("lookup", None), ("notes", None)] == [
        (c["name"], c.get("call_id")) for c in calls
    ]
    (record,) = caplog.records
    assert (logging.INFO, 0) == (record.levelno, link.failures)
    assert "tool 'lookup': the call is not recorded" in record.getMessage()


async def test_a_stored_history_seeds_its_latest_turns_within_the_limits(
    make_engine: Callable[[], PreloadEngine],
) -> None:
    """
    A stored history longer than ``MAX_SEEDED_TURNS`` seeds the engine with its latest
    turns, each within ``[limits]`` (request, reply, calls and their results); a
    session the engine knows is not seeded again.
    """
    long_call = {"name": "lookup", "args": {}, "read_only": False, "result": "r" * 200_000}
    turns = [{"text": f"turn {i}", "system": f"reply {i}"} for i in range(MAX_SEEDED_TURNS + 5)]
    turns[-1] = {
        "text": "q" * 200_000,
        "tool_calls": [long_call] * (MAX_CALLS_PER_TURN + 3),
        "system": "a" * 200_000,
    }
    async with make_engine() as engine:
        link = EngineLink(engine, adapter="test")
        limits = engine.config.limits
        assert link.seed("s", turns, "u1")
        kept = engine.turns_of("s")
        assert MAX_SEEDED_TURNS == len(kept)
        assert "turn 5" == kept[0]["text"]
        last = kept[-1]
        assert (limits.max_request_chars, limits.max_reply_chars) == (
            len(last["text"]),
            len(last["system"]),
        )
        assert MAX_CALLS_PER_TURN == len(last["tool_calls"])
        assert {limits.max_reply_chars} == {len(c["result"]) for c in last["tool_calls"]}
        assert not link.seed("s", [{"text": "other", "system": None}])
        assert MAX_SEEDED_TURNS == len(engine.turns_of("s"))
