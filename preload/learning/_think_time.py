"""
How long users think: the time from a reply (or, without one, from the answer to the
request) to the next request, learned online per state.

:class:`ThinkTimes` keeps, per state and over all states, a lognormal estimate (the
running mean and variance of the log seconds, Welford's update, O(1) a gap); a state
with fewer than ``min_samples`` gaps answers from the global estimate, and with fewer
than that globally nothing is known (None). At most :data:`MAX_STATES` states are
followed; past it, new states answer from the global estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

__all__ = ["MAX_STATES", "ThinkTimes"]

#: States whose think time is learned on its own.
MAX_STATES = 10_000

#: Shortest gap learned from (a gap of 0 has no logarithm).
_FLOOR_S = 1e-3


@dataclass(slots=True)
class _LogNormal:
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, seconds: float) -> None:
        x = math.log(max(seconds, _FLOOR_S))
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def quantile(self, q: float) -> float:
        sigma = math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0
        z = NormalDist().inv_cdf(min(max(q, 1e-6), 1 - 1e-6))
        return math.exp(self.mean + z * sigma)


class ThinkTimes:
    """
    Think times per state, learned online.

    Args:
        min_samples: Gaps a state needs before its own estimate is used.

    .. versionadded:: 0.6
    """

    def __init__(self, *, min_samples: int = 5) -> None:
        self.min_samples = min_samples
        self._all = _LogNormal()
        self._by_state: dict[str, _LogNormal] = {}

    def observe(self, state: str | None, seconds: float) -> None:
        """
        A request came ``seconds`` after the reply to a request in ``state``.
        """
        if not math.isfinite(seconds) or seconds < 0:
            return
        self._all.add(seconds)
        if state is None:
            return
        mine = self._by_state.get(state)
        if mine is None:
            if len(self._by_state) >= MAX_STATES:
                return
            mine = self._by_state[state] = _LogNormal()
        mine.add(seconds)

    def quantile(self, state: str | None, q: float) -> float | None:
        """
        The think time after ``state`` that a share ``q`` of requests come before
        (the global one when the state is little known; None when nothing is).
        """
        mine = self._by_state.get(state) if state is not None else None
        if mine is not None and mine.n >= self.min_samples:
            return mine.quantile(q)
        if self._all.n >= self.min_samples:
            return self._all.quantile(q)
        return None
