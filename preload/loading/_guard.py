"""
Asking a source safely: its timeout, its concurrency limit, retries with backoff, and a
cool-down for a source that keeps failing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import MissingItemError, SourceError

if TYPE_CHECKING:
    from .._config import PreloaderConfig
    from .._sources import Source
    from ..compression import Representation
    from ._statistics import Counters

__all__ = ["Refused", "SourceGuard"]

logger = logging.getLogger("preload.loading")


class Refused(SourceError):
    """
    The source answered with something that is not an item (not text, or too long);
    asking again would not help.
    """


#: The load time assumed before any load of a source has been timed.
DEFAULT_LATENCY_S = 0.15

#: The weight of a new load in the moving average of a kind's load time.
LATENCY_EWMA = 0.05

#: The most (source, kind) pairs whose load times are kept apart.
MAX_LATENCY_KINDS = 1024


class SourceGuard:
    """
    Calls sources within their limits and keeps track of the failing ones.

    Args:
        config: Timeouts, limits, retries and cool-downs.
        counters: Where retries, cool-downs and load latencies are counted.
    """

    def __init__(self, config: PreloaderConfig, counters: Counters) -> None:
        self.config = config
        self._counters = counters
        self._limiter = anyio.CapacityLimiter(config.max_concurrent_loads)
        self._source_limiters: dict[str, anyio.CapacityLimiter] = {}
        self._failing: Counter[str] = Counter()
        self._cooling: dict[str, float] = {}
        # (source, kind) -> the mean load time, an exponential moving average
        self._latency: dict[tuple[str, str], float] = {}

    async def fetch(
        self,
        source: Source,
        key: str,
        finish: Callable[[str], Awaitable[Representation]],
        *,
        limited: bool = True,
    ) -> Representation:
        """
        Fetch ``key`` within its source's timeout (and its concurrency limits when
        ``limited``: for a preload, never for a load a request waits for) and
        ``finish`` the text (compress it), retrying a failure with exponential backoff;
        count the source's failures toward a cool-down.

        Raises:
            MissingItemError: The source does not have ``key``.
            Exception: The last attempt's failure.
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
                    if limited:
                        async with self._source_limiter(source.name), self._limiter:
                            text: Any = await source.fetch(key)
                    else:
                        text = await source.fetch(key)
                self._check_text(source, key, text)
                item = await finish(text)
            except MissingItemError:
                raise
            except Refused:
                self._source_failed(source)
                raise
            except Exception:
                if attempt + 1 >= attempts:
                    self._source_failed(source)
                    raise
                self._counters.retries += 1
                await anyio.sleep(pause)
                pause *= 2
                continue
            self._failing.pop(source.name, None)
            took = anyio.current_time() - start
            self._counters.observe_load(took)
            self._learn_latency(source.name, key, took)
            if debug:
                logger.debug("preload.load.complete %s %s", source.name, key)
            return item
        raise AssertionError("unreachable")  # pragma: no cover

    def expected_latency(self, source: str, key: str) -> float:
        """
        The load time to expect for ``key`` from ``source``: the moving average of
        its kind's loads (the key's text before the first ``:``), else of the
        source's, else ``DEFAULT_LATENCY_S``.
        """
        kind = key.split(":", 1)[0]
        seen = self._latency.get((source, kind))
        if seen is None:
            seen = self._latency.get((source, ""), DEFAULT_LATENCY_S)
        return seen

    def _learn_latency(self, source: str, key: str, seconds: float) -> None:
        kind = key.split(":", 1)[0]
        if len(self._latency) >= MAX_LATENCY_KINDS and (source, kind) not in self._latency:
            kind = ""
        for k in {(source, kind), (source, "")}:
            old = self._latency.get(k)
            self._latency[k] = seconds if old is None else old + LATENCY_EWMA * (seconds - old)

    def is_cooling(self, source: Source) -> bool:
        """
        Whether ``source`` is resting after repeated failures.
        """
        until = self._cooling.get(source.name)
        if until is None:
            return False
        if anyio.current_time() < until:
            return True
        del self._cooling[source.name]
        return False

    def cooling(self) -> dict[str, float]:
        """
        The sources cooling down now, with the loop time at which each may be asked
        again.
        """
        now = anyio.current_time()
        return {name: until for name, until in self._cooling.items() if until > now}

    def _check_text(self, source: Source, key: str, text: Any) -> None:
        if not isinstance(text, str):
            raise Refused(source.name, key, f"returned {type(text).__name__}, not text")
        if len(text) > self.config.max_item_chars:
            raise Refused(
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
            self._counters.cooldowns += 1
            logger.warning(
                "source %r failed %d loads in a row; not asking it for %g s",
                source.name,
                self.config.failure_threshold,
                self.config.cooldown_s,
            )
