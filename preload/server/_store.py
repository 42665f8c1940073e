"""
Where the server keeps sessions: in the process, or in Redis so that replicas share them.

A session is its list of turns (what :meth:`~preload.PreloadEngine.turns_of` gives,
with the ``request_id`` the client sent) and an *epoch*: a token made when the session
is created, so that a replica that remembers a session deleted since and created anew
knows to forget it. Turns are JSON, never pickle.

Every change happens under the session's lease (:meth:`SessionStore.lease`), and an
append is also a version check: it names how many turns it expects to follow, and is
refused (:class:`StoreConflict`) when another writer came first.

On Redis a session is two keys, ``{prefix}:{tenant}:{id}:turns`` (a list) and
``...:meta`` (a hash with ``epoch`` and ``user``), both expiring ``session_ttl_s``
after the last write; a lease is ``...:lease`` (``SET NX PX`` with an owner token,
released by compare-and-delete). Durability is Redis': run it with
``appendonly yes`` so that a restart loses no accepted turn.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from ..caches._redis import RELEASE_SCRIPT

logger = logging.getLogger(__name__)

__all__ = [
    "Held",
    "MemorySessionStore",
    "RedisSessionStore",
    "SessionBusy",
    "SessionStore",
    "StoreConflict",
    "StoreUnavailable",
    "StoredSession",
]

#: Takes the lease when it is free and reads the session from ARGV[3] on, in one trip:
#: false when another holds the lease, else {epoch, user, count, turns}.
HOLD_SCRIPT = """
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local epoch = redis.call('hget', KEYS[2], 'epoch') or ''
local user = redis.call('hget', KEYS[2], 'user') or ''
return {epoch, user, redis.call('llen', KEYS[3]), redis.call('lrange', KEYS[3], ARGV[3], -1)}
"""

#: Appends a turn only when the list has the expected length (setting the meta on the
#: first turn, refreshing both keys' TTL), then releases the lease if it is still
#: ARGV[6]'s. Returns the new length, or -1.
APPEND_SCRIPT = """
local n = redis.call('llen', KEYS[1])
local out = -1
if n == tonumber(ARGV[1]) then
  if n == 0 then redis.call('hset', KEYS[2], 'epoch', ARGV[3], 'user', ARGV[4]) end
  out = redis.call('rpush', KEYS[1], ARGV[2])
  redis.call('pexpire', KEYS[1], ARGV[5])
  redis.call('pexpire', KEYS[2], ARGV[5])
end
if redis.call('get', KEYS[3]) == ARGV[6] then redis.call('del', KEYS[3]) end
return out
"""

#: Replaces the last turn when the list has the expected length and epoch, then
#: releases the lease if it is still ARGV[5]'s. Returns the length, or -1.
UPDATE_SCRIPT = """
local n = redis.call('llen', KEYS[1])
local out = -1
if n == tonumber(ARGV[1]) and n > 0 and redis.call('hget', KEYS[2], 'epoch') == ARGV[3] then
  redis.call('lset', KEYS[1], -1, ARGV[2])
  redis.call('pexpire', KEYS[1], ARGV[4])
  redis.call('pexpire', KEYS[2], ARGV[4])
  out = n
end
if redis.call('get', KEYS[3]) == ARGV[5] then redis.call('del', KEYS[3]) end
return out
"""


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
    user, how many turns it has, and its turns from some index on.
    """

    epoch: str
    user: str | None
    count: int
    turns: list[dict[str, Any]] = field(default_factory=list)


