"""
The per-call budget of speculation: at most ``max_per_call`` speculative calls for each
read-only call the agents make (and two calls' worth for an engine's first turn), spent
on the likeliest guesses.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque

__all__ = ["CallRationing"]


class CallRationing:
    """
    What speculation may spend, for each read-only call the agents make.

    Two parts, so that the budget holds whatever the forecaster's probabilities:

    - a *bar*: the probability a guess needs to run, so that of the last ``WINDOW``
      guesses that passed every other test (the threshold, the turn's and the
      source's budgets) those that run are about ``per_call`` for each read-only call
      made meanwhile, the likeliest first: the ``per_call x calls``-th largest of their
      probabilities (the window is kept sorted as guesses come and go, so finding it
      costs the event loop no sort); the calls count ``START_CALLS`` more, so that a
      new engine runs its first guesses;
    - an *allowance*, for what the bar cannot tell apart (many guesses of one
      probability), and what makes the budget hold from the first call on: it starts
      at ``START_CALLS`` calls' worth (a new engine's first turn), each read-only call
      adds ``per_call`` to it (up to ``ALLOWANCE_CALLS`` calls' worth) and each
      speculative call takes one. So an engine never runs more than ``per_call x
      (START_CALLS + calls)`` speculative calls, however few calls it serves.

    ``per_call`` may be ``inf``: no bound.

    .. versionadded:: 0.7
    .. versionchanged:: 0.8
       The allowance starts at ``START_CALLS`` calls' worth (it was ``ALLOWANCE_CALLS``,
       which let a replay of a few sessions spend 2.3 a call at 2 per call).
    """

    WINDOW = 2048
    START_CALLS = 2
    ALLOWANCE_CALLS = 50

    def __init__(self, per_call: float) -> None:
        self.per_call = per_call
        self.calls = 0  # read-only calls made
        self._guesses: deque[tuple[float, int]] = deque()  # p, calls made before it
        self._ranked: list[float] = []  # the window's probabilities, ascending
        self._most = per_call * self.ALLOWANCE_CALLS
        self._allowance = per_call * self.START_CALLS

    def called(self) -> None:
        """
        The agents made a read-only call.
        """
        self.calls += 1
        self._allowance = min(self._most, self._allowance + self.per_call)

    def admits(self, p: float) -> bool:
        """
        Whether a guess of probability ``p``, that passed every other test, may run now
        (if it then does, say so with :meth:`spend`).
        """
        if math.isinf(self.per_call):
            return True
        if len(self._guesses) == self.WINDOW:
            old, _ = self._guesses.popleft()
            del self._ranked[bisect_left(self._ranked, old)]
        self._guesses.append((p, self.calls))
        insort(self._ranked, p)
        return p >= self.bar and self._allowance >= 1.0 - 1e-9  # ten calls of 0.1 allow one

    @property
    def bar(self) -> float:
        """
        The probability a guess needs now.
        """
        calls = self.calls - self._guesses[0][1] + self.START_CALLS if self._guesses else 0
        k = int(self.per_call * calls)
        if k >= len(self._ranked):
            return 0.0
        return self._ranked[-k] if k >= 1 else math.inf

    def spend(self) -> None:
        """
        A speculative call was started.
        """
        self._allowance -= 1.0
