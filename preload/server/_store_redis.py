"""
Sessions in Redis, so that replicas share them.

On Redis a session is two keys, ``{prefix}:{tenant}:{id}:turns`` (a list of its last
``max_turns`` turns) and ``...:meta`` (a hash with ``epoch``, ``user``, ``version`` and
``count``, every turn it had; a session written before ``count`` was kept counts the
list's length), both expiring ``session_ttl_s`` after the last write; a lease is ``...:lease`` (``SET NX PX`` with an owner token,
released by compare-and-delete). A tenant's sessions are also indexed by when they were
last served: ``{prefix}:{tenant}:served``, a sorted set of session ids scored by the
``at`` of their last written turn (seconds since the epoch), which each write updates
and trims of the sessions last served ``session_ttl_s`` before, and which expires with
the tenant's last session; an export of a window of time reads the window's sessions
alone. Durability is Redis': run it with
``appendonly yes`` so that a restart loses no accepted turn. The write's script also
publishes the change on the channel ``{prefix}:changes`` (Redis pub/sub: a replica not
listening at that moment misses it, and catches up at the session's next change there).
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import anyio

from ..caches._redis import RELEASE_SCRIPT
from ._store import (
    PAGE,
    Changed,
    Changes,
    Held,
    SessionBusy,
    StoreConflict,
    StoredSession,
    StoreUnavailable,
    change_header,
    served_at,
)

logger = logging.getLogger(__name__)

__all__ = ["APPEND_SCRIPT", "HOLD_SCRIPT", "READ_SCRIPT", "UPDATE_SCRIPT", "RedisSessionStore"]

#: The session's turn count: ``count`` in its meta (KEYS[2]), or, for a session written
#: before it was kept, the length of its list (KEYS[{turns}]).
_COUNT = """
local count = tonumber(redis.call('hget', KEYS[2], 'count')) or redis.call('llen', KEYS[{turns}])
"""

#: Reads the session (meta KEYS[2], list KEYS[{turns}]) from the turn ARGV[{start}] on
#: (counted from the session's first turn, the list holding the last ones; negative:
#: from the end): {epoch, user, version, count, turns}.
_READ = (
    _COUNT
    + """
local start = tonumber(ARGV[{start}])
if start > 0 then
  start = math.max(0, start - (count - redis.call('llen', KEYS[{turns}])))
end
local epoch = redis.call('hget', KEYS[2], 'epoch') or ''
local user = redis.call('hget', KEYS[2], 'user') or ''
local version = redis.call('hget', KEYS[2], 'version') or 0
return {{epoch, user, version, count, redis.call('lrange', KEYS[{turns}], start, -1)}}
"""
)

#: Takes the lease when it is free and reads the session from ARGV[3] on, in one trip:
#: false when another holds the lease, else {epoch, user, version, count, turns}.
HOLD_SCRIPT = """
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
""" + _READ.format(turns=3, start=3)

#: Reads the session from ARGV[1] on, in one trip: {epoch, user, version, count, turns}.
READ_SCRIPT = _READ.format(turns=1, start=1)

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

#: Ends a write the script made (the turn ARGV[2]): counts the session's version,
#: refreshes both keys' TTL (ARGV[{ttl}]), scores the session (ARGV[{id}]) in the
#: tenant's index (KEYS[4]) by when its turn was served (ARGV[{at}], when the turn holds
#: it), leaving out the sessions last served a TTL before, and publishes the change on
#: the channel ARGV[{channel}] (ARGV[{prefix}], the version, then the turn).
_COMMIT = """\
  out = redis.call('hincrby', KEYS[2], 'version', 1)
  redis.call('pexpire', KEYS[1], ARGV[{ttl}])
  redis.call('pexpire', KEYS[2], ARGV[{ttl}])
  local at = tonumber(ARGV[{at}])
  if at then
    redis.call('zadd', KEYS[4], at, ARGV[{id}])
    redis.call('zremrangebyscore', KEYS[4], '-inf', '(' .. (at - ARGV[{ttl}] / 1000))
    redis.call('pexpire', KEYS[4], ARGV[{ttl}])
  end
  redis.call('publish', ARGV[{channel}], ARGV[{prefix}] .. out .. ']\\n' .. ARGV[2])
