"""
Where call results come from: the :class:`CallSource` protocol, and :class:`ToolSet`,
a call source over async tool functions.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ._call import as_text, check_name

__all__ = ["MAX_BACKEND_CHARS", "CallSource", "Tool", "ToolSet", "backend_of"]

#: The longest ``backend_name`` of a source.
MAX_BACKEND_CHARS = 200


@runtime_checkable
class CallSource(Protocol):
    """
    Runs tool calls: the seam between the engine and an agent's tools or backend.

    A source may also have a ``backend_name`` attribute (a non-empty string, at most
    ``MAX_BACKEND_CHARS``): the name of the backend it calls, when the sources of
    several tenants call one. The fleet-wide bound of calls run ahead
    (``[calls] fleet_max_in_flight_per_source``) is then counted over every tenant's
    calls to that backend, rather than each tenant's to its own source.

    .. versionadded:: 0.3
    .. versionchanged:: 0.28
       The optional ``backend_name``.
    """

    name: str

    def read_only(self, name: str) -> bool | None:
        """
        Whether the tool ``name`` only reads (may be run speculatively); None when this
        source has no such tool.
        """
        ...

    async def call(self, name: str, args: Mapping[str, Any]) -> str:
        """
        The result of calling the tool ``name`` with ``args``, as text.
        """
        ...


def backend_of(source: CallSource) -> str | None:
    """
    The backend ``source`` names as shared with other tenants' sources (its optional
    ``backend_name``), or None.

    Raises:
        ValueError: ``backend_name`` is not a non-empty string of at most
            ``MAX_BACKEND_CHARS``; the message names the source.
    """
    backend = getattr(source, "backend_name", None)
    if backend is None:
        return None
    if not isinstance(backend, str) or not backend or len(backend) > MAX_BACKEND_CHARS:
        raise ValueError(
            f"call source {source.name!r}: backend_name must be a non-empty string of at most "
            f"{MAX_BACKEND_CHARS} characters, got {backend!r:.80}"
        )
    return backend


@dataclass(frozen=True, slots=True, kw_only=True)
class Tool:
    """
    One tool of a :class:`ToolSet`: its function and whether it only reads.

    .. versionadded:: 0.3
    """

    function: Callable[..., Awaitable[Any]]
    read_only: bool


class ToolSet:
    """
    A call source over async functions, called with the arguments as keywords; a
    result that is not a string is sent as JSON.

    Args:
        name: The source's name (its timeouts and limits in ``[preloader]``).
        tools: The tools by name.

    Example::

        tools = ToolSet("backend")

        @tools.tool(read_only=True)
        async def find_restaurants(city: str, cuisine: str) -> str: ...

    .. versionadded:: 0.3
    """

    def __init__(self, name: str = "tools", tools: Mapping[str, Tool] | None = None) -> None:
        self.name = name
        self.tools: dict[str, Tool] = {}
        for tool_name, tool in (tools or {}).items():
            self.add(tool_name, tool.function, read_only=tool.read_only)

    def add(self, name: str, function: Callable[..., Awaitable[Any]], *, read_only: bool) -> None:
        """
        Register ``function`` as the tool ``name``.

        Raises:
            TypeError: ``function`` is not an async function.
            ValueError: The name is taken, empty or too long.
        """
        check_name(name)
        if not inspect.iscoroutinefunction(function):
            raise TypeError(f"tool {name!r}: {function!r} is not an async function")
        if name in self.tools:
            raise ValueError(f"tool {name!r} is registered twice in source {self.name!r}")
        self.tools[name] = Tool(function=function, read_only=read_only)

    def tool(
        self, name: str | None = None, *, read_only: bool = False
    ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        """
        A decorator that registers an async function as a tool (named after the
        function unless ``name`` is given) and returns it unchanged.
        """

        def register(function: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            self.add(name or function.__name__, function, read_only=read_only)
            return function

        return register

    def read_only(self, name: str) -> bool | None:
        """
        Whether ``name`` only reads; None when it is not a tool of this set.
        """
        tool = self.tools.get(name)
        return None if tool is None else tool.read_only

    async def call(self, name: str, args: Mapping[str, Any]) -> str:
        """
        Call the tool ``name`` with ``args`` as keywords.

        Raises:
            KeyError: No such tool.
        """
        return as_text(await self.tools[name].function(**args))
