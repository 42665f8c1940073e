"""
Call keys: the same call is one key however its arguments are written, and arguments
that are not JSON are refused naming the argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from preload.calls import MAX_ARGS_CHARS, ToolCall, as_text, call_key


def test_the_same_call_is_one_key_however_written() -> None:
    """
    Order of keys, Unicode composition, surrounding and repeated whitespace and 1.0
    against 1 do not make another key; another value or another tool does.
    """
    key = call_key("Restaurants:Find", {"city": "San José", "party": 2})
    assert key == call_key("Restaurants:Find", {"party": 2.0, "city": " San  Jose\u0301 "})
    assert key != call_key("Restaurants:Find", {"city": "San Jose", "party": 2})
    assert key != call_key("Restaurants:Reserve", {"city": "San José", "party": 2})
    assert key.startswith("call:Restaurants:Find:")
    assert "San" not in key  # arguments never appear in the clear


@given(st.dictionaries(st.text(max_size=5), st.text(max_size=8), max_size=5))
def test_a_key_does_not_depend_on_the_order_of_the_arguments(args: dict[str, str]) -> None:
    """
    Any dict of strings: reversed insertion order gives the same key.
    """
    assert call_key("t", args) == call_key("t", dict(reversed(list(args.items()))))


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ({"city": {"a", "b"}}, TypeError, r"args\['city'\] is set, which is not JSON"),
        ({"when": b"x"}, TypeError, r"args\['when'\] is bytes"),
        ({"n": math.nan}, ValueError, r"args\['n'\] is nan; JSON has no such number"),
        ({"deep": {"x": [object()]}}, TypeError, r"args\['deep'\]\['x'\]\[0\] is object"),
        ({1: "x"}, TypeError, "has a key of type int"),
        (["city"], TypeError, "a call's args must be a mapping, not list"),
        ({"blob": "x" * MAX_ARGS_CHARS}, ValueError, "above the limit of 10,000"),
    ],
)
def test_arguments_that_are_not_json_are_refused_by_name(
    args: object, error: type[Exception], message: str
) -> None:
    """
    The message names the argument and what it is.
    """
    with pytest.raises(error, match=message):
        call_key("tool", args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "message"), [("", "1 to 200 characters"), ("a\nb", "control characters")]
)
def test_bad_tool_names_are_refused(name: str, message: str) -> None:
    """
    Empty names and names with control characters are not tools.
    """
    with pytest.raises(ValueError, match=message):
        call_key(name, {})
    with pytest.raises(TypeError, match="must be a string, not int"):
        call_key(3, {})  # type: ignore[arg-type]


def test_a_tool_call_round_trips_as_a_mapping() -> None:
    """
    ToolCall.as_mapping is the session-log shape, and its key is call_key's.
    """
    call = ToolCall(name="Weather:Get", args={"city": "Oslo"}, read_only=True)
    assert {"name": "Weather:Get", "args": {"city": "Oslo"}, "read_only": True} == (
        call.as_mapping()
    )
    assert call_key("Weather:Get", {"city": "Oslo"}) == call.key


class _Weather(BaseModel):
    city: str
    mild: bool


@dataclass
class _Stay:
    hotel: str
    nights: int
    weather: _Weather


class _NotPydantic:
    def model_dump(self) -> dict[str, str]:
        return {}

    def __str__(self) -> str:
        return "not pydantic"


def test_a_result_object_is_recorded_as_its_fields() -> None:
    """
    A tool's result as a Pydantic model or a dataclass is recorded as JSON of its
    fields (the call forecast takes later arguments from them), not as its ``str``; a
    value JSON cannot hold otherwise, a ``model_dump`` of another kind included, is
    its ``str``.
    """
    weather = _Weather(city="Oslo", mild=True)
    assert as_text(weather) == '{"city": "Oslo", "mild": true}'
    assert as_text(_Stay("Grand", 2, weather)) == (
        '{"hotel": "Grand", "nights": 2, "weather": {"city": "Oslo", "mild": true}}'
    )
    assert as_text([_NotPydantic()]) == '["not pydantic"]'
    assert as_text("as it is") == "as it is"
