"""
An LRU keyed by text, bounded by how many texts it keeps and by their characters, safe
to use from worker threads: what the token counter and the compressor remember of the
texts they were given (a history's context of 1,500 tokens is a new text every turn, and
a knowledge item may have 4 million characters: a bound on the count alone bounds
nothing).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["TextLRU"]

V = TypeVar("V")


class TextLRU(Generic[V]):
    """
    At most ``max_items`` values by text, of at most ``max_chars`` characters in all
    (each value's size is ``size(text, value)``, its text's length by default); a value
    larger than ``max_chars`` alone is not kept.
    """

    def __init__(
        self,
        max_items: int,
        max_chars: int,
        size: Callable[[str, V], int] | None = None,
    ) -> None:
        self.max_items = max_items
        self.max_chars = max_chars
        self.chars = 0
        self._size = size or (lambda text, _: len(text))
        self._items: OrderedDict[str, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, text: str) -> V | None:
        """
        The value kept for ``text`` (now the most recently used), or None.
        """
        with self._lock:
            got = self._items.get(text)
            if got is None:
                return None
            self._items.move_to_end(text)
            return got[0]

    def put(self, text: str, value: V) -> None:
        """
        Keep ``value`` for ``text`` as the most recently used, dropping the least
        recently used beyond the bounds.
        """
        size = self._size(text, value)
        if size > self.max_chars:
            return
        with self._lock:
            old = self._items.pop(text, None)
            if old is not None:
                self.chars -= old[1]
            self._items[text] = (value, size)
            self.chars += size
            while len(self._items) > self.max_items or self.chars > self.max_chars:
                _, (_, dropped) = self._items.popitem(last=False)
                self.chars -= dropped
