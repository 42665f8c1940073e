"""
The report's statistics against cases worked by hand.
"""

from __future__ import annotations

import math

import pytest

from preload.experiments import mean_ci, welch

A = [1.0, 2.0, 3.0, 4.0, 5.0]
B = [2.0, 4.0, 6.0, 8.0, 10.0]


def test_the_mean_interval_is_the_t_interval() -> None:
    """
    [1..5]: mean 3, s² = 2.5, s/√n = √0.5; t(0.975, 4) = 2.776445 (tables), so the
    95 % interval is 3 ± 1.963243.
    """
    e = mean_ci(A)
    half = 2.776445 * math.sqrt(0.5)
    assert (5, 3.0) == (e.n, e.mean)
    assert e.low == pytest.approx(3 - half, abs=1e-5)
    assert e.high == pytest.approx(3 + half, abs=1e-5)
    assert 1.036757 == pytest.approx(e.low, abs=1e-5)


def test_a_wider_confidence_gives_a_wider_interval() -> None:
    """
    99 % uses t(0.995, 4) = 4.604095.
    """
    e = mean_ci(A, confidence=0.99)
    assert e.high == pytest.approx(3 + 4.604095 * math.sqrt(0.5), abs=1e-5)


def test_welch_difference_with_unequal_variances() -> None:
    """
    [2,4,..,10] minus [1..5]: diff 3; s₁²/n₁ = 10/5 = 2, s₂²/n₂ = 2.5/5 = 0.5, so
    se = √2.5; Welch df = 2.5² / (2²/4 + 0.5²/4) = 100/17 ≈ 5.882; t(0.975, 100/17) =
    2.458797, and p = 0.10753 (two-sided, t = 3/√2.5 = 1.897367).
    """
    d = welch(B, A)
    half = 2.458797 * math.sqrt(2.5)
    assert (5, 5, 3.0) == (d.n, d.n_control, d.diff)
    assert d.low == pytest.approx(3 - half, abs=1e-4)
    assert d.high == pytest.approx(3 + half, abs=1e-4)
    assert d.p == pytest.approx(0.10753, abs=1e-4)


def test_too_few_sessions_give_no_interval() -> None:
    """
    No session: no mean; one session: a mean without an interval; no variance on
    either side: the difference is exact, with no p-value.
    """
    assert (0, None) == (mean_ci([]).n, mean_ci([]).mean)
    one = mean_ci([0.5])
    assert (0.5, None, None) == (one.mean, one.low, one.high)
    assert welch([1.0], A).low is None
    flat = welch([1.0, 1.0], [0.5, 0.5])
    assert (0.5, 0.5, 0.5, None) == (flat.diff, flat.low, flat.high, flat.p)
