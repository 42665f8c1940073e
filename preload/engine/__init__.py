"""
The engine: :class:`PreloadEngine` wires the parts, serves requests and prepares the
next ones. Its modules split it along its sides: the request path (``_engine``), the
background path that learns, forecasts and preloads (``_learner``), a session's state
(``_session``), tool calls and their speculation (``_calls``), the session's own
history (``_history``), what the window's items are worth and what feedback teaches
(``_values``), the experiment's arms and outcomes (``_experiment``), and the requests
in flight the learner stands aside for (``_in_flight``).
"""

from __future__ import annotations

from ._engine import PreloadEngine as PreloadEngine
from ._in_flight import RequestsInFlight as RequestsInFlight

__all__ = ["PreloadEngine", "RequestsInFlight"]
