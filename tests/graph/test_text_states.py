"""
Tests of the text forecast (TextForecaster), of the next-state forecast that blends it
in, and of the needs forecast on sessions whose words tell what follows.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from sklearn.base import clone

from graph import FollowUpPredictor, NeedsForecaster, TextForecaster

REPLIES = {
    "book": "Would you like me to book a table?",
    "weather": "Shall I check the weather there?",
}


def _sessions(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """
    Sessions where the state sequence alone cannot tell what follows ``search`` but the
    agent's reply can: "book a table" leads to ``reserve``, "weather" to ``forecast``.
    """
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for _ in range(n):
        kind = rng.choice(["book", "weather"])
        nxt = "reserve" if kind == "book" else "forecast"
        turns = [
            {"text": "hello there", "state": "greet", "system": "Hi, how can I help?",
             "needs": ["intro"]},
            {"text": "find me something", "state": "search", "system": REPLIES[kind],
             "needs": ["catalog"]},
            {"text": "yes please", "state": nxt, "system": "Done.",
             "needs": ["catalog", f"api:{nxt}"]},
        ]  # fmt: skip
        out.append({"session_id": f"s{len(out)}", "turns": turns})
    return out


def test_text_lifts_the_forecast() -> None:
    """
    With the reply's words the forecast after ``search`` is right; without them it is a
    coin toss between reserve and forecast.
    """
    train, test = _sessions(200), _sessions(40, seed=1)
    model = FollowUpPredictor(order=2).fit(train)
    assert model.text_ is not None
    assert model.blend_[1] > 0.0
    assert model.rerank_ is not None
    with_text = [model.predict_proba(s["turns"][:2], k=1)[0][0] for s in test]
    truth = [s["turns"][2]["state"] for s in test]
    assert truth == with_text
    model.rerank_ = None  # the fixed blend, the fallback when no reranking was learned
    assert truth == [model.predict_proba(s["turns"][:2], k=1)[0][0] for s in test]
    states_only = model.predict_proba(["greet", "search"], k=2)
    assert {"reserve", "forecast"} == {s for s, _ in states_only}


def test_text_model_survives_save_load(tmp_path: Path) -> None:
    """
    The text part, the blend weight and the reranking round-trip through JSON.
    """
    model = FollowUpPredictor(order=2).fit(_sessions(100))
    model.save(tmp_path / "m.json")
    loaded = FollowUpPredictor.load(tmp_path / "m.json")
    history = _sessions(1, seed=3)[0]["turns"][:2]
    assert model.blend_ == loaded.blend_
    assert model.rerank_ == loaded.rerank_
    expected = model.predict_proba(history, k=2)
    actual = loaded.predict_proba(history, k=2)
    assert [s for s, _ in expected] == [s for s, _ in actual]
    assert pytest.approx([p for _, p in expected], rel=1e-4) == [p for _, p in actual]


def test_text_forecaster_online() -> None:
    """
    TextForecaster keeps learning through observe (buffered) and flush.
    """
    model = TextForecaster(batch_size=2).fit(_sessions(50))
    turns = _sessions(1, seed=4)[0]["turns"]
    for i in range(1, len(turns) + 1):
        model.observe(turns[:i])
    model.flush()
    assert turns[2]["state"] == model.predict_proba(turns[:2], k=1)[0][0]


def test_needs_forecaster_learns_from_persistence_and_forecast() -> None:
    """
    After ``search`` with a booking reply the next turn needs ``api:reserve`` and, as
    this turn did, ``catalog``.
    """
    forecaster = NeedsForecaster(predictor=FollowUpPredictor(order=2)).fit(_sessions(300))
    assert forecaster.mixer_ is not None
    session = _sessions(30, seed=5)
    for s in session:
        top = [n for n, _ in forecaster.predict_proba(s["turns"][:2], k=2)]
        assert {"catalog", f"api:{s['turns'][2]['state']}"} == set(top)
    forecaster.observe(session[0]["turns"][:1])
    assert 1 <= len(forecaster.predict_proba(session[0]["turns"][:1], k=3))


def test_needs_forecaster_clone() -> None:
    """
    clone keeps the nested predictor's parameters.
    """
    forecaster = NeedsForecaster(predictor=FollowUpPredictor(order=4), n_states=7)
    copy = clone(forecaster)
    assert 4 == copy.predictor.order
    assert 7 == copy.n_states
