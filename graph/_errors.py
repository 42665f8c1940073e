"""
Exceptions raised by graph.

The tree::

    GraphError
    ├── ModelFileError (ValueError)      a model file is corrupt or of an unknown version
    └── InvalidStateError (ValueError)   a state or need name holds a reserved character
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["GraphError", "InvalidStateError", "ModelFileError"]


class GraphError(Exception):
    """
    The root of every error graph raises on purpose.

    .. versionadded:: 0.1
    """


class ModelFileError(GraphError, ValueError):
    """
    A saved model could not be read.

    Args:
        path: The file that was being read.
        problem: What is wrong with it.
        remedy: What to do about it (re-creating the file, unless told otherwise).

    .. versionadded:: 0.1
    .. versionchanged:: 0.15
       ``remedy``.
    """

    def __init__(
        self,
        path: str | Path,
        problem: str,
        *,
        remedy: str = "Re-create it with 'save' from this version of graph.",
    ) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"cannot load model file {self.path!r}: {problem}. {remedy}")


class InvalidStateError(GraphError, ValueError):
    """
    A state or need name contains a character graph reserves for its own use.

    Graph builds its keys by joining names with control characters (see
    ``graph._keys.RESERVED``: ``\\x02``, ``\\x1c``, ``\\x1d``, ``\\x1e``, ``\\x1f``); a
    name holding one of them could not be told apart from a key.

    Args:
        name: The offending name.
        char: The reserved character it contains.

    .. versionadded:: 0.1
    """

    def __init__(self, name: str, char: str) -> None:
        self.name = name
        self.char = char
        super().__init__(
            f"invalid state or need name {name!r}: it contains {char!r}, a control "
            "character reserved by graph to build its keys; remove or replace that "
            "character before passing the name to graph."
        )
