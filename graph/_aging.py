"""
Aging counts: the call forecast learned online halves its counts when its vocabulary
outgrows its bound (:meth:`graph.CallForecaster.partial_fit`), so that what it holds stays
bounded while what is said often, and what is said now, stays.
"""

from __future__ import annotations

from typing import Any

__all__ = ["drop_below", "halve"]


def halve(counts: Any) -> None:
    """
    Halve, in place, every number of ``counts``: a dict or list of numbers, dicts and
    lists (keys are left as they are). Work grows with the numbers held.
    """
    items = counts.items() if isinstance(counts, dict) else enumerate(counts)
    for key, value in list(items):
        if isinstance(value, dict | list):
            halve(value)
        else:
            counts[key] = value * 0.5


def drop_below(counts: dict[Any, Any], floor: float) -> None:
    """
    Drop, in place, the numbers of ``counts`` (a dict of numbers and dicts) below
    ``floor``, and the dicts that are left empty.
    """
    for key, value in list(counts.items()):
        if isinstance(value, dict):
            drop_below(value, floor)
            if not value:
                del counts[key]
        elif value < floor:
            del counts[key]
