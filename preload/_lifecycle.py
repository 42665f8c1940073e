"""
The lifecycle every component with background work goes through, once.
"""

from __future__ import annotations

import enum

__all__ = ["Lifecycle"]


class Lifecycle(enum.Enum):
    """
    ``UNOPENED`` until its ``async with`` starts, ``OPENED`` inside it, ``CLOSED``
    after; a component cannot be opened twice.
    """

    UNOPENED = 1
    OPENED = 2
    CLOSED = 3
