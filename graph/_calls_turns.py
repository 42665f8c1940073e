"""
How the call forecast reads a session log's turns: their calls (name, arguments
flattened to paths and written as text, whether read-only), their results and texts;
and the shapes the forecast passes around (a call, an argument's key, a mention).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, TypeAlias

__all__ = [
    "PATH",
    "Call",
    "ExactCall",
    "Key",
    "Mention",
    "calls_of",
    "exact_calls",
    "made_calls",
    "nested",
    "raw_calls",
    "results_of",
    "surface",
    "turn_text",
    "turns_of",
    "value_kind",
    "value_shape",
]

#: A value said in a text: ``(first token, token after, value, how)``; ``how`` is ""
#: for a known value, else ``"alias"`` (or ``"hint"``, or ``"pooled"``: another
#: argument's alias of the value) or a normalization rule.
Mention: TypeAlias = "tuple[int, int, str, str]"
#: One argument of one call: ``(call name, argument name)``.
Key: TypeAlias = "tuple[str, str]"
#: A call as the logs record it: its name and its complete arguments.
Call: TypeAlias = "tuple[str, dict[str, str]]"
#: A call as compared with a forecast: its name and its arguments' items.
ExactCall: TypeAlias = "tuple[str, frozenset[tuple[str, str]]]"

#: A JSON number, as :func:`surface` writes one.
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def turns_of(session: Any) -> list[Mapping[str, Any]]:
    """
    Return the turn mappings of a session mapping or sequence, skipping what is not one.
    """
    turns = session.get("turns") if isinstance(session, Mapping) else session
    if isinstance(turns, (str, bytes)) or not isinstance(turns, Iterable):
        return []
    return [turn for turn in turns if isinstance(turn, Mapping)]


#: Joins the keys of an argument nested in an object argument into one argument's name
#: (``{"filters": {"city": "Paris"}}`` is the argument ``filters\x1fcity``):
#: :func:`nested` puts them back.
PATH: Final = "\x1f"
#: Objects nested deeper than this are one value.
_MAX_DEPTH: Final = 4


def _flat(args: Mapping[Any, Any], prefix: str = "", depth: int = 0) -> dict[Any, Any]:
    """
    The arguments with the values of each object argument (a non-empty object whose
    keys are strings) as arguments of their own, named by their path.
    """
    out: dict[Any, Any] = {}
    for arg, value in args.items():
        if not isinstance(arg, str) or PATH in arg:
            continue
        if (
            isinstance(value, Mapping)
            and value
            and depth < _MAX_DEPTH
            and all(isinstance(k, str) for k in value)
        ):
            out.update(_flat(value, f"{prefix}{arg}{PATH}", depth + 1))
        else:
            out[f"{prefix}{arg}"] = value
    return out


def nested(args: Mapping[str, Any]) -> dict[str, Any]:
    """
    The arguments as the call gives them: each argument named by a path (see
    :data:`PATH`) back inside its objects.
    """
    out: dict[str, Any] = {}
    for arg, value in args.items():
        *outer, last = arg.split(PATH)
        into = out
        for key in outer:
            inner = into.get(key)
            if not isinstance(inner, dict):
                inner = into[key] = {}
            into = inner
        into[last] = value
    return out


def _call_entries(turn: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """
    A turn's ``tool_calls`` entries that are mappings (others are skipped).
    """
    raw = turn.get("tool_calls")
    if isinstance(raw, (list, tuple)):
        yield from (call for call in raw if isinstance(call, Mapping))


def made_calls(turn: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """
    A turn's ``tool_calls`` entries that are mappings, in order (others are skipped).
    """
    return list(_call_entries(turn))


def exact_calls(entries: Sequence[Mapping[str, Any]]) -> list[ExactCall]:
    """
    Calls (``tool_calls`` entries) as name and arguments, in order, to compare: what a
    forecast must give to be right.
    """
    return [(name, frozenset(args.items())) for name, args, _ in calls_of({"tool_calls": entries})]


def raw_calls(turn: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any], bool]]:
    """
    A turn's well-formed ``tool_calls`` as ``(name, args, read_only)``, their arguments
    as the log gives them, those inside object arguments as arguments of their own
    (see :data:`PATH`); malformed calls are skipped.
    """
    for call in _call_entries(turn):
        name, args = call.get("name"), call.get("args")
        if isinstance(name, str) and name:
            flat = _flat(args) if isinstance(args, Mapping) else {}
            yield name, flat, call.get("read_only") is True


def results_of(turn: Mapping[str, Any]) -> list[str]:
    """
    Return the results a turn's ``tool_calls`` recorded (``result``, text), in order.
    """
    results = (call.get("result") for call in _call_entries(turn))
    return [result for result in results if isinstance(result, str) and result]


def calls_of(turn: Mapping[str, Any]) -> list[tuple[str, dict[str, str], bool]]:
    """
    Return a turn's well-formed ``tool_calls`` as ``(name, args, read_only)``, each
    argument's value as its :func:`surface`; malformed calls and arguments are skipped.
    """
    out: list[tuple[str, dict[str, str], bool]] = []
    for name, args, read_only in raw_calls(turn):
        clean = {}
        for arg, value in args.items():
            text = surface(value) if isinstance(arg, str) else None
            if text is not None:
                clean[arg] = text
        out.append((name, clean, read_only))
    return out


def surface(value: object) -> str | None:
    """
    The text the forecast handles a JSON argument value as: a string itself, a boolean
    ``"True"``/``"False"``, a number as JSON writes it, null ``"null"``, a list or an
    object its compact JSON; None for what is not JSON. :meth:`CallCounts.typed` turns
    it back into the value, typed as the argument's training calls typed it.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError):  # not JSON, a NaN, a loop, too deep
        return None


def value_shape(text: str) -> str | None:
    """
    Which JSON type other than a string a surface could be the text of, if any.
    """
    if _NUMBER.fullmatch(text):
        return "number"
    if text in ("True", "False"):
        return "bool"
    if text == "null":
        return "null"
    return "json" if text[:1] in ("[", "{") else None


def value_kind(value: object) -> str:
    """
    The JSON type of an argument's value: ``str``, ``bool``, ``int``, ``float``,
    ``null`` or ``json`` (a list or an object).
    """
    if isinstance(value, str):
        return "str"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "null" if value is None else "json"


def turn_text(turn: Mapping[str, Any] | None, field_name: str) -> str:
    value = turn.get(field_name) if turn is not None else None
    return value if isinstance(value, str) else ""
