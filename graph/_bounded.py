"""
Caches of answers that a fitted model keeps while it is asked: each holds at most a
fixed number of entries and starts over when full. Their keys come from what the
model is asked (contexts, states, needs), so without a bound a model that is asked
for long (a server's, above all one that no longer learns, which would never clear
them) would grow with every context it was ever asked about.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["MAX_CACHED", "remember"]

K = TypeVar("K")
V = TypeVar("V")

#: The most answers one cache holds before it starts over.
MAX_CACHED = 4096


def remember(cache: dict[K, V], key: K, value: V, limit: int | None = None) -> V:
    """
    Put ``value`` in ``cache`` under ``key`` (emptying it first when it holds
    ``limit`` entries, :data:`MAX_CACHED` when None) and return it.
    """
    if len(cache) >= (MAX_CACHED if limit is None else limit):
        cache.clear()
    cache[key] = value
    return value