end
"""

#: Releases the lease if it is still the writer's (ARGV[{token}]).
_RELEASE = """
if ARGV[{token}] ~= '' and redis.call('get', KEYS[3]) == ARGV[{token}] then
  redis.call('del', KEYS[3])
end
return out
"""

#: Appends a turn only when the session has the expected turn count (setting the meta
#: on the first turn, counting the turn and the session's version, keeping the list's
#: last ARGV[10] turns when it is positive, refreshing both keys' TTL, scoring the
#: session ARGV[12] in the tenant's index by ARGV[11], publishing the change on the
#: channel ARGV[7]: ARGV[8], the version, then the turn) and the writer may
#: (:data:`_MAY_WRITE`), then releases the lease if it is still ARGV[6]'s. Returns the
#: new version, or -1.
APPEND_SCRIPT = (
    _MAY_WRITE.format(token=6, version=9)
    + _COUNT.format(turns=1)
    + """
local out = -1
if may and count == tonumber(ARGV[1]) then
  if count == 0 then redis.call('hset', KEYS[2], 'epoch', ARGV[3], 'user', ARGV[4]) end
  redis.call('rpush', KEYS[1], ARGV[2])
  redis.call('hset', KEYS[2], 'count', count + 1)
  local keep = tonumber(ARGV[10])
  if keep > 0 then redis.call('ltrim', KEYS[1], -keep, -1) end
"""
    + _COMMIT.format(ttl=5, channel=7, prefix=8, at=11, id=12)
    + _RELEASE.format(token=6)
)

#: Replaces the last turn when the session has the expected turn count and epoch and
#: the writer may (counting the version, scoring the session ARGV[10] in the tenant's
#: index by ARGV[9], publishing the change on the channel ARGV[6] as APPEND_SCRIPT
#: does), then releases the lease if it is still ARGV[5]'s. Returns the new version,
#: or -1.
UPDATE_SCRIPT = (
    _MAY_WRITE.format(token=5, version=8)
    + _COUNT.format(turns=1)
    + """
local out = -1
if may and count == tonumber(ARGV[1]) and count > 0
  and redis.call('hget', KEYS[2], 'epoch') == ARGV[3] then
  redis.call('lset', KEYS[1], -1, ARGV[2])
