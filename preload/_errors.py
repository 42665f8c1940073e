"""
Exceptions raised by preload.

The tree::

    PreloadError
    ├── ConfigError (ValueError)          a bad or unknown configuration key or value
    ├── InputError (ValueError)           a malformed input file or line (sessions, knowledge, model)
    │   └── EmptyInputError               a log with no sessions in it
    ├── InputTooLargeError (ValueError)   a request above the configured size limits
    ├── SourceError                       a source failed to produce an item
    │   └── MissingItemError (KeyError)   no source has the requested key
    ├── UnknownToolError (LookupError)    no call source knows a tool the agent called
    ├── CacheError                        the cache could not store or decode a value
    └── EngineStateError (RuntimeError)   the engine was used outside ``async with``
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CacheError",
    "ConfigError",
    "EmptyInputError",
    "EngineStateError",
    "InputError",
    "InputTooLargeError",
    "MissingItemError",
    "PreloadError",
    "SourceError",
    "UnknownToolError",
]


class PreloadError(Exception):
    """
    The root of every error preload raises on purpose.
    """


class ConfigError(PreloadError, ValueError):
    """
    A configuration key is unknown or its value is invalid.

    Args:
        key: The dotted key, for instance ``budget.total_tokens``.
        problem: What is wrong with it.
        source: The file the key was read from, when there is one.
    """

    def __init__(self, key: str, problem: str, source: str | Path | None = None) -> None:
        self.key = key
        self.problem = problem
        self.source = str(source) if source is not None else None
        where = f"{self.source}: " if self.source else ""
        super().__init__(f"{where}config key {key!r}: {problem}")


class InputError(PreloadError, ValueError):
    """
    An input file, or one line of it, is malformed.

    Args:
        path: The file.
        line: The 1-based line number, or None when the problem is the whole file.
        problem: What is wrong.
    """

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {problem}")


class EmptyInputError(InputError):
    """
    An input file holds no usable record.
    """

    def __init__(self, path: str | Path, what: str = "sessions") -> None:
        super().__init__(
            path, None, f"no {what} found; give a JSONL file with one {what[:-1]} a line"
        )


class InputTooLargeError(PreloadError, ValueError):
    """
    A request is larger than the engine's limits allow.

    Args:
        what: What is too large, for instance ``request text``.
        size: Its size.
        limit: The configured limit.
        key: The configuration key of the limit.
        field: The input's field that is too large (``text``, ``needs``, ``result``).
    """

    def __init__(
        self, what: str, size: int, limit: int, key: str, field: str | None = None
    ) -> None:
        self.size = size
        self.limit = limit
        self.key = key
        self.field = field
        super().__init__(
            f"{what} is {size:,}, above {key} {limit:,}; send less, or raise the limit"
        )


class SourceError(PreloadError):
    """
    A source failed to produce the item for a key.

    Args:
        source: The source's name.
        key: The key that was asked for.
        problem: What went wrong.
    """

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        super().__init__(f"source {source!r}, key {key!r}: {problem}")


class MissingItemError(SourceError, KeyError):
    """
    No source holds the key.
    """

    def __init__(self, source: str, key: str) -> None:
        super().__init__(source, key, "no such item; add it to the source or drop the need")

    def __str__(self) -> str:
        return str(self.args[0])


class CacheError(PreloadError):
    """
    The cache could not store or decode a value.
    """


class EngineStateError(PreloadError, RuntimeError):
    """
    The engine was used in a state that does not allow it.
    """


class UnknownToolError(PreloadError, LookupError):
    """
    No call source of the engine knows a tool.

    Args:
        name: The tool's name.
        sources: The names of the engine's call sources.
    """

    def __init__(self, name: str, sources: list[str]) -> None:
        self.name = name
        known = ", ".join(repr(s) for s in sources) if sources else "none"
        super().__init__(
            f"no call source knows the tool {name!r} (call sources: {known}); register it "
            "with a call source passed as call_sources="
        )
