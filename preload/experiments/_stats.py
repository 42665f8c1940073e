"""
The statistics of an experiment's report: a mean with its t confidence interval, and
the difference of two means with Welch's interval. Sessions are the unit: each
session's outcome is one observation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

__all__ = ["Difference", "Estimate", "mean_ci", "welch"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Estimate:
    """
    A mean over ``n`` sessions and its confidence interval (``low``, ``high``; None
    with fewer than two sessions).

    .. versionadded:: 0.6
    """

    n: int
    mean: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Difference:
    """
    An arm's mean minus the control's, with Welch's confidence interval and
    two-sided p-value (None when either side has fewer than two sessions, or both
    have no variance).

    .. versionadded:: 0.6
    """

    n: int
    n_control: int
    diff: float | None
    low: float | None
    high: float | None
    p: float | None


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """
    The mean of ``values`` with its Student-t interval: mean ± t(1 - α/2, n - 1) · s/√n.

    .. versionadded:: 0.6
    """
    n = len(values)
    if n == 0:
        return Estimate(n=0, mean=None, low=None, high=None)
    mean = math.fsum(values) / n
    if n < 2:
        return Estimate(n=n, mean=mean, low=None, high=None)
    se = math.sqrt(_variance(values, mean) / n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    return Estimate(n=n, mean=mean, low=mean - half, high=mean + half)


def welch(
    values: Sequence[float], control: Sequence[float], confidence: float = 0.95
) -> Difference:
    """
    mean(values) - mean(control) with Welch's interval: the standard error
    √(s₁²/n₁ + s₂²/n₂) and the Welch-Satterthwaite degrees of freedom.

    .. versionadded:: 0.6
    """
    n1, n2 = len(values), len(control)
    if not n1 or not n2:
        return Difference(n=n1, n_control=n2, diff=None, low=None, high=None, p=None)
    m1, m2 = math.fsum(values) / n1, math.fsum(control) / n2
    diff = m1 - m2
    if n1 < 2 or n2 < 2:
        return Difference(n=n1, n_control=n2, diff=diff, low=None, high=None, p=None)
    a, b = _variance(values, m1) / n1, _variance(control, m2) / n2
    se = math.sqrt(a + b)
    if se == 0:
        return Difference(n=n1, n_control=n2, diff=diff, low=diff, high=diff, p=None)
    df = (a + b) ** 2 / (a * a / (n1 - 1) + b * b / (n2 - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    p = 2 * float(stats.t.sf(abs(diff) / se, df))
    return Difference(n=n1, n_control=n2, diff=diff, low=diff - half, high=diff + half, p=p)


def _variance(values: Sequence[float], mean: float) -> float:
    """
    The sample variance (n - 1 in the denominator).
    """
    return math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
