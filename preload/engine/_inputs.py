"""
The checks of what callers hand the engine: the arguments of a request
(:meth:`PreloadEngine.handle`) and the ids of sessions, requests and calls. Each names
the argument that is wrong and raises before anything is changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

from .._errors import InputTooLargeError
from .._sessions import label_problem, name_problem

if TYPE_CHECKING:
    from .._config import LimitsConfig

__all__ = ["MAX_ID_CHARS", "check_id", "check_optional_id", "check_request", "check_type"]

#: The longest request id or call id, in characters.
MAX_ID_CHARS = 128


def check_request(
    limits: LimitsConfig,
    session_id: object,
    text: object,
    state: object,
    needs: object,
    user: object,
) -> list[str]:
    """
    The arguments of :meth:`PreloadEngine.handle` checked (types, within
    ``limits``); the request's needs without duplicates.
    """
    check_id("session_id", session_id)
    check_type("text", text, str)
    check_type("state", state, str, optional=True)
    check_type("user", user, str, optional=True)
    problem = label_problem("user", user) if isinstance(user, str) else None
    if problem is not None:
        raise ValueError(problem)
    if isinstance(needs, str | bytes) or not isinstance(needs, Sequence | AbstractSet):
        raise TypeError(
            f"needs must be a sequence of keys, not {type(needs).__name__}; "
            f"for one key write needs=[{needs!r}]"
        )
    if len(needs) > limits.max_needs:
        raise InputTooLargeError("needs", len(needs), limits.max_needs, "limits.max_needs", "needs")
    for i, key in enumerate(needs):
        if not isinstance(key, str):
            raise TypeError(f"needs[{i}] must be a string key, not {type(key).__name__}")
    for where, name in [("state", state), *((f"needs[{i}]", k) for i, k in enumerate(needs))]:
        problem = name_problem(where, name) if isinstance(name, str) else None
        if problem is not None:
            raise ValueError(problem)
    assert isinstance(text, str)
    if len(text) > limits.max_request_chars:
        raise InputTooLargeError(
            "request text (characters)",
            len(text),
            limits.max_request_chars,
            "limits.max_request_chars",
            "text",
        )
    return list(dict.fromkeys(needs))


def check_type(name: str, value: object, kind: type, *, optional: bool = False) -> None:
    """
    Raises:
        TypeError: ``value`` is not a ``kind`` (nor None, when ``optional``).
    """
    if value is None and optional:
        return
    if not isinstance(value, kind):
        wanted = f"{kind.__name__} or None" if optional else kind.__name__
        raise TypeError(f"{name} must be a {wanted}, not {type(value).__name__}")


def check_optional_id(name: str, value: object) -> None:
    """
    Raises:
        TypeError: ``value`` is neither a string nor None.
        ValueError: It is above ``MAX_ID_CHARS`` characters.
    """
    check_type(name, value, str, optional=True)
    if isinstance(value, str) and len(value) > MAX_ID_CHARS:
        raise ValueError(f"{name} has {len(value):,} characters, above the limit of {MAX_ID_CHARS}")


def check_id(name: str, value: object) -> None:
    """
    Raises:
        TypeError: ``value`` is not a string.
        ValueError: It is empty, or not a label (see ``label_problem``).
    """
    check_type(name, value, str)
    assert isinstance(value, str)
    if not value:
        raise ValueError(f"{name} must not be empty")
    problem = label_problem(name, value)
    if problem is not None:
        raise ValueError(problem)
