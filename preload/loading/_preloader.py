"""
The preloader: loads, compresses and caches items in the background.

Work runs on the preloader's own task group. Speculative preloads go into a bounded
queue ordered by expected value (:mod:`._queue`) and are served by at most ``workers``
at once, each started as work arrives and ended once the queue is empty (none waits
idle: an engine of each of many tenants pays nothing for a large pool); when the queue
is full the least valuable work is shed, never waited on. A
session's newer forecast re-prices its queued and running preloads
(:meth:`Preloader.reprioritize`); a load nobody wants any more is cancelled.

However many sessions ask for a key, one load of it is in flight at a time
(single-flight, :mod:`._flights`); a request that misses joins that load instead of
starting another. On a shared cache (Redis) one replica loads a key under a lease
while the others wait for its value (:mod:`._leases`). Every load has its source's
timeout and concurrency limit; a failing source is retried with backoff a few times,
then cooled down (:mod:`._guard`). Leaving the ``async with`` drains for ``drain_s``
at most, then cancels every pending load.

The preloader also keeps the ledger of which session each preload was for: a session
that reads one claims it (``preloads_used``); one it never read counts as ``wasted``
when the session ends; one it needed after it had left the cache is lost
(``preloads_lost``), and the share of needed preloads that were not lost is the
cache's :attr:`Preloader.survival`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Literal

import anyio
from anyio.abc import TaskGroup

from .._config import PreloaderConfig
from .._errors import CacheError, EngineStateError, MissingItemError
from .._lifecycle import Lifecycle
from ..caches import MemoryCache, cache_key
from ._building import ItemBuilder
from ._flights import Cancelled, Fetched, Flight
from ._guard import SourceGuard
from ._leases import await_other_replica, decode_item, read_item
from ._ledger import PreloadLedger
from ._queue import PreloadQueue
from ._statistics import Counters, PreloaderStatistics

if TYPE_CHECKING:
    from .._sources import Source, SourceRouter
    from ..caches import CacheBackend
    from ..compression import Compressor, Representation

__all__ = ["Preloader"]

logger = logging.getLogger(__name__)

#: Keys the preloader remembers warning about when the cache refused them.
MAX_NOT_CACHED = 10_000

#: The share of its entries or bytes at which the cache is :attr:`Preloader.crowded`.
CROWDED_SHARE = 0.9

#: Routes remembered by :meth:`Preloader.key_of` before the memo starts over.
MAX_ROUTES = 100_000


class Preloader(anyio.AsyncContextManagerMixin):
    """
    Loads items into the cache, in the background or on demand.

    Args:
        sources: Routes keys to sources.
        cache: Where loaded items are kept; None keeps nothing (every request loads).
        compressor: Builds each item's representation (a
            :class:`~preload.compression.SummarizingCompressor` gets its async
            summary level written too).
        config: Workers, queue, limits, retries, leases and the value threshold.
        tenant: The namespace of this preloader's cache keys.
        offload: Compress large items in a worker thread (off in replays, where the
            virtual clock must not wait on threads).
        close_cache: Close the cache on exit, once every task has ended (within
            ``drain_s`` plus the cache's own timeout).

    .. versionadded:: 0.1
    .. versionchanged:: 0.6
       ``max_concurrent_loads`` and ``source_concurrency`` bound the preloads only:
       a load a request waits for never queues behind them.
    """

    def __init__(
        self,
        *,
        sources: SourceRouter,
        cache: CacheBackend | None,
        compressor: Compressor,
        config: PreloaderConfig | None = None,
        tenant: str = "default",
        offload: bool = True,
        close_cache: bool = False,
    ) -> None:
        self.config = config or PreloaderConfig()
        self._close_cache = close_cache
        self.sources = sources
        self.cache = cache
        self.compressor = compressor
        self.tenant = tenant
        self._counters = Counters()
        self._not_cached: set[str] = set()  # keys the cache refused, warned about once
        self._guard = SourceGuard(self.config, self._counters)
        self._builder = ItemBuilder(compressor, sources.category, offload=offload)
        self._routes: dict[str, tuple[Source, str] | None] = {}
        self._flights: dict[str, Flight] = {}
        self._queue = PreloadQueue(self.config.queue_size)
        self._ledger = PreloadLedger()
        self._workers = 0  # workers running: at most config.workers
        self._tg: TaskGroup | None = None
        self._state = Lifecycle.UNOPENED
        self._idle = anyio.Event()
        self._value_cache: MemoryCache | None = None
        if isinstance(cache, MemoryCache) and cache.config.eviction == "value":
            self._value_cache = cache
        self._rejected = 0

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncGenerator[Preloader]:
        if self._state is not Lifecycle.UNOPENED:
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
        async with anyio.create_task_group() as tg:
            self._tg = tg
            self._state = Lifecycle.OPENED
            try:
                yield
            finally:
                self._state = Lifecycle.CLOSED
                if self.config.drain_s > 0 and not self.idle:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(self.config.drain_s):
                        await self.wait_idle()
                self._counters.cancelled += self._queue.clear() + len(self._flights)
                tg.cancel_scope.cancel()

    # -- the value threshold ----------------------------------------------------------

    def worth(self, values: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
        """
        The keys of ``values`` worth preloading, in their order: those whose expected
        value reaches ``value_threshold``. Every decision to preload or offer a
        predicted item goes through here, and :meth:`reprioritize` keeps a preload by
        the same rule.

        .. versionadded:: 0.2
        """
        return [(key, value) for key, value in values if self._worthy(value)]

    def _worthy(self, value: float) -> bool:
        return value >= self.config.value_threshold

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
        return await read_item(self.cache, routed[1])

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
        items = await self.cache.get_objects([ck for _, ck in known], decode_item)
        return {key: item for (key, _), item in zip(known, items, strict=True) if item is not None}

    async def get(self, key: str, *, deadline_s: float | None = None) -> Fetched:
        """
        ``key``'s representation for a request: from the cache, by joining the load in
        flight, or by loading it now, waiting at most ``deadline_s``.
        """
        if self.cache is not None and self._state is Lifecycle.OPENED:
            routed = self.key_of(key)
            if routed is not None:  # the fast path: a decoded object, no await
                item = self.cache.peek_object(routed[1])
                if item is not None:
                    return Fetched(key=key, status="hit", item=item)
        return (await self.get_many((key,), deadline_s=deadline_s))[key]

    async def get_many(
        self, keys: Sequence[str], *, deadline_s: float | None = None, peek: Sequence[str] = ()
    ) -> dict[str, Fetched]:
        """
        The representations of ``keys`` for one request, in their order: hits from the
        cache (one round trip for all of them on Redis), then the rest by joining the
        loads in flight or loading now, all within one deadline of ``deadline_s``
        (``request_deadline_s`` when None). ``peek`` are more keys read in the same
        round trip and never loaded (as :meth:`peek_many`): those in the cache follow
        as hits, the others are left out.

        .. versionadded:: 0.1
        .. versionchanged:: 0.6
           ``peek``.
        """
        self._check_open()
        out: dict[str, Fetched] = {}
        cold: list[tuple[str, Source, str]] = []
        cache = self.cache
        for key in keys:
            routed = self.key_of(key)
            if routed is None:
                self._counters.missing += 1
                out[key] = Fetched(key=key, status="missing", item=None)
                continue
            source, ck = routed
            if cache is not None:
                item = cache.peek_object(ck)
                if item is not None:
                    out[key] = Fetched(key=key, status="hit", item=item)
                    continue
            cold.append((key, source, ck))
        peeked: list[tuple[str, str]] = []
        if cache is not None:
            routes = ((key, self.key_of(key)) for key in peek if key not in out)
            peeked = [(key, r[1]) for key, r in routes if r is not None]
        found: dict[str, Fetched] = {}
        if (cold or peeked) and cache is not None:
            unknown = {ck for _, _, ck in cold if ck not in cache}  # another replica's
            items = await cache.get_objects(
                [*(ck for _, _, ck in cold), *(ck for _, ck in peeked)], decode_item
            )
            for (key, _), item in zip(peeked, items[len(cold) :], strict=True):
                if item is not None:
                    found[key] = Fetched(key=key, status="hit", item=item)
            still = []
            for (key, source, ck), item in zip(cold, items[: len(cold)], strict=True):
                if item is None:
                    still.append((key, source, ck))
                else:
                    out[key] = Fetched(key=key, status="hit", item=item)
                    self._counters.remote_hits += ck in unknown
            cold = still
        if cold:
            await self._wait_loads(cold, out, deadline_s)
        return {**{key: out[key] for key in keys}, **found}

    async def _wait_loads(
        self,
        cold: list[tuple[str, Source, str]],
        out: dict[str, Fetched],
        deadline_s: float | None,
    ) -> None:
        waits: list[tuple[str, Flight, Literal["partial", "miss"]]] = []
        for key, source, ck in cold:
            flight = self._flights.get(ck)
            status: Literal["partial", "miss"] = "partial"
            if flight is None:
                if self._guard.is_cooling(source):
                    self._counters.cooldown_skips += 1
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
            out[key] = self._outcome(key, flight, status, waited)

    def _outcome(
        self, key: str, flight: Flight, status: Literal["partial", "miss"], waited: float
    ) -> Fetched:
        if flight.result is not None:
            got = "partial" if flight.remote else status
            return Fetched(key=key, status=got, item=flight.result, waited_s=waited)
        if isinstance(flight.error, MissingItemError):
            self._counters.missing += 1
            return Fetched(key=key, status="missing", item=None, waited_s=waited)
        if not flight.done.is_set():
            self._counters.timeouts += 1
            return Fetched(key=key, status="failed", item=None, waited_s=waited)
        return Fetched(key=key, status="failed", item=None, waited_s=waited, error=flight.error)

    def is_pending(self, key: str) -> bool:
        """
        Whether a load of ``key`` is queued or running now.

        .. versionadded:: 0.3
        """
        routed = self.key_of(key)
        return routed is not None and (routed[1] in self._flights or routed[1] in self._queue)

    def claim(self, session: str, key: str) -> bool:
        """
        ``session`` read ``key``: if it was preloaded for this session and not read
        yet, it counts as used now.

        Returns:
            Whether it was such a preload.

        .. versionadded:: 0.2
        """
        return self._ledger.read(session, key)

    def lose(self, session: str, key: str) -> bool:
        """
        ``session`` needed ``key`` and it was not in the cache nor in flight: if it
        was preloaded for this session and not read yet, that preload was lost (it
        left the cache before its use), which lowers :attr:`survival`.

        Returns:
            Whether it was such a preload.

        .. versionadded:: 0.6
        """
        return self._ledger.lose(session, key)

    @property
    def survival(self) -> float:
        """
        The moving share of the preloads their sessions needed that were still in the
        cache (or in flight) when needed: 1 while the cache holds what is preloaded,
        low when preloads evict each other before their use.

        .. versionadded:: 0.6
        """
        return self._ledger.survival

    def end_session(self, session: str) -> None:
        """
        ``session`` is over: drop the preloads only it wanted, and count those loaded
        for it that it never read as wasted.

        .. versionadded:: 0.2
        """
        self._ledger.end(session)
        self.reprioritize(session, {})

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
        if self._guard.is_cooling(source):
            self._counters.cooldown_skips += 1
            return False
        if ck in self._queue:
            self._queue.want(ck, session, value)
            return True
        return self._enqueue(ck, key, session, value)

    def _enqueue(self, ck: str, key: str, session: str | None, value: float) -> bool:
        if self._queue.full:  # the weakest job makes room for the new one
            self._counters.shed += 1
            if self._queue.weakest_value() >= value:
                return False
            self._queue.drop_weakest()
        self._queue.push(ck, key, session, value)
        if self._workers < self.config.workers:  # else a worker takes it when free
            assert self._tg is not None
            self._workers += 1
            self._tg.start_soon(self._worker)
        return True

    def reprioritize(self, session: str, values: Mapping[str, float]) -> int:
        """
        Re-price ``session``'s background loads after a newer forecast.

        Every queued or running preload this session asked for takes its value from
        ``values`` (a key absent from it is worth 0 now). Where that falls below
        ``value_threshold``, the session stops wanting the load; a load that no
        session wants any more and no request waits for is dropped from the queue or
        cancelled while it runs. Call it with the new forecast before scheduling its
        keys; ``reprioritize(session, {})`` drops a finished session's preloads.

        Returns:
            How many loads were cancelled.

        .. versionadded:: 0.1
        """
        self._register_demand(session, values)
        cancelled = self._queue.reprice(session, values, self._worthy)
        for ck, flight in list(self._flights.items()):
            if not flight.preload or session not in flight.sessions:
                continue
            value = values.get(flight.key, 0.0)
            if self._worthy(value):
                flight.sessions[session] = value
                continue
            del flight.sessions[session]
            if not flight.sessions and not flight.waiters:
                del self._flights[ck]  # a request from now on starts its own load
                flight.scope.cancel()
                cancelled += 1
        self._counters.cancelled += cancelled
        if cancelled:
            self._signal_idle()
        return cancelled

    def _register_demand(self, session: str, values: Mapping[str, float]) -> None:
        """
        Tell a value-aware cache what ``session`` now expects to use: each key's
        chance of use and the load time a hit on it saves.
        """
        cache = self._value_cache
        if cache is None or cache.demand is None:
            return
        wants: dict[str, tuple[float, float]] = {}
        for key, p in values.items():
            routed = self.key_of(key)
            if routed is not None:
                source, ck = routed
                wants[ck] = (p, self._guard.expected_latency(source.name, key))
        cache.demand.forecast(f"{len(self.tenant)}.{self.tenant}:{session}", wants)

    def expected_latency(self, key: str) -> float:
        """
        The load time to expect for ``key`` (its kind's or its source's moving
        average; 0 when no source has it).

        .. versionadded:: 0.6
        """
        routed = self.key_of(key)
        return 0.0 if routed is None else self._guard.expected_latency(routed[0].name, key)

    @property
    def crowded(self) -> bool:
        """
        Whether a new entry would likely evict another: the in-memory cache holds
        :data:`CROWDED_SHARE` of its entries or bytes (a shared cache always counts as
        crowded: its bound is Redis's own).

        .. versionadded:: 0.6
        """
        cache = self.cache
        if cache is None:
            return False
        if not isinstance(cache, MemoryCache):
            return True
        stats, config = cache.statistics(), cache.config
        return (
            stats.entries >= CROWDED_SHARE * config.max_entries
            or stats.bytes >= CROWDED_SHARE * config.max_bytes
        )

    def ttl_of(self, key: str) -> float | None:
        """
        How long ``key`` lives in the cache once loaded (None: until evicted, or no
        cache).

        .. versionadded:: 0.6
        """
        routed = self.key_of(key)
        if routed is None or self.cache is None:
            return None
        return self.cache.config.ttl_for(routed[0].name, key)

    def cancel(self, key: str) -> bool:
        """
        Drop the queued background load of ``key``, if it has not started.
        """
        routed = self.key_of(key)
        if routed is None or not self._queue.remove(routed[1]):
            return False
        self._counters.cancelled += 1
        self._signal_idle()
        return True

    @property
    def idle(self) -> bool:
        """
        Whether no load is queued or running.
        """
        return not self._queue and not self._flights

    async def wait_idle(self) -> None:
        """
        Wait until no load is queued or running (for tests, benchmarks and draining).
        """
        while not self.idle:
            if self._idle.is_set():
                self._idle = anyio.Event()
            await self._idle.wait()

    @property
    def not_admitted(self) -> int:
        """
        Preloads the value-aware cache refused (``cache.eviction = "value"``): not
        started because it was full of entries worth more, or dropped as soon as
        stored for the same reason (``rejected`` in :meth:`statistics`).

        .. versionadded:: 0.5
        """
        return self._rejected

    @property
    def queued(self) -> int:
        """
        Background loads waiting for a worker.
        """
        return len(self._queue)

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
        return self._guard.cooling()

    def statistics(self) -> PreloaderStatistics:
        """
        A frozen snapshot of the preloader's counters, with the queue and the loads in
        flight read now (the cache reports its own :meth:`statistics`).

        .. versionadded:: 0.2
        """
        return self._counters.snapshot(
            queued=len(self._queue),
            in_flight=len(self._flights),
            preloads_used=self._ledger.used,
            preloads_lost=self._ledger.lost,
            wasted=self._ledger.wasted,
            rejected=self._rejected,
        )

    async def _worker(self) -> None:
        """
        Load the queued jobs, the most valuable first, one at a time, until the queue
        is empty.
        """
        try:
            while (popped := self._queue.pop()) is not None:
                ck, job = popped
                routed = self.key_of(job.key)
                assert routed is not None
                if ck in self._flights or (self.cache is not None and ck in self.cache):
                    self._signal_idle()
                    continue
                if self._value_cache is not None and not self._value_cache.admits(
                    ck, self.survival
                ):
                    self._rejected += 1  # it would evict something worth more
                    self._signal_idle()
                    continue
                sessions = {s: v for s, v in job.values.items() if s is not None}
                flight = self._start(job.key, ck, routed[0], preload=True, sessions=sessions)
                await flight.done.wait()
        finally:
            self._workers -= 1

    def _start(
        self, key: str, ck: str, source: Source, *, preload: bool, sessions: dict[str, float]
    ) -> Flight:
        assert self._tg is not None
        flight = Flight(key=key, cache_key=ck, source=source, preload=preload, sessions=sessions)
        self._flights[ck] = flight
        if preload:
            self._ledger.loaded(key, sessions)
        self._tg.start_soon(self._load, flight)
        return flight

    async def _load(self, flight: Flight) -> None:
        source, key = flight.source, flight.key
        try:
            with flight.scope:
                flight.result = await self._produce(flight)
            if flight.scope.cancelled_caught:
                flight.error = Cancelled(key)
        except MissingItemError as exc:
            flight.error = exc
        except TimeoutError as exc:
            flight.error = exc
            self._counters.timeouts += 1
            self._counters.failures += 1
            logger.debug("preload.load.failed %s %s: timeout", source.name, key)
        except Exception as exc:  # noqa: BLE001 (a source failure is counted, never fatal)
            flight.error = exc
            self._counters.failures += 1
            logger.debug("preload.load.failed %s %s: %r", source.name, key, exc)
        finally:
            flight.done.set()
            if self._flights.get(flight.cache_key) is flight:
                del self._flights[flight.cache_key]
            self._signal_idle()

    async def _produce(self, flight: Flight) -> Representation:
        cache, ck = self.cache, flight.cache_key
        token: str | None = None
        if cache is not None and cache.shared:
            item = await read_item(cache, ck)
            if item is None:
                token = await cache.lease(ck, self.config.lease_ttl_s)
                if token is None:
                    self._counters.lease_waits += 1
                    item, token = await await_other_replica(
                        cache,
                        ck,
                        poll_s=self.config.lease_poll_s,
                        lease_ttl_s=self.config.lease_ttl_s,
                    )
            if item is not None:
                flight.remote = True
                self._counters.remote_loads += 1
                return item
        try:
            if flight.preload:
                self._counters.preloads += 1
            else:
                self._counters.loads += 1
            item = await self._guard.fetch(
                flight.source,
                flight.key,
                lambda text: self._builder.build(flight.source.name, flight.key, text),
                limited=flight.preload,
            )
            if cache is not None:
                ttl = cache.config.ttl_for(flight.source.name, flight.key)
                try:
                    await cache.set(ck, item.to_dict(), ttl=ttl, obj=item, preload=flight.preload)
                    valued = self._value_cache
                    if flight.preload and valued is cache is not None and ck not in valued:
                        self._rejected += 1  # it evicted itself: worth least of all
                except CacheError as exc:  # said once a key (a small cache refuses often)
                    known = flight.key in self._not_cached
                    if not known and len(self._not_cached) < MAX_NOT_CACHED:
                        self._not_cached.add(flight.key)
                    log = logger.debug if known else logger.warning
                    log("not caching %s: %s", flight.key, exc)
            return item
        finally:
            if token is not None and cache is not None and cache.shared:
                with anyio.CancelScope(shield=True):
                    await cache.release(ck, token)

    def _signal_idle(self) -> None:
        if self.idle:
            self._idle.set()

    def _check_open(self) -> None:
        if self._state is not Lifecycle.OPENED:
            raise EngineStateError(
                "the preloader is not open; use it inside 'async with' (it cannot be reopened)"
            )
