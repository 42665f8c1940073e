"""
How many speculative calls one call source may have running at once: at most
``[calls] max_in_flight_per_source``, and fewer while the source's calls take longer
than they usually do, as a busy backend's do (a gradient limit, after Netflix's
``concurrency-limits``).

A backend that serves a bounded number of calls at once makes the others wait their
turn. Calls run ahead then queue before the agent's own, and speculation that saves the
agent a wait when the backend has room costs it one when it has none. The source's
latency says which: every call the engine makes of it, the agent's and those run ahead,
is timed, and the limit shrinks while the recent calls take ``tolerance`` times longer
than the source's usual, down to none, then grows back, while it holds calls back, once
they do not.

The usual latency is the lower of two: the source's latency over its last thousand
calls or so, and that of the calls that started while the engine had the fewest others
running there. The second is what a backend full from the engine's first calls takes
when the engine does not fill it: its usual latency over time is a busy one.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Final, Protocol

__all__ = ["SourceLimit", "SourceLoad", "source_load"]

#: Calls timed before the limit moves. The two latencies start as the mean of the first
#: ``RECENT``, then the usual one follows the recent one at the pace ``RECENT`` both
#: ways: calls that start together end the quickest first, so the first calls a burst
#: of them returns are the source's fastest, not its usual.
WARMUP: Final = 500
#: How many of the latest calls the recent latency follows (an exponential average).
RECENT: Final = 100
#: How many recent averages the usual latency takes to follow the recent one up, and to
#: follow it down, once warm: it is the latency of the source when it is not busy, so it
#: rises slowly (a source slower for good is taken as it is after a thousand calls or
#: two) and falls sooner.
USUAL_UP: Final = 1000
USUAL_DOWN: Final = 300
#: How far a step moves the limit toward its target.
SMOOTHING: Final = 0.2
#: A latency under this (seconds) counts as this: a cached answer is no baseline.
FLOOR_S: Final = 0.001
#: Calls grouped by the other calls running beside them at their start: 0 to this
#: many, the last group holding all beyond.
GROUPS: Final = 64
#: Calls the groups of the fewest others need before their latency is taken, and the
#: latest calls a group averages.
GROUP_LEAST: Final = 30
GROUP_RECENT: Final = 200
#: How many standard errors above its mean the latency of the group of the fewest is
#: taken (so that by chance it is taken lower than it is about once in a thousand).
GROUP_DOUBT: Final = 3.0
#: The least variance of a group's log latency taken for its standard error.
LEAST_VARIANCE: Final = 0.01
#: A group that no call joined in this many of the source's calls is left out: on a
#: replica that is seldom quiet, the calls of its quiet moments would otherwise hold
#: the latency of a source slower for good to what it was.
GROUP_STALE: Final = 2000


class SourceLimit:
    """
    The speculative calls a source may have running at once.

    Latencies are averaged in logs (a geometric mean), so that the few slow calls of a
    source whose latency varies tenfold from call to call do not read as a busy
    backend: with a lognormal latency of p95 five times the median (the replay's
    ``db``), the recent average strayed from the usual one by at most a factor of 1.3
    in 50,000 calls, and 1.5 with a p95 ten times the median. The limit does not move
    in the first ``WARMUP`` calls.

    The usual latency is held to that of the calls that started beside the fewest
    other calls of the engine (grouped by how many, the groups of the fewest pooled
    until they hold ``GROUP_LEAST`` calls, their mean taken ``GROUP_DOUBT`` standard
    errors up, a group no call joined in the last ``GROUP_STALE`` left out): on a backend that the engine's own calls fill from the start, the
    latency over time is a busy one, and only the calls that started while it was not
    full say how long a call takes. Where calls do not queue, the groups take as long
    as each other, and the latency over time stays the usual one.

    Args:
        most: The limit while the source is not slower than usual.
        tolerance: How many times its usual latency the recent one may be before the
            limit shrinks (each call timed then moves it toward ``limit x tolerance x
            usual / recent``, at most halving it); 0: the limit stays ``most`` (the
            latencies are still measured), as ``[calls] source_slowdown = 0``.

    .. versionadded:: 0.25
    .. versionchanged:: 0.26
       :meth:`timed` takes the calls running beside, and the usual latency is held to
       that of the calls that started beside the fewest.
    """

    def __init__(self, most: int, *, tolerance: float = 1.5) -> None:
        if most < 1:
            raise ValueError(f"most must be at least 1, got {most}")
        if tolerance != 0 and not tolerance > 1.0:
            raise ValueError(f"tolerance must be above 1 (or 0), got {tolerance}")
        self.most = most
        self.tolerance = tolerance
        self._limit = float(most)
        self._timed = 0
        self._recent = 0.0  # log seconds
        self._usual = 0.0
        self._reach = math.log(tolerance) if tolerance else math.inf
        self._wanted = False  # the limit held a call back since it last moved
        self._groups = [_Group() for _ in range(GROUPS)]  # by the calls beside

    @property
    def limit(self) -> int:
        """
        The calls run ahead that may be running at once now.
        """
        return int(self._limit)

    @property
    def slowdown(self) -> float:
        """
        The recent latency over the usual one (1.0 before ``WARMUP`` calls were timed).
        """
        return math.exp(self._recent - self._reference()) if self._timed >= WARMUP else 1.0

    def held(self) -> None:
        """
        The limit held a call back from running ahead (it grows only when it did).
        """
        self._wanted = True

    def timed(self, seconds: float, beside: int = 0) -> None:
        """
        A call of the source took ``seconds``; ``beside`` other calls of the engine
        were running at the source when it started.
        """
        x = math.log(max(seconds, FLOOR_S))
        self._groups[min(max(beside, 0), GROUPS - 1)].add(x, self._timed)
        self._timed += 1
        self._recent += (x - self._recent) / min(self._timed, RECENT)
        if self._timed <= RECENT:
            self._usual = self._recent
            return
        if self._timed <= WARMUP:
            self._usual += (self._recent - self._usual) / RECENT
            return
        pace = USUAL_DOWN if self._recent < self._usual else USUAL_UP
        self._usual += (self._recent - self._usual) / pace
        if not self.tolerance:
            return
        gradient = min(1.0, max(0.5, math.exp(self._reach + self._reference() - self._recent)))
        if gradient < 1.0:
            self._limit -= SMOOTHING * (1.0 - gradient) * self._limit
        elif self._wanted:
            step = SMOOTHING * max(1.0, math.sqrt(self._limit))
            self._limit = min(float(self.most), self._limit + step)
        self._wanted = False

    def _reference(self) -> float:
        """
        The usual log latency the recent one is held to: the lower of the usual over
        time and the latency when the engine does not fill the source.
        """
        return min(self._usual, self._unqueued())

    def _unqueued(self) -> float:
        """
        The mean log latency of the calls that started beside the fewest others (the
        groups of the fewest that a call joined in the last ``GROUP_STALE``, pooled
        until they hold ``GROUP_LEAST`` calls),
        ``GROUP_DOUBT`` standard errors up: the source's latency when the engine does
        not fill it. Infinite before.
        """
        calls = 0
        weight = total = squares = 0.0
        for group in self._groups:
            if not group.calls or self._timed - group.joined > GROUP_STALE:
                continue
            w = min(group.calls, GROUP_RECENT)
            calls += group.calls
            weight += w
            total += w * group.mean
            squares += w * group.square
            if calls >= GROUP_LEAST:
                mean = total / weight
                variance = max(squares / weight - mean**2, LEAST_VARIANCE)
                return mean + GROUP_DOUBT * math.sqrt(variance / weight)
        return math.inf


@dataclass(slots=True)
class _Group:
    """
    The calls that started beside one number of others: how many, the mean of their
    log latencies and of its square (over the latest ``GROUP_RECENT``), and the call
    (of those the source timed) that last joined.
    """

    calls: int = 0
    mean: float = 0.0
    square: float = 0.0
    joined: int = 0

    def add(self, x: float, call: int) -> None:
        self.calls += 1
        self.joined = call
        weight = min(self.calls, GROUP_RECENT)
        self.mean += (x - self.mean) / weight
        self.square += (x * x - self.square) / weight


class Runs(Protocol):
    """
    What runs an engine's calls ahead (its loader): whether one is still queued or
    running.
    """

    def is_pending(self, key: str) -> bool: ...


class SourceLoad:
    """
    What the engines of a process that were given one call source object share of
    it: the calls of it running now, whoever made them (:attr:`running`), the limit
    of the calls run ahead against it (:attr:`limit`), which every call of it times,
    and the calls each engine ran ahead against
    it (:meth:`ahead_of`), counted together against that limit. Tenants whose tools
    are one client to one backend then read it as busy from all their calls, not each
    from its own, and run ahead at most what it takes between them.

    .. versionadded:: 0.27
    """

    __slots__ = ("_ahead", "limit", "running", "told")

    def __init__(self, limit: SourceLimit) -> None:
        self.limit = limit
        #: The calls of the source running now.
        self.running = 0
        #: What was logged of the source once (its limit bound, it fell): once for
        #: every engine sharing it.
        self.told: set[str] = set()
        # per engine (its loader, held weakly): the keys of its calls run ahead
        self._ahead: weakref.WeakKeyDictionary[Runs, set[str]] = weakref.WeakKeyDictionary()

    def ahead_of(self, loader: Runs) -> set[str]:
        """
        The keys of the calls an engine (by its ``loader``) ran ahead against the
        source, to add to as it runs more.
        """
        return self._ahead.setdefault(loader, set())

    def ahead(self) -> int:
        """
        The calls run ahead against the source by every engine sharing it, as counted:
        some may have ended (:meth:`drop_ended`).
        """
        return sum(len(keys) for keys in self._ahead.values())

    def drop_ended(self) -> None:
        """
        Forget the calls run ahead that ended: those no engine's loader still runs.
        """
        for loader, keys in list(self._ahead.items()):
            keys.intersection_update([k for k in keys if loader.is_pending(k)])


#: Per call source object, the loads of the engines given it, by their limit's settings
#: (``most``, ``tolerance``): gone with the source.
_LOADS: weakref.WeakKeyDictionary[object, dict[tuple[int, float], SourceLoad]] = (
    weakref.WeakKeyDictionary()
)


def source_load(source: object, most: int, *, tolerance: float = 1.5) -> SourceLoad:
    """
    The load of a call source shared by every engine of the process given the same
    object with the same limit's settings (a :class:`SourceLimit` of ``most`` and
    ``tolerance``); a new one for a source that cannot be held weakly or hashed (each
    engine then counts its own calls).

    .. versionadded:: 0.27
    """
    try:
        per = _LOADS.setdefault(source, {})
    except TypeError:  # no weak reference to it, or not hashable
        return SourceLoad(SourceLimit(most, tolerance=tolerance))
    got = per.get((most, tolerance))
    if got is None:
        got = per[(most, tolerance)] = SourceLoad(SourceLimit(most, tolerance=tolerance))
    return got
