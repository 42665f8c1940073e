"""
EngineForecaster files: errors name the file, not an invented line, and keep their cause.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graph import ModelFileError
from preload import (
    ConfigError,
    EngineConfig,
    EngineForecaster,
    InputError,
    PredictionConfig,
    Session,
    Turn,
)


def test_a_corrupt_inner_model_names_the_file_and_keeps_the_cause(tmp_path: Path) -> None:
    """
    A forecaster file whose needs model is not one raises InputError for the whole
    file (no line number) chained to graph's ModelFileError.
    """
    path = tmp_path / "model.json"
    document = {
        "format": EngineForecaster.FORMAT,
        "version": EngineForecaster.VERSION,
        "order": 1,
        "top_states": 3,
        "user_needs": False,
        "model": {"format": "something-else"},
        "users": {},
        "user_turns": {},
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(InputError) as caught:
        EngineForecaster.load(path)
    assert (str(path), None) == (caught.value.path, caught.value.line)
    assert str(caught.value).startswith(f"{path}: ")
    assert isinstance(caught.value.__cause__, ModelFileError)


def _sessions(n: int) -> list[Session]:
    """
    ``n`` sessions of an order-2 habit: after a search, a second search books, a
    booking after one search is followed by a review.
    """
    flows = [
        ("F:Search", "F:Book", "F:Review"),
        ("F:Search", "F:Search", "F:Book"),
        ("H:Search", "H:Book", "H:Review"),
    ]
    return [
        Session(
            session_id=f"s{i}",
            turns=tuple(
                Turn(t=20.0 * j, text="", needs=(f"need:{state}",), state=state)
                for j, state in enumerate(flows[i % 3])
            ),
        )
        for i in range(n)
    ]


def test_the_default_configuration_searches_and_explains() -> None:
    """
    With the default [prediction] section the state forecast chooses its own order
    and says so; given values reach the predictor unchanged.
    """
    forecaster = EngineForecaster.from_config(EngineConfig())
    assert ("auto", "auto", "auto") == (
        forecaster.order,
        forecaster.method,
        forecaster.discount,
    )
    forecaster.fit(_sessions(90))
    predictor = forecaster.model.predictor_
    assert predictor.tuning_ is not None
    assert f"order {predictor.order_}" in forecaster.explain()
    given = EngineForecaster.from_config(
        EngineConfig(prediction=PredictionConfig(order=2, method="ad", discount=0.5))
    )
    given.fit(_sessions(90))
    assert (2, "ad", 0.5) == (
        given.model.predictor_.order_,
        given.model.predictor_.method_,
        given.model.predictor_.discount_,
    )


def test_too_few_sessions_log_the_fallback(caplog: pytest.LogCaptureFixture) -> None:
    """
    Too few training sessions to choose on: order 2, a log line saying why, and no
    warning (the test run turns warnings into errors).
    """
    forecaster = EngineForecaster()
    with caplog.at_level("WARNING", logger="preload.learning._engine_forecaster"):
        forecaster.fit(_sessions(10))
    assert 2 == forecaster.model.predictor_.order_
    assert "too few" in caplog.text
    assert (
        "F:Book"
        == forecaster.forecast([{"state": "F:Search", "needs": []}], None, "x").states[0][0]
    )


def test_auto_settings_survive_save_and_load(tmp_path: Path) -> None:
    """
    A forecaster with "auto" settings loads with them, and forecasts the same.
    """
    forecaster = EngineForecaster()
    forecaster.fit(_sessions(60))
    forecaster.save(tmp_path / "model.json")
    loaded = EngineForecaster.load(tmp_path / "model.json")
    assert ("auto", "auto", "auto") == (loaded.order, loaded.method, loaded.discount)
    turns = [{"state": "F:Search", "needs": []}, {"state": "F:Search", "needs": []}]
    assert forecaster.forecast(turns, None, "x") == loaded.forecast(turns, None, "x")
    assert forecaster.explain() == loaded.explain()


def test_invalid_prediction_settings_are_refused() -> None:
    """
    The [prediction] section refuses an unknown method and a discount out of range.
    """
    with pytest.raises(ConfigError, match=r"prediction\.method"):
        PredictionConfig(method="best")
    with pytest.raises(ConfigError, match=r"prediction\.discount"):
        PredictionConfig(discount=1.5)
    with pytest.raises(ConfigError, match=r"prediction\.order"):
        PredictionConfig(order=0)


def test_observations_learned_in_batches_forecast_as_one_by_one_once_learned(
    tmp_path: Path,
) -> None:
    """
    With ``observe_every = 3`` the first two observations change nothing yet; the third
    learns all three, as a forecaster learning each at once has (both asked alike:
    some cached associations refresh only now and then, so when a forecast is made
    matters); ``save`` learns the ones still waiting, so the file holds them all.
    """
    config = EngineConfig(prediction=PredictionConfig(observe_every=3))
    waiting, batched = (EngineForecaster.from_config(config) for _ in range(2))
    one = EngineForecaster.from_config(EngineConfig())
    assert (3, 1) == (batched.observe_every, one.observe_every)
    asked = [{"state": "F:Search", "needs": []}]
    new = [
        {"state": "F:Search", "needs": ["need:F:Search"]},
        {"state": "F:Cancel", "needs": ["need:F:Cancel"]},
    ]
    for forecaster in (waiting, batched, one):
        forecaster.fit(_sessions(60))
    before = waiting.forecast(asked, None, "x")
    assert before == batched.forecast(asked, None, "x") == one.forecast(asked, None, "x")
    for _ in range(2):
        waiting.observe(new, None)
    assert before == waiting.forecast(asked, None, "x")
    for _ in range(3):
        batched.observe(new, None)
        one.observe(new, None)
    learned = one.forecast(asked, None, "x")
    assert before != learned
    assert learned == batched.forecast(asked, None, "x")
    batched.observe(new, None)
    one.observe(new, None)
    for name, forecaster in (("batched", batched), ("one", one)):
        forecaster.save(tmp_path / f"{name}.json")
    loaded = [EngineForecaster.load(tmp_path / f"{n}.json") for n in ("batched", "one")]
    assert loaded[0].forecast(asked, None, "x") == loaded[1].forecast(asked, None, "x")
    with pytest.raises(ConfigError, match="prediction.observe_every"):
        PredictionConfig(observe_every=0)


def test_a_model_trained_without_states_names_requests_after_loading(tmp_path: Path) -> None:
    """
    Trained on turns without states, the forecaster names the state of a request from
    its text (clusters of the training texts); the saved model keeps that encoder, so a
    server that loads it names requests, and forecasts, as the one trained.
    """
    words = {"F:Search": "find a flight", "F:Book": "book that flight", "F:Review": "rate it",
             "H:Search": "find a hotel", "H:Book": "book the hotel", "H:Review": "review it"}  # fmt: skip
    sessions = [
        Session(
            session_id=s.session_id,
            turns=tuple(
                Turn(t=t.t, text=f"{words[t.state or '']} {i}", needs=t.needs) for t in s.turns
            ),
        )
        for i, s in enumerate(_sessions(60))
    ]
    forecaster = EngineForecaster()
    forecaster.fit(sessions)
    forecaster.save(tmp_path / "model.json")
    loaded = EngineForecaster.load(tmp_path / "model.json")
    texts = [*words.values(), "please find me a hotel"]
    named = [forecaster.encode(text) for text in texts]
    assert all(named) and named == [loaded.encode(text) for text in texts]
    turns = [{"state": named[0], "needs": []}]
    assert forecaster.forecast(turns, None, "x") == loaded.forecast(turns, None, "x")


def test_a_model_file_above_its_size_limit_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A forecaster file, a value predictor file or a call forecaster file above the size
    a model file may have is refused naming the file, its size and the limit; one
    within it loads.
    """
    from graph import CallForecaster
    from graph import _persistence as persistence
    from preload.learning import ValuePredictor

    forecaster = EngineForecaster()
    forecaster.fit(_sessions(20))
    forecaster.save(tmp_path / "model.json")
    ValuePredictor().save(tmp_path / "values.json")
    CallForecaster().fit([]).save(tmp_path / "calls.json")
    sizes = {name: (tmp_path / name).stat().st_size for name in ("model.json", "values.json")}
    EngineForecaster.load(tmp_path / "model.json")
    monkeypatch.setattr(persistence, "MAX_MODEL_FILE_BYTES", 10)
    for name, load in (("model.json", EngineForecaster.load), ("values.json", ValuePredictor.load)):
        with pytest.raises(InputError, match=f"{name}.*{sizes[name]:,} bytes, above the") as caught:
            load(tmp_path / name)
        assert caught.value.line is None
    with pytest.raises(
        ModelFileError, match=r"calls\.json.* bytes, above the 10 a model file"
    ) as got:
        CallForecaster.load(tmp_path / "calls.json")
    assert str(got.value).endswith(
        "Check that it is the model meant: one fit on all of SGD's train is 6 MB."
    )
