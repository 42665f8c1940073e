"""
Session logs: one JSON session a line, as DESIGN.md's contract gives them.

``{"session_id": "s1", "user": "u1", "turns": [{"t": 0.0, "text": "...", "state": "...",
"needs": ["..."], "system": "..."}]}``. ``state``, ``needs``, ``system`` and ``user``
are optional; other keys are kept and ignored. ``docs/formats.md`` describes every
field and its limits.

Every line is read as bytes and decoded on its own, so that a line that is not UTF-8,
not JSON or not a session is an :class:`InputError` naming the file and the line, which
``skip_bad_lines`` can skip like any other.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from graph import InvalidStateError
from graph import check_name as check_graph_name

from ._config import MAX_TEXT_CHARS, LimitsConfig
from ._errors import EmptyInputError, InputError
from .calls import MAX_CALLS_PER_TURN, ToolCall, canonical_args, check_name

#: The most needs one turn may declare: what the engine takes in one request.
MAX_NEEDS = LimitsConfig().max_needs

__all__ = [
    "MAX_LABEL_CHARS",
    "MAX_SESSION_SECONDS",
    "Session",
    "Turn",
    "label_problem",
    "name_problem",
    "read_sessions",
]

#: The longest session id, user, state or need key (and knowledge key), in characters:
#: they name the forecaster's nodes, the cache's keys and the per-user models.
MAX_LABEL_CHARS = 1_000

#: The latest time a turn may have, in seconds since its session began (about 116 days).
#: The replay runs sessions on a virtual clock that counts seconds in a float: around
#: 10**7 s the step between floats (about 2 ns) grows past asyncio's clock resolution
#: (1 ns), and timers no longer fire where they were set.
MAX_SESSION_SECONDS = 10_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """
    One request of a recorded session.

    .. versionadded:: 0.1
    """

    t: float
    text: str = ""
    state: str | None = None
    needs: tuple[str, ...] = ()
    system: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def as_mapping(self) -> dict[str, Any]:
        """
        The turn as a session-log mapping (what graph/ estimators take).
        """
        out: dict[str, Any] = {
            "t": self.t,
            "text": self.text,
            "state": self.state,
            "needs": list(self.needs),
            "system": self.system,
        }
        if self.tool_calls:
            out["tool_calls"] = [call.as_mapping() for call in self.tool_calls]
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """
    A recorded session.

    ``extra`` holds the keys of the session's record that the format does not know
    (SGD's ``services``, STAR's ``meta``), as they were read.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``extra``.
    """

    session_id: str
    turns: tuple[Turn, ...]
    user: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def as_mapping(self) -> dict[str, Any]:
        """
        The session as a session-log mapping.
        """
        return {
            "session_id": self.session_id,
            "user": self.user,
            "turns": [turn.as_mapping() for turn in self.turns],
        }


def read_sessions(
    path: str | Path,
    *,
    skip_bad_lines: bool = False,
    limit: int | None = None,
    max_text_chars: int = MAX_TEXT_CHARS,
) -> tuple[list[Session], list[InputError]]:
    """
    Read a session log.

    A line is refused when it is not UTF-8, not JSON, not a session (a field missing or
    of the wrong type, no turns, times that are not finite, negative, above
    :data:`MAX_SESSION_SECONDS` or decreasing, a text above ``max_text_chars``, a
    session id, user, state or need above :data:`MAX_LABEL_CHARS`), or when its
    ``session_id`` was already read on an earlier line.

    Args:
        path: The JSONL file.
        skip_bad_lines: Report refused lines in the returned errors instead of raising;
            the first session of an id is the one kept.
        limit: Read at most this many sessions.
        max_text_chars: The longest ``text`` or ``system`` of a turn, in characters.

    Returns:
        The sessions, and the errors of the lines skipped.

    Raises:
        InputError: The file is missing, or a line is refused and ``skip_bad_lines``
            is off; the message names the file, the line and the field.
        EmptyInputError: The file holds no session (when lines were skipped, a note
            gives the first of them).
        ValueError: ``limit`` is below 1 or ``max_text_chars`` below 0.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``max_text_chars``; non-UTF-8 lines, duplicate ids and empty sessions are
       refused line by line.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    if max_text_chars < 0:
        raise ValueError(f"max_text_chars must be 0 or more, not {max_text_chars}")
    path = Path(path)
    sessions: list[Session] = []
    errors: list[InputError] = []
    first_line: dict[str, int] = {}
    with open_jsonl(path) as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.isspace():
                continue
            try:
                session = parse_session(
                    decode_line(path, number, raw), path, number, max_text_chars=max_text_chars
                )
                first = first_line.setdefault(session.session_id, number)
                if first != number:
                    raise InputError(
                        path,
                        number,
                        f"duplicate session_id {quoted(session.session_id)} (first on line "
                        f"{first}); give each session its own id",
                    )
            except InputError as error:
                if not skip_bad_lines:
                    raise
                errors.append(error)
                continue
            sessions.append(session)
            if limit is not None and len(sessions) >= limit:
                break
    if not sessions:
        empty = EmptyInputError(path)
        if errors:
            empty.add_note(f"{len(errors)} bad lines were skipped; the first: {errors[0]}")
        raise empty
    return sessions, errors


