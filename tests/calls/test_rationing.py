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
    Every guess equally likely: the bar lets them all through, the allowance does not:
    a new engine's first turn gets two calls' worth, then each read-only call allows
    ``per_call`` more.
    """
    rationing = CallRationing(2.0)
    ran = 0
    for _ in range(100):
        if rationing.admits(0.9):
            rationing.spend()
            ran += 1
    assert 4 == ran
    for _ in range(10):
        rationing.called()
    for _ in range(100):
        if rationing.admits(0.9):
            rationing.spend()
            ran += 1
    assert 24 == ran


def test_speculation_never_outruns_the_calls_made_however_few() -> None:
    """
    Guesses of every probability, read-only calls now and then: at every moment the
    speculative calls run are at most ``per_call`` for each call made, plus the first
    turn's two calls' worth (a replay of a few sessions stays within its budget).
    """
    rng = random.Random(1)
    rationing = CallRationing(1.5)
    ran = 0
    for _ in range(5000):
        if rng.random() < 0.05:
            rationing.called()
        if rationing.admits(rng.random()):
            rationing.spend()
            ran += 1
        assert ran <= 1.5 * (rationing.calls + CallRationing.START_CALLS)
    assert ran >= 1.5 * rationing.calls * 0.8  # and it spends most of what it may


def test_an_unbounded_budget_admits_everything() -> None:
    rationing = CallRationing(math.inf)
    assert all(rationing.admits(0.001) for _ in range(1000))
