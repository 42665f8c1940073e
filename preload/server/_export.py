"""
A tenant's stored sessions as a session log (``GET /v1/sessions``): the lines ``preload
train`` learns from, so that a model can be fitted again on what the replicas served,
tool calls and their results included.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from ._store import served_at

if TYPE_CHECKING:
    from ._store import SessionStore, StoredSession

__all__ = ["CHUNK_CHARS", "last_served", "log_session", "session_log_chunks"]

#: Past this many characters, the lines read so far are sent before the page ends.
CHUNK_CHARS = 1_000_000

#: The keys of a stored tool call that a session log keeps (the call's id is the
#: replica's own).
_CALL_KEYS = ("name", "args", "read_only", "result")


async def session_log_chunks(
    store: SessionStore, tenant: str, *, since: float | None = None, until: float | None = None
) -> AsyncIterator[str]:
    """
    The tenant's stored sessions, one line of a session log each (:func:`log_session`),
    a page of the store's ids at a time (or :data:`CHUNK_CHARS` of lines, when that
    comes first); each session read on its own, whole, as it is
    at that moment. Sessions without a turn are left out, and an id listed twice is
    read once (the ids seen are kept: a set as large as the tenant's sessions).

    With ``since`` or ``until`` (seconds since the epoch), only the sessions whose
    last kept turn was served at or after ``since`` and before ``until``
    (:func:`last_served`), whole; a session with no time of its own is left out. The
    store lists those of the window (Redis, from the tenant's index; the memory store,
    every session), and each listed is read and judged by its turns.

    Raises:
        StoreUnavailable: The store cannot be reached.
    """
    seen: set[str] = set()
    window = since is not None or until is not None
    async for page in store.session_ids(tenant, since=since, until=until):
        lines: list[str] = []
        size = 0
        for session_id in page:
            if session_id in seen:
                continue
            seen.add(session_id)
            stored = await store.read(tenant, session_id)
            if stored.turns and (not window or _within(last_served(stored), since, until)):
                line = json.dumps(log_session(session_id, stored), ensure_ascii=False)
                lines.append(line + "\n")
                size += len(line)
            if size >= CHUNK_CHARS:  # long sessions: sent as they come
                yield "".join(lines)
                lines, size = [], 0
        if lines:
            yield "".join(lines)


def last_served(stored: StoredSession) -> float | None:
    """
    When the session's last kept turn was served: the latest time (``at``, seconds
    since the epoch) its turns hold; None when none holds one (turns stored before
    replicas kept their times).
    """
    return max((at for at in map(served_at, stored.turns) if at is not None), default=None)


def _within(at: float | None, since: float | None, until: float | None) -> bool:
    return at is not None and (since is None or at >= since) and (until is None or at < until)


def log_session(session_id: str, stored: StoredSession) -> dict[str, Any]:
    """
    A stored session as a line of a session log: its id, its user, the index of its
    first kept turn (``first_turn``, when older turns went) and its turns. A turn's
    ``t`` is the seconds since the first kept turn was stored (by the replicas'
    clocks; a turn stored without its time takes the time of the turn before it).
    """
    out: dict[str, Any] = {"session_id": session_id}
    if stored.user is not None:
        out["user"] = stored.user
    if stored.first:
        out["first_turn"] = stored.first
    turns: list[dict[str, Any]] = []
    start: float | None = None
    t = 0.0
    for turn in stored.turns:
        at = served_at(turn)
        if at is not None:
            start = at if start is None else start
            t = max(t, round(at - start, 3))
        turns.append(_log_turn(turn, t))
    out["turns"] = turns
    return out


def _log_turn(turn: Mapping[str, Any], t: float) -> dict[str, Any]:
    """
    A stored turn as a session log's: its time, request, state, needs, reply and calls.
    """
    out: dict[str, Any] = {"t": t, "text": turn.get("text") or ""}
    if turn.get("state") is not None:
        out["state"] = turn["state"]
    if turn.get("needs"):
        out["needs"] = list(turn["needs"])
    if turn.get("system") is not None:
        out["system"] = turn["system"]
    calls = [
        {key: call[key] for key in _CALL_KEYS if key in call}
        for call in turn.get("tool_calls") or ()
        if isinstance(call, Mapping)
    ]
    if calls:
        out["tool_calls"] = calls
    return out
