"""
Freeing a loaded model a little at a time, so that it never holds the interpreter long.

A fitted model is a few hundred thousand objects in nested containers. Dropping its
last reference frees them all in one cascade of C calls (about 15 ms for each of STAR's
models), and no other thread runs meanwhile: not the event loop either, even when the
reference is dropped in a worker thread. :func:`free_gradually` empties the containers
instead, one item at a time, so that the interpreter may switch threads between items;
run in a worker thread, it leaves the loop free within the switch interval.

It only empties what nothing else holds: the roots (the caller vouches for them) and the
containers reached from them whose only reference is the one it took out. A container
another object also holds (a model many engines share, a module's constant) is dropped
whole and left as it is.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, defaultdict, deque
from sys import getrefcount
from typing import Any

__all__ = ["free_gradually"]

#: Containers of at most this many items (but tuples of other than numbers and strings)
#: are dropped whole: freeing them at once is quick, and emptying them item by item
#: would cost more (a model holds hundreds of thousands of them).
SMALL = 32

#: ``sys.getrefcount`` of an object that one local name holds and nothing else (the
#: name and the call's argument).
_HELD_ONCE = 2

_CONTAINERS = (dict, list, set, deque, tuple, frozenset)
_FLAT_BASES = (str, bytes, int, float, complex)
#: Types whose objects hold no others (``bool`` is an ``int``).
_FLAT = frozenset({str, bytes, int, float, complex, bool, type(None)})
_SIZED = frozenset({dict, list, set, deque, tuple, frozenset, Counter, OrderedDict, defaultdict})


def free_gradually(*roots: object) -> int:
    """
    Empty the roots' contents item by item, and with them every large container that
    only they hold, so that the objects are freed one small step at a time.

    The roots are left empty (their attributes gone): call it only on objects no one
    uses again, such as the models of an engine that has closed.

    Returns:
        How many containers were emptied.
    """
    pending: list[Any] = list(roots)
    emptied = 0
    while pending:
        container = pending.pop()
        _empty(container, pending)
        del container
        emptied += 1
    return emptied


def _empty(container: Any, pending: list[Any]) -> None:
    """
    Take ``container``'s items out one by one, keeping on ``pending`` those that are
    large containers held by nothing else, and dropping the rest here (the checks are
    written out in each loop: they run once an item, hundreds of thousands of times).
    """
    if isinstance(container, dict):
        while container:
            value = container.popitem()[1]
            kind = type(value)
            if kind not in _FLAT and getrefcount(value) <= _HELD_ONCE and _large(value, kind):
                pending.append(value)
            del value
    elif isinstance(container, list | set | deque):
        while container:
            item = container.pop()
            kind = type(item)
            if kind not in _FLAT and getrefcount(item) <= _HELD_ONCE and _large(item, kind):
                pending.append(item)
            del item
    elif isinstance(container, tuple | frozenset):
        # Immutable: its items that only it holds are emptied in place, and it then
        # frees what is left at once.
        for item in container:
            kind = type(item)
            if kind not in _FLAT and getrefcount(item) <= _HELD_ONCE + 1 and _large(item, kind):
                pending.append(item)
    else:
        attributes = getattr(container, "__dict__", None)
        if isinstance(attributes, dict):
            _empty(attributes, pending)
        for name in _slots(type(container)):
            value = getattr(container, name, _MISSING)
            if value is _MISSING:
                continue
            try:
                delattr(container, name)
            except AttributeError:  # read-only slot
                continue
            if getrefcount(value) <= _HELD_ONCE and _large(value, type(value)):
                pending.append(value)
            del value


def _large(item: Any, kind: type) -> bool:
    """
    Whether ``item`` is worth emptying: a container of more than :data:`SMALL` items,
    a small tuple that holds anything but numbers and strings (a fitted part is often
    a pair of others), or an object with attributes (a model's part; anything else of
    its own, such as an array, is freed whole).
    """
    if kind in _SIZED or issubclass(kind, _CONTAINERS):
        if len(item) > SMALL:
            return True
        return kind is tuple and not _FLAT.issuperset(map(type, item))
    if kind is type or issubclass(kind, _FLAT_BASES):
        return False
    return hasattr(item, "__dict__") or bool(_slots(kind))


def _slots(cls: type) -> tuple[str, ...]:
    names: list[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    return tuple(name for name in names if name not in ("__dict__", "__weakref__"))


_MISSING = object()
