"""
A turn as a history records it: the request, each tool call with its result, then the
reply.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from preload.history import RESULT_CHARS, agent_side, call_line, exchange_chars


def test_a_call_line_shows_the_name_the_arguments_as_json_and_the_result() -> None:
    """
    Arguments are JSON as given (not ASCII-escaped), the result follows the arrow.
    """
    line = call_line("Hotels:Search", {"city": "Zürich", "stars": 4}, "2 found")
    assert '[Hotels:Search({"city": "Zürich", "stars": 4}) -> 2 found]' == line


def test_a_long_result_is_cut_at_a_word_and_marked() -> None:
    """
    A result above ``RESULT_CHARS`` keeps its first characters up to a space, then
    "…"; what follows is not recorded.
    """
    result = "seat " * RESULT_CHARS + "TAIL"
    line = call_line("Flights:Seats", {}, result)
    kept = line.removeprefix("[Flights:Seats({}) -> ").removesuffix("]")
    assert kept.endswith("seat …")
    assert len(kept) <= RESULT_CHARS + 2
    assert "TAIL" not in line
    assert "x" * RESULT_CHARS in call_line("Flights:Seats", {}, "x" * (RESULT_CHARS + 5))


def test_the_agents_side_is_the_calls_in_order_then_the_reply() -> None:
    """
    One line a call, in the order made, then the reply; a turn without a reply has
    its calls alone.
    """
    calls = [
        {"name": "find", "args": {"city": "Oslo"}, "result": "3 hotels"},
        {"name": "book", "args": {"hotel": "Vika"}, "read_only": False, "result": "ref B-1"},
    ]
    expected = '[find({"city": "Oslo"}) -> 3 hotels]\n[book({"hotel": "Vika"}) -> ref B-1]'
    assert expected + "\nBooked." == agent_side(calls, "Booked.")
    assert expected == agent_side(calls, "")
    assert "Booked." == agent_side([], "Booked.")


def test_an_exchanges_size_is_counted_without_building_it_and_only_as_far_as_needed() -> None:
    """
    The count is the exchange's characters (within one), and stops once above
    ``at_most``: calls after that are not looked at.
    """
    turn: dict[str, Any] = {
        "text": "hotels in Oslo",
        "system": "Booked.",
        "tool_calls": [{"name": "find", "args": {"city": "Oslo"}, "result": "r" * 5_000}],
    }
    built = len(turn["text"]) + len(agent_side(turn["tool_calls"], turn["system"]))
    assert built == exchange_chars(turn, 10**9)
    turn["tool_calls"] += [None] * 1_000  # would raise if looked at
    assert exchange_chars(turn, 100) > 100


_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=3_000)
_CALL = st.fixed_dictionaries(
    {
        "name": st.text(min_size=1, max_size=20),
        "args": st.dictionaries(st.text(max_size=8), st.text(max_size=30), max_size=3),
        "result": _TEXT,
    }
)


@settings(max_examples=200, deadline=None)
@given(text=_TEXT, system=_TEXT, calls=st.lists(_CALL, max_size=4))
def test_an_exchanges_counted_size_is_never_below_its_built_size(
    text: str, system: str, calls: list[dict[str, Any]]
) -> None:
    """
    The request path's thresholds never take a long exchange for a short one: the
    count is at least the built exchange's characters, and at most one more when the
    texts are below ``RESULT_CHARS`` (a turn with calls and no reply).
    """
    turn = {"text": text, "system": system, "tool_calls": calls}
    built = len(text) + len(agent_side(calls, system))
    counted = exchange_chars(turn, 10**9)
    assert built <= counted
    if all(len(c["result"]) <= RESULT_CHARS for c in calls):
        assert counted <= built + 1
