"""
A call: a tool's name and its arguments, and the key its result is cached under.

The key is the name plus the canonical arguments (keys sorted, strings in Unicode NFC
with their whitespace collapsed, compact JSON) hashed, so that the same call from two
sessions of one tenant is one cache entry, and a call's arguments never appear in a
cache key in the clear.
"""

from __future__ import annotations

import hashlib
import json
import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

__all__ = [
    "CALL_PREFIX",
    "MAX_ARGS_CHARS",
    "MAX_CALLS_PER_TURN",
    "MAX_NAME_CHARS",
    "ToolCall",
    "as_text",
    "call_key",
    "canonical_args",
    "check_name",
]

#: Every call key starts with this, so that no document source claims one.
CALL_PREFIX = "call:"

#: The longest canonical JSON of a call's arguments, in characters.
MAX_ARGS_CHARS = 10_000

#: The most calls one turn of a session log may make.
MAX_CALLS_PER_TURN = 32

#: The longest tool name, in characters.
MAX_NAME_CHARS = 200

#: How deep arguments may nest (objects and arrays inside arguments).
_MAX_DEPTH = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """
    One call a turn made: the tool's name, its arguments, whether it only reads, and
    its result when known.

    ``read_only`` calls may be run speculatively; others never are. ``result`` is what
    the call returned, as text, if the log says it (None otherwise): the forecast finds
    later calls' arguments in it (a user id a lookup returned). It is no part of the
    call's identity: two calls with the same name and arguments are equal.

    .. versionadded:: 0.3
    .. versionchanged:: 0.9
       ``result``.
    """

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    read_only: bool = False
    result: str | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """
        The cache key of this call's result (:func:`call_key`).
        """
        return call_key(self.name, self.args)

    def as_mapping(self) -> dict[str, Any]:
        """
        The call as a session-log mapping.
        """
        out: dict[str, Any] = {
            "name": self.name,
            "args": dict(self.args),
            "read_only": self.read_only,
        }
        if self.result is not None:
            out["result"] = self.result
        return out


def call_key(name: str, args: Mapping[str, Any]) -> str:
    """
    The cache key of the result of calling ``name`` with ``args``: ``call:<name>:<hash>``.

    Raises:
        TypeError: ``name`` is not a string, ``args`` not a mapping with string keys, or
            a value is not JSON (a set, bytes, an object); the message names the argument.
        ValueError: The name is empty or too long, a number is not finite, or the
            arguments are above :data:`MAX_ARGS_CHARS`.

    .. versionadded:: 0.3
    """
    check_name(name)
    canonical = canonical_args(args)
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:24]
    return f"{CALL_PREFIX}{name}:{digest}"


def check_name(name: object) -> str:
    """
    ``name`` if it can name a tool.

    Raises:
        TypeError: It is not a string.
        ValueError: It is empty, too long, or holds a control character.
    """
    if not isinstance(name, str):
        raise TypeError(f"a tool's name must be a string, not {type(name).__name__}")
    if not name or len(name) > MAX_NAME_CHARS:
        raise ValueError(f"a tool's name must have 1 to {MAX_NAME_CHARS} characters: {name!r}")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise ValueError(f"a tool's name must not hold control characters: {name!r}")
    return name


def canonical_args(args: object) -> str:
    """
    The canonical JSON of a call's arguments.

    Raises:
        TypeError: They are not a mapping of string keys to JSON values.
        ValueError: A number is not finite, or they are above :data:`MAX_ARGS_CHARS`.
    """
    if not isinstance(args, Mapping):
        raise TypeError(f"a call's args must be a mapping, not {type(args).__name__}")
    text = json.dumps(
        _canonical(args, "args", 0), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    if len(text) > MAX_ARGS_CHARS:
        raise ValueError(
            f"a call's args are {len(text):,} characters of JSON, above the limit of "
            f"{MAX_ARGS_CHARS:,}; pass a reference to large data instead"
        )
    return text


def _canonical(value: object, where: str, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise ValueError(f"{where} nests deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value!r}; JSON has no such number")
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, str):
        return " ".join(unicodedata.normalize("NFC", value).split())
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} has a key of type {type(k).__name__}; keys are strings")
            out[k] = _canonical(v, f"{where}[{k!r}]", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_canonical(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    raise TypeError(
        f"{where} is {type(value).__name__}, which is not JSON; pass strings, numbers, "
        "booleans, null, lists or mappings"
    )


def as_text(value: object) -> str:
    """
    A value as the text a turn records: a string as it is, anything else as JSON (a
    tool's result, a call's arguments in a history's call line), a Pydantic model or a
    dataclass as its fields, what JSON cannot hold as its ``str``.

    .. versionadded:: 0.12
    .. versionchanged:: 0.13
       Pydantic models and dataclasses as their fields (they were their ``str``).
    """
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=_fields)


def _fields(value: object) -> object:
    """
    What JSON holds of a value it cannot: a Pydantic model's or a dataclass's fields,
    else its ``str``.
    """
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):  # a Pydantic model
        try:
            return dump(mode="json")
        except (TypeError, ValueError):  # a model_dump of another kind, or failing
            return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    return str(value)
