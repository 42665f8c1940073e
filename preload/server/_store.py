"""
Where the server keeps sessions: in the process, or in Redis so that replicas share them.

A session is its list of turns (what :meth:`~preload.PreloadEngine.turns_of` gives,
with the ``request_id`` the client sent) and an *epoch*: a token made when the session
is created, so that a replica that remembers a session deleted since and created anew
knows to forget it. Turns are JSON, never pickle.

A change happens under the session's lease (:meth:`SessionStore.hold`), and an append
is also a count check: it names how many turns it expects to follow, and is refused
(:class:`StoreConflict`) when another writer came first. A writer that knows the
session as last written may instead write without the lease
(:meth:`SessionStore.unleased`): the write is refused unless the session is still at
the version it knows and nobody holds the lease. Each accepted write is
also announced (:meth:`SessionStore.changes`) with the turn it wrote, so that the other
replicas that hold the session can bring their copies up to date in the background
(:class:`~preload.server.Follower`).

The stores: :class:`~preload.server._store_memory.MemorySessionStore` (one process) and
:class:`~preload.server._store_redis.RedisSessionStore` (shared by replicas).
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

logger = logging.getLogger(__name__)

#: Session ids a store lists at a time (:meth:`SessionStore.session_ids`).
PAGE = 500

__all__ = [
    "PAGE",
    "Changed",
    "Changes",
    "Held",
    "OneAtATime",
    "SessionBusy",
    "SessionStore",
    "StoreConflict",
    "StoreUnavailable",
    "StoredSession",
    "change_header",
    "change_message",
    "new_epoch",
    "served_at",
]


class StoreUnavailable(Exception):
    """
    The session store cannot be reached (Redis is down); nothing was changed.
    """


class StoreConflict(Exception):
    """
    Another writer changed the session first; nothing was changed.
    """


class SessionBusy(Exception):
    """
    Another request of the session held its lease for longer than the wait allowed.
    """


@dataclass(frozen=True, slots=True)
class StoredSession:
    """
    A session as the store holds it: its epoch (empty when it does not exist), its
    user, how many turns it has had, its turns from some index on (always to the
    last), and its version (how many writes it has had).

    A store keeps a session's last turns only (``limits.max_session_turns``): turns
    asked from an index before the first kept start at the first kept
    (:attr:`first`).
    """

    epoch: str
    user: str | None
    count: int
    turns: list[dict[str, Any]] = field(default_factory=list)
    version: int = 0

    @property
    def first(self) -> int:
        """
        The index of the first of :attr:`turns` in the session.
        """
        return self.count - len(self.turns)


@dataclass(frozen=True, slots=True)
class Changed:
    """
    A write some replica made: the session, its epoch, its turn count and version after
    the write, and the turn written (the last of the ``count``: appended, or in place of
    the last).
    """

    tenant: str
    session_id: str
    epoch: str
    count: int
    version: int
    turn: dict[str, Any]

    def encode(self) -> str:
        """
        The change as published: a JSON header line, then the turn's JSON.
        """
        head = change_header(self.tenant, self.session_id, self.epoch, self.count)
        return change_message(head, self.version, json.dumps(self.turn))

    @classmethod
    def decode(cls, message: str | bytes) -> Changed:
        """
        The change of a published message (UTF-8 JSON, never pickle).

        Raises:
            ValueError: It is not one.
        """
        if isinstance(message, bytes):
            try:
                message = message.decode()
            except UnicodeDecodeError as exc:
                raise ValueError(f"not a session change: {exc}") from None
        header, sep, body = message.partition("\n")
        try:
            tenant, session_id, epoch, count, version = json.loads(header)
            turn = json.loads(body)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a session change: {exc}") from None
        numbers = (count, version)
        if not (sep and isinstance(turn, dict) and all(type(n) is int and n > 0 for n in numbers)):
            raise ValueError("not a session change: bad header or turn")
        if not all(isinstance(x, str) for x in (tenant, session_id, epoch)):
            raise ValueError("not a session change: bad header")
        return cls(tenant, session_id, epoch, count, version, turn)


def change_header(tenant: str, session_id: str, epoch: str, count: int) -> str:
    """
    A change's header line as published, up to its version (which the write's script
    adds, with the closing bracket, the line's end and the turn).
    """
    return json.dumps([tenant, session_id, epoch, count])[:-1] + ","


def change_message(header: str, version: int, turn: str) -> str:
    """
    A change as published, of its header up to the version (:func:`change_header`) and its
    turn in JSON: what the write scripts publish on Redis, in Lua.
    """
    return f"{header}{version}]\n{turn}"


class Changes:
    """
    The changes among published messages, which ``receive`` gives one at a time; a
    message that is not one is logged and skipped.
    """

    def __init__(self, receive: Callable[[], Awaitable[str | bytes]]) -> None:
        self.receive = receive

    def __aiter__(self) -> Changes:
        return self

    async def __anext__(self) -> Changed:
        while True:
            try:
                message = await self.receive()
            except anyio.EndOfStream:
                raise StopAsyncIteration from None
            try:
                return Changed.decode(message)
            except ValueError as exc:
                logger.warning("skipped a published message: %s", exc)


class Held(Protocol):
    """
    A session while its lease is held, or as known to write without it: what was read
    when the lease was taken, and the writes that end the change (each also releases
    the lease).
    """

    #: The session as read when the lease was taken (turns from the start asked for),
    #: or as known (:meth:`SessionStore.unleased`).
    stored: StoredSession

    async def read(self, start: int = 0) -> StoredSession:
        """
        The session again, with its turns from ``start`` on.
        """
        ...

    async def append(
        self, turn: Mapping[str, Any], *, expected: int, epoch: str, user: str | None
    ) -> int:
        """
        Add a turn after the ``expected`` ones (the first one creates the session with
        ``epoch`` and ``user``), and release the lease; the session's new version.

        Raises:
            StoreConflict: The session does not have ``expected`` turns.
        """
        ...

    async def update_last(self, turn: Mapping[str, Any], *, count: int, epoch: str) -> int:
        """
        Replace the last of the session's ``count`` turns (a reply, a call), and
        release the lease; the session's new version.

        Raises:
            StoreConflict: The session changed.
        """
        ...


class SessionStore(Protocol):
    """
    What the server needs of a session store.
    """

    #: Whether other processes share it (replicas need a shared one).
    shared: bool
    #: How long a change waits for its session's lease.
    lease_wait_s: float

    def hold(
        self, tenant: str, session_id: str, start: int = 0
    ) -> AbstractAsyncContextManager[Held]:
        """
        Take the session's lease (waiting for another holder at most the store's
        ``lease_wait_s``) and read the session's turns from ``start`` on; release the
        lease on the way out, unless a write did.

        Raises:
            SessionBusy: The lease was not free within the wait.
            StoreUnavailable: The store cannot be reached.
        """
        ...

    def unleased(self, tenant: str, session_id: str, known: StoredSession) -> Held:
        """
        The session as the caller knows it (``known``: its epoch, turn count and
        version; no turns need be given), to write without its lease: a write costs
        one round trip, and is refused (:class:`StoreConflict`) unless the session is
        still at ``known.version`` and nobody holds its lease.
        """
        ...

    async def read(self, tenant: str, session_id: str, start: int = 0) -> StoredSession:
        """
        The session, with its turns from ``start`` on (without its lease).
        """
        ...

    async def delete(self, tenant: str, session_id: str) -> bool:
        """
        Forget the session; whether it existed.
        """
        ...

    def session_ids(
        self, tenant: str, *, since: float | None = None, until: float | None = None
    ) -> AsyncIterator[list[str]]:
        """
        The ids of the tenant's stored sessions, a page at a time, in no order. A
        session stored or forgotten meanwhile may be in them or not, and on Redis an
        id may come twice. With ``since`` or ``until`` (seconds since the epoch), at
        least those whose last written turn was served at or after ``since`` and
        before ``until`` (the ``at`` it holds): a store may list more (the memory
        store lists them all), and the caller judges each by its turns.

        Raises:
            StoreUnavailable: The store cannot be reached.
        """
        ...

    def changes(self) -> AbstractAsyncContextManager[AsyncIterator[Changed]]:
        """
        Listen to the writes every user of the store makes (this one's too), from the
        moment the context is entered: each accepted append or update of a turn, in the
        order they were made. Writes made while nobody listened are not replayed.

        Raises:
            StoreUnavailable: The store cannot be reached (on entering, or while
                iterating: the listening then ended).
        """
        ...

    async def ping(self) -> None:
        """
        Raises:
            StoreUnavailable: The store cannot be reached.
        """
        ...

    async def aclose(self) -> None:
        """
        Release connections.
        """
        ...


class OneAtATime:
    """
    One holder at a time for each key, in this process: a session's lease in the
    memory store, or a session's changes in a replica.

    Args:
        wait_s: How long a holder waits for another before giving up.
    """

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self._locks: dict[Hashable, tuple[anyio.Lock, int]] = {}  # with holder and waiters

    def __contains__(self, key: Hashable) -> bool:
        """
        Whether the key is held, or waited for.
        """
        return key in self._locks

    def held(self, key: Hashable) -> bool:
        """
        Whether the key is held.
        """
        found = self._locks.get(key)
        return found is not None and found[0].locked()

    @asynccontextmanager
    async def hold(self, key: Hashable, session_id: str) -> AsyncIterator[None]:
        """
        Hold the key in the block, once its holder (if any) is done.

        Raises:
            SessionBusy: It was not free within ``wait_s`` (``session_id`` names it).
        """
        lock, users = self._locks.get(key) or (anyio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            try:  # no trip through the loop when it is free: under load, one costs ms
                lock.acquire_nowait()
            except anyio.WouldBlock:
                with anyio.move_on_after(self.wait_s) as scope:
                    await lock.acquire()
                if scope.cancelled_caught:
                    raise SessionBusy(session_id) from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def served_at(turn: Mapping[str, Any]) -> float | None:
    """
    When a stored turn was served (its ``at``, seconds since the epoch), None if it
    holds no time (turns stored before replicas kept their times) or one that is not
    finite (no time a session log or the tenant's index can hold).
    """
    at = turn.get("at")
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        return None
    return float(at)


def new_epoch() -> str:
    """
    A fresh epoch token.
    """
    return secrets.token_hex(8)
