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
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

logger = logging.getLogger(__name__)

__all__ = [
    "MemorySessionStore",
    "RedisSessionStore",
    "SessionBusy",
    "SessionStore",
    "StoreConflict",
    "StoreUnavailable",
    "StoredSession",
]

#: Appends a turn only when the list has the expected length; sets the meta on the
#: first turn and refreshes both keys' TTL. Returns the new length, or -1.
APPEND_SCRIPT = """
local n = redis.call('llen', KEYS[1])
if n ~= tonumber(ARGV[1]) then return -1 end
if n == 0 then redis.call('hset', KEYS[2], 'epoch', ARGV[3], 'user', ARGV[4]) end
local m = redis.call('rpush', KEYS[1], ARGV[2])
redis.call('pexpire', KEYS[1], ARGV[5])
redis.call('pexpire', KEYS[2], ARGV[5])
return m
"""

#: Replaces the last turn when the list has the expected length and epoch.
UPDATE_SCRIPT = """
local n = redis.call('llen', KEYS[1])
if n ~= tonumber(ARGV[1]) or redis.call('hget', KEYS[2], 'epoch') ~= ARGV[3] then
  return -1
end
redis.call('lset', KEYS[1], -1, ARGV[2])
redis.call('pexpire', KEYS[1], ARGV[4])
redis.call('pexpire', KEYS[2], ARGV[4])
return n
"""

RELEASE_SCRIPT = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
    "else return 0 end"
)


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


class SessionStore(Protocol):
    """
    What the server needs of a session store.
    """

    #: Whether other processes share it (replicas need a shared one).
    shared: bool

    def lease(self, tenant: str, session_id: str) -> Any:
        """
        An async context manager that holds the session's lease.

        Raises:
            SessionBusy: The lease was not free within the wait.
            StoreUnavailable: The store cannot be reached.
        """
        ...

    async def read(self, tenant: str, session_id: str, start: int = 0) -> StoredSession:
        """
        The session, with its turns from ``start`` on.
        """
        ...

    async def append(
        self,
        tenant: str,
        session_id: str,
        turn: Mapping[str, Any],
        *,
        expected: int,
        epoch: str,
        user: str | None,
    ) -> None:
        """
        Add a turn after the ``expected`` ones (the first one creates the session
        with ``epoch`` and ``user``).

        Raises:
            StoreConflict: The session does not have ``expected`` turns.
        """
        ...

    async def update_last(
        self, tenant: str, session_id: str, turn: Mapping[str, Any], *, count: int, epoch: str
    ) -> None:
        """
        Replace the last of the session's ``count`` turns (a reply, a call).

        Raises:
            StoreConflict: The session changed.
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
class _Held:
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
        self._sessions: dict[tuple[str, str], _Held] = {}
        self._locks: dict[tuple[str, str], tuple[anyio.Lock, int]] = {}

    @asynccontextmanager
    async def lease(self, tenant: str, session_id: str) -> AsyncIterator[None]:
        key = (tenant, session_id)
        lock, users = self._locks.get(key) or (anyio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            with anyio.move_on_after(self.lease_wait_s) as scope:
                await lock.acquire()
            if scope.cancelled_caught:
                raise SessionBusy(session_id)
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

    async def read(self, tenant: str, session_id: str, start: int = 0) -> StoredSession:
        held = self._sessions.get((tenant, session_id))
        if held is None:
            return StoredSession("", None, 0)
        turns = [json.loads(t) for t in held.turns[start:]]
        return StoredSession(held.epoch, held.user, len(held.turns), turns)

    async def append(
        self,
        tenant: str,
        session_id: str,
        turn: Mapping[str, Any],
        *,
        expected: int,
        epoch: str,
        user: str | None,
    ) -> None:
        key = (tenant, session_id)
        held = self._sessions.get(key)
        if (len(held.turns) if held is not None else 0) != expected:
            raise StoreConflict(session_id)
        if held is None:
            while len(self._sessions) >= self.max_sessions:
                del self._sessions[next(iter(self._sessions))]
            held = self._sessions[key] = _Held(epoch, user, [])
        held.turns.append(json.dumps(turn))

    async def update_last(
        self, tenant: str, session_id: str, turn: Mapping[str, Any], *, count: int, epoch: str
    ) -> None:
        held = self._sessions.get((tenant, session_id))
        if held is None or len(held.turns) != count or held.epoch != epoch or not count:
            raise StoreConflict(session_id)
        held.turns[-1] = json.dumps(turn)

    async def delete(self, tenant: str, session_id: str) -> bool:
        return self._sessions.pop((tenant, session_id), None) is not None

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class RedisSessionStore:
    """
    Sessions in Redis, shared by every replica that uses the same URL and prefix.

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
        self._append = self._redis.register_script(APPEND_SCRIPT)
        self._update = self._redis.register_script(UPDATE_SCRIPT)
        self._release = self._redis.register_script(RELEASE_SCRIPT)

    def _key(self, tenant: str, session_id: str, part: str) -> str:
        return f"{self.prefix}:{tenant}:{session_id}:{part}"

    @asynccontextmanager
    async def lease(self, tenant: str, session_id: str) -> AsyncIterator[None]:
        key = self._key(tenant, session_id, "lease")
        token = secrets.token_hex(8)
        pause = 0.002
        with anyio.move_on_after(self.lease_wait_s) as scope:
            while not await self._call(self._redis.set(key, token, nx=True, px=self.lease_ttl_ms)):
                await anyio.sleep(pause)  # another request of the session holds it
                pause = min(pause * 2, 0.05)
        if scope.cancelled_caught:
            raise SessionBusy(session_id)
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                try:
                    await self._release(keys=[key], args=[token])
                except Exception:  # the lease expires on its own
                    logger.debug("lease %s not released", key, exc_info=True)

    async def read(self, tenant: str, session_id: str, start: int = 0) -> StoredSession:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self._key(tenant, session_id, "meta"))
            pipe.llen(self._key(tenant, session_id, "turns"))
            pipe.lrange(self._key(tenant, session_id, "turns"), start, -1)
            meta, count, raw = await self._call(pipe.execute())
        if not count:
            return StoredSession("", None, 0)
        return StoredSession(
            meta.get("epoch", ""), meta.get("user") or None, count, [json.loads(t) for t in raw]
        )

    async def append(
        self,
        tenant: str,
        session_id: str,
        turn: Mapping[str, Any],
        *,
        expected: int,
        epoch: str,
        user: str | None,
    ) -> None:
        keys = [self._key(tenant, session_id, "turns"), self._key(tenant, session_id, "meta")]
        args: list[str | int] = [expected, json.dumps(turn), epoch, user or "", self.session_ttl_ms]
        if await self._call(self._append(keys=keys, args=args)) < 0:
            raise StoreConflict(session_id)

    async def update_last(
        self, tenant: str, session_id: str, turn: Mapping[str, Any], *, count: int, epoch: str
    ) -> None:
        keys = [self._key(tenant, session_id, "turns"), self._key(tenant, session_id, "meta")]
        args: list[str | int] = [count, json.dumps(turn), epoch, self.session_ttl_ms]
        if await self._call(self._update(keys=keys, args=args)) < 0:
            raise StoreConflict(session_id)

    async def delete(self, tenant: str, session_id: str) -> bool:
        keys = [self._key(tenant, session_id, part) for part in ("turns", "meta")]
        return bool(await self._call(self._redis.delete(*keys)))

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
