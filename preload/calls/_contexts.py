"""
Tools that take an agent framework's run context (Pydantic AI's ``RunContext``, the
OpenAI Agents SDK's ``RunContextWrapper`` and ``ToolContext``, LangChain's
``ToolRuntime``): which of their parameters take it, the call's arguments without it,
and how the context the wrapped tool was called with reaches what the engine runs (a
context variable, read in the same task). The engine has no such context of its own, so
it never runs such a tool ahead.
"""

from __future__ import annotations

import contextvars
import inspect
import typing
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = [
    "CONTEXT_TYPES",
    "context_call_id",
    "context_parameters",
    "in_context",
    "split_arguments",
    "with_context",
]

#: The names of the types through which agent frameworks hand a tool their run context.
CONTEXT_TYPES = frozenset({"RunContext", "RunContextWrapper", "ToolContext", "ToolRuntime"})

#: The run context a wrapped tool was called with (by parameter), while the engine
#: runs its call: set by the wrapper, read by what the engine calls.
_run_context: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "preload_run_context", default=None
)


def context_parameters(signature: inspect.Signature) -> tuple[str, ...]:
    """
    The parameters that take a framework's run context, by their annotation (a type, or
    its name as a string), of those passed by keyword (so that they can be handed back).

    .. versionadded:: 0.11
    """
    found = []
    for parameter in signature.parameters.values():
        annotation = parameter.annotation
        if isinstance(annotation, str):
            named = annotation.partition("[")[0].rpartition(".")[2].strip()
        else:
            named = getattr(typing.get_origin(annotation) or annotation, "__name__", "")
        keyword = parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
        if named in CONTEXT_TYPES and keyword:
            found.append(parameter.name)
    return tuple(found)


def split_arguments(
    signature: inspect.Signature, contexts: tuple[str, ...], args: Any, kwargs: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """
    A call's arguments bound by ``signature`` (defaults applied), without the run
    contexts, and the run contexts by parameter.

    Raises:
        TypeError: The arguments do not fit the signature.

    .. versionadded:: 0.11
    """
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    return arguments, {parameter: arguments.pop(parameter) for parameter in contexts}


def context_call_id(given: Mapping[str, Any]) -> str | None:
    """
    The id of the tool call the run contexts were made for, when one says (the OpenAI
    Agents SDK's ``ToolContext``, LangChain's ``ToolRuntime``).

    .. versionadded:: 0.11
    """
    for context in given.values():
        found = getattr(context, "tool_call_id", None)
        if isinstance(found, str) and found:
            return found
    return None


@contextmanager
def with_context(given: Mapping[str, Any]) -> Iterator[None]:
    """
    Within the block, what :func:`in_context` made runs with the run contexts ``given``.

    .. versionadded:: 0.11
    """
    token = _run_context.set(given)
    try:
        yield
    finally:
        _run_context.reset(token)


def in_context(function: Callable[..., Awaitable[Any]], name: str) -> Callable[..., Awaitable[Any]]:
    """
    What the engine registers for a tool that takes the run context: ``function`` with
    the contexts its wrapper was called with (:func:`with_context`) and the call's
    arguments.

    Raises:
        TypeError: ``function`` is not an async function.

    .. versionadded:: 0.11
    """
    if not inspect.iscoroutinefunction(function):
        raise TypeError(f"tool {name!r}: {function!r} is not an async function")

    async def run(**arguments: Any) -> Any:
        given = _run_context.get()
        if given is None:  # never run ahead (not read-only): engine.call made directly
            raise RuntimeError(
                f"tool {name!r} takes the framework's run context: call the tool the "
                "framework was given (its wrapper), not engine.call"
            )
        return await function(**given, **arguments)

    return run
