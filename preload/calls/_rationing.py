"""
The per-call budget of speculation: about ``max_per_call`` speculative calls for each
read-only call the agents make, spent on the likeliest guesses.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["CallRationing"]


class CallRationing:
    """
    What speculation may spend, for each read-only call the agents make.

    Two parts, so that the budget holds whatever the forecaster's probabilities:

    - a *bar*: the probability a guess needs to run, so that of the last ``WINDOW``
      guesses that passed every other test (the threshold, the turn's and the
      source's budgets) those that run are about ``per_call`` for each read-only call
      made meanwhile, the likeliest first. It is the ``per_call x calls``-th largest of
      their probabilities, recomputed every ``EVERY`` guesses; the calls count
      ``PRIOR_CALLS`` more, so that a new engine runs its first guesses;
    - an *allowance*, for what the bar cannot tell apart (many guesses of one
      probability): it starts at ``ALLOWANCE_CALLS`` calls' worth, each read-only call
      adds ``per_call`` to it (up to that much) and each speculative call takes one.

    ``per_call`` may be ``inf``: no bound.

    .. versionadded:: 0.7
    """

    WINDOW = 2048
    EVERY = 64
    PRIOR_CALLS = 25
    ALLOWANCE_CALLS = 50

    def __init__(self, per_call: float) -> None:
        self.per_call = per_call
        self.bar = 0.0
        self.calls = 0  # read-only calls made
        self._guesses: deque[tuple[float, int]] = deque(maxlen=self.WINDOW)  # p, calls then
        self._since = 0
        self._most = per_call * self.ALLOWANCE_CALLS
        self._allowance = self._most

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
        self._guesses.append((p, self.calls))
        self._since += 1
        if self._since >= self.EVERY:
            self._since = 0
            self._settle()
        return p >= self.bar and self._allowance >= 1.0 - 1e-9  # ten calls of 0.1 allow one

    def spend(self) -> None:
        """
        A speculative call was started.
        """
        self._allowance -= 1.0

    def _settle(self) -> None:
        calls = self.calls - self._guesses[0][1] + self.PRIOR_CALLS
        k = int(self.per_call * calls)
        if k >= len(self._guesses):
            self.bar = 0.0
            return
        ranked = sorted((p for p, _ in self._guesses), reverse=True)
        self.bar = ranked[k - 1] if k >= 1 else math.inf
