"""
Session logs: one JSON session a line, as DESIGN.md's contract gives them.

``{"session_id": "s1", "user": "u1", "turns": [{"t": 0.0, "text": "...", "state": "...",
"needs": ["..."], "system": "..."}]}``. ``state``, ``needs``, ``system`` and ``user``
are optional; other keys are kept and ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import EmptyInputError, InputError

__all__ = ["Session", "Turn", "read_sessions"]


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
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def as_mapping(self) -> dict[str, Any]:
        """
        The turn as a session-log mapping (what graph/ estimators take).
        """
        return {
            "t": self.t,
            "text": self.text,
            "state": self.state,
            "needs": list(self.needs),
            "system": self.system,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """
    A recorded session.

    .. versionadded:: 0.1
    """

    session_id: str
    turns: tuple[Turn, ...]
    user: str | None = None

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
    path: str | Path, *, skip_bad_lines: bool = False, limit: int | None = None
) -> tuple[list[Session], list[InputError]]:
    """
    Read a session log.

    Args:
        path: The JSONL file.
        skip_bad_lines: Report malformed lines in the returned errors instead of raising.
        limit: Read at most this many sessions.

    Returns:
        The sessions, and the errors of the lines skipped.

    Raises:
        InputError: The file is missing, or a line is malformed and ``skip_bad_lines``
            is off; the message names the file and line.
        EmptyInputError: The file holds no session.
    """
    path = Path(path)
    sessions: list[Session] = []
    errors: list[InputError] = []
    for number, line in _lines(path):
        try:
            sessions.append(parse_session(json.loads(line), path, number))
        except json.JSONDecodeError as exc:
            error = InputError(path, number, f"not JSON: {exc.msg} (column {exc.colno})")
            if not skip_bad_lines:
                raise error from None
            errors.append(error)
        except InputError as error:
            if not skip_bad_lines:
                raise
            errors.append(error)
        if limit is not None and len(sessions) >= limit:
            break
    if not sessions:
        raise EmptyInputError(path)
    return sessions, errors


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(path, None, f"cannot open: {exc.strerror or exc}") from None
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, line
        except UnicodeDecodeError as exc:
            raise InputError(path, None, f"not UTF-8 text: {exc.reason}") from None


def parse_session(record: Any, path: str | Path = "<data>", number: int = 0) -> Session:
    """
    One session from its decoded JSON.

    Raises:
        InputError: The record does not follow the session-log format.
    """
    if not isinstance(record, dict):
        raise InputError(path, number, "expected a JSON object with 'session_id' and 'turns'")
    sid = record.get("session_id")
    if not isinstance(sid, str | int) or sid == "":
        raise InputError(path, number, "'session_id' must be a non-empty string")
    user = record.get("user")
    if user is not None and not isinstance(user, str | int):
        raise InputError(path, number, f"session {sid}: 'user' must be a string")
    raw_turns = record.get("turns")
    if not isinstance(raw_turns, list):
        raise InputError(path, number, f"session {sid}: 'turns' must be a list")
    turns = tuple(_turn(raw, path, number, str(sid), i) for i, raw in enumerate(raw_turns))
    for i in range(1, len(turns)):
        if turns[i].t < turns[i - 1].t:
            raise InputError(path, number, f"session {sid}: turn {i} goes back in time")
    return Session(session_id=str(sid), user=str(user) if user is not None else None, turns=turns)


_KNOWN = frozenset({"t", "text", "state", "needs", "system"})


def _turn(raw: Any, path: str | Path, number: int, sid: str, index: int) -> Turn:
    where = f"session {sid}, turn {index}"
    if not isinstance(raw, dict):
        raise InputError(path, number, f"{where}: expected an object")
    t = raw.get("t", float(index))
    if isinstance(t, bool) or not isinstance(t, int | float) or t < 0:
        raise InputError(path, number, f"{where}: 't' must be a non-negative number")
    text = raw.get("text", "")
    if not isinstance(text, str):
        raise InputError(path, number, f"{where}: 'text' must be a string")
    state = raw.get("state")
    if state is not None and not isinstance(state, str):
        raise InputError(path, number, f"{where}: 'state' must be a string")
    needs = raw.get("needs", [])
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        raise InputError(path, number, f"{where}: 'needs' must be a list of strings")
    system = raw.get("system")
    if system is not None and not isinstance(system, str):
        raise InputError(path, number, f"{where}: 'system' must be a string")
    extra = {k: v for k, v in raw.items() if k not in _KNOWN}
    return Turn(
        t=float(t),
        text=text,
        state=state,
        needs=tuple(dict.fromkeys(needs)),
        system=system,
        extra=extra,
    )
