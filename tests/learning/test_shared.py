"""
Views of one fitted model for many engines (``SharedModels``): each forecasts as the
model does, learns nothing into it, and keeps a content-value predictor of its own.
"""

from __future__ import annotations

from typing import Any

import pytest

from graph import CallForecaster
from preload import EngineForecaster, Session, Turn
from preload.learning import SharedModels, ValuePredictor
from preload.learning._freeing import free_gradually

from .conftest import CITIES, guesses, said_session


def _sessions(n: int) -> list[Session]:
    """
    ``n`` sessions in which a search is followed by a booking, then a review.
    """
    states = ("F:Search", "F:Book", "F:Review")
    return [
        Session(
            session_id=f"s{i}",
            turns=tuple(
                Turn(t=20.0 * j, text="", needs=(f"need:{state}",), state=state)
                for j, state in enumerate(states)
            ),
        )
        for i in range(n)
    ]


@pytest.fixture(name="model")
def _model() -> EngineForecaster:
    """
    A forecaster fitted on 30 sessions, with a content-value predictor.
    """
    model = EngineForecaster()
    model.fit(_sessions(30))
    model.values = ValuePredictor(min_feedback=3)
    return model


def test_views_forecast_as_the_model_and_learn_nothing_into_it(model: EngineForecaster) -> None:
    """
    Two views forecast what the model forecasts; a turn they observe changes neither
    the model nor its forecast; refitting a view is refused.
    """
    shared = SharedModels(model, None)
    one, two = shared.forecaster(), shared.forecaster()
    assert one is not None and two is not None
    turns = [{"state": "F:Search", "needs": []}]
    expected = model.forecast(turns, None, "x")
    before = model.model.to_json()
    for _ in range(5):
        one.observe([{"state": "F:Search", "needs": []}, {"state": "F:Review"}], "u")
    assert expected == one.forecast(turns, None, "x") == two.forecast(turns, None, "x")
    assert "F:Book" == expected.states[0][0]
    assert before == model.model.to_json()
    with pytest.raises(TypeError, match="read-only"):
        one.fit(_sessions(3))
    assert None is SharedModels(None, None).forecaster()
    assert None is SharedModels(None, None).call_predictor()


def test_each_view_has_its_own_copy_of_the_values(model: EngineForecaster) -> None:
    """
    Each view's content-value predictor starts as the model's and is its own: what
    one engine learns from feedback stays with it.
    """
    shared = SharedModels(model, None)
    one, two = shared.forecaster(), shared.forecaster()
    assert one is not None and two is not None
    assert one.values is not None and two.values is not None
    assert model.values is not None
    assert len({id(one.values), id(two.values), id(model.values)}) == 3
    assert model.values.to_json() == one.values.to_json() == two.values.to_json()


