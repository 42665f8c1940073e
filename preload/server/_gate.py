"""
The server's sessions: the engine's view of each kept equal to the store's.

Every change to a session happens under its lease (:meth:`SessionGate.change`), in three
steps: taking the lease reads the session and brings the engine's copy up to the store's
(only the turns it lacks, or all of them when the session was deleted and made anew
since), the engine serves, and the new or changed turn is written back with a version
check, which also releases the lease. A replica that dies loses nothing the store
accepted, and the next request of the session, on any replica, finds it as it was left.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._engine import PreloadEngine
    from ._store import Changed, Held, SessionStore, StoredSession

__all__ = ["Change", "SessionGate", "Synced"]


@dataclass(frozen=True, slots=True)
class Synced:
    """
    A session after :meth:`SessionGate.sync`: its epoch (empty when it does not
    exist), its turn count and its last turn as stored.
    """

    epoch: str
    count: int
    last: dict[str, Any] | None
    user: str | None


@dataclass(frozen=True, slots=True)
class Change:
    """
    A session under its lease: as synced, and the hold through which it is written.
    """

    synced: Synced
    held: Held


@dataclass(slots=True)
class _Known:
    epoch: str
    count: int
    version: int


class SessionGate:
    """
    Keeps one tenant's engine in step with the session store.

    Args:
        tenant: The tenant.
        engine: Its engine.
        store: Where sessions live.
        max_sessions: Sessions whose state this replica remembers.
    """

    def __init__(
        self, tenant: str, engine: PreloadEngine, store: SessionStore, *, max_sessions: int
    ) -> None:
        self.tenant = tenant
        self.engine = engine
        self.store = store
        self.max_sessions = max_sessions
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._changing: dict[str, int] = {}  # sessions with a change under way here

    @asynccontextmanager
    async def change(self, session_id: str) -> AsyncIterator[Change]:
        """
        Hold the session's lease with the engine's copy brought up to the store's; the
        change counts as a request in flight (:meth:`PreloadEngine.in_flight`), its
        reads and writes of the store included.
        """
        known = self._known.get(session_id)
        start = max(known.count - 1, 0) if known is not None else 0
        self._changing[session_id] = self._changing.get(session_id, 0) + 1
        try:
            with self.engine.in_flight():
                async with self.store.hold(self.tenant, session_id, start) as held:
                    yield Change(await self._sync(session_id, held, known, start), held)
        finally:
            left = self._changing.pop(session_id) - 1
            if left:
                self._changing[session_id] = left

    def follow(self, changed: Changed) -> bool:
        """
        Take a write another replica made to a session this one holds into the
        engine's copy, its exchanges to be recorded in the background; whether it was
        taken. It is only when it is the next write after the copy (its version one
        more than the copy's): not when the session is not held here or is under a
        change here (which brings it up to date itself), nor for a write missed, an old
        one, the session made anew or this replica's own write. The session's next
        change here then reads what it lacks from the store, as without following.
        """
        session_id = changed.session_id
        known = self._known.get(session_id)
        if (
            known is None
            or session_id in self._changing
            or (changed.epoch, changed.version) != (known.epoch, known.version + 1)
            or changed.count not in (known.count, known.count + 1)  # a rewrite, an append
            or len(self.engine.turns_of(session_id, known.count - 1)) != 1  # not as known
        ):
            return False
        start = changed.count - 1
        self.engine.restore(session_id, [changed.turn], start=start, record=True)
        self.remember(session_id, known.epoch, changed.count, changed.version)
        return True

    async def _sync(self, session_id: str, held: Held, known: _Known | None, start: int) -> Synced:
        """
        Bring the engine's copy of the session up to the store's: the turns it lacks,
        or all of them when the stored session is not the one it holds.
        """
        stored = held.stored
        if not stored.count:
            self.forget(session_id)
            return Synced("", 0, None, None)
        if known is None or not self._continues(session_id, known, stored):
            if known is not None or self.engine.turns_of(session_id):
                self.engine.end_session(session_id)
            if start:
                stored = await held.read(0)
            start = 0
        self.engine.restore(session_id, stored.turns, start=start, user=stored.user)
        self.remember(session_id, stored.epoch, stored.count, stored.version)
        return Synced(stored.epoch, stored.count, stored.turns[-1], stored.user)

    def _continues(self, session_id: str, known: _Known, stored: StoredSession) -> bool:
        """
        Whether the stored session is the one the engine holds, with at least the
        turns it had (else the engine's copy is dropped and rebuilt).
        """
        held = len(self.engine.turns_of(session_id, max(known.count - 1, 0)))
        return stored.epoch == known.epoch and stored.count >= known.count and held == 1

    def remember(self, session_id: str, epoch: str, count: int, version: int) -> None:
        """
        Note that the engine's copy of the session is the stored one of ``count`` turns
        at ``version``.
        """
        self._known[session_id] = _Known(epoch, count, version)
        self._known.move_to_end(session_id)
        while len(self._known) > self.max_sessions:
            self._known.popitem(last=False)

    def forget(self, session_id: str) -> None:
        """
        Drop the session from this replica (deleted, or gone from the store).
        """
        if self._known.pop(session_id, None) is not None or self.engine.turns_of(session_id):
            self.engine.end_session(session_id)

    def rewind(self, session_id: str, count: int) -> None:
        """
        Drop the engine's turns past ``count`` (a write the store refused; a session
        left with none is ended).
        """
        if len(self.engine.turns_of(session_id, count)):
            self.engine.restore(session_id, [], start=count)
