"""
CallRationing: speculation spends about ``per_call`` calls for each read-only call
made, on the likeliest guesses.
"""

from __future__ import annotations

import math
import random

from preload.calls import CallRationing


def test_the_bar_lets_the_likeliest_guesses_through_at_the_rate_asked() -> None:
    """
    Guesses of every probability, one read-only call per ten guesses, two
    speculative calls a call: once settled, about a fifth of the guesses run, and
    they are the likeliest (a bar near the fifth from the top).
    """
    rng = random.Random(0)
    rationing = CallRationing(2.0)
    admitted: list[float] = []
    for i in range(6000):
        if i % 10 == 0:
            rationing.called()
        p = rng.random()
        if rationing.admits(p) and i >= 3000:
            admitted.append(p)
    share = len(admitted) / 3000
    assert 0.17 <= share <= 0.25
    assert min(admitted) >= 0.7


def test_the_allowance_bounds_guesses_the_bar_cannot_tell_apart() -> None:
    """
    Every guess equally likely: the bar lets them all through, the allowance (50
    calls' worth) does not; each read-only call then allows ``per_call`` more.
    """
    rationing = CallRationing(0.1)
    ran = 0
    for _ in range(100):
        if rationing.admits(0.9):
            rationing.spend()
            ran += 1
    assert 5 == ran
    for _ in range(10):
        rationing.called()
    assert rationing.admits(0.9)
    rationing.spend()
    assert not rationing.admits(0.9)


def test_an_unbounded_budget_admits_everything() -> None:
    rationing = CallRationing(math.inf)
    assert all(rationing.admits(0.001) for _ in range(1000))
