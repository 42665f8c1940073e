"""
graph: learning what comes next in a conversation.

.. versionadded:: 0.1
"""

from __future__ import annotations

from ._after import NeedsAfter as NeedsAfter
from ._errors import GraphError as GraphError
from ._errors import InvalidStateError as InvalidStateError
from ._errors import ModelFileError as ModelFileError
from ._forecast import NeedsForecaster as NeedsForecaster
from ._graph import PatternGraph as PatternGraph
from ._needs import NeedsModel as NeedsModel
from ._predictor import FollowUpPredictor as FollowUpPredictor
from ._states import StateEncoder as StateEncoder
from ._text import TextForecaster as TextForecaster

__all__ = [
    "FollowUpPredictor",
    "GraphError",
    "InvalidStateError",
    "ModelFileError",
    "NeedsAfter",
    "NeedsForecaster",
    "NeedsModel",
    "PatternGraph",
    "StateEncoder",
    "TextForecaster",
]
