"""
What each cache entry is worth keeping: the expected value that value-aware eviction
and admission compare.

:class:`Demand` pools the forecasts of every live session that shares a cache (the
sessions of every tenant on it): an entry's expected value is the chance that some
session uses it next, ``1 - prod(1 - p)`` over the sessions that forecast it. Every
hit counts alike: a turn waits for the slowest of its misses, loaded together, so a
hit on a slow item saves that turn nothing while a fast one of its items is missing.
Weighting each entry by its own load time (tried) kept slow database rows a 10 %
chance of use over fast items a 60 % chance, and lost both hit rate and p95 wait
(the demo, 20 tenants at 5 % of the working set, no preloads: hit rate 0.091
against 0.199 by chance alone). The load time a hit saves is still recorded
(:meth:`Demand.saved`), though nothing decides by it now. :class:`EntryValue` is the
seam the cache reads, so that a replay can put an oracle behind it (furthest next
use first, Belady).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

__all__ = ["MAX_FORECAST_KEYS", "Demand", "EntryValue"]

#: The most keys one session's forecast registers; the rest are ignored.
MAX_FORECAST_KEYS = 256


@runtime_checkable
class EntryValue(Protocol):
    """
    The expected value of keeping a cache entry; the cache drops the lowest first.

    .. versionadded:: 0.5
    """

    def value(self, key: str) -> float:
        """
        What keeping ``key`` is worth now (0: nothing known; ties go least recently
        used first).
        """
        ...


class Demand:
    """
    The live sessions' forecasts of the entries of one cache.

    Each session registers the cache keys its latest forecast wants, with the chance
    of use and the seconds a hit would save (:meth:`forecast`), replacing what it
    registered before; a session that ends registers nothing (:meth:`end`). Work is
    linear in the keys a forecast registers (at most :data:`MAX_FORECAST_KEYS`).

    .. versionadded:: 0.5
    """

    def __init__(self) -> None:
        self._by_session: dict[str, dict[str, float]] = {}
        # key -> [product of (1 - p) over sessions with p < 1, sessions with p = 1,
        #         sessions counted]
        self._miss: dict[str, list[float]] = {}
        self._saved: dict[str, float] = {}

    def __len__(self) -> int:
        """
        The keys some live session wants.
        """
        return len(self._miss)

    def forecast(self, session: str, wants: Mapping[str, tuple[float, float]]) -> None:
        """
        ``session``'s latest forecast: cache key -> (chance of use, seconds a hit
        saves); replaces the session's earlier one.
        """
        self.end(session)
        mine: dict[str, float] = {}
        for key, (p, saved) in wants.items():
            if len(mine) >= MAX_FORECAST_KEYS:
                break
            p = min(max(p, 0.0), 1.0)
            if p <= 0.0:
                continue
            mine[key] = p
            entry = self._miss.setdefault(key, [1.0, 0.0, 0.0])
            if p < 1.0:
                entry[0] *= 1.0 - p
            else:
                entry[1] += 1
            entry[2] += 1
            self._saved[key] = max(saved, 0.0)
        if mine:
            self._by_session[session] = mine

    def end(self, session: str) -> None:
        """
        ``session`` wants nothing any more.
        """
        for key, p in self._by_session.pop(session, {}).items():
            entry = self._miss[key]
            entry[2] -= 1
            if entry[2] <= 0:
                del self._miss[key]
                self._saved.pop(key, None)
            elif p < 1.0:
                entry[0] /= 1.0 - p
            else:
                entry[1] -= 1

    def chance(self, key: str) -> float:
        """
        The chance that some live session uses ``key`` next.
        """
        entry = self._miss.get(key)
        if entry is None:
            return 0.0
        return 1.0 if entry[1] > 0 else min(1.0, max(0.0, 1.0 - entry[0]))

    def saved(self, key: str) -> float:
        """
        The seconds a hit on ``key`` saves, as its latest forecast said (0 when no live
        session wants it).

        .. versionadded:: 0.6
        """
        return self._saved.get(key, 0.0)

    def value(self, key: str) -> float:
        """
        What keeping ``key`` is worth: the chance that some live session uses it next.

        .. versionchanged:: 0.6
           The chance alone, no longer times the seconds a hit saves.
        """
        return self.chance(key)
