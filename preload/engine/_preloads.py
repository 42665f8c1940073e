"""
The engine's preload side: what a forecast preloads, and when. A likely need is
preloaded at once, or, when the cache is crowded or the item would expire before its
use, just in time (at the early think time after the answer, less its load's
latency); one whose time to live would end before its expected use is left out. Both
are explained in the next context.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import anyio.abc

if TYPE_CHECKING:
    from ..learning import Forecast, ThinkTimes
    from ..loading import Preloader
    from ._session import Counters, EngineSession

__all__ = ["MAX_EXPLAINED", "PreloadSide"]

#: Preloads left out for their time to live, or deferred, that one context explains.
MAX_EXPLAINED = 8


class PreloadSide:
    """
    Preloads the forecasts' likely needs for the sessions' next requests.

    Args:
        preloader: The engine's preloader.
        think_times: What the engine learned of the time between an answer and the
            next request.
        counters: The engine's counters (``deferred``, ``ttl_skipped``).
        live: Whether a session is still the engine's (not ended or forgotten).
    """

    def __init__(
        self,
        preloader: Preloader,
        think_times: ThinkTimes,
        counters: Counters,
        *,
        live: Callable[[EngineSession], bool],
    ) -> None:
        self.preloader = preloader
        self.think_times = think_times
        self._counters = counters
        self._live = live
        self.deferring = 0  # sessions with preloads waiting to start just in time
        self._deferral = anyio.Event()  # set when one starts a preload or ends

    async def wait(self) -> None:
        """
        Wait until a preload started just in time starts, or a session's wait ends.
        """
        if self._deferral.is_set():
            self._deferral = anyio.Event()
        await self._deferral.wait()

    def preload(self, session: EngineSession, forecast: Forecast, tg: anyio.abc.TaskGroup) -> None:
        """
        Preload the forecast's likely needs: at once, or, when the cache is crowded
        (a preload would evict something) or the item would expire before its use,
        just in time (each at the early think time after the answer, less its load's
        latency and the margin), leaving out those whose time to live would end
        before their expected use even so.

        A preload is worth its chance of use times the cache's :attr:`survival
        <preload.loading.Preloader.survival>` (the share of needed preloads still
        there when needed), except the likeliest need's, so that under pressure only
        the likeliest are preloaded and the survival keeps being measured. A key
        preloaded for this turn that has left the cache is not preloaded again
        before the next request.
        """
        limit = session.config.preloader.max_preloads_per_turn
        self.preloader.reprioritize(session.id, dict(forecast.needs))
        if session.deferred is not None:
            session.deferred.cancel()
            session.deferred = None
        timing = self._timing(session)
        session.ttl_skipped = []
        session.deferrals = {}
        later: list[tuple[float, str, float]] = []
        scheduled = 0
        survival = self.preloader.survival
        values = [(k, p if i == 0 else p * survival) for i, (k, p) in enumerate(forecast.needs)]
        for key, p in self.preloader.worth(values):
            if scheduled >= limit:
                break
            if self.preloader.is_ready(key):
                continue
            if key in session.preloaded and not self.preloader.is_pending(key):
                continue  # preloaded for this turn and lost: the cache has no room for it
            start_at = self._start_at(session, key, timing)
            if start_at is None:
                continue
            if start_at > anyio.current_time():
                later.append((start_at, key, p))
                scheduled += 1
            elif self.preloader.schedule(key, p, session=session.id):
                session.preloaded.add(key)
                scheduled += 1
        if later:
            self._counters.deferred += len(later)
            session.deferrals = {key: (at, False) for at, key, _ in later[:MAX_EXPLAINED]}
            session.deferred = anyio.CancelScope()
            self.deferring += 1
            tg.start_soon(self._preload_later, session, sorted(later), session.deferred)

    def _timing(self, session: EngineSession) -> tuple[float, float, float] | None:
        """
        When the session's last answer was, and the early (``jit_quantile``) and the
        median think time after its state; None when nothing is known or asked for.
        """
        config = session.config.preloader
        if not (config.just_in_time or config.ttl_aware) or not session.turns:
            return None
        state = session.turns[-1].get("state")
        early = self.think_times.quantile(state, config.jit_quantile)
        typical = self.think_times.quantile(state, 0.5)
        if early is None or typical is None:
            return None
        now = anyio.current_time()
        anchor = session.answered_at if session.answered_at is not None else now
        return anchor, early, typical

    def _start_at(
        self, session: EngineSession, key: str, timing: tuple[float, float, float] | None
    ) -> float | None:
        """
        When to start preloading ``key``: now, or just in time; None when its time to
        live would end before its expected use (counted and explained).
        """
        now = anyio.current_time()
        if timing is None:
            return now
        config = session.config.preloader
        anchor, early, typical = timing
        latency = self.preloader.expected_latency(key)
        ttl = self.preloader.ttl_of(key)
        use = anchor + typical
        expires = ttl is not None and now + latency + ttl < use
        start_at = now
        if config.just_in_time and (expires or self.preloader.crowded):
            start_at = max(now, anchor + early - latency - config.jit_margin_s)
        if config.ttl_aware and ttl is not None and start_at + latency + ttl < use:
            self._counters.ttl_skipped += 1
            if len(session.ttl_skipped) < MAX_EXPLAINED:
                session.ttl_skipped.append(
                    f"{key}: not preloaded, its TTL ({ttl:.0f} s) would end before its "
                    f"expected use in {use - now:.0f} s"
                )
            return None
        return start_at

    async def _preload_later(
        self, session: EngineSession, jobs: list[tuple[float, str, float]], scope: anyio.CancelScope
    ) -> None:
        """
        Start each of ``jobs`` (start time, key, value) at its time, unless the session
        asked, forecast again or ended meanwhile (the scope is cancelled then).
        :meth:`wait` waits for this to end.
        """
        try:
            with scope:
                for start_at, key, p in jobs:
                    await anyio.sleep_until(start_at)
                    if not self._live(session):
                        return
                    if key in session.deferrals:
                        session.deferrals[key] = (start_at, True)
                    if not self.preloader.is_ready(key) and self.preloader.schedule(
                        key, p, session=session.id
                    ):
                        session.preloaded.add(key)
                        self._deferral.set()
        finally:
            if session.deferred is scope:
                session.deferred = None
            self.deferring -= 1
            self._deferral.set()

    def explain(self, session: EngineSession, now: float) -> tuple[str, ...]:
        """
        The ``explain()`` lines of the preloads the last forecast deferred: when each
        was to start, relative to the last answer, and whether it had by ``now``.
        """
        anchor = session.answered_at if session.answered_at is not None else now
        lines = []
        for key, (at, started) in session.deferrals.items():
            when = f"{at - anchor:.1f} s after the last answer"
            if started:
                lines.append(f"{key}: preloaded just in time, started {when}")
            else:
                lines.append(
                    f"{key}: to be preloaded just in time, {when}; the request came "
                    f"{at - now:.1f} s before that"
                )
        return tuple(lines)
