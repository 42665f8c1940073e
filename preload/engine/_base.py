"""
What the groups of methods :class:`PreloadEngine` inherits (:class:`ToolCalls`,
:class:`StoredTurns`) read of the engine: declared once here, set by the engine.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._config import EngineConfig
    from ._learner import Learner
    from ._session import EngineSession

__all__ = ["EngineBase"]


class EngineBase:
    """
    The engine's configuration, sessions and learner, and how a method checks that
    the engine is open and finds (or makes) a session; :class:`PreloadEngine` sets
    and defines them.
    """

    config: EngineConfig
    _sessions: OrderedDict[str, EngineSession]
    _learner: Learner

    if TYPE_CHECKING:

        def _check_open(self) -> None: ...

        def _session(self, session_id: str, user: str | None) -> EngineSession: ...
