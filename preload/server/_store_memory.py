"""
Sessions kept in the process: the session store of one replica.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from ._store import (
    PAGE,
    Changed,
    Changes,
    Held,
    OneAtATime,
    StoreConflict,
    StoredSession,
    change_header,
    change_message,
)

__all__ = ["MemorySessionStore"]


@dataclass(slots=True)
class _Session:
    epoch: str
    user: str | None
    turns: list[str]  # the last ones kept
    count: int = 0  # every turn the session had
    version: int = 0


class MemorySessionStore:
    """
    Sessions in this process (one replica); turns are kept as JSON text, as on Redis,
    so that both stores give the same copies.

    Args:
        lease_wait_s: How long a request waits for its session's lease.
        max_sessions: Sessions kept; the oldest go first.
        max_turns: The turns kept of a session, the last (None: all); its turn count
            still counts every turn.
    """

    shared = False

    def __init__(
        self,
        *,
        lease_wait_s: float = 5.0,
        max_sessions: int = 100_000,
        max_turns: int | None = None,
    ) -> None:
        self.lease_wait_s = lease_wait_s
        self.max_sessions = max_sessions
        self.max_turns = max_turns
        self._sessions: dict[tuple[str, str], _Session] = {}
        self._locks = OneAtATime(lease_wait_s)
        self._listeners: list[MemoryObjectSendStream[str]] = []

    @asynccontextmanager
    async def hold(self, tenant: str, session_id: str, start: int = 0) -> AsyncIterator[Held]:
        async with self._locks.hold((tenant, session_id), session_id):
            yield _MemoryHeld(self, tenant, session_id, await self.read(tenant, session_id, start))

    def unleased(self, tenant: str, session_id: str, known: StoredSession) -> Held:
        return _MemoryHeld(self, tenant, session_id, known, leased=False)

    async def read(self, tenant: str, session_id: str, start: int = 0) -> StoredSession:
        held = self._sessions.get((tenant, session_id))
        if held is None:
            return StoredSession("", None, 0)
        if start > 0:  # counted from the session's first turn, of which some are gone
            start = max(0, start - (held.count - len(held.turns)))
        turns = [json.loads(t) for t in held.turns[start:]]
        return StoredSession(held.epoch, held.user, held.count, turns, held.version)

    def _append(
        self,
        key: tuple[str, str],
        turn: Mapping[str, Any],
        expected: int,
        epoch: str,
        user: str | None,
    ) -> int:
        held = self._sessions.get(key)
        if (held.count if held is not None else 0) != expected:
            raise StoreConflict(key[1])
        if held is None:
            while len(self._sessions) >= self.max_sessions:
                del self._sessions[next(iter(self._sessions))]
            held = self._sessions[key] = _Session(epoch, user, [])
        held.turns.append(json.dumps(turn))
        held.count += 1
        if self.max_turns is not None and len(held.turns) > self.max_turns:
            del held.turns[: -self.max_turns]
        return self._announce(key, held)

    def _update_last(
        self, key: tuple[str, str], turn: Mapping[str, Any], count: int, epoch: str
    ) -> int:
        held = self._sessions.get(key)
        if held is None or held.count != count or held.epoch != epoch or not count:
            raise StoreConflict(key[1])
        held.turns[-1] = json.dumps(turn)
        return self._announce(key, held)

    def _announce(self, key: tuple[str, str], held: _Session) -> int:
        """
        Count the write in the session's version and tell the listeners of the turn
        written (a listener whose buffer is full misses it, as on Redis one that is not
        connected); the new version.
        """
        held.version += 1
        if self._listeners:
            header = change_header(*key, held.epoch, held.count)
            message = change_message(header, held.version, held.turns[-1])
            for listener in self._listeners:
                with suppress(anyio.WouldBlock):
                    listener.send_nowait(message)
        return held.version

    @asynccontextmanager
    async def changes(self) -> AsyncIterator[AsyncIterator[Changed]]:
        send, receive = anyio.create_memory_object_stream[str](1024)
        self._listeners.append(send)
        try:
            async with receive:
                yield Changes(receive.receive)
        finally:
            self._listeners.remove(send)
            send.close()

    async def delete(self, tenant: str, session_id: str) -> bool:
        return self._sessions.pop((tenant, session_id), None) is not None

    async def session_ids(
        self, tenant: str, *, since: float | None = None, until: float | None = None
    ) -> AsyncIterator[list[str]]:
        # every session, window or not: in memory, judging each costs what listing does
        ids = [session_id for owner, session_id in list(self._sessions) if owner == tenant]
        for start in range(0, len(ids), PAGE):
            yield ids[start : start + PAGE]

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


@dataclass(slots=True)
class _MemoryHeld:
    store: MemorySessionStore
    tenant: str
    session_id: str
    stored: StoredSession
    leased: bool = True  # else written without the lease, at stored.version

    async def read(self, start: int = 0) -> StoredSession:
        return await self.store.read(self.tenant, self.session_id, start)

    async def append(
        self, turn: Mapping[str, Any], *, expected: int, epoch: str, user: str | None
    ) -> int:
        key = (self.tenant, self.session_id)
        self._check(key)
        return self.store._append(key, turn, expected, epoch, user)

    async def update_last(self, turn: Mapping[str, Any], *, count: int, epoch: str) -> int:
        key = (self.tenant, self.session_id)
        self._check(key)
        return self.store._update_last(key, turn, count, epoch)

    def _check(self, key: tuple[str, str]) -> None:
        """
        Raises:
            StoreConflict: Written without the lease, while another holds it or after
                another write.
        """
        if self.leased:
            return
        held = self.store._sessions.get(key)
        if (held.version if held else 0) != self.stored.version or self.store._locks.held(key):
            raise StoreConflict(key[1])
