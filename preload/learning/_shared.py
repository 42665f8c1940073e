"""
Models read by many engines and learned into by none: one copy of a fitted forecaster
and call forecaster for every tenant of a server (``server.share_models``), rather than
a copy each. Each engine gets a view of its own: it forecasts from the shared model
(one engine at a time: the views hold one lock, since an engine forecasts in a worker
thread of its own and the models keep caches), learns nothing into it (a tenant's
sessions never change what another's forecasts say), and keeps what it learns from
feedback (the content-value predictor) to itself. A view of the call forecaster may
also learn a call forecaster of its own from its engine's sessions
(``server.tenant_learning``): each tool's calls are then forecast by whichever of the
two has seen more of them, so that a tenant's tools the shared model never saw, or
saw seldom, are run ahead too. The models may be replaced while the views serve
(:meth:`SharedModels.replace_with`: a server following its model files): every view
forecasts from the new ones from its next forecast on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from ._call_predictors import (
    EngineCallPredictor,
    counted_calls,
    guesses_of,
    joined,
    owned_names,
)
from ._engine_forecaster import EngineForecaster
from ._value import ValuePredictor

if TYPE_CHECKING:
    from graph import CallForecaster, CallGuess

    from ._forecasting import Forecast, TurnMapping

__all__ = ["SharedCallPredictor", "SharedForecaster", "SharedModels", "read_models"]

M = TypeVar("M")


class _Slot(Generic[M]):
    """
    Where the views of a shared model find it (replaced whole, under ``lock``), and
    the lock they hold while they read it.
    """

    __slots__ = ("lock", "model")

    def __init__(self, model: M) -> None:
        self.model = model
        self.lock = threading.Lock()


class SharedForecaster:
    """
    An engine's view of a fitted :class:`EngineForecaster` that other engines read too:
    it forecasts and names states from the model, under the lock every view of it
    holds, and learns nothing online. :attr:`values` is this view's own copy of the
    model's content-value predictor, which the engine goes on learning from feedback.

    Args:
        slot: Where the fitted forecaster is, shared, and the lock every view of it
            holds while it reads it (from :meth:`SharedModels.forecaster`).

    .. versionadded:: 0.17
    .. versionchanged:: 0.18
       Built from :meth:`SharedModels.forecaster` only; follows the model it replaces.
    """

    predicts_states = True

    def __init__(self, slot: _Slot[EngineForecaster]) -> None:
        self._slot = slot
        self.uses_reply = slot.model.uses_reply  # an EngineForecaster's, whichever
        values = slot.model.values
        self.values = None if values is None else ValuePredictor.from_json(values.to_json())

    @property
    def model(self) -> EngineForecaster:
        """
        The shared model, as it is now.
        """
        return self._slot.model

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
        slot = self._slot
        with slot.lock:
            return slot.model.forecast(turns, user, session_id)

    def encode(self, text: str) -> str | None:
        """
        The state the shared model names for ``text``, if it can.
        """
        slot = self._slot
        with slot.lock:
            return slot.model.encode(text)


class SharedCallPredictor:
    """
    An engine's view of a fitted :class:`graph.CallForecaster` that other engines read
    too: it forecasts as :class:`EngineCallPredictor` does (only ``tools``, this
    engine's read-only tools), under the lock every view of the model holds, and learns
    nothing into it.

    With ``learn``, the view also learns a call forecaster of its own (:attr:`own`,
    empty at first) from its engine's sessions, as an engine's own predictor does, and
    each tool's calls are forecast by whichever of the two models has counted more
    calls of it: the shared one's for the tools it knows well, its own for the tools
    the shared model never saw, or saw less often than this engine's sessions made
    them. The guesses of both are ranked together by probability. Until its own model
    counts more calls of a tool than the shared one, the view forecasts exactly as
    without ``learn`` (and asks its own model nothing).

    Args:
        slot: Where the fitted call forecaster is, shared, and the lock every view of
            it holds while it reads it (from :meth:`SharedModels.call_predictor`).
        tools: As for :class:`EngineCallPredictor`.
        learn: Learn a call forecaster of this view's own from the sessions.

    .. versionadded:: 0.17
    .. versionchanged:: 0.18
       Built from :meth:`SharedModels.call_predictor` only; follows the model it
       replaces.
    .. versionchanged:: 0.21
       ``learn``.
    """

    def __init__(
        self,
        slot: _Slot[CallForecaster],
        *,
        tools: Callable[[str], bool] | None = None,
        learn: bool = False,
    ) -> None:
        self._slot = slot
        self._tools = tools
        self.own = EngineCallPredictor(tools=tools) if learn else None

    @property
    def model(self) -> CallForecaster:
        """
        The shared model, as it is now.
        """
        return self._slot.model

    def predict_calls(
        self,
        session_id: str,
        history: Sequence[TurnMapping],
        request: TurnMapping | None,
        *,
        k: int,
    ) -> Sequence[CallGuess]:
        """
        The shared model's guesses for the turn, with those of this view's own model
        (with ``learn``) for the tools it has counted more calls of: each model spends
        its room on its own tools, and their guesses are ranked together.
        """
        slot, tools = self._slot, self._tools
        with slot.lock:  # the model as it is now (or the one replacing it)
            owned = owned_names(self.own, counted_calls(slot.model)) if self.own else frozenset()
            guesses = guesses_of(slot.model, tools, history, request, k=k, owned=owned, mine=False)
        return joined(guesses, self.own, tools, history, request, k=k, owned=owned)

    def observe_session(
        self, turns: Sequence[TurnMapping], user: str | None, *, learned: int = 0
    ) -> None:
        """
        With ``learn``, this view's own model learns from the turns (as
        :meth:`EngineCallPredictor.observe_session`); else nothing: no engine learns
        into a shared model.
        """
        if self.own is not None:
            self.own.observe_session(turns, user, learned=learned)

    def word_counts(self) -> int:
        """
        The word counts of this view's own model (with ``learn``; else 0): the shared
        model is every view's, and does not grow.

        .. versionadded:: 0.22
        """
        return self.own.word_counts() if self.own is not None else 0


class SharedModels:
    """
    One copy of a fitted forecaster and call forecaster (either may be None) for many
    engines, each of which gets a view of its own: :meth:`forecaster`,
    :meth:`call_predictor`. The views of one model share a lock, and follow it when
    :meth:`replace_with` replaces it.

    .. versionadded:: 0.17
    .. versionchanged:: 0.18
       :meth:`replace_with`.
    """

    def __init__(self, forecaster: EngineForecaster | None, calls: CallForecaster | None) -> None:
        self._forecaster = None if forecaster is None else _Slot(forecaster)
        self._calls = None if calls is None else _Slot(calls)

    def replace_with(self, other: SharedModels) -> None:
        """
        Forecast from ``other``'s models from now on, in every view made and to be
        made (each is replaced under its lock: a forecast under way ends on the model
        it began with). The views keep their own content-value predictors.

        Raises:
            ValueError: ``other`` lacks a model this one has, or has one it lacks
                (the engines were built with or without it).
        """
        pairs = ((self._forecaster, other._forecaster), (self._calls, other._calls))
        if any((mine is None) != (theirs is None) for mine, theirs in pairs):
            raise ValueError("the replacing models must be of the same kinds as the models")
        for mine, theirs in pairs:
            if mine is not None and theirs is not None:
                with mine.lock:
                    mine.model = theirs.model

    @classmethod
    def load(cls, model: str | None, calls_model: str | None) -> SharedModels:
        """
        The models of the files given (``preload train``'s ``--out`` and
        ``--calls-out``).

        Raises:
            InputError: A file is missing or not a model of its kind.
        """
        return cls(*read_models(model, calls_model))

    def forecaster(self) -> SharedForecaster | None:
        """
        A new view of the forecaster, or None without one.
        """
        slot = self._forecaster
        return None if slot is None else SharedForecaster(slot)

    def call_predictor(
        self, tools: Callable[[str], bool] | None = None, *, learn: bool = False
    ) -> SharedCallPredictor | None:
        """
        A new view of the call forecaster (``tools`` as for
        :class:`EngineCallPredictor`; with ``learn``, the view learns a call forecaster
        of its own over the shared one: see :class:`SharedCallPredictor`), or None
        without one.

        .. versionchanged:: 0.21
           ``learn``.
        """
        slot = self._calls
        return None if slot is None else SharedCallPredictor(slot, tools=tools, learn=learn)


def read_models(
    model: str | None, calls_model: str | None
) -> tuple[EngineForecaster | None, CallForecaster | None]:
    """
    The models of the files given (``preload train``'s ``--out`` and ``--calls-out``),
    None for a file not given.

    Raises:
        InputError: A file is missing or not a model of its kind.
    """
    return (
        EngineForecaster.load(model) if model else None,
        EngineCallPredictor.load(calls_model).model if calls_model else None,
    )
