"""
Loads in flight: one per cache key however many sessions and requests want it
(single-flight), and what a request got for each key it needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import anyio

if TYPE_CHECKING:
    from .._sources import Source
    from ..compression import Representation

__all__ = ["Cancelled", "Fetched", "Flight"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetched:
    """
    What the request path got for one key.

    ``status`` is ``hit`` (ready in the cache), ``partial`` (a preload was in flight,
    here or on another replica, and the request waited for the rest), ``miss``
    (loaded on demand), ``missing`` (no source has it) or ``failed`` (the load failed,
    missed its deadline, or its source is cooling down). ``error`` is what the failed
    load raised, when it ended.

    .. versionadded:: 0.1
    .. versionchanged:: 0.3
       ``error``.
    """

    key: str
    status: Literal["hit", "partial", "miss", "missing", "failed"]
    item: Representation | None
    waited_s: float = 0.0
    error: BaseException | None = None


class Cancelled(Exception):
    """
    The load was cancelled because nobody wanted it any more.
    """


@dataclass(slots=True, eq=False)
class Flight:
    """
    One load running now: the sessions that want it (with their values, for a
    preload), the requests waiting for it, and how it ended.
    """

    key: str
    cache_key: str
    source: Source
    preload: bool
    sessions: dict[str, float]
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Representation | None = None
    error: BaseException | None = None
    waiters: int = 0
    remote: bool = False
