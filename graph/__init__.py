"""
graph: learning what comes next in a conversation.

The modules, from the bottom up (this package only re-exports their public names):

``_errors``
    :class:`GraphError` and its subclasses :class:`ModelFileError` and
    :class:`InvalidStateError`.
``_keys``
    The control characters graph builds its keys from and ``check_name``, which keeps
    them out of state and need names; the context ids of the pattern graph.
``_persistence``
    Saving and loading: atomic JSON writes, JSON reads within
    :data:`MAX_MODEL_FILE_BYTES`, format and version checks,
    corrupt data turned into :class:`ModelFileError`, float arrays as base64.
``_graph``
    :class:`PatternGraph`: transition counts from contexts to next states or needs,
    over a networkx graph.
``_sessions``
    What graph reads from a session log: sessions, turns, their states, needs, text;
    the latest turns the state and needs forecasts read (``READ_TURNS``).
``_seq_counts``
    ``SeqCounts``: the backoff counts (Kneser-Ney, absolute discounting, PPM) behind
    the next-state forecast, with time decay and pruning.
``_text_states``
    :class:`TextForecaster`: the next state from the words of the request and reply.
``_text_blend``
    How the next-state forecast combines the sequence and text forecasts (a learned
    reranking, or a linear or log-linear blend).
``_predictor``
    :class:`FollowUpPredictor`: the next state of a session.
``_state_needs``
    :class:`NeedsModel`: P(need | state).
``_transition_needs``
    :class:`NeedsAfter`: P(need at the next turn | this state and its needs, next
    state).
``_needs_features``
    The candidate needs of the next turn and their feature rows.
``_needs_mixer``
    The logistic mixer that turns a feature row into P(need used next turn).
``_needs_forecast``
    :class:`NeedsForecaster`: which needs the next turn will use.
``_state_encoder``
    :class:`StateEncoder`: the state of a request from its text, for unlabelled logs.
``_calls``, ``_calls_counts``, ``_calls_turns``, ``_calls_view``, ``_calls_text``, ``_calls_names``, ``_aging``
    :class:`CallForecaster`: which backend calls a turn will make, with their complete
    arguments (:class:`CallGuess`); the counts it learns from the logs; how it reads a
    turn's calls, one session's turns, and the values a text says; the names a
    request's words point to; halving the counts as they age.

.. versionadded:: 0.1
"""

from __future__ import annotations

from ._calls import CallForecaster as CallForecaster
from ._calls import CallGuess as CallGuess
from ._errors import GraphError as GraphError
from ._errors import InvalidStateError as InvalidStateError
from ._errors import ModelFileError as ModelFileError
from ._graph import PatternGraph as PatternGraph
from ._keys import check_name as check_name
from ._needs_forecast import NeedsForecaster as NeedsForecaster
from ._persistence import MAX_MODEL_FILE_BYTES as MAX_MODEL_FILE_BYTES
from ._persistence import read_json as read_json
from ._predictor import FollowUpPredictor as FollowUpPredictor
from ._sessions import READ_TURNS as READ_TURNS
from ._state_encoder import StateEncoder as StateEncoder
from ._state_needs import NeedsModel as NeedsModel
from ._text_states import TextForecaster as TextForecaster
from ._transition_needs import NeedsAfter as NeedsAfter

__all__ = [
    "MAX_MODEL_FILE_BYTES",
    "READ_TURNS",
    "CallForecaster",
    "CallGuess",
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
    "check_name",
    "read_json",
]