"""
    + _COMMIT.format(ttl=4, channel=6, prefix=7, at=9, id=10)
    + _RELEASE.format(token=5)
)


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
        max_turns: The turns kept of a session, the last (None: all); its turn count
            still counts every turn.
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
        max_turns: int | None = None,
    ) -> None:
        from redis.asyncio import Redis

        self.prefix = prefix
        self.max_turns = max_turns
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
        self._read = self._redis.register_script(READ_SCRIPT)
        self._append = self._redis.register_script(APPEND_SCRIPT)
        self._update = self._redis.register_script(UPDATE_SCRIPT)
        self._release = self._redis.register_script(RELEASE_SCRIPT)

    def keys(self, tenant: str, session_id: str) -> tuple[str, str, str]:
        """
        The session's keys: its turns, its meta and its lease.
        """
        base = f"{self.prefix}:{tenant}:{session_id}"
        return f"{base}:turns", f"{base}:meta", f"{base}:lease"

    def index_key(self, tenant: str) -> str:
        """
        The tenant's index: its sessions scored by when they were last served.
        """
        return f"{self.prefix}:{tenant}:served"

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
        held = _RedisHeld(self, tenant, session_id, _stored(got), token)
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
        return _stored(await self._call(self._read(keys=[turns, meta], args=[start])))

    async def delete(self, tenant: str, session_id: str) -> bool:
        turns, meta, _ = self.keys(tenant, session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(turns, meta)
            pipe.zrem(self.index_key(tenant), session_id)
            deleted, _ = await self._call(pipe.execute())
        return bool(deleted)

    async def session_ids(
        self, tenant: str, *, since: float | None = None, until: float | None = None
    ) -> AsyncIterator[list[str]]:
        if since is not None or until is not None:
            async for page in self._window(tenant, since, until):
                yield page
            return
        # SCAN walks the whole keyspace a page at a time (Redis serves others between
        # pages); a session's meta key names it (tenants and ids hold no ':')
        head = f"{self.prefix}:{tenant}:"
        pattern = f"{_glob_escaped(head)}*:meta"
        cursor = 0
        while True:
            cursor, keys = await self._call(self._redis.scan(cursor, match=pattern, count=PAGE))
            if keys:
                yield [key[len(head) : -len(":meta")] for key in keys]
            if not cursor:
                return

    async def _window(
        self, tenant: str, since: float | None, until: float | None
    ) -> AsyncIterator[list[str]]:
        """
        The ids the tenant's index scores within the window, a page at a time (Redis
        serves others between pages, as between a SCAN's), from the earliest: each page
        starts at the last one's latest score, past the ids of that score it listed. A
        session written meanwhile moves later and may come twice; one of a run of equal
        scores may be passed over if another of the run leaves the index meanwhile.
        """
        key = self.index_key(tenant)
        low = -math.inf if since is None else float(since)
        high = "+inf" if until is None else f"({float(until)!r}"
        listed = 0  # the ids of the score ``low`` already listed
        while True:
            got = await self._call(
                self._redis.zrangebyscore(key, low, high, start=listed, num=PAGE, withscores=True)
            )
            if got:
                yield [session_id for session_id, _ in got]
            if len(got) < PAGE:
                return
            last = got[-1][1]
            tied = sum(1 for _, score in got if score == last)
            listed = listed + tied if last == low else tied
            low = last

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

            yield Changes(receive)
        finally:
            # the connection is dropped either way; redis-py types aclose from 8.2 on only
            close: Any = pubsub.aclose
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0), suppress(Exception):
                await close()

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


def _glob_escaped(text: str) -> str:
    """
    ``text`` matched as it is by a Redis glob pattern.
    """
    return "".join(f"\\{c}" if c in "*?[]\\^" else c for c in text)


def _score(turn: Mapping[str, Any]) -> float | str:
    """
    The turn's time, as the tenant's index scores its session; ``""`` for a turn
    without one (:func:`served_at`), which leaves the index as it is.
    """
    at = served_at(turn)
    return "" if at is None else at


def _stored(got: list[Any]) -> StoredSession:
    """
    The session of a read's reply (:data:`READ_SCRIPT`).
    """
    epoch, user, version, count, raw = got
    if not count:
        return StoredSession("", None, 0)
    return StoredSession(epoch, user or None, count, [json.loads(t) for t in raw], int(version))


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
        keys = [*self.store.keys(self.tenant, self.session_id), self.store.index_key(self.tenant)]
        args: list[str | int | float] = [
            expected,
            json.dumps(turn),
            epoch,
            user or "",
            self.store.session_ttl_ms,
            self.token,
            self.store.channel,
            change_header(self.tenant, self.session_id, epoch, expected + 1),
            self.stored.version,
            self.store.max_turns or 0,
            _score(turn),
            self.session_id,
        ]
        out = await self.store._call(self.store._append(keys=keys, args=args))
        self.released = True
        if out < 0:
            raise StoreConflict(self.session_id)
        return int(out)

    async def update_last(self, turn: Mapping[str, Any], *, count: int, epoch: str) -> int:
        keys = [*self.store.keys(self.tenant, self.session_id), self.store.index_key(self.tenant)]
        args: list[str | int | float] = [
            count,
            json.dumps(turn),
            epoch,
            self.store.session_ttl_ms,
            self.token,
            self.store.channel,
            change_header(self.tenant, self.session_id, epoch, count),
            self.stored.version,
            _score(turn),
            self.session_id,
        ]
        out = await self.store._call(self.store._update(keys=keys, args=args))
        self.released = True
        if out < 0:
            raise StoreConflict(self.session_id)
        return int(out)
