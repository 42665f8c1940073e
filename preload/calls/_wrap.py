"""
Tools that go through the engine: the session a call belongs to, and the wrapper that
turns an async tool function into one that calls it through ``engine.call``.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["current_session", "in_session", "through_engine"]

#: The session whose request the running task serves: set by ``engine.handle`` (for
#: the rest of the task that awaited it) and by :func:`in_session`.
current_session: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "preload_current_session", default=None
)

CallFunction = Callable[[str, str, dict[str, Any]], Awaitable[str]]


@contextmanager
def in_session(session_id: str) -> Iterator[None]:
    """
    Within the block, wrapped tools call for ``session_id``.

    .. versionadded:: 0.3
    """
    token = current_session.set(session_id)
    try:
        yield
    finally:
        current_session.reset(token)


def through_engine(
    call: CallFunction, function: Callable[..., Awaitable[Any]], name: str
) -> Callable[..., Awaitable[str]]:
    """
    An async function with ``function``'s signature that calls the tool ``name`` with
    its arguments bound by that signature, through ``call(session_id, name, args)``,
    for the current session.

    Raises:
        TypeError: ``function`` is not an async function (at wrapping), or the
            arguments do not fit its signature (at calling).
        LookupError: The wrapped tool is called outside a session.
    """
    if not inspect.iscoroutinefunction(function):
        raise TypeError(f"tool {name!r}: {function!r} is not an async function")
    signature = inspect.signature(function)

    @functools.wraps(function)
    async def wrapped(*args: Any, **kwargs: Any) -> str:
        session_id = current_session.get()
        if session_id is None:
            raise LookupError(
                f"tool {name!r} was called outside a session: call it in the task that "
                "awaited engine.handle(...), or inside 'with preload.calls.in_session(id)'"
            )
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return await call(session_id, name, dict(bound.arguments))

    return wrapped
