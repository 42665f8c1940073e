"""
Freeing a model a little at a time (``free_gradually``): what only the roots hold is
emptied item by item, and what anything else holds is left whole.
"""

from __future__ import annotations

from typing import Any, ClassVar

from preload.learning._freeing import SMALL, free_gradually


class Counted(dict[Any, Any]):
    """
    A dict that counts the items taken out of it one at a time, across instances.
    """

    popped: ClassVar[int] = 0

    def popitem(self) -> tuple[Any, Any]:
        """
        The dict's ``popitem``, counted.
        """
        Counted.popped += 1
        return super().popitem()


class Part:
    """
    A model's part: an object with attributes.
    """

    def __init__(self, table: Counted) -> None:
        self.table = table


class Slotted:
    """
    A part whose attributes are slots.
    """

    __slots__ = ("table",)

    def __init__(self, table: Counted) -> None:
        self.table = table


def _table(n: int) -> Counted:
    """
    ``n`` items, each a small dict of numbers.
    """
    return Counted({f"k{i}": {"a": i, "b": 0.5} for i in range(n)})


def test_what_only_the_roots_hold_is_emptied_item_by_item() -> None:
    """
    A large table, a part inside a small tuple, a part with slots and a large list of
    tables: every one is taken apart item by item, and the root has no attributes left.
    """
    root = Part(_table(100))
    root.pair = (Part(_table(40)), 7)  # type: ignore[attr-defined]
    root.slotted = Slotted(_table(50))  # type: ignore[attr-defined]
    root.tables = [_table(SMALL + 1) for _ in range(SMALL + 1)]  # type: ignore[attr-defined]
    Counted.popped = 0
    emptied = free_gradually(root, None)
    assert {} == vars(root)
    assert 100 + 40 + 50 + (SMALL + 1) ** 2 == Counted.popped
    assert emptied >= 1 + 1 + 3 + 2 + 1 + SMALL + 1


def test_a_small_container_of_numbers_is_dropped_whole() -> None:
    """
    A table of at most ``SMALL`` items is not worth taking apart.
    """
    root = Part(_table(SMALL))
    Counted.popped = 0
    free_gradually(root)
    assert 0 == Counted.popped


def test_what_anything_else_holds_is_left_whole() -> None:
    """
    A table and a part the root shares with another holder (directly, in a tuple)
    keep every item.
    """
    keep = [_table(100), Part(_table(100))]  # the other holder, and nothing else
    root = Part(keep[0])
    root.pair = (keep[1], "x")  # type: ignore[attr-defined]
    free_gradually(root)
    assert {} == vars(root)
    assert 100 == len(keep[0])
    assert 100 == len(keep[1].table)
