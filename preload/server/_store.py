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

On Redis a session is two keys, ``{prefix}:{tenant}:{id}:turns`` (a list) and
``...:meta`` (a hash with ``epoch`` and ``user``), both expiring ``session_ttl_s``
after the last write; a lease is ``...:lease`` (``SET NX PX`` with an owner token,
released by compare-and-delete). Durability is Redis': run it with
``appendonly yes`` so that a restart loses no accepted turn. The write's script also
publishes the change on the channel ``{prefix}:changes`` (Redis pub/sub: a replica not
listening at that moment misses it, and catches up at the session's next change there).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from ..caches._redis import RELEASE_SCRIPT

logger = logging.getLogger(__name__)

__all__ = [
    "Changed",
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
#: false when another holds the lease, else {epoch, user, version, count, turns}.
HOLD_SCRIPT = """
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local epoch = redis.call('hget', KEYS[2], 'epoch') or ''
local user = redis.call('hget', KEYS[2], 'user') or ''
local version = redis.call('hget', KEYS[2], 'version') or 0
return {epoch, user, version, redis.call('llen', KEYS[3]), redis.call('lrange', KEYS[3], ARGV[3], -1)}
"""

#: Whether a write may go ahead: under the lease (the token ARGV[{token}] given), always;
#: without it (the token empty), only while nobody holds the lease and the session is
#: still at the version ARGV[{version}] the writer knows.
_MAY_WRITE = """
local may = ARGV[{token}] ~= ''
if not may then
  may = redis.call('exists', KEYS[3]) == 0
    and (redis.call('hget', KEYS[2], 'version') or '0') == ARGV[{version}]
end
"""

#: Releases the lease if it is still the writer's (ARGV[{token}]).
_RELEASE = """
if ARGV[{token}] ~= '' and redis.call('get', KEYS[3]) == ARGV[{token}] then
  redis.call('del', KEYS[3])
end
return out
"""

#: Appends a turn only when the list has the expected length (setting the meta on the
#: first turn, counting the session's version, refreshing both keys' TTL, publishing
#: the change on the channel ARGV[7]: ARGV[8], the version, then the turn) and the
#: writer may (:data:`_MAY_WRITE`), then releases the lease if it is still ARGV[6]'s.
#: Returns the new version, or -1.
APPEND_SCRIPT = (
    _MAY_WRITE.format(token=6, version=9)
    + """
local n = redis.call('llen', KEYS[1])
local out = -1
if may and n == tonumber(ARGV[1]) then
  if n == 0 then redis.call('hset', KEYS[2], 'epoch', ARGV[3], 'user', ARGV[4]) end
  redis.call('rpush', KEYS[1], ARGV[2])
  out = redis.call('hincrby', KEYS[2], 'version', 1)
  redis.call('pexpire', KEYS[1], ARGV[5])
  redis.call('pexpire', KEYS[2], ARGV[5])
  redis.call('publish', ARGV[7], ARGV[8] .. out .. ']\\n' .. ARGV[2])
end
"""
    + _RELEASE.format(token=6)
)

#: Replaces the last turn when the list has the expected length and epoch and the
#: writer may (counting the version, publishing the change on the channel ARGV[6] as
#: APPEND_SCRIPT does), then releases the lease if it is still ARGV[5]'s. Returns the
#: new version, or -1.
UPDATE_SCRIPT = (
    _MAY_WRITE.format(token=5, version=8)
    + """
local n = redis.call('llen', KEYS[1])
local out = -1
if may and n == tonumber(ARGV[1]) and n > 0 and redis.call('hget', KEYS[2], 'epoch') == ARGV[3] then
  redis.call('lset', KEYS[1], -1, ARGV[2])
  out = redis.call('hincrby', KEYS[2], 'version', 1)
  redis.call('pexpire', KEYS[1], ARGV[4])
  redis.call('pexpire', KEYS[2], ARGV[4])
  redis.call('publish', ARGV[6], ARGV[7] .. out .. ']\\n' .. ARGV[2])
end
"""
    + _RELEASE.format(token=5)
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
    user, how many turns it has, its turns from some index on, and its version (how
    many writes it has had).
    """

    epoch: str
    user: str | None
    count: int
    turns: list[dict[str, Any]] = field(default_factory=list)
    version: int = 0


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
        head = _header(self.tenant, self.session_id, self.epoch, self.count)
        return _message(head, self.version, json.dumps(self.turn))

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


def _header(tenant: str, session_id: str, epoch: str, count: int) -> str:
    """
    A change's header line as published, up to its version (which the write's script
    adds, with the closing bracket, the line's end and the turn).
    """
    return json.dumps([tenant, session_id, epoch, count])[:-1] + ","


def _message(header: str, version: int, turn: str) -> str:
    """
    A change as published, of its header up to the version (:func:`_header`) and its
    turn in JSON: what the write scripts publish on Redis, in Lua.
    """
    return f"{header}{version}]\n{turn}"


class _Changes:
    """
    The changes among published messages, which ``receive`` gives one at a time; a
    message that is not one is logged and skipped.
    """

    def __init__(self, receive: Callable[[], Awaitable[str | bytes]]) -> None:
        self.receive = receive

    def __aiter__(self) -> _Changes:
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
    version: int = 0


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
        turns = [json.loads(t) for t in held.turns[start:]]
        return StoredSession(held.epoch, held.user, len(held.turns), turns, held.version)

    def _append(
        self,
        key: tuple[str, str],
        turn: Mapping[str, Any],
        expected: int,
        epoch: str,
        user: str | None,
    ) -> int:
        held = self._sessions.get(key)
        if (len(held.turns) if held is not None else 0) != expected:
            raise StoreConflict(key[1])
        if held is None:
            while len(self._sessions) >= self.max_sessions:
                del self._sessions[next(iter(self._sessions))]
            held = self._sessions[key] = _Session(epoch, user, [])
        held.turns.append(json.dumps(turn))
        return self._announce(key, held)

    def _update_last(
        self, key: tuple[str, str], turn: Mapping[str, Any], count: int, epoch: str
    ) -> int:
        held = self._sessions.get(key)
        if held is None or len(held.turns) != count or held.epoch != epoch or not count:
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
            header = _header(*key, held.epoch, len(held.turns))
            message = _message(header, held.version, held.turns[-1])
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
                yield _Changes(receive.receive)
        finally:
            self._listeners.remove(send)
            send.close()

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


class RedisSessionStore:
    """
    Sessions in Redis, shared by every replica that uses the same URL and prefix.

    Taking the lease reads the session in the same round trip, and each write releases
    the lease in its own: a change costs two round trips, one without the lease.

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
        self.channel = f"{prefix}:changes"
        self.session_ttl_ms = int(session_ttl_s * 1000)
        self.lease_ttl_ms = int(lease_ttl_s * 1000)
        self.lease_wait_s = lease_wait_s
        self._redis = Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True
        )
        # what listens to the changes reads bytes: it decodes them itself, so that a
        # message that is not text is skipped rather than ending the listening
        self._listen = Redis.from_url(url, socket_connect_timeout=timeout_s)
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
        epoch, user, version, count, raw = got
        stored = (
            StoredSession(epoch, user or None, count, [json.loads(t) for t in raw], int(version))
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

    def unleased(self, tenant: str, session_id: str, known: StoredSession) -> Held:
        return _RedisHeld(self, tenant, session_id, known, token="")

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
            found.get("epoch", ""),
            found.get("user") or None,
            count,
            [json.loads(t) for t in raw],
            int(found.get("version", 0)),
        )

    async def delete(self, tenant: str, session_id: str) -> bool:
        turns, meta, _ = self.keys(tenant, session_id)
        return bool(await self._call(self._redis.delete(turns, meta)))

    @asynccontextmanager
    async def changes(self) -> AsyncIterator[AsyncIterator[Changed]]:
        pubsub = self._listen.pubsub()
        try:
            await self._call(pubsub.subscribe(self.channel))
            while True:  # listening once Redis confirms it
                message = await self._call(pubsub.get_message(timeout=None))
                if message is not None and message["type"] == "subscribe":
                    break

            async def receive() -> bytes:
                while True:
                    message = await self._call(pubsub.get_message(timeout=None))
                    if message is not None and message["type"] == "message":
                        return bytes(message["data"])

            yield _Changes(receive)
        finally:
            # the connection is dropped either way
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0), suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def ping(self) -> None:
        await self._call(self._redis.ping())

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
            await self._redis.aclose()
            await self._listen.aclose()

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
    token: str  # empty: written without the lease, at stored.version
    released: bool = False

    async def read(self, start: int = 0) -> StoredSession:
        return await self.store.read(self.tenant, self.session_id, start)

    async def append(
        self, turn: Mapping[str, Any], *, expected: int, epoch: str, user: str | None
    ) -> int:
        keys = list(self.store.keys(self.tenant, self.session_id))
        args: list[str | int] = [
            expected,
            json.dumps(turn),
            epoch,
            user or "",
            self.store.session_ttl_ms,
            self.token,
            self.store.channel,
            _header(self.tenant, self.session_id, epoch, expected + 1),
            self.stored.version,
        ]
        out = await self.store._call(self.store._append(keys=keys, args=args))
        self.released = True
        if out < 0:
            raise StoreConflict(self.session_id)
        return int(out)

    async def update_last(self, turn: Mapping[str, Any], *, count: int, epoch: str) -> int:
        keys = list(self.store.keys(self.tenant, self.session_id))
        args: list[str | int] = [
            count,
            json.dumps(turn),
            epoch,
            self.store.session_ttl_ms,
            self.token,
            self.store.channel,
            _header(self.tenant, self.session_id, epoch, count),
            self.stored.version,
        ]
        out = await self.store._call(self.store._update(keys=keys, args=args))
        self.released = True
        if out < 0:
            raise StoreConflict(self.session_id)
        return int(out)
