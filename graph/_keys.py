"""
The characters graph builds its string keys from, and the check that keeps them out
of state and need names.

Graph joins names into keys: a context of the :class:`PatternGraph` is :data:`CTX`
followed by its states joined by :data:`SEP` (``(BOS,)`` is the session start), and
:class:`NeedsAfter` keys a transition, a set of needs or a stay with :data:`SEP`,
:data:`NEEDS_SEP`, :data:`FROM` and :data:`STAY`. A name holding one of these
characters would make two different keys equal, so :func:`check_name` refuses it.
"""

from __future__ import annotations

import re

from ._errors import InvalidStateError

__all__ = [
    "BOS",
    "CTX",
    "FROM",
    "NEEDS_SEP",
    "RESERVED",
    "SEP",
    "STAY",
    "check_name",
    "context_key",
    "key_context",
]

#: The pseudo-state that starts every session: ``(BOS,)`` is the session-start context.
BOS = "\x02"
#: First character of a context node id of a :class:`PatternGraph`.
CTX = "\x1e"
#: Separates the states of a context id, and the parts of a :class:`NeedsAfter` key.
SEP = "\x1f"
#: Joins the needs of a turn into one :class:`NeedsAfter` key (the same character as
#: :data:`CTX`, which never starts a :class:`NeedsAfter` key).
NEEDS_SEP = CTX
#: Prefix of the :class:`NeedsAfter` keys of "from this state" counts.
FROM = "\x1d"
#: Prefix of the :class:`NeedsAfter` keys of "since the session entered this state".
STAY = "\x1c"
#: Every character :func:`check_name` refuses.
RESERVED = (BOS, STAY, FROM, CTX, SEP)

_RESERVED = re.compile("[" + "".join(re.escape(char) for char in RESERVED) + "]")


def check_name(name: str) -> str:
    """
    Return ``name`` unchanged if it may be used as a state or need.

    Args:
        name: A state or need name.

    Returns:
        The same name.

    Raises:
        InvalidStateError: If it holds one of the :data:`RESERVED` characters.
    """
    found = _RESERVED.search(name)
    if found is not None:
        raise InvalidStateError(name, found.group())
    return name


def context_key(context: tuple[str, ...]) -> str:
    """
    Return the node id of a context (a tuple of states, oldest first).

    Args:
        context: The last states, oldest first; ``()`` is the unigram context.

    Returns:
        The node id: a prefix character, then the states joined by a separator.
    """
    return CTX + SEP.join(context)


def key_context(key: str) -> tuple[str, ...]:
    """
    Invert :func:`context_key`.

    Args:
        key: A context node id.

    Returns:
        The context tuple.
    """
    body = key[1:]
    return tuple(body.split(SEP)) if body else ()