class Held(Protocol):
    """
    A session while its lease is held: what was read when it was taken, and the writes
    that end the change (each also releases the lease).
    """

    #: The session as read when the lease was taken (turns from the start asked for).
    stored: StoredSession

    async def read(self, start: int = 0) -> StoredSession:
        """
        The session again, with its turns from ``start`` on.
        """
        ...

    async def append(
        self, turn: Mapping[str, Any], *, expected: int, epoch: str, user: str | None
    ) -> None:
        """
        Add a turn after the ``expected`` ones (the first one creates the session with
        ``epoch`` and ``user``), and release the lease.

        Raises:
            StoreConflict: The session does not have ``expected`` turns.
        """
        ...

    async def update_last(self, turn: Mapping[str, Any], *, count: int, epoch: str) -> None:
        """
        Replace the last of the session's ``count`` turns (a reply, a call), and
        release the lease.

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


def new_epoch() -> str:
    """
    A fresh epoch token.
    """
    return secrets.token_hex(8)


@dataclass(slots=True)
class _Session:
    epoch: str
    user: str | None
    turns: list[str]


class MemorySessionStore:
    """
    Sessions in this process (one replica); turns are kept as JSON text, as on Redis,
    so that both stores give the same copies.

    Args:
        lease_wait_s: How long a request waits for its session's lease.
        max_sessions: Sessions kept; the oldest go first.
    """

    shared = False

    def __init__(self, *, lease_wait_s: float = 5.0, max_sessions: int = 100_000) -> None:
        self.lease_wait_s = lease_wait_s
        self.max_sessions = max_sessions
        self._sessions: dict[tuple[str, str], _Session] = {}
        self._locks: dict[tuple[str, str], tuple[anyio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, tenant: str, session_id: str, start: int = 0) -> AsyncIterator[Held]:
        key = (tenant, session_id)
        lock, users = self._locks.get(key) or (anyio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            with anyio.move_on_after(self.lease_wait_s) as scope:
                await lock.acquire()
            if scope.cancelled_caught:
                raise SessionBusy(session_id)
            try:
                yield _MemoryHeld(self, tenant, session_id, await self.read(*key, start))
            finally:
                lock.release()
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def read(self, tenant: str, session_id: str, start: int = 0) -> StoredSession:
        held = self._sessions.get((tenant, session_id))
        if held is None:
            return StoredSession("", None, 0)
        turns = [json.loads(t) for t in held.turns[start:]]
        return StoredSession(held.epoch, held.user, len(held.turns), turns)

    def _append(
        self,
        key: tuple[str, str],
        turn: Mapping[str, Any],
        expected: int,
        epoch: str,
        user: str | None,
    ) -> None:
        held = self._sessions.get(key)
        if (len(held.turns) if held is not None else 0) != expected:
            raise StoreConflict(key[1])
        if held is None:
            while len(self._sessions) >= self.max_sessions:
                del self._sessions[next(iter(self._sessions))]
            held = self._sessions[key] = _Session(epoch, user, [])
        held.turns.append(json.dumps(turn))

    def _update_last(
        self, key: tuple[str, str], turn: Mapping[str, Any], count: int, epoch: str
    ) -> None:
        held = self._sessions.get(key)
        if held is None or len(held.turns) != count or held.epoch != epoch or not count:
            raise StoreConflict(key[1])
        held.turns[-1] = json.dumps(turn)

    async def delete(self, tenant: str, session_id: str) -> bool:
        return self._sessions.pop((tenant, session_id), None) is not None

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

    async def read(self, start: int = 0) -> StoredSession:
        return await self.store.read(self.tenant, self.session_id, start)

    async def append(
        self, turn: Mapping[str, Any], *, expected: int, epoch: str, user: str | None
    ) -> None:
        self.store._append((self.tenant, self.session_id), turn, expected, epoch, user)

    async def update_last(self, turn: Mapping[str, Any], *, count: int, epoch: str) -> None:
        self.store._update_last((self.tenant, self.session_id), turn, count, epoch)


class RedisSessionStore:
    """
    Sessions in Redis, shared by every replica that uses the same URL and prefix.

    Taking the lease reads the session in the same round trip, and each write releases
    the lease in its own: a change costs two round trips.

    Args:
        url: The Redis URL (``redis://``, ``rediss://``, ``unix://``).
        prefix: The prefix of every key.
        session_ttl_s: How long a session lives after its last write.
        lease_ttl_s: The longest a lease is held (when its holder dies).
        lease_wait_s: How long a request waits for its session's lease.
        timeout_s: The deadline of one Redis call.
    """

    shared = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "preload:session",
        session_ttl_s: float = 7 * 86_400,
        lease_ttl_s: float = 15.0,
        lease_wait_s: float = 5.0,
        timeout_s: float = 1.0,
    ) -> None:
        from redis.asyncio import Redis

        self.prefix = prefix
        self.session_ttl_ms = int(session_ttl_s * 1000)
        self.lease_ttl_ms = int(lease_ttl_s * 1000)
        self.lease_wait_s = lease_wait_s
        self._redis = Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True
        )
        self._hold = self._redis.register_script(HOLD_SCRIPT)
        self._append = self._redis.register_script(APPEND_SCRIPT)
        self._update = self._redis.register_script(UPDATE_SCRIPT)
        self._release = self._redis.register_script(RELEASE_SCRIPT)

    def keys(self, tenant: str, session_id: str) -> tuple[str, str, str]:
        """
        The session's keys: its turns, its meta and its lease.
        """
        base = f"{self.prefix}:{tenant}:{session_id}"
        return f"{base}:turns", f"{base}:meta", f"{base}:lease"

    @asynccontextmanager
    async def hold(self, tenant: str, session_id: str, start: int = 0) -> AsyncIterator[Held]:
        turns, meta, lease = self.keys(tenant, session_id)
        token = secrets.token_hex(8)
        pause = 0.002
        got: Any = None
        with anyio.move_on_after(self.lease_wait_s):
            while True:
                got = await self._call(
                    self._hold(keys=[lease, meta, turns], args=[token, self.lease_ttl_ms, start])
                )
                if got:
                    break
                await anyio.sleep(pause)  # another request of the session holds it
                pause = min(pause * 2, 0.05)
        if not got:
            raise SessionBusy(session_id)
        epoch, user, count, raw = got
        stored = (
            StoredSession(epoch, user or None, count, [json.loads(t) for t in raw])
            if count
            else StoredSession("", None, 0)
        )
        held = _RedisHeld(self, tenant, session_id, stored, token)
        try:
            yield held
        finally:
            if not held.released:
                with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                    try:
                        await self._release(keys=[lease], args=[token])
                    except Exception:  # the lease expires on its own
                        logger.debug("lease %s not released", lease, exc_info=True)

    async def read(self, tenant: str, session_id: str, start: int = 0) -> StoredSession:
        turns, meta, _ = self.keys(tenant, session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(meta)
            pipe.llen(turns)
            pipe.lrange(turns, start, -1)
            found, count, raw = await self._call(pipe.execute())
        if not count:
            return StoredSession("", None, 0)
        return StoredSession(
            found.get("epoch", ""), found.get("user") or None, count, [json.loads(t) for t in raw]
        )

    async def delete(self, tenant: str, session_id: str) -> bool:
        turns, meta, _ = self.keys(tenant, session_id)
        return bool(await self._call(self._redis.delete(turns, meta)))

    async def ping(self) -> None:
        await self._call(self._redis.ping())

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
            await self._redis.aclose()

    @staticmethod
    async def _call(awaitable: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc) or type(exc).__name__) from exc


@dataclass(slots=True)
class _RedisHeld:
    store: RedisSessionStore
    tenant: str
    session_id: str
    stored: StoredSession
    token: str
    released: bool = False

    async def read(self, start: int = 0) -> StoredSession:
        return await self.store.read(self.tenant, self.session_id, start)

    async def append(
        self, turn: Mapping[str, Any], *, expected: int, epoch: str, user: str | None
    ) -> None:
        keys = list(self.store.keys(self.tenant, self.session_id))
        args: list[str | int] = [
            expected,
            json.dumps(turn),
            epoch,
            user or "",
            self.store.session_ttl_ms,
            self.token,
        ]
        out = await self.store._call(self.store._append(keys=keys, args=args))
        self.released = True
        if out < 0:
            raise StoreConflict(self.session_id)

    async def update_last(self, turn: Mapping[str, Any], *, count: int, epoch: str) -> None:
        keys = list(self.store.keys(self.tenant, self.session_id))
        args: list[str | int] = [
            count,
            json.dumps(turn),
            epoch,
            self.store.session_ttl_ms,
            self.token,
        ]
        out = await self.store._call(self.store._update(keys=keys, args=args))
        self.released = True
        if out < 0:
            raise StoreConflict(self.session_id)