def test_a_view_reads_the_model_under_the_views_lock(
    model: EngineForecaster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A view forecasts and names states only while it holds the lock every view of the
    model shares (the model's caches are not safe for two threads at once).
    """
    shared = SharedModels(model, None)
    one = shared.forecaster()
    assert one is not None
    held: list[bool] = []
    forecast, encode = model.forecast, model.encode

    def watched_forecast(*args: Any) -> Any:
        held.append(shared._forecaster.lock.locked())
        return forecast(*args)

    def watched_encode(text: str) -> str | None:
        held.append(shared._forecaster.lock.locked())
        return encode(text)

    monkeypatch.setattr(model, "forecast", watched_forecast)
    monkeypatch.setattr(model, "encode", watched_encode)
    one.forecast([{"state": "F:Search", "needs": []}], None, "x")
    one.encode("a flight")
    assert [True, True] == held
    assert not shared._forecaster.lock.locked()


def _hotel_calls_turns(city: str) -> list[dict[str, Any]]:
    """
    A session's one turn: a hotel search that names no city and searches ``city``.
    """
    call = {"name": "find_hotels", "args": {"city": city}, "read_only": True}
    return [{"text": "Find me hotels please.", "tool_calls": [call]}]


def _hotel_calls(city: str) -> CallForecaster:
    """
    A call forecaster fitted on 20 sessions whose hotel search, never naming a city,
    always searched ``city``.
    """
    model = CallForecaster()
    model.fit([{"session_id": f"log{i}", "turns": _hotel_calls_turns(city)} for i in range(20)])
    return model


def test_views_follow_the_models_that_replace_the_shared_ones(model: EngineForecaster) -> None:
    """
    Views made before :meth:`SharedModels.replace_with` forecast from the new models
    after it, as views made after do, and keep their own content-value predictors;
    models of other kinds are refused.
    """
    shared = SharedModels(model, _hotel_calls("Lisbon"))
    forecaster, calls = shared.forecaster(), shared.call_predictor()
    assert forecaster is not None and calls is not None
    values = forecaster.values
    request = {"text": "Find me hotels please."}

    def first_city(view: Any) -> str:
        return str(view.predict_calls("s", [], request, k=3)[0].args["city"])

    turns = [{"state": "F:Search", "needs": []}]
    assert ("F:Book", "Lisbon") == (
        forecaster.forecast(turns, None, "x").states[0][0],
        first_city(calls),
    )
    other = EngineForecaster()
    other.fit(
        [
            Session(
                session_id=f"o{i}",
                turns=tuple(
                    Turn(t=20.0 * j, text="", needs=(), state=state)
                    for j, state in enumerate(("F:Search", "F:Review"))
                ),
            )
            for i in range(30)
        ]
    )
    shared.replace_with(SharedModels(other, _hotel_calls("Porto")))
    later = shared.call_predictor()
    assert later is not None
    assert ("F:Review", "Porto", "Porto") == (
        forecaster.forecast(turns, None, "x").states[0][0],
        first_city(calls),
        first_city(later),
    )
    assert forecaster.model is other and values is forecaster.values
    with pytest.raises(ValueError, match="same kinds"):
        shared.replace_with(SharedModels(other, None))


def test_a_fitted_model_is_taken_apart_and_a_shared_one_left_as_it_was(
    model: EngineForecaster,
) -> None:
    """
    A fitted forecaster, an engine's own copy, is taken apart; a view of a shared
    model frees nothing of it: the model forecasts as before, through another view.
    """
    copy = EngineForecaster()
    copy.fit(_sessions(30))
    assert free_gradually(copy) > 10
    assert {} == vars(copy)

    shared = SharedModels(model, None)
    view, other = shared.forecaster(), shared.forecaster()
    assert view is not None and other is not None
    turns = [{"state": "F:Search", "needs": []}]
    expected, saved = model.forecast(turns, None, "x"), model.model.to_json()
    free_gradually(view)
    assert expected == other.forecast(turns, None, "x")
    assert saved == model.model.to_json()


def test_a_learning_view_forecasts_each_tool_from_the_model_that_counted_more_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    With ``learn``, a view learns a call forecaster of its own: it forecasts a tool
    the shared model never saw once its own model counted it, and a tool both know from
    whichever counted more of its calls (the shared model's Lisbon until the view's
    own sessions outnumber its 20, the city said after; the shared model is then not
    asked for it); a replacing model that counts more takes its tool back. The shared model learns nothing; a view without
    ``learn`` forecasts from it alone.
    """
    shared = SharedModels(None, _hotel_calls("Lisbon"))
    view, plain = shared.call_predictor(learn=True), shared.call_predictor()
    assert view is not None and plain is not None and view.own is not None
    assert None is plain.own
    saved = shared.call_predictor().model.to_json()  # type: ignore[union-attr]
    flights, hotels = "Any flights to {city}?", "Find me hotels in {city} please."
    for i in range(6):
        view.observe_session(said_session("find_flights", "to", CITIES[i], flights), None)
        view.observe_session(said_session("find_hotels", "city", CITIES[i], hotels), None)
    assert ("find_flights", {"to": "Porto"}) in guesses(view, "Any flights to Porto?")
    assert [] == [g for g in guesses(plain, "Any flights to Porto?") if g[0] == "find_flights"]
    # 6 hotel searches counted against the shared model's 20: its Lisbon still
    assert guesses(plain, "Find me hotels please.") == guesses(view, "Find me hotels please.")
    assert ("find_hotels", {"city": "Lisbon"}) == guesses(view, "Find me hotels in Faro please.")[0]
    for i in range(15):  # 21 against 20: the view's own model forecasts the searches
        view.observe_session(said_session("find_hotels", "city", CITIES[i % 6], hotels), None)
    assert ("find_hotels", {"city": "Faro"}) == guesses(view, "Find me hotels in Faro please.")[0]
    assert ("find_hotels", {"city": "Lisbon"}) == guesses(plain, "Find me hotels in Faro please.")[
        0
    ]
    assert saved == view.model.to_json()
    asked: list[Any] = []  # the names the shared model is asked for: not the view's own
    forecast = view.model.predict

    def watched(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs["names"])
        return forecast(*args, **kwargs)

    monkeypatch.setattr(view.model, "predict", watched)
    guesses(view, "Find me hotels in Faro please.")
    assert [False, False] == [asked[0](name) for name in ("find_hotels", "find_flights")]
    more = CallForecaster()
    more.fit([{"turns": _hotel_calls_turns("Porto")} for _ in range(40)])
    shared.replace_with(SharedModels(None, more))
    assert ("find_hotels", {"city": "Porto"}) == guesses(view, "Find me hotels in Faro please.")[0]
    assert ("find_flights", {"to": "Faro"}) in guesses(view, "Any flights to Faro?")
