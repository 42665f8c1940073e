"""
Tools that go through the engine: the session a call belongs to, and the wrapper that
turns an async tool function into one that calls it through ``engine.call``.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from ._contexts import context_call_id, context_parameters, split_arguments, with_context

__all__ = [
    "calling",
    "current_session",
    "in_session",
    "take_call_id",
    "through_engine",
]

#: The session whose request the running task serves: set by ``engine.handle`` (for
#: the rest of the task that awaited it) and by :func:`in_session`.
current_session: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "preload_current_session", default=None
)

#: The id of the tool call the running task makes (an agent framework's own), for
#: the first wrapped tool called in the block that set it: a list, emptied when taken.
_call_id: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "preload_call_id", default=None
)


class CallFunction(Protocol):
    """
    ``engine.call``: a session's tool call, by name and arguments, under an id.
    """

    def __call__(
        self, session_id: str, name: str, args: dict[str, Any], *, call_id: str | None = None
    ) -> Awaitable[str]: ...


@contextmanager
def in_session(session_id: str, *, call_id: str | None = None) -> Iterator[None]:
    """
    Within the block, wrapped tools call for ``session_id``; the first of them to be
    called makes its call under ``call_id`` (the agent framework's id of the tool
    call), which makes it safe to retry (see ``engine.call``). A wrapped tool that this
    one calls in turn has no id of its own.

    .. versionadded:: 0.3
    .. versionchanged:: 0.11
       ``call_id``.
    """
    session = current_session.set(session_id)
    call = _call_id.set([call_id] if call_id is not None else None)
    try:
        yield
    finally:
        _call_id.reset(call)
        current_session.reset(session)


@contextmanager
def calling() -> Iterator[None]:
    """
    Within the block a wrapped tool's call runs: the wrapped tools it calls in turn take
    no call id (neither one an outer block set nor one of their own run context).

    .. versionadded:: 0.11
    """
    token = _call_id.set([])
    try:
        yield
    finally:
        _call_id.reset(token)


def take_call_id(given: Mapping[str, Any] | None = None) -> str | None:
    """
    The id the running task's wrapped tool calls under, taken once: the one its
    :func:`in_session` block set, None once taken or inside a wrapped tool's call
    (:func:`calling`); else, when no block set one, the one its run contexts ``given``
    say (:func:`~preload.calls.context_call_id`: the OpenAI Agents SDK gives the id in
    its ``ToolContext`` only). What a wrapper that calls ``engine.call`` itself (rather
    than through :meth:`PreloadEngine.tool <preload.PreloadEngine.tool>`) passes as
    ``call_id``.

    .. versionadded:: 0.11
    """
    held = _call_id.get()
    if held is None:
        return context_call_id(given) if given else None
    return held.pop() if held else None


def through_engine(
    call: CallFunction, function: Callable[..., Awaitable[Any]], name: str
) -> Callable[..., Awaitable[str]]:
    """
    An async function with ``function``'s signature that calls the tool ``name`` with
    its arguments bound by that signature, through ``call(session_id, name, args)``,
    for the current session, under the call id the block set (or its run context's),
    its run contexts handed to what the engine runs (:mod:`~preload.calls._contexts`).

    Raises:
        TypeError: ``function`` is not an async function (at wrapping), or the
            arguments do not fit its signature (at calling).
        LookupError: The wrapped tool is called outside a session.
    """
    if not inspect.iscoroutinefunction(function):
        raise TypeError(f"tool {name!r}: {function!r} is not an async function")
    signature = inspect.signature(function)
    contexts = context_parameters(signature)

    @functools.wraps(function)
    async def wrapped(*args: Any, **kwargs: Any) -> str:
        session_id = current_session.get()
        if session_id is None:
            raise LookupError(
                f"tool {name!r} was called outside a session: call it in the task that "
                "awaited engine.handle(...), or inside 'with preload.calls.in_session(id)'"
            )
        arguments, given = split_arguments(signature, contexts, args, kwargs)
        call_id = take_call_id(given)
        with with_context(given), calling():  # the wrapped tools it calls take no id
            return await call(session_id, name, arguments, call_id=call_id)

    return wrapped