def open_jsonl(path: Path) -> BinaryIO:
    """
    The file opened for reading its lines as bytes; iterate it inside ``with``, so that
    it is closed however the read ends.

    Raises:
        InputError: The file cannot be opened (``line`` None).
    """
    try:
        return path.open("rb")
    except OSError as exc:
        raise InputError(path, None, f"cannot open: {exc.strerror or exc}") from None


def decode_line(path: Path, number: int, raw: bytes) -> Any:
    """
    The JSON value of one line (a UTF-8 byte-order mark on line 1 is allowed).

    Raises:
        InputError: The line is not UTF-8, or its text not JSON (see :func:`json_line`).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            path,
            number,
            f"not UTF-8 text ({exc.reason} at byte {exc.start + 1} of the line); "
            "save the file as UTF-8",
        ) from None
    if number == 1 and text.startswith("\ufeff"):
        text = text[1:]
    return json_line(path, number, text)


def json_line(path: Path, number: int, text: str) -> Any:
    """
    The JSON value of one line of text: what every JSON-lines reader decodes with.

    Raises:
        InputError: The line is not JSON, holds a number of more digits than Python
            converts, or nests deeper than the JSON decoder reads.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, number, f"not JSON: {exc.msg} (column {exc.colno})") from None
    except ValueError:  # "Exceeds the limit (4300 digits) for integer string ..."
        limit = sys.get_int_max_str_digits()
        raise InputError(
            path, number, f"a number JSON cannot read: more than {limit} digits"
        ) from None
    except RecursionError:
        raise InputError(path, number, "JSON nested deeper than the decoder reads") from None


