"""
The Redis backend of the cache: replicas share warm context and take turns loading.

:class:`RedisCache` stores values in Redis through aiocache's ``RedisCache``
(msgpack with ``encoding=None``, so values reach the serializer as bytes; JSON as
UTF-8 text). Its synchronous ``key in cache`` answers from a local index of keys this
process knows to be warm; a key another replica stored is found by the async
``get``. Leases (``SET NX PX`` with an owner token, released by a compare-and-delete
script) make one replica load a key while the others wait for its value; a lease
whose holder died expires.

When Redis cannot be reached, the cache logs it once, serves from its memory fallback
(a :class:`~preload.caches.MemoryCache` it holds) and keeps serving; it tries Redis
again every ``cache.redis_retry_s`` seconds and logs once more when Redis is back.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import anyio

from .._config import CacheConfig
from .._errors import CacheError, ConfigError
from ._base import CacheStatistics, read_objects
from ._index import DecodedObjects, EntryIndex
from ._memory import MemoryCache
from ._serialization import encode, identity, make_serializer

try:
    from aiocache import RedisCache as AioRedisCache
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover (the redis extra is not installed)
    AioRedisCache = None

__all__ = ["RedisCache"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Deletes a lease only when the token still owns it.
RELEASE_SCRIPT = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
    "else return 0 end"
)

#: Takes a slot of a counted set: gives back the slots of ARGV[4..], forgets those
#: expired (a sorted set of tokens scored by when each expires, on Redis's clock),
#: then adds (or renews) ARGV[1] while fewer than ARGV[2] hold one, for ARGV[3] ms;
#: the set itself expires with its last slot.
TAKE_SLOT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
for i = 4, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
    and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"""


class _Down(Exception):
    """
    Redis is unreachable; the caller falls back to memory.
    """


