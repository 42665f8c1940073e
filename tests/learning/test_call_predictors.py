"""
The engine's call predictor beside a fitted model: a tool the fit never saw is learned
apart, in a model of the engine's own (``EngineCallPredictor.own``), and forecast from
it once it counted more of its calls than the fit did.
"""

from __future__ import annotations

from typing import Any

import pytest

from graph import CallForecaster
from preload import Session, Turn
from preload.learning import EngineCallPredictor

from .conftest import CITIES, guesses, said_session

HOTELS = "Find me hotels in {city} please."
FLIGHTS = "Any flights to {city}?"


def _fitted() -> CallForecaster:
    """
    A call forecaster fitted on 20 hotel searches in the city the request says.
    """
    model = CallForecaster()
    model.fit(
        [{"turns": said_session("find_hotels", "city", CITIES[i % 6], HOTELS)} for i in range(20)]
    )
    return model


def test_a_tool_the_fit_never_saw_is_learned_apart_and_forecast_from_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    Beside a fitted model, sessions of the tools the fit knew start no model of the
    engine's own; the first that calls a tool it never saw does. From then on that
    model learns too, and forecasts the new tool (the fitted copy, which learns online
    as before, is not asked for it); the tool the fit counted more of stays the copy's.
    """
    predictor = EngineCallPredictor(_fitted())
    for city in CITIES:
        predictor.observe_session(said_session("find_hotels", "city", city, HOTELS), None)
    assert None is predictor.own
    for city in CITIES:  # from the first, both learn both
        predictor.observe_session(said_session("find_flights", "to", city, FLIGHTS), None)
        predictor.observe_session(said_session("find_hotels", "city", city, HOTELS), None)
    own = predictor.own
    assert own is not None
    assert [6, 6] == [own.model.counts_.names[n][0] for n in ("find_flights", "find_hotels")]
    assert 6 == predictor.model.counts_.names["find_flights"][0]  # the copy learned too
    asked: list[Any] = []  # the names the fitted copy is asked for
    forecast = predictor.model.predict

    def watched(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs["names"])
        return forecast(*args, **kwargs)

    monkeypatch.setattr(predictor.model, "predict", watched)
    assert ("find_flights", {"to": "Sintra"}) in guesses(predictor, FLIGHTS.format(city="Sintra"))
    assert [False, True] == [asked[-1](name) for name in ("find_flights", "find_hotels")]
    assert "find_hotels" == guesses(predictor, HOTELS.format(city="Sintra"))[0][0]


def test_learning_from_nothing_or_fitting_again_keeps_no_model_apart() -> None:
    """
    A predictor that learns from nothing has no fit to learn apart from: every tool
    it learns is its model's. Fitting again forgets the model apart.
    """
    predictor = EngineCallPredictor()
    for city in CITIES:
        predictor.observe_session(said_session("find_hotels", "city", city, HOTELS), None)
        predictor.observe_session(said_session("find_flights", "to", city, FLIGHTS), None)
    assert None is predictor.own
    assert ("find_flights", {"to": "Sintra"}) in guesses(predictor, FLIGHTS.format(city="Sintra"))

    fitted = EngineCallPredictor(_fitted())
    fitted.observe_session(said_session("find_flights", "to", "Faro", FLIGHTS), None)
    assert fitted.own is not None
    fitted.fit([Session(session_id=f"s{i}", turns=(Turn(t=0.0, text="hi"),)) for i in range(3)])
    assert None is fitted.own
