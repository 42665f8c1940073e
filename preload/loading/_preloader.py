"""
The preloader: loads, compresses and caches items in the background.

Work runs on the preloader's own task group. Speculative preloads go into a bounded
queue ordered by expected value and are served by a fixed pool of workers; when the
queue is full the least valuable work is shed, never waited on. A session's newer
forecast re-prices its queued and running preloads (:meth:`Preloader.reprioritize`);
a load nobody wants any more is cancelled.

However many sessions ask for a key, one load of it is in flight at a time
(single-flight); a request that misses joins that load instead of starting another.
On a shared cache (Redis) one replica loads a key under a lease while the others wait
for its value. Every load has its source's timeout and concurrency limit; a failing
source is retried with backoff a few times, then cooled down. Leaving the
``async with`` drains for ``drain_s`` at most, then cancels every pending load.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._config import PreloaderConfig
from .._errors import CacheError, EngineStateError, MissingItemError, SourceError
from .._metrics import Metrics, MetricsSnapshot
from ..caches._memory import MemoryCache, cache_key
from ..compression._compressor import Compressor, Representation

if TYPE_CHECKING:
    from .._sources import Source, SourceRouter

__all__ = ["Fetched", "Preloader"]

logger = logging.getLogger(__name__)

#: Items longer than this (characters) are compressed in a worker thread.
OFFLOAD_CHARS = 20_000

#: The longest pause between two polls for another replica's value.
MAX_POLL_S = 0.1

#: Routes remembered by :meth:`Preloader.key_of` before the memo starts over.
MAX_ROUTES = 100_000


class _State(enum.Enum):
    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetched:
    """
    What the request path got for one key.

    ``status`` is ``hit`` (ready in the cache), ``partial`` (a preload was in flight,
    here or on another replica, and the request waited for the rest), ``miss``
    (loaded on demand), ``missing`` (no source has it) or ``failed`` (the load failed,
    missed its deadline, or its source is cooling down).

    .. versionadded:: 0.1
    """

    key: str
    status: Literal["hit", "partial", "miss", "missing", "failed"]
    item: Representation | None
    waited_s: float = 0.0


class _Cancelled(Exception):
    """
    The load was cancelled because nobody wanted it any more.
    """


class _Refused(SourceError):
    """
    The source answered with something that is not an item (not text, or too long);
    asking again would not help.
    """


@dataclass(slots=True, eq=False)
class _Flight:
    key: str
    cache_key: str
    source: Source
    preload: bool
    sessions: dict[str, float]
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Representation | None = None
    error: BaseException | None = None
    waiters: int = 0
    remote: bool = False


@dataclass(slots=True, eq=False)
class _Job:
    key: str
    values: dict[str | None, float]
    live: bool = True

    @property
    def value(self) -> float:
        return max(self.values.values())


class Preloader(anyio.AsyncContextManagerMixin):
    """
    Loads items into the cache, in the background or on demand.

    Args:
        sources: Routes keys to sources.
        cache: Where loaded items are kept; None keeps nothing (every request loads).
        compressor: Builds each item's representation.
        config: Workers, queue, limits, retries, leases.
        tenant: The namespace of this preloader's cache keys.
        metrics: Where counters go.
        offload: Compress large items in a worker thread (off in replays, where the
            virtual clock must not wait on threads).
        on_preloaded: Called with the key and the sessions that asked, when a
            background load starts.
        close_cache: Close the cache on exit, once every task has ended (within
            ``drain_s`` plus the cache's own timeout).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        *,
        sources: SourceRouter,
        cache: MemoryCache | None,
        compressor: Compressor,
        config: PreloaderConfig | None = None,
        tenant: str = "default",
        metrics: Metrics | None = None,
        offload: bool = True,
        on_preloaded: Callable[[str, frozenset[str]], None] | None = None,
        close_cache: bool = False,
    ) -> None:
        self.config = config or PreloaderConfig()
        self._close_cache = close_cache
        self.sources = sources
        self.cache = cache
        self.compressor = compressor
        self.tenant = tenant
        self.metrics = metrics or Metrics()
        self._offload = offload
        self._on_preloaded = on_preloaded
        self._limiter = anyio.CapacityLimiter(self.config.max_concurrent_loads)
        self._source_limiters: dict[str, anyio.CapacityLimiter] = {}
        self._cpu_limiter = anyio.CapacityLimiter(1)
        self._routes: dict[str, tuple[Source, str] | None] = {}
        self._flights: dict[str, _Flight] = {}
        self._queued: dict[str, _Job] = {}
        self._heap: list[tuple[float, int, str, _Job]] = []
        self._seq = itertools.count()
        self._failing: Counter[str] = Counter()
        self._cooling: dict[str, float] = {}
        self._tickets: MemoryObjectSendStream[None] | None = None
        self._tg: TaskGroup | None = None
        self._state = _State.UNOPENED
        self._idle = anyio.Event()

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncGenerator[Preloader]:
        if self._state is not _State.UNOPENED:
            raise EngineStateError("cannot open a preloader more than once")
        try:
            async with self._running():
                yield self
        finally:
            if self._close_cache and self.cache is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(5.0):
                    await self.cache.close()

    @asynccontextmanager
    async def _running(self) -> AsyncGenerator[None]:
        send, receive = anyio.create_memory_object_stream[None](self.config.queue_size)
        async with anyio.create_task_group() as tg:
            self._tg, self._tickets = tg, send
            for _ in range(self.config.workers):
                tg.start_soon(self._worker, receive.clone())
            receive.close()
            self._state = _State.OPENED
            try:
                yield
            finally:
                self._state = _State.CLOSED
                if self.config.drain_s > 0 and not self.idle:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(self.config.drain_s):
                        await self.wait_idle()
                self.metrics.cancelled += len(self._queued) + len(self._flights)
                self._queued.clear()
                self._heap.clear()
                send.close()
                tg.cancel_scope.cancel()

    # -- the request path -------------------------------------------------------------

    def key_of(self, key: str) -> tuple[Source, str] | None:
        """
        The source and cache key of ``key``, or None when no source has it.
        """
        try:
            return self._routes[key]
        except KeyError:
            pass
        source = self.sources.route(key)
        routed = None if source is None else (source, cache_key(self.tenant, source.name, key))
        if len(self._routes) >= MAX_ROUTES:
            self._routes.clear()
        self._routes[key] = routed
        return routed

    def is_ready(self, key: str) -> bool:
        """
        Whether ``key`` is known to be in the cache now (a local check, no I/O; on a
        shared cache, keys other replicas stored are found by :meth:`get` only).
        """
        routed = self.key_of(key)
        return routed is not None and self.cache is not None and routed[1] in self.cache

    async def peek(self, key: str) -> Representation | None:
        """
        ``key``'s representation when it is in the cache; never loads.
        """
        routed = self.key_of(key)
        if routed is None or self.cache is None:
            return None
        return await self._read_cache(routed[1])

    async def peek_many(self, keys: Sequence[str]) -> dict[str, Representation]:
        """
        The representations of those of ``keys`` that are in the cache now (one round
        trip on Redis); never loads.

        .. versionadded:: 0.1
        """
        if self.cache is None:
            return {}
        routed = [(key, self.key_of(key)) for key in keys]
        known = [(key, r[1]) for key, r in routed if r is not None]
        items = await self.cache.get_objects([ck for _, ck in known], _decode_item)
        return {key: item for (key, _), item in zip(known, items, strict=True) if item is not None}

    async def get(self, key: str, *, deadline_s: float | None = None) -> Fetched:
        """
        ``key``'s representation for a request: from the cache, by joining the load in
        flight, or by loading it now, waiting at most ``deadline_s``.
        """
        if self.cache is not None and self._state is _State.OPENED:
            routed = self.key_of(key)
            if routed is not None:  # the fast path: a decoded object, no await
                item = self.cache.peek_object(routed[1])
                if item is not None:
                    return Fetched(key=key, status="hit", item=item)
        return (await self.get_many((key,), deadline_s=deadline_s))[key]

    async def get_many(
        self, keys: Sequence[str], *, deadline_s: float | None = None
    ) -> dict[str, Fetched]:
        """
        The representations of ``keys`` for one request, in their order: hits from the
        cache (one round trip for all of them on Redis), then the rest by joining the
        loads in flight or loading now, all within one deadline of ``deadline_s``
        (``request_deadline_s`` when None).

        .. versionadded:: 0.1
        """
        self._check_open()
        out: dict[str, Fetched] = {}
        cold: list[tuple[str, Source, str]] = []
        cache = self.cache
        for key in keys:
            routed = self.key_of(key)
            if routed is None:
                self.metrics.missing += 1
                out[key] = Fetched(key=key, status="missing", item=None)
                continue
            source, ck = routed
            if cache is not None:
                item = cache.peek_object(ck)
                if item is not None:
                    out[key] = Fetched(key=key, status="hit", item=item)
                    continue
            cold.append((key, source, ck))
        if cold and cache is not None:
            items = await cache.get_objects([ck for _, _, ck in cold], _decode_item)
            still = []
            for (key, source, ck), item in zip(cold, items, strict=True):
                if item is None:
                    still.append((key, source, ck))
                else:
                    out[key] = Fetched(key=key, status="hit", item=item)
            cold = still
        if cold:
            await self._wait_loads(cold, out, deadline_s)
        return {key: out[key] for key in keys}

    async def _wait_loads(
        self,
        cold: list[tuple[str, Source, str]],
        out: dict[str, Fetched],
        deadline_s: float | None,
    ) -> None:
        waits: list[tuple[str, _Flight, Literal["partial", "miss"]]] = []
        for key, source, ck in cold:
            flight = self._flights.get(ck)
            status: Literal["partial", "miss"] = "partial"
            if flight is None:
                if self._is_cooling(source):
                    self.metrics.cooldown_skips += 1
                    out[key] = Fetched(key=key, status="failed", item=None)
                    continue
                flight = self._start(key, ck, source, preload=False, sessions={})
                status = "miss"
            flight.waiters += 1
            waits.append((key, flight, status))
        start = anyio.current_time()
        with anyio.move_on_after(deadline_s or self.config.request_deadline_s):
            for _, flight, _ in waits:
                await flight.done.wait()
        waited = anyio.current_time() - start
        for key, flight, status in waits:
            flight.waiters -= 1
            if flight.result is not None:
                got = "partial" if flight.remote else status
                out[key] = Fetched(key=key, status=got, item=flight.result, waited_s=waited)
            elif isinstance(flight.error, MissingItemError):
                self.metrics.missing += 1
                out[key] = Fetched(key=key, status="missing", item=None, waited_s=waited)
            else:
                if not flight.done.is_set():
                    self.metrics.timeouts += 1
                out[key] = Fetched(key=key, status="failed", item=None, waited_s=waited)

    # -- background work --------------------------------------------------------------

    def schedule(self, key: str, value: float, *, session: str | None = None) -> bool:
        """
        Queue a background load of ``key`` with expected ``value``; never blocks.

        Returns:
            Whether the key is queued (False when it is warm, in flight, unknown, its
            source is cooling down, or it is shed because the queue is full of more
            valuable work).
        """
        self._check_open()
        routed = self.key_of(key)
        if routed is None:
            return False
        source, ck = routed
        flight = self._flights.get(ck)
        if flight is not None:
            if session is not None and flight.preload:
                flight.sessions[session] = max(value, flight.sessions.get(session, 0.0))
            return False
        if self.cache is not None and ck in self.cache:
            return False
        if self._is_cooling(source):
            self.metrics.cooldown_skips += 1
            return False
        job = self._queued.get(ck)
        if job is not None:
            old = job.value
            job.values[session] = max(value, job.values.get(session, 0.0))
            if job.value > old:
                self._requeue(ck, job)
            return True
        job = _Job(key=key, values={session: value})
        if len(self._queued) >= self.config.queue_size:
            weakest = min(self._queued, key=lambda k: self._queued[k].value)
            self.metrics.shed += 1
            if self._queued[weakest].value >= value:
                return False
            self._queued.pop(weakest).live = False
            self._push(ck, job)
            return True
        assert self._tickets is not None
        try:
            self._tickets.send_nowait(None)
        except anyio.WouldBlock:
            self.metrics.shed += 1
            return False
        self._push(ck, job)
        return True

    def reprioritize(
        self, session: str, values: Mapping[str, float], *, threshold: float | None = None
    ) -> int:
        """
        Re-price ``session``'s background loads after a newer forecast.

        Every queued or running preload this session asked for takes its value from
        ``values`` (a key absent from it is worth 0 now). Where that falls below
        ``threshold`` (``value_threshold`` when None), the session stops wanting the
        load; a load that no session wants any more and no request waits for is
        dropped from the queue or cancelled while it runs. Call it with the new
        forecast before scheduling its keys; ``reprioritize(session, {})`` drops a
        finished session's preloads.

        Returns:
            How many loads were cancelled.

        .. versionadded:: 0.1
        """
        floor = self.config.value_threshold if threshold is None else threshold
        cancelled = 0
        for ck, job in list(self._queued.items()):
            if session not in job.values:
                continue
            value = values.get(job.key, 0.0)
            if value >= floor:
                old = job.value
                job.values[session] = value
                if job.value != old:
                    self._requeue(ck, job)
                continue
            del job.values[session]
            if not job.values:
                del self._queued[ck]
                job.live = False
                cancelled += 1
        for ck, flight in list(self._flights.items()):
            if not flight.preload or session not in flight.sessions:
                continue
            value = values.get(flight.key, 0.0)
            if value >= floor:
                flight.sessions[session] = value
                continue
            del flight.sessions[session]
            if not flight.sessions and not flight.waiters:
                del self._flights[ck]  # a request from now on starts its own load
                flight.scope.cancel()
                cancelled += 1
        self.metrics.cancelled += cancelled
        if cancelled:
            self._signal_idle()
        return cancelled

    def cancel(self, key: str) -> bool:
        """
        Drop the queued background load of ``key``, if it has not started.
        """
        routed = self.key_of(key)
        job = self._queued.pop(routed[1], None) if routed is not None else None
        if job is None:
            return False
        job.live = False
        self.metrics.cancelled += 1
        self._signal_idle()
        return True

    @property
    def idle(self) -> bool:
        """
        Whether no load is queued or running.
        """
        return not self._queued and not self._flights

    async def wait_idle(self) -> None:
        """
        Wait until no load is queued or running (for tests, benchmarks and draining).
        """
        while not self.idle:
            if self._idle.is_set():
                self._idle = anyio.Event()
            await self._idle.wait()

    @property
    def queued(self) -> int:
        """
        Background loads waiting for a worker.
        """
        return len(self._queued)

    @property
    def in_flight(self) -> int:
        """
        Loads running now.
        """
        return len(self._flights)

    def cooling(self) -> dict[str, float]:
        """
        The sources cooling down now, with the loop time at which each may be asked
        again.
        """
        now = anyio.current_time()
        return {name: until for name, until in self._cooling.items() if until > now}

    def snapshot(self) -> MetricsSnapshot:
        """
        A frozen snapshot of the counters, with the queue, the loads in flight and the
        cache read now.

        .. versionadded:: 0.1
        """
        return self.metrics.snapshot(
            in_flight=len(self._flights),
            queued=len(self._queued),
            cache=self.cache.statistics() if self.cache is not None else None,
        )

    def _push(self, ck: str, job: _Job) -> None:
        self._queued[ck] = job
        heapq.heappush(self._heap, (-job.value, next(self._seq), ck, job))

    def _requeue(self, ck: str, job: _Job) -> None:
        job.live = False
        fresh = _Job(key=job.key, values=job.values)
        self._push(ck, fresh)

    def _pop(self) -> tuple[str, _Job] | None:
        while self._heap:
            _, _, ck, job = heapq.heappop(self._heap)
            if job.live and self._queued.get(ck) is job:
                del self._queued[ck]
                return ck, job
        return None

    async def _worker(self, tickets: MemoryObjectReceiveStream[None]) -> None:
        async with tickets:
            async for _ in tickets:
                popped = self._pop()
                if popped is None:
                    continue
                ck, job = popped
                routed = self.key_of(job.key)
                assert routed is not None
                if ck in self._flights or (self.cache is not None and ck in self.cache):
                    self._signal_idle()
                    continue
                sessions = {s: v for s, v in job.values.items() if s is not None}
                flight = self._start(job.key, ck, routed[0], preload=True, sessions=sessions)
                await flight.done.wait()

    def _start(
        self, key: str, ck: str, source: Source, *, preload: bool, sessions: dict[str, float]
    ) -> _Flight:
        assert self._tg is not None
        flight = _Flight(key=key, cache_key=ck, source=source, preload=preload, sessions=sessions)
        self._flights[ck] = flight
        if preload and self._on_preloaded is not None:
            self._on_preloaded(key, frozenset(sessions))
        self._tg.start_soon(self._load, flight)
        return flight

    async def _load(self, flight: _Flight) -> None:
        source, key = flight.source, flight.key
        try:
            with flight.scope:
                flight.result = await self._produce(flight)
            if flight.scope.cancelled_caught:
                flight.error = _Cancelled(key)
        except MissingItemError as exc:
            flight.error = exc
        except TimeoutError as exc:
            flight.error = exc
            self.metrics.timeouts += 1
            self.metrics.failures += 1
            logger.debug("preload.load.failed %s %s: timeout", source.name, key)
        except Exception as exc:  # noqa: BLE001 (a source failure is counted, never fatal)
            flight.error = exc
            self.metrics.failures += 1
            logger.debug("preload.load.failed %s %s: %r", source.name, key, exc)
        finally:
            flight.done.set()
            if self._flights.get(flight.cache_key) is flight:
                del self._flights[flight.cache_key]
            self._signal_idle()

    async def _produce(self, flight: _Flight) -> Representation:
        cache, ck = self.cache, flight.cache_key
        token: str | None = None
        if cache is not None and cache.shared:
            item = await self._read_cache(ck)
            if item is not None:
                flight.remote = True
                self.metrics.remote_loads += 1
                return item
            token = await cache.lease(ck, self.config.lease_ttl_s)
            if token is None:
                self.metrics.lease_waits += 1
                item, token = await self._await_other_replica(cache, ck)
                if item is not None:
                    flight.remote = True
                    self.metrics.remote_loads += 1
                    return item
        try:
            if flight.preload:
                self.metrics.preloads += 1
            else:
                self.metrics.loads += 1
            item = await self._fetch(flight.source, flight.key)
            if cache is not None:
                ttl = cache.config.ttl_for(flight.source.name, flight.key)
                try:
                    await cache.set(ck, item.to_dict(), ttl=ttl, obj=item, preload=flight.preload)
                except CacheError as exc:
                    logger.warning("not caching %s: %s", flight.key, exc)
            return item
        finally:
            if token is not None and cache is not None and cache.shared:
                with anyio.CancelScope(shield=True):
                    await cache.release(ck, token)

    async def _await_other_replica(
        self, cache: MemoryCache, ck: str
    ) -> tuple[Representation | None, str | None]:
        """
        Poll, with backoff on the loop's clock, for the value another replica is
        loading under its lease; when the lease goes away without a value (the holder
        failed or died and its lease expired), take the lease and load here.
        """
        pause = self.config.lease_poll_s
        while True:
            await anyio.sleep(pause)
            pause = min(pause * 2, MAX_POLL_S)
            item = await self._read_cache(ck)
            if item is not None:
                return item, None
            if not await cache.leased(ck):
                token = await cache.lease(ck, self.config.lease_ttl_s)
                if token is not None:
                    item = await self._read_cache(ck)  # stored just before the release?
                    if item is not None:
                        await cache.release(ck, token)
                        return item, None
                    return None, token

    async def _fetch(self, source: Source, key: str) -> Representation:
        """
        Fetch and compress ``key`` within its source's timeout and limits, retrying a
        failure with exponential backoff; count the source's failures toward a cool-down.
        """
        debug = logger.isEnabledFor(logging.DEBUG)
        pause = self.config.retry_backoff_s
        attempts = self.config.retries + 1
        for attempt in range(attempts):
            start = anyio.current_time()
            try:
                if debug:
                    logger.debug("preload.load.started %s %s", source.name, key)
                with anyio.fail_after(self.config.timeout_for(source.name)):
                    async with self._source_limiter(source.name), self._limiter:
                        text: Any = await source.fetch(key)
                self._check_text(source, key, text)
                item = await self._compress(source, key, text)
            except MissingItemError:
                raise
            except _Refused:
                self._source_failed(source)
                raise
            except Exception:
                if attempt + 1 >= attempts:
                    self._source_failed(source)
                    raise
                self.metrics.retries += 1
                await anyio.sleep(pause)
                pause *= 2
                continue
            self._failing.pop(source.name, None)
            self.metrics.observe_load(anyio.current_time() - start)
            if debug:
                logger.debug("preload.load.complete %s %s", source.name, key)
            return item
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_text(self, source: Source, key: str, text: Any) -> None:
        if not isinstance(text, str):
            raise _Refused(source.name, key, f"returned {type(text).__name__}, not text")
        if len(text) > self.config.max_item_chars:
            raise _Refused(
                source.name,
                key,
                f"returned {len(text)} characters, above preloader.max_item_chars "
                f"{self.config.max_item_chars}",
            )

    def _source_limiter(self, name: str) -> anyio.CapacityLimiter:
        limiter = self._source_limiters.get(name)
        if limiter is None:
            limit = self.config.source_concurrency.get(name, self.config.max_concurrent_loads)
            limiter = self._source_limiters[name] = anyio.CapacityLimiter(limit)
        return limiter

    def _source_failed(self, source: Source) -> None:
        self._failing[source.name] += 1
        if self._failing[source.name] >= self.config.failure_threshold:
            del self._failing[source.name]
            self._cooling[source.name] = anyio.current_time() + self.config.cooldown_s
            self.metrics.cooldowns += 1
            logger.warning(
                "source %r failed %d loads in a row; not asking it for %g s",
                source.name,
                self.config.failure_threshold,
                self.config.cooldown_s,
            )

    def _is_cooling(self, source: Source) -> bool:
        until = self._cooling.get(source.name)
        if until is None:
            return False
        if anyio.current_time() < until:
            return True
        del self._cooling[source.name]
        return False

    def _signal_idle(self) -> None:
        if self.idle:
            self._idle.set()

    async def _compress(self, source: Source, key: str, text: str) -> Representation:
        category = self.sources.category(key)

        def run() -> Representation:
            return self.compressor.compress(
                key=key, source=source.name, category=category, text=text
            )

        offload = self._offload and len(text) > OFFLOAD_CHARS
        acompress = getattr(self.compressor, "acompress", None)
        if getattr(self.compressor, "summarizer", None) is not None and callable(acompress):
            # A user's async summarizer (an LLM call) writes the summary level.
            async def in_thread(fn: Callable[[], Any]) -> Any:
                return await anyio.to_thread.run_sync(fn, limiter=self._cpu_limiter)

            rep: Representation = await acompress(
                key=key,
                source=source.name,
                category=category,
                text=text,
                run_sync=in_thread if offload else None,
            )
            return rep
        if offload:
            return await anyio.to_thread.run_sync(run, limiter=self._cpu_limiter)
        return run()

    async def _read_cache(self, ck: str) -> Representation | None:
        assert self.cache is not None
        item: Representation | None = (await self.cache.get_objects([ck], _decode_item))[0]
        return item

    def _check_open(self) -> None:
        if self._state is not _State.OPENED:
            raise EngineStateError(
                "the preloader is not open; use it inside 'async with' (it cannot be reopened)"
            )


def _decode_item(ck: str, value: Any) -> Representation | None:
    try:
        return Representation.from_dict(value)
    except CacheError:
        logger.warning("dropping a cache entry that is not an item: %s", ck)
        return None
