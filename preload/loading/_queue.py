"""
The preload queue: background loads waiting for a worker, most valuable first.

A queued load is wanted by one or more sessions, each with its own expected value;
its priority is the highest of them. Re-pricing a load pushes a fresh heap entry and
marks the old one dead, so the heap never needs a search.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["PreloadQueue"]


@dataclass(slots=True, eq=False)
class Job:
    """
    One queued load: its item key and the value each session (None: no session) sees.
    """

    key: str
    values: dict[str | None, float]
    live: bool = True

    @property
    def value(self) -> float:
        return max(self.values.values())


class PreloadQueue:
    """
    Queued background loads by cache key, popped by value.

    Args:
        size: The most loads queued at once.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._jobs: dict[str, Job] = {}
        self._heap: list[tuple[float, int, str, Job]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, ck: object) -> bool:
        return ck in self._jobs

    def want(self, ck: str, session: str | None, value: float) -> None:
        """
        ``session`` wants the queued load ``ck`` (raising its value, never lowering it).
        """
        job = self._jobs[ck]
        old = job.value
        job.values[session] = max(value, job.values.get(session, 0.0))
        if job.value > old:
            self._requeue(ck, job)

    @property
    def full(self) -> bool:
        """
        Whether no other load fits.
        """
        return len(self._jobs) >= self.size

    def weakest_value(self) -> float:
        """
        The value of the least valuable queued load.
        """
        return min(job.value for job in self._jobs.values())

    def drop_weakest(self) -> None:
        """
        Drop the least valuable queued load (the first queued among equals).
        """
        weakest = min(self._jobs, key=lambda k: self._jobs[k].value)
        self._jobs.pop(weakest).live = False

    def push(self, ck: str, key: str, session: str | None, value: float) -> None:
        """
        Queue a new load of ``key`` under the cache key ``ck``.
        """
        self._push(ck, Job(key=key, values={session: value}))

    def reprice(
        self, session: str, values: Mapping[str, float], worthy: Callable[[float], bool]
    ) -> int:
        """
        Re-price ``session``'s queued loads from ``values`` (by item key, absent: 0);
        the session stops wanting those not ``worthy``, and a load nobody wants any
        more is dropped.

        Returns:
            How many loads were dropped.
        """
        dropped = 0
        for ck, job in list(self._jobs.items()):
            if session not in job.values:
                continue
            value = values.get(job.key, 0.0)
            if worthy(value):
                old = job.value
                job.values[session] = value
                if job.value != old:
                    self._requeue(ck, job)
                continue
            del job.values[session]
            if not job.values:
                del self._jobs[ck]
                job.live = False
                dropped += 1
        return dropped

    def remove(self, ck: str) -> bool:
        """
        Drop the queued load ``ck``; whether there was one.
        """
        job = self._jobs.pop(ck, None)
        if job is None:
            return False
        job.live = False
        return True

    def pop(self) -> tuple[str, Job] | None:
        """
        The most valuable queued load, taken off the queue (None when empty).
        """
        while self._heap:
            _, _, ck, job = heapq.heappop(self._heap)
            if job.live and self._jobs.get(ck) is job:
                del self._jobs[ck]
                return ck, job
        return None

    def clear(self) -> int:
        """
        Drop everything; how many loads were queued.
        """
        count = len(self._jobs)
        self._jobs.clear()
        self._heap.clear()
        return count

    def _push(self, ck: str, job: Job) -> None:
        self._jobs[ck] = job
        heapq.heappush(self._heap, (-job.value, next(self._seq), ck, job))

    def _requeue(self, ck: str, job: Job) -> None:
        job.live = False
        self._push(ck, Job(key=job.key, values=job.values))
