"""
The server's sessions: the engine's view of each kept equal to the store's.

A change to a session (:meth:`SessionGate.run`) is served one at a time in a replica,
and written with a check that the session is as the replica knew it:

- When the replica knows the session as last written (its own last write, or another
  replica's that it followed), the engine serves from its copy as it is and the new or
  changed turn is written without the lease, refused if the session's version moved or
  another holds the lease: one round trip.
- Otherwise, or when that write is refused (the engine then takes its turn back), the
  change runs under the session's lease: taking it reads the session and brings the
  engine's copy up to the store's (only the turns it lacks, or its last turns when the
  session was deleted and made anew since, or when the store no longer holds the turns
  that follow the copy), the engine serves, and the turn is written
  back with a count check, which also releases the lease: two round trips.

A replica that dies loses nothing the store accepted, and the next request of the
session, on any replica, finds it as it was left.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ._store import OneAtATime, StoreConflict, StoredSession

if TYPE_CHECKING:
    from ..engine import PreloadEngine
    from ._store import Changed, Held, SessionStore

T = TypeVar("T")

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
    A session being changed: as synced, the hold through which it is written, and
    whether that is without the lease (a refused write is then served again under it).
    """

    synced: Synced
    held: Held
    unleased: bool = False


@dataclass(slots=True)
class _Known:
    epoch: str
    count: int
    version: int
    request_id: str | None  # the last turn's, as stored
    as_stored: bool = True  # the engine's copy is as stored (else read it again)


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
        self._changing = OneAtATime(store.lease_wait_s)  # sessions with a change here
        self.unleased = 0  # changes served from the copy as known, written without lease
        self.conflicts = 0  # of those, the ones the store refused (served again)
        self._window = engine.config.limits.max_session_turns  # the last turns it reads

    async def run(
        self, session_id: str, serve: Callable[[Change], Awaitable[T]], *, leased: bool = False
    ) -> T:
        """
        ``serve`` the session's change, with the engine's copy equal to the store's
        (see the module's description: from the copy as known, written without the
        lease, when it can; else, or when that write is refused, or always when
        ``leased`` (a delete, which writes nothing through the hold; a tool call, which
        must not run twice), under the lease), after the session's other changes in
        this replica. ``serve`` writes through
        the change's hold; when a write without the lease raises
        :class:`~preload.server.StoreConflict`, it has taken its turn back from the
        engine, and is called again. A change that writes nothing (a retried request
        served again, a failure) may still have changed the engine's copy, so the
        session's next change reads it again (:meth:`read_again`). The change counts
        as a request in flight (:meth:`PreloadEngine.in_flight`), its reads and writes
        of the store included.

        Raises:
            SessionBusy: Another change of the session here took longer than the
                store's ``lease_wait_s``, or held the lease as long.
        """
        async with self._changing.hold(session_id, session_id):
            with self.engine.in_flight():
                known = self._known.get(session_id)
                if (
                    not leased
                    and known is not None
                    and known.as_stored
                    and self._holds(session_id, known)
                ):
                    as_known = StoredSession(known.epoch, None, known.count, [], known.version)
                    held = self.store.unleased(self.tenant, session_id, as_known)
                    self.unleased += 1
                    change = Change(self._synced(session_id, known), held, True)
                    try:
                        return await self._serve(session_id, serve, change)
                    except StoreConflict:
                        self.conflicts += 1
                start = max(known.count - 1, 0) if known is not None else -self._window
                async with self.store.hold(self.tenant, session_id, start) as held:
                    synced = await self._sync(session_id, held, known, start)
                    return await self._serve(session_id, serve, Change(synced, held))

    async def _serve(
        self, session_id: str, serve: Callable[[Change], Awaitable[T]], change: Change
    ) -> T:
        """
        ``serve(change)``; when it wrote nothing, the session is to be read again.
        """
        before = self._known.get(session_id)
        try:
            return await serve(change)
        finally:
            if before is not None and self._known.get(session_id) is before:
                self.read_again(session_id)

    def _holds(self, session_id: str, known: _Known) -> bool:
        """
        Whether the engine's copy of the session is the one known (it has its turns).
        """
        return len(self.engine.turns_of(session_id, max(known.count - 1, 0))) == 1

    def _synced(self, session_id: str, known: _Known) -> Synced:
        """
        The session as known, its last turn the engine's copy with its request id.
        """
        last = self.engine.turns_of(session_id, known.count - 1)[0]
        last["request_id"] = known.request_id
        return Synced(known.epoch, known.count, last, None)

    def follow(self, changed: Changed) -> bool:
        """
        Take a write another replica made to a session this one holds into the
        engine's copy, its exchanges to be recorded in the background; whether it was
        taken. It is only when it is the next write after the copy (its version one
        more than the copy's): not when the session is not held here, is under a
        change here (which brings it up to date itself) or is to be read again
        (:meth:`read_again`), nor for a write missed, an old one, the session made anew
        or this replica's own write. The session's next
        change here then reads what it lacks from the store, as without following.
        """
        session_id = changed.session_id
        known = self._known.get(session_id)
        if (
            known is None
            or not known.as_stored  # its next change reads it from the store
            or session_id in self._changing
            or (changed.epoch, changed.version) != (known.epoch, known.version + 1)
            or changed.count not in (known.count, known.count + 1)  # a rewrite, an append
            or not self._holds(session_id, known)
        ):
            return False
        start = changed.count - 1
        self.engine.restore(session_id, [changed.turn], start=start, record=True)
        request_id = changed.turn.get("request_id")
        self.remember(session_id, known.epoch, changed.count, changed.version, request_id)
        return True

    async def _sync(self, session_id: str, held: Held, known: _Known | None, start: int) -> Synced:
        """
        Bring the engine's copy of the session up to the store's: the turns it lacks,
        or when the stored session is not the one it holds, its last turns (as many as
        the engine keeps, ``limits.max_session_turns``).
        """
        stored = held.stored
        if not stored.count:
            self.forget(session_id)
            return Synced("", 0, None, None)
        if known is None or not self._continues(session_id, known, stored):
            if known is not None or self.engine.turns_of(session_id):
                self.engine.end_session(session_id)
            if start != -self._window:
                stored = await held.read(-self._window)
        self.engine.restore(session_id, stored.turns, start=stored.first, user=stored.user)
        last = stored.turns[-1]
        self.remember(
            session_id, stored.epoch, stored.count, stored.version, last.get("request_id")
        )
        return Synced(stored.epoch, stored.count, last, stored.user)

    def _continues(self, session_id: str, known: _Known, stored: StoredSession) -> bool:
        """
        Whether the stored session is the one the engine holds, with at least the
        turns it had and none it lacks gone from the store (else the engine's copy is
        dropped and rebuilt).
        """
        return (
            stored.epoch == known.epoch
            and stored.count >= known.count
            and stored.first <= known.count
            and self._holds(session_id, known)
        )

    def remember(
        self, session_id: str, epoch: str, count: int, version: int, request_id: str | None
    ) -> None:
        """
        Note that the engine's copy of the session is the stored one of ``count`` turns
        at ``version``, the last one's request id ``request_id``.
        """
        self._known[session_id] = _Known(epoch, count, version, request_id)
        self._known.move_to_end(session_id)
        while len(self._known) > self.max_sessions:
            self._known.popitem(last=False)

    def read_again(self, session_id: str) -> None:
        """
        Have the session's next change here read it from the store, under the lease:
        the engine's copy may differ from it (a change that wrote nothing).
        """
        known = self._known.get(session_id)
        if known is not None:
            known.as_stored = False

    def failed(self, change: Change, session_id: str, error: BaseException) -> None:
        """
        A write of the change failed with ``error``, the engine's copy possibly ahead
        of the store's: forget the copy (the session's next change rebuilds it), unless
        a write without the lease was refused, since the change is then served again
        under the lease, which brings the copy up to the store's.
        """
        if not (change.unleased and isinstance(error, StoreConflict)):
            self.forget(session_id)

    def forget(self, session_id: str) -> None:
        """
        Drop the session from this replica (deleted, or gone from the store).
        """
        self._known.pop(session_id, None)
        self.engine.end_session(session_id)

    def rewind(self, session_id: str, count: int) -> None:
        """
        Drop the engine's turns past ``count`` (a write the store refused, a retry to
        serve again): they leave the experiment's counts; a session left with none is
        kept for the request served again.
        """
        if len(self.engine.turns_of(session_id, count)):
            self.engine.restore(session_id, [], start=count)
