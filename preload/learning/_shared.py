"""
Models read by many engines and learned into by none: one copy of a fitted forecaster
and call forecaster for every tenant of a server (``server.share_models``), rather than
a copy each. Each engine gets a view of its own: it forecasts from the shared model
(one engine at a time: the views hold one lock, since an engine forecasts in a worker
thread of its own and the models keep caches), learns nothing into it (a tenant's
sessions never change what another's forecasts say), and keeps what it learns from
feedback (the content-value predictor) to itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ._call_predictors import EngineCallPredictor
from ._engine_forecaster import EngineForecaster
from ._value import ValuePredictor

if TYPE_CHECKING:
    from graph import CallForecaster, CallGuess

    from ._forecasting import Forecast, TurnMapping

__all__ = ["SharedCallPredictor", "SharedForecaster", "SharedModels"]


class SharedForecaster:
    """
    An engine's view of a fitted :class:`EngineForecaster` that other engines read too:
    it forecasts and names states from the model, under the lock every view of it
    holds, and learns nothing online. :attr:`values` is this view's own copy of the
    model's content-value predictor, which the engine goes on learning from feedback.

    Args:
        model: The fitted forecaster, shared.
        lock: What every view of ``model`` holds while it reads it.

    .. versionadded:: 0.17
    """

    predicts_states = True

    def __init__(self, model: EngineForecaster, lock: threading.Lock) -> None:
        self.model = model
        self._lock = lock
        self.uses_reply = model.uses_reply
        values = model.values
        self.values = None if values is None else ValuePredictor.from_json(values.to_json())

    def fit(self, sessions: Sequence[object]) -> None:
        """
        Refused: a shared model is fitted before it is shared.

        Raises:
            TypeError: Always.
        """
        raise TypeError("a shared forecaster is read-only: fit the model before sharing it")

    def observe(self, turns: Sequence[TurnMapping], user: str | None) -> None:
        """
        Nothing: no engine learns into a shared model.
        """

    def forecast(self, turns: Sequence[TurnMapping], user: str | None, session_id: str) -> Forecast:
        """
        The shared model's forecast.
        """
        with self._lock:
            return self.model.forecast(turns, user, session_id)

    def encode(self, text: str) -> str | None:
        """
        The state the shared model names for ``text``, if it can.
        """
        with self._lock:
            return self.model.encode(text)


class SharedCallPredictor:
    """
    An engine's view of a fitted :class:`graph.CallForecaster` that other engines read
    too: it forecasts as :class:`EngineCallPredictor` does (only ``tools``, this
    engine's read-only tools), under the lock every view of the model holds, and learns
    nothing from the sessions that end.

    Args:
        model: The fitted call forecaster, shared.
        lock: What every view of ``model`` holds while it reads it.
        tools: As for :class:`EngineCallPredictor`.

    .. versionadded:: 0.17
    """

    def __init__(
        self,
        model: CallForecaster,
        lock: threading.Lock,
        *,
        tools: Callable[[str], bool] | None = None,
    ) -> None:
        self._predictor = EngineCallPredictor(model, tools=tools)
        self._lock = lock

    @property
    def model(self) -> CallForecaster:
        """
        The shared model.
        """
        return self._predictor.model

    def predict_calls(
        self,
        session_id: str,
        history: Sequence[TurnMapping],
        request: TurnMapping | None,
        *,
        k: int,
    ) -> Sequence[CallGuess]:
        """
        The shared model's guesses for the turn.
        """
        with self._lock:
            return self._predictor.predict_calls(session_id, history, request, k=k)

    def observe_session(self, turns: Sequence[TurnMapping], user: str | None) -> None:
        """
        Nothing: no engine learns into a shared model.
        """


class SharedModels:
    """
    One copy of a fitted forecaster and call forecaster (either may be None) for many
    engines, each of which gets a view of its own: :meth:`forecaster`,
    :meth:`call_predictor`. The views of one model share a lock.

    .. versionadded:: 0.17
    """

    def __init__(self, forecaster: EngineForecaster | None, calls: CallForecaster | None) -> None:
        self._forecaster = forecaster
        self._calls = calls
        self._forecasting = threading.Lock()
        self._calling = threading.Lock()

    @classmethod
    def load(cls, model: str | None, calls_model: str | None) -> SharedModels:
        """
        The models of the files given (``preload train``'s ``--out`` and
        ``--calls-out``).

        Raises:
            InputError: A file is missing or not a model of its kind.
        """
        return cls(
            EngineForecaster.load(model) if model else None,
            EngineCallPredictor.load(calls_model).model if calls_model else None,
        )

    def forecaster(self) -> SharedForecaster | None:
        """
        A new view of the forecaster, or None without one.
        """
        model = self._forecaster
        return None if model is None else SharedForecaster(model, self._forecasting)

    def call_predictor(
        self, tools: Callable[[str], bool] | None = None
    ) -> SharedCallPredictor | None:
        """
        A new view of the call forecaster (``tools`` as for
        :class:`EngineCallPredictor`), or None without one.
        """
        model = self._calls
        return None if model is None else SharedCallPredictor(model, self._calling, tools=tools)
