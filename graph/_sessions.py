"""
What graph reads from a session log: sessions, their turns, and each turn's state,
needs and text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

from ._keys import check_name

__all__ = [
    "READ_TURNS",
    "Item",
    "has_text",
    "latest",
    "needs_of",
    "session_parts",
    "state_of",
    "states_of",
    "validate_states",
]

#: One item of a sequence: a state string or a turn mapping of the session log.
Item: TypeAlias = "str | Mapping[str, Any]"

#: The latest turns of a session the state and needs forecasts read, to learn from a
#: turn or to forecast the next: their work per turn stays bounded however long the
#: session grows (the call forecast reads ``4 * max_turns``).
READ_TURNS = 256


def latest(history: Sequence[Item]) -> Sequence[Item]:
    """
    The latest :data:`READ_TURNS` items of ``history`` (all of a shorter one).
    """
    return history[-READ_TURNS:] if len(history) > READ_TURNS else history


def state_of(item: Item) -> str | None:
    """
    Return the state of a sequence item.

    Args:
        item: A state string or a turn mapping.

    Returns:
        The state, or None when a turn mapping has none.
    """
    if isinstance(item, str):
        return item
    state = item.get("state")
    return state if isinstance(state, str) else None


def session_parts(seq: Any) -> tuple[Sequence[Item], str | None]:
    """
    Split a session into its items and user.

    Args:
        seq: A sequence of items, or a session mapping ``{"user", "turns"}``.

    Returns:
        ``(items, user)``; user is None when the session names none.
    """
    if isinstance(seq, Mapping):
        user = seq.get("user")
        turns = seq.get("turns") or ()
        return list(turns), (str(user) if user is not None else None)
    return seq, None


def states_of(items: Iterable[Item]) -> list[str]:
    """
    Return the states of the items, skipping turns that have none.

    Args:
        items: State strings or turn mappings.

    Returns:
        The states in order.
    """
    out: list[str] = []
    for item in items:
        state = state_of(item)
        if state is not None:
            out.append(state)
    return out


def validate_states(states: Sequence[str]) -> list[str]:
    """
    Check every state name and return them as a list.

    Args:
        states: State names.

    Returns:
        The same names.

    Raises:
        InvalidStateError: If a name holds a reserved character.
    """
    return [check_name(s) for s in states]


def needs_of(item: Item) -> tuple[str, ...]:
    """
    Return the needs a turn used (none for a bare state or a turn without ``needs``).

    Args:
        item: A state string or a turn mapping.

    Returns:
        The needs, as strings, in the turn's order.
    """
    if isinstance(item, Mapping):
        needs = item.get("needs")
        if isinstance(needs, (list, tuple)):
            return tuple(str(n) for n in needs)
    return ()


def has_text(item: Item) -> bool:
    """
    Return whether a sequence item carries request or reply text.
    """
    return isinstance(item, Mapping) and (
        isinstance(item.get("text"), str) or isinstance(item.get("system"), str)
    )