def _redis_options(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError("cache.redis_url", f"{url!r}: only redis:// and rediss:// are supported")
    db = parts.path.lstrip("/") or "0"
    if not db.isdigit():
        raise ConfigError("cache.redis_url", f"{url!r}: the database must be a number")
    return {
        "endpoint": parts.hostname or "127.0.0.1",
        "port": parts.port or 6379,
        "db": int(db),
        "password": unquote(parts.password) if parts.password else None,
        "ssl": parts.scheme == "rediss",
    }


class RedisCache:
    """
    The cache on Redis, shared by every replica that uses the same URL and namespace.

    It holds a :class:`~preload.caches.MemoryCache` as its fallback: what it stores
    while Redis is down lives there, and is served from there until Redis has the key
    again.

    Args:
        config: The cache section of the engine configuration (``redis_url``,
            ``namespace``, ``redis_timeout_s``, ``redis_retry_s``, bounds and TTLs).
        on_evict: Called with the key of every entry the memory fallback evicts.

    Raises:
        ConfigError: The ``redis`` package is missing or the URL is not usable.

    .. versionadded:: 0.1
    """

    #: Whether other processes read and write the same store.
    shared = True

    def __init__(
        self,
        config: CacheConfig | None = None,
        *,
        on_evict: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config or CacheConfig()
        self._fallback = MemoryCache(self.config, on_evict=on_evict)
        if AioRedisCache is None:  # pragma: no cover
            raise ConfigError(
                "cache.backend",
                "the Redis backend needs the redis package: pip install 'preload[redis]'",
            )
        options = _redis_options(self.config.redis_url)
        timeout = self.config.redis_timeout_s
        self._serializer = make_serializer(self.config)
        # No retries inside redis-py and no aiocache timeout: deadlines and fallback
        # are ours, on the event loop's clock.
        self._redis = AioRedisCache(
            serializer=self._serializer,
            namespace=self.config.namespace,
            timeout=None,
            pool_max_size=self.config.redis_pool_size,
            create_connection_timeout=timeout,
            connection_pool_kwargs={"retry": Retry(NoBackoff(), 0), "socket_timeout": timeout},
            **options,
        )
        self._lease_prefix = f"{self.config.namespace}.lease:"
        # Keys known warm in Redis: their expiry on the loop clock and size in bytes.
        self._warm = EntryIndex(max_entries=self.config.max_entries)
        # Objects decoded from Redis, with the bytes they came from.
        self._decoded: DecodedObjects[tuple[Any, Any]] = DecodedObjects(self.config.decoded_entries)
        self._up = True
        self._retry_at = 0.0
        self._errors = 0
        # Redis hits and misses, and misses of keys the fallback does not hold.
        self._hits = self._misses = 0

    # -- health -----------------------------------------------------------------------

    @property
    def up(self) -> bool:
        """
        Whether the last call to Redis succeeded.
        """
        return self._up

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        if not self._up and anyio.current_time() < self._retry_at:
            raise _Down
        try:
            with anyio.fail_after(self.config.redis_timeout_s):
                result = await fn()
        except (RedisError, OSError, TimeoutError) as exc:
            self._errors += 1
            self._retry_at = anyio.current_time() + self.config.redis_retry_s
            if self._up:
                self._up = False
                logger.warning(
                    "Redis at %s is unreachable (%s); serving from the memory cache and "
                    "retrying every %g s",
                    self.config.redis_url,
                    exc.__class__.__name__,
                    self.config.redis_retry_s,
                )
            raise _Down from exc
        if not self._up:
            self._up = True
            logger.warning("Redis at %s is back; using it again", self.config.redis_url)
        return result

    # -- the synchronous fast path ----------------------------------------------------

    def __contains__(self, key: object) -> bool:
        """
        Whether ``key`` is known warm in Redis (this process stored or read it there,
        and it has not expired) or held by the memory fallback.
        """
        if isinstance(key, str) and key in self._warm:
            if not self._warm.expired(key):
                return True
            self._warm.remove(key)
        return key in self._fallback

    def __len__(self) -> int:
        """
        The number of entries the memory fallback holds (the keys known warm in
        Redis count in :meth:`statistics`).
        """
        return len(self._fallback)

    def peek_object(self, key: str) -> Any:
        """
        The decoded object of ``key`` from the memory fallback only, while Redis is
        down (Redis answers through :meth:`get`, so another replica's writes are
        seen).
        """
        if self._up:
            return None
        return self._fallback.peek_object(key)

    def remember(self, key: str, obj: Any) -> None:
        """
        Keep the decoded ``obj`` of ``key`` for :meth:`peek_object`, when the memory
        fallback holds ``key`` (objects decoded from Redis are kept by
        :meth:`get_objects`, with the bytes they came from).
        """
        self._fallback.remember(key, obj)

    def _know(self, key: str, ttl: float | None, size: int) -> None:
        self._warm.add(key, size, ttl=ttl)
        while self._warm.evict() is not None:
            pass

    def _found(self, key: str, size: int) -> None:
        # A hit in Redis: the key is warm there.
        self._hits += 1
        if key in self._warm:
            self._warm.read(key)
        else:
            self._know(key, None, size)

    def _lost(self, key: str) -> None:
        # A miss in Redis: the key is not warm there (any more).
        self._misses += 1
        self._warm.remove(key)

    # -- the store --------------------------------------------------------------------

    async def get(self, key: str) -> Any:
        """
        The value under ``key`` from Redis (from memory while Redis is down), or None.

        Raises:
            CacheError: The stored value cannot be decoded.
        """
        return (await self.get_many([key], strict=True))[0]

    async def get_many(self, keys: Sequence[str], *, strict: bool = False) -> list[Any]:
        """
        The values under ``keys`` (None for each miss) with one ``MGET``.

        A value missing from Redis but kept by the memory fallback (stored while Redis
        was down) is served from memory. An undecodable value reads as a miss and is
        deleted, unless ``strict``, where it raises :class:`CacheError`.
        """
        if not keys:
            return []
        try:
            blobs: list[Any] = await self._call(
                lambda: self._redis.multi_get(keys, loads_fn=identity)
            )
        except _Down:
            return [await self._get_local(k, strict) for k in keys]
        out: list[Any] = []
        for key, blob in zip(keys, blobs, strict=True):
            if blob is None:
                self._lost(key)
                out.append(
                    await self._get_local(key, strict) if self._fallback.holds(key) else None
                )
                continue
            try:
                value = self._serializer.loads(blob)
            except CacheError:
                if strict:
                    raise
                logger.warning("dropping undecodable cache entry %s", key)
                await self.delete(key)
                out.append(None)
                continue
            self._found(key, len(blob))
            out.append(value)
        return out

    async def get_objects(
        self, keys: Sequence[str], decode: Callable[[str, Any], Any]
    ) -> list[Any]:
        """
        The decoded objects under ``keys`` (None for each miss), read with one
        ``MGET``. Redis stays the authority: an object decoded before is reused only
        when the bytes Redis returns now are the bytes it was decoded from.
        """
        if not keys:
            return []
        if not self._up and anyio.current_time() < self._retry_at:
            return await read_objects(self, keys, decode)
        try:
            blobs: list[Any] = await self._call(
                lambda: self._redis.multi_get(keys, loads_fn=identity)
            )
        except _Down:
            return await read_objects(self, keys, decode)
        out: list[Any] = []
        for key, blob in zip(keys, blobs, strict=True):
            if blob is None:
                self._lost(key)
                self._decoded.discard(key)
                local = await self._get_local(key, False) if self._fallback.holds(key) else None
                out.append(decode(key, local) if local is not None else None)
                continue
            self._found(key, len(blob))
            memo = self._decoded.get(key)
            if memo is not None and memo[0] == blob:
                self._decoded.touch(key)
                out.append(memo[1])
                continue
            try:
                obj = decode(key, self._serializer.loads(blob))
            except CacheError:
                obj = None
            if obj is None:
                logger.warning("dropping undecodable cache entry %s", key)
                await self.delete(key)
            else:
                self._decoded.put(key, (blob, obj))
            out.append(obj)
        return out

    async def _get_local(self, key: str, strict: bool) -> Any:
        if not self._fallback.holds(key):
            self._misses += 1
            return None
        try:
            return await self._fallback.get(key)
        except CacheError:
            if strict:
                raise
            await self._fallback.delete(key)
            return None

    async def set(
        self,
        key: str,
        value: Any,
        *,
        ttl: float | None = None,
        obj: Any = None,
        preload: bool = False,
    ) -> None:
        """
        Store ``value`` under ``key`` in Redis (in memory while Redis is down).

        Raises:
            CacheError: The value is larger than ``cache.max_bytes``.
        """
        blob = encode(self._serializer, key, value, self.config.max_bytes)
        ttl = ttl if ttl is not None else (self.config.ttl_s or None)
        try:
            await self._call(
                lambda: self._redis.set(
                    key, blob, ttl=float(ttl) if ttl else None, dumps_fn=identity
                )
            )
        except _Down:
            await self._fallback.set(key, value, ttl=ttl, obj=obj, preload=preload)
            return
        self._know(key, ttl, len(blob))
        if self._fallback.holds(key):  # a stale copy from while Redis was down
            await self._fallback.delete(key)

    async def delete(self, key: str) -> None:
        """
        Drop ``key`` here and in Redis.
        """
        self._warm.remove(key)
        self._decoded.discard(key)
        await self._fallback.delete(key)
        try:
            await self._call(lambda: self._redis.delete(key))
        except _Down:
            pass

    async def clear(self) -> None:
        """
        Drop every key of this namespace (values, leases and slots) in Redis and here.
        """
        self._warm.clear()
        self._decoded.clear()
        await self._fallback.clear()
        try:
            await self._call(lambda: self._redis.clear())
            await self._call(lambda: self._redis.clear(namespace=self._lease_prefix[:-1]))
            await self._call(lambda: self._redis.clear(namespace=self._slot_key("")[:-1]))
        except _Down:
            pass

    # -- leases -----------------------------------------------------------------------

    async def lease(self, key: str, ttl: float) -> str | None:
        """
        ``SET NX PX`` the lease on ``key`` with a fresh owner token.

        Returns:
            The token, or None when another replica holds the lease. While Redis is
            down every caller gets a lease (single-flight stays per process).
        """
        token = secrets.token_hex(8)
        try:
            added = await self._call(
                lambda: self._redis.client.set(
                    self._lease_prefix + key, token, nx=True, px=max(1, int(ttl * 1000))
                )
            )
        except _Down:
            return token
        return token if added else None

    async def leased(self, key: str) -> bool:
        """
        Whether some replica holds the lease on ``key`` (False while Redis is down).
        """
        try:
            return bool(
                await self._call(lambda: self._redis.client.exists(self._lease_prefix + key))
            )
        except _Down:
            return False

    async def release(self, key: str, token: str) -> None:
        """
        Delete the lease on ``key`` if ``token`` still owns it.
        """
        try:
            await self._call(
                lambda: self._redis.client.eval(RELEASE_SCRIPT, 1, self._lease_prefix + key, token)
            )
        except _Down:
            pass

    # -- slots counted by every replica ---------------------------------------------

    async def take_slot(
        self, name: str, token: str, *, most: int, ttl: float, returned: Sequence[str] = ()
    ) -> bool:
        """
        Take one of the ``most`` slots of ``name`` (a sorted set of the slots' tokens,
        scored by when each expires) for ``ttl`` seconds, giving back ``returned``
        first, in one script. While Redis is down every caller gets one (each
        process's own limits hold then).
        """
        ms = max(1, int(ttl * 1000))
        try:
            got = await self._call(
                lambda: self._redis.client.eval(
                    TAKE_SLOT_SCRIPT, 1, self._slot_key(name), token, most, ms, *returned
                )
            )
        except _Down:
            return True
        return bool(got)

    async def return_slots(self, name: str, tokens: Sequence[str]) -> None:
        """
        ``ZREM`` the slots of ``tokens``.
        """
        if not tokens:
            return
        try:
            await self._call(lambda: self._redis.client.zrem(self._slot_key(name), *tokens))
        except _Down:
            pass

    def _slot_key(self, name: str) -> str:
        return f"{self.config.namespace}.slots:{name}"

    # -- reporting and lifecycle ------------------------------------------------------

    def statistics(self) -> CacheStatistics:
        """
        Sizes and counters: entries (and their bytes) this process knows to be warm
        in Redis plus those its memory fallback holds; hits and misses of both.
        """
        local = self._fallback.statistics()
        return CacheStatistics(
            entries=len(self._warm) + local.entries,
            bytes=self._warm.bytes + local.bytes,
            hits=self._hits + local.hits,
            misses=self._misses + local.misses,
            evictions=local.evictions,
            expirations=local.expirations,
            evicted_unused=local.evicted_unused,
            backend="redis",
            backend_up=self._up,
            backend_errors=self._errors,
        )

    async def close(self) -> None:
        """
        Close the connection pool (within ``redis_timeout_s``) and the memory store.
        """
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(self.config.redis_timeout_s):
                await self._redis.client.aclose()
            await self._fallback.close()
