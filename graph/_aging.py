"""
Aging counts: the call forecast learned online halves its counts when its vocabulary
outgrows its bound (:meth:`graph.CallForecaster.partial_fit`), so that what it holds stays
bounded while what is said often, and what is said now, stays.
"""

from __future__ import annotations

from typing import Any

__all__ = ["halve"]


def halve(counts: Any) -> None:
    """
    Halve, in place, every number of ``counts``: a dict or list of numbers, dicts and
    lists (keys are left as they are). Work grows with the numbers held.
    """
    items = counts.items() if isinstance(counts, dict) else enumerate(counts)
    for key, value in list(items):
        if isinstance(value, float | int) and not isinstance(value, bool):
            counts[key] = value * 0.5
        elif isinstance(value, dict | list):
            halve(value)
