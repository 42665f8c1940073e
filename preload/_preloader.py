"""
The preloader: loads, compresses and caches items in the background.

Work runs on the preloader's own task group. Speculative preloads go into a bounded
queue ordered by expected value and are served by a fixed pool of workers; when the
queue is full the least valuable work is shed, never waited on. However many sessions
ask for a key, one load of it is in flight at a time (single-flight); a request that
misses joins that load instead of starting another. Leaving the ``async with`` cancels
every pending load.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._cache import ItemCache, cache_key
from ._compression import Compressor, Representation
from ._config import PreloaderConfig
from ._errors import CacheError, EngineStateError, MissingItemError, SourceError
from ._metrics import Metrics

if TYPE_CHECKING:
    from ._sources import Source, SourceRouter

__all__ = ["Fetched", "Preloader"]

logger = logging.getLogger(__name__)

#: Items longer than this (characters) are compressed in a worker thread.
OFFLOAD_CHARS = 20_000


class _State(enum.Enum):
    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetched:
    """
    What the request path got for one key.

    ``status`` is ``hit`` (ready in the cache), ``partial`` (a preload was in flight
    and the request waited for the rest), ``miss`` (loaded on demand), ``missing`` (no
    source has it) or ``failed`` (the load failed or missed its deadline).

    .. versionadded:: 0.1
    """

    key: str
    status: Literal["hit", "partial", "miss", "missing", "failed"]
    item: Representation | None
    waited_s: float = 0.0


@dataclass(slots=True, eq=False)
class _Flight:
    key: str
    cache_key: str
    source: Source
    preload: bool
    sessions: frozenset[str]
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Representation | None = None
    error: BaseException | None = None


@dataclass(slots=True, eq=False)
class _Job:
    key: str
    value: float
    sessions: set[str]
    live: bool = True


class Preloader(anyio.AsyncContextManagerMixin):
    """
    Loads items into the cache, in the background or on demand.

    Args:
        sources: Routes keys to sources.
        cache: Where loaded items are kept; None keeps nothing (every request loads).
        compressor: Builds each item's representation.
        config: Workers, queue and limits.
        tenant: The namespace of this preloader's cache keys.
        metrics: Where counters go.
        offload: Compress large items in a worker thread (off in replays, where the
            virtual clock must not wait on threads).
        on_preloaded: Called with the key and the sessions that asked, when a
            background load starts.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        *,
        sources: SourceRouter,
        cache: ItemCache | None,
        compressor: Compressor,
        config: PreloaderConfig | None = None,
        tenant: str = "default",
        metrics: Metrics | None = None,
        offload: bool = True,
        on_preloaded: Callable[[str, frozenset[str]], None] | None = None,
    ) -> None:
        self.config = config or PreloaderConfig()
        self.sources = sources
        self.cache = cache
        self.compressor = compressor
        self.tenant = tenant
        self.metrics = metrics or Metrics()
        self._offload = offload
        self._on_preloaded = on_preloaded
        self._limiter = anyio.CapacityLimiter(self.config.max_concurrent_loads)
        self._cpu_limiter = anyio.CapacityLimiter(1)
        self._flights: dict[str, _Flight] = {}
        self._queued: dict[str, _Job] = {}
        self._heap: list[tuple[float, int, _Job]] = []
        self._seq = itertools.count()
        self._tickets: MemoryObjectSendStream[None] | None = None
        self._tg: TaskGroup | None = None
        self._state = _State.UNOPENED
        self._idle = anyio.Event()

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncGenerator[Preloader]:
        if self._state is not _State.UNOPENED:
            raise EngineStateError("cannot open a preloader more than once")
        send, receive = anyio.create_memory_object_stream[None](self.config.queue_size)
        async with anyio.create_task_group() as tg:
            self._tg, self._tickets = tg, send
            for _ in range(self.config.workers):
                tg.start_soon(self._worker, receive.clone())
            receive.close()
            self._state = _State.OPENED
            try:
                yield self
            finally:
                self._state = _State.CLOSED
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
        source = self.sources.route(key)
        if source is None:
            return None
        return source, cache_key(self.tenant, source.name, key)

    def is_ready(self, key: str) -> bool:
        """
        Whether ``key`` is in the cache now (a local check, no I/O).
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

    async def get(self, key: str, *, deadline_s: float | None = None) -> Fetched:
        """
        ``key``'s representation for a request: from the cache, by joining the load in
        flight, or by loading it now, waiting at most ``deadline_s``.
        """
        self._check_open()
        routed = self.key_of(key)
        if routed is None:
            self.metrics.missing += 1
            return Fetched(key=key, status="missing", item=None)
        source, ck = routed
        if self.cache is not None:
            item = await self._read_cache(ck)
            if item is not None:
                return Fetched(key=key, status="hit", item=item)
        flight = self._flights.get(ck)
        status: Literal["partial", "miss"] = "partial" if flight is not None else "miss"
        if flight is None:
            flight = self._start(key, ck, source, preload=False, sessions=frozenset())
        start = anyio.current_time()
        with anyio.move_on_after(deadline_s or self.config.request_deadline_s):
            await flight.done.wait()
        waited = anyio.current_time() - start
        if flight.result is None:
            if isinstance(flight.error, MissingItemError):
                self.metrics.missing += 1
                return Fetched(key=key, status="missing", item=None, waited_s=waited)
            if not flight.done.is_set():
                self.metrics.timeouts += 1
            return Fetched(key=key, status="failed", item=None, waited_s=waited)
        return Fetched(key=key, status=status, item=flight.result, waited_s=waited)

    # -- background work --------------------------------------------------------------

    def schedule(self, key: str, value: float, *, session: str | None = None) -> bool:
        """
        Queue a background load of ``key`` with expected ``value``; never blocks.

        Returns:
            Whether the key is queued (False when it is warm, in flight, unknown, or
            shed because the queue is full of more valuable work).
        """
        self._check_open()
        routed = self.key_of(key)
        if routed is None:
            return False
        ck = routed[1]
        if ck in self._flights or (self.cache is not None and ck in self.cache):
            return False
        job = self._queued.get(ck)
        if job is not None:
            if session is not None:
                job.sessions.add(session)
            if value > job.value:
                job.live = False
                self._push(ck, _Job(key=key, value=value, sessions=job.sessions))
            return True
        sessions = {session} if session is not None else set()
        if len(self._queued) >= self.config.queue_size:
            weakest_key = min(self._queued, key=lambda k: self._queued[k].value)
            if self._queued[weakest_key].value >= value:
                self.metrics.shed += 1
                return False
            self._queued.pop(weakest_key).live = False
            self.metrics.shed += 1
            self._push(ck, _Job(key=key, value=value, sessions=sessions))
            return True
        assert self._tickets is not None
        try:
            self._tickets.send_nowait(None)
        except anyio.WouldBlock:
            self.metrics.shed += 1
            return False
        self._push(ck, _Job(key=key, value=value, sessions=sessions))
        return True

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

    def _push(self, ck: str, job: _Job) -> None:
        self._queued[ck] = job
        heapq.heappush(self._heap, (-job.value, next(self._seq), job))

    def _pop(self) -> tuple[str, _Job] | None:
        while self._heap:
            _, _, job = heapq.heappop(self._heap)
            if job.live:
                routed = self.key_of(job.key)
                assert routed is not None
                self._queued.pop(routed[1], None)
                return routed[1], job
        return None

    async def _worker(self, tickets: MemoryObjectReceiveStream[None]) -> None:
        async with tickets:
            async for _ in tickets:
                popped = self._pop()
                if popped is None:
                    continue
                ck, job = popped
                if ck in self._flights or (self.cache is not None and ck in self.cache):
                    self._signal_idle()
                    continue
                routed = self.key_of(job.key)
                assert routed is not None
                flight = self._start(
                    job.key, ck, routed[0], preload=True, sessions=frozenset(job.sessions)
                )
                await flight.done.wait()

    def _start(
        self, key: str, ck: str, source: Source, *, preload: bool, sessions: frozenset[str]
    ) -> _Flight:
        assert self._tg is not None
        flight = _Flight(key=key, cache_key=ck, source=source, preload=preload, sessions=sessions)
        self._flights[ck] = flight
        if preload:
            self.metrics.preloads += 1
            if self._on_preloaded is not None:
                self._on_preloaded(key, sessions)
        else:
            self.metrics.loads += 1
        self._tg.start_soon(self._load, flight)
        return flight

    async def _load(self, flight: _Flight) -> None:
        source, key = flight.source, flight.key
        debug = logger.isEnabledFor(logging.DEBUG)
        start = anyio.current_time()
        try:
            if debug:
                logger.debug("preload.load.started %s %s", source.name, key)
            with anyio.fail_after(self.config.load_timeout_s):
                async with self._limiter:
                    text = await source.fetch(key)
            if not isinstance(text, str):
                raise SourceError(source.name, key, f"returned {type(text).__name__}, not text")
            flight.result = await self._compress(source, key, text)
            if self.cache is not None:
                ttl = self.cache.config.ttl_for(source.name, key)
                await self.cache.set(flight.cache_key, flight.result.to_dict(), ttl=ttl)
            self.metrics.observe_load(anyio.current_time() - start)
            if debug:
                logger.debug("preload.load.complete %s %s", source.name, key)
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

    def _signal_idle(self) -> None:
        if self.idle:
            self._idle.set()

    async def _compress(self, source: Source, key: str, text: str) -> Representation:
        category = self.sources.category(key)

        def run() -> Representation:
            return self.compressor.compress(
                key=key, source=source.name, category=category, text=text
            )

        if self._offload and len(text) > OFFLOAD_CHARS:
            return await anyio.to_thread.run_sync(run, limiter=self._cpu_limiter)
        return run()

    async def _read_cache(self, ck: str) -> Representation | None:
        assert self.cache is not None
        try:
            value = await self.cache.get(ck)
        except CacheError:
            logger.warning("dropping undecodable cache entry %s", ck)
            await self.cache.delete(ck)
            return None
        if value is None:
            return None
        try:
            return Representation.from_dict(value)
        except CacheError:
            await self.cache.delete(ck)
            return None

    def _check_open(self) -> None:
        if self._state is not _State.OPENED:
            raise EngineStateError(
                "the preloader is not open; use it inside 'async with' (it cannot be reopened)"
            )
