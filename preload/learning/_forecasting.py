"""
What the engine expects the next request to need: the :class:`Forecast`, the
:class:`Forecaster` protocol every strategy implements, and its optional capability
:class:`StateNamer`.

A forecaster learns from each turn (``observe``) and forecasts the next state and the
next turn's needs (``forecast``); the engine calls both in the background, never on
the request path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .._sessions import Session

__all__ = ["Forecast", "Forecaster", "StateNamer", "TurnMapping", "ranked"]

TurnMapping = Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Forecast:
    """
    The next request as a forecaster sees it: states and needs with probabilities,
    most likely first.

    .. versionadded:: 0.1
    """

    states: tuple[tuple[str, float], ...] = ()
    needs: tuple[tuple[str, float], ...] = ()


class Forecaster(Protocol):
    """
    Learns from turns and forecasts the next one.

    .. versionadded:: 0.1
    """

    #: Whether :meth:`forecast` gives states (and next-state accuracy applies).
    predicts_states: bool
    #: Whether the agent's reply changes the forecast (then it is made again on reply).
    uses_reply: bool

    def fit(self, sessions: Sequence[Session]) -> None:
        """
        Learn from recorded sessions before serving.
        """
        ...

    def observe(self, turns: Sequence[TurnMapping], user: str | None) -> None:
        """
        Learn from the session's last turn.
        """
        ...

    def forecast(self, turns: Sequence[TurnMapping], user: str | None, session_id: str) -> Forecast:
        """
        The forecast for the turn after ``turns``.
        """
        ...


@runtime_checkable
class StateNamer(Protocol):
    """
    An optional capability of a forecaster: naming the state of a request that came
    without one, from its text. The engine checks for it once, when it is built.

    .. versionadded:: 0.2
    """

    def encode(self, text: str) -> str | None:
        """
        The state of a request with this text, or None when it cannot tell.
        """
        ...


def ranked(needs: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    """
    ``needs`` most likely first (ties by name): the order a :class:`Forecast` keeps.
    """
    return tuple(sorted(needs.items(), key=lambda kv: (-kv[1], kv[0])))