def json_type(value: object) -> str:
    """
    The JSON name of a decoded value's type, for messages: ``a string``, ``an array``...
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def quoted(name: str, width: int = 60) -> str:
    """
    ``repr(name)``, cut to about ``width`` characters so that a message stays readable.
    """
    return repr(name) if len(name) <= width else repr(name[:width]) + "..."


_SESSION_KEYS = frozenset({"session_id", "user", "turns"})


def parse_session(
    record: Any,
    path: str | Path = "<data>",
    number: int = 0,
    *,
    max_text_chars: int = MAX_TEXT_CHARS,
) -> Session:
    """
    One session from its decoded JSON.

    Args:
        record: The decoded line.
        path: The file, for messages.
        number: The line, for messages.
        max_text_chars: The longest ``text`` or ``system`` of a turn, in characters.

    Raises:
        InputError: The record does not follow the session-log format.
    """
    if not isinstance(record, dict):
        raise InputError(
            path,
            number,
            f"expected a JSON object with 'session_id' and 'turns', not {json_type(record)}",
        )
    sid = record.get("session_id")
    if not isinstance(sid, str) or sid == "":
        raise InputError(
            path, number, f"'session_id' must be a non-empty string, not {_shown(sid)}"
        )
    problem = label_problem("'session_id'", sid)
    if problem is not None:
        raise InputError(path, number, problem)
    where = f"session {quoted(sid)}"
    user = record.get("user")
    if user is not None and not isinstance(user, str):
        raise InputError(path, number, f"{where}: 'user' must be a string, not {json_type(user)}")
    problem = label_problem("'user'", user) if user is not None else None
    if problem is not None:
        raise InputError(path, number, f"{where}: {problem}")
    raw_turns = record.get("turns")
    if not isinstance(raw_turns, list):
        raise InputError(
            path, number, f"{where}: 'turns' must be a list, not {json_type(raw_turns)}"
        )
    if not raw_turns:
        raise InputError(
            path, number, f"{where}: 'turns' is empty; a session needs at least one turn"
        )
    turns: list[Turn] = []
    for index, raw in enumerate(raw_turns):
        turn = _turn(raw, path, number, where, index, max_text_chars)
        if turns and turn.t < turns[-1].t:
            raise InputError(
                path,
                number,
                f"{where}, turn {index}: 't' goes back in time ({_number(turn.t)} after "
                f"{_number(turns[-1].t)} at turn {index - 1}); times must not decrease "
                "within a session",
            )
        turns.append(turn)
    extra = {k: v for k, v in record.items() if k not in _SESSION_KEYS}
    return Session(session_id=sid, user=user, turns=tuple(turns), extra=extra)


def _shown(value: object) -> str:
    """
    A value for a message: strings quoted, other JSON by type.
    """
    return quoted(value) if isinstance(value, str) else json_type(value)


def _number(value: float) -> str:
    """
    A number for a message, cut when it is very long (a 400-digit integer).
    """
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


_TURN_KEYS = frozenset({"t", "text", "state", "needs", "system", "tool_calls"})


class _TurnProblem(ValueError):
    """
    What is wrong with a turn; :func:`_turn` adds the file, line, session and turn.
    """


def _turn(
    raw: Any, path: str | Path, number: int, session: str, index: int, max_text_chars: int
) -> Turn:
    """
    One turn of a session; ``session`` names the session in messages.
    """
    try:
        return _read_turn(raw, index, max_text_chars)
    except _TurnProblem as exc:
        raise InputError(path, number, f"{session}, turn {index}: {exc}") from None


def _read_turn(raw: Any, index: int, max_text_chars: int) -> Turn:
    """
    The turn a decoded object describes.

    Raises:
        _TurnProblem: It does not follow the format.
    """
    if not isinstance(raw, dict):
        raise _TurnProblem(f"expected an object, not {json_type(raw)}")
    t = raw.get("t", float(index))
    if isinstance(t, bool) or not isinstance(t, int | float):
        raise _TurnProblem(f"'t' must be a non-negative number of seconds, not {json_type(t)}")
    if not 0 <= t <= MAX_SESSION_SECONDS:
        raise _TurnProblem(_bad_time(t))
    text = raw.get("text", "")
    if not isinstance(text, str):
        raise _TurnProblem(f"'text' must be a string, not {json_type(text)}")
    if len(text) > max_text_chars:
        raise _TurnProblem(_too_long("text", text, max_text_chars))
    state = raw.get("state")
    if state is not None and not isinstance(state, str):
        raise _TurnProblem(f"'state' must be a string, not {json_type(state)}")
    if state is not None:
        _check_label("'state'", state)
    needs = raw.get("needs", [])
    if not isinstance(needs, list):
        raise _TurnProblem(f"'needs' must be a list of strings, not {json_type(needs)}")
    if not all(isinstance(n, str) for n in needs):
        i, bad = next((i, n) for i, n in enumerate(needs) if not isinstance(n, str))
        raise _TurnProblem(f"'needs' must be a list of strings; needs[{i}] is {json_type(bad)}")
    for i, need in enumerate(needs):
        _check_label(f"needs[{i}]", need)
    if len(needs) > MAX_NEEDS:
        raise _TurnProblem(
            f"'needs' has {len(needs):,} keys, above the limit of {MAX_NEEDS} a request "
            "(limits.max_needs); split the turn"
        )
    system = raw.get("system")
    if system is not None:
        if not isinstance(system, str):
            raise _TurnProblem(f"'system' must be a string, not {json_type(system)}")
        if len(system) > max_text_chars:
            raise _TurnProblem(_too_long("system", system, max_text_chars))
    extra = {k: v for k, v in raw.items() if k not in _TURN_KEYS}
    return Turn(
        t=float(t),
        text=text,
        state=state,
        needs=tuple(dict.fromkeys(needs)),
        system=system,
        tool_calls=_tool_calls(raw.get("tool_calls", []), max_text_chars),
        extra=extra,
    )


def label_problem(where: str, label: str) -> str | None:
    """
    What is wrong with a session id, user or key above ``MAX_LABEL_CHARS``
    characters, or None; ``where`` names it in the message.
    """
    if len(label) > MAX_LABEL_CHARS:
        return (
            f"{where} has {len(label):,} characters, above the limit of {MAX_LABEL_CHARS:,} "
            f"({quoted(label[:40])}...)"
        )
    return None


def name_problem(where: str, name: str) -> str | None:
    """
    What is wrong with a state or need name graph cannot learn from (above
    ``MAX_LABEL_CHARS`` characters, or holding one of its reserved control
    characters), or None; ``where`` names it in the message.
    """
    problem = label_problem(where, name)
    if problem is not None:
        return problem
    try:
        check_graph_name(name)
    except InvalidStateError as exc:
        return (
            f"{where} {quoted(name)} holds the control character {exc.char!r}, which the "
            "forecaster reserves; remove it"
        )
    return None


def _check_label(where: str, name: str) -> None:
    """
    Raises:
        _TurnProblem: The state or need name holds a reserved control character.
    """
    problem = name_problem(where, name)
    if problem is not None:
        raise _TurnProblem(problem)


def _tool_calls(raw: object, max_text_chars: int) -> tuple[ToolCall, ...]:
    """
    A turn's ``tool_calls``: objects with a ``name``, JSON ``args``, a boolean
    ``read_only`` (false when absent) and a ``result`` (a string of at most
    ``max_text_chars`` characters, or null or absent when the log does not say it).

    Raises:
        _TurnProblem: The list or one of its calls does not follow the format.
    """
    if not isinstance(raw, list):
        raise _TurnProblem(f"'tool_calls' must be a list of calls, not {json_type(raw)}")
    if len(raw) > MAX_CALLS_PER_TURN:
        raise _TurnProblem(
            f"'tool_calls' has {len(raw):,} calls, above the limit of {MAX_CALLS_PER_TURN} "
            "a turn; split the turn"
        )
    calls = []
    for i, call in enumerate(raw):
        where = f"tool_calls[{i}]"
        if not isinstance(call, dict):
            raise _TurnProblem(
                f"{where} must be an object with 'name' and 'args', not {json_type(call)}"
            )
        name = call.get("name")
        try:
            check_name(name)
        except (TypeError, ValueError) as exc:
            raise _TurnProblem(f"{where}.name: {exc}") from None
        args = call.get("args", {})
        if not isinstance(args, dict):
            raise _TurnProblem(f"{where}.args must be an object, not {json_type(args)}")
        try:
            canonical_args(args)
        except (TypeError, ValueError) as exc:
            raise _TurnProblem(f"{where}.args: {exc}") from None
        read_only = call.get("read_only", False)
        if not isinstance(read_only, bool):
            raise _TurnProblem(
                f"{where}.read_only must be true or false, not {json_type(read_only)}"
            )
        result = call.get("result")
        if result is not None and not isinstance(result, str):
            raise _TurnProblem(f"{where}.result must be a string or null, not {json_type(result)}")
        if result is not None and len(result) > max_text_chars:
            raise _TurnProblem(_too_long(f"{where}.result", result, max_text_chars))
        assert isinstance(name, str)
        calls.append(ToolCall(name=name, args=args, read_only=read_only, result=result))
    return tuple(calls)


def _bad_time(t: float) -> str:
    """
    What is wrong with a number ``t`` outside 0..MAX_SESSION_SECONDS.
    """
    if isinstance(t, float) and math.isnan(t):
        return "'t' must be a finite number of seconds, not nan"
    if isinstance(t, float) and math.isinf(t):
        return (
            f"'t' must be a finite number of seconds, not {t!r} (JSON reads numbers too "
            "large for a float, such as 1e400, as infinity)"
        )
    if t < 0:
        return (
            f"'t' must be a non-negative number of seconds since the session began, "
            f"not {_number(t)}"
        )
    return (
        f"'t' must be at most MAX_SESSION_SECONDS ({MAX_SESSION_SECONDS:,} seconds, "
        f"about 116 days), not {_number(t)}; give seconds since the session began, or "
        "split the session"
    )


def _too_long(name: str, text: str, limit: int) -> str:
    """
    The message for a ``text``, ``system`` or call ``result`` above the limit.
    """
    return (
        f"{name!r} is {len(text):,} characters, above the limit of {limit:,} "
        "(max_text_chars); shorten it, or read with a larger max_text_chars"
    )
