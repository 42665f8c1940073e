"""
Tests of NeedsModel against hand-computed values.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from graph import NeedsModel

SESSIONS = [
    {
        "turns": [
            {"state": "s", "needs": ["x", "y"]},
            {"state": "s", "needs": ["x"]},
            {"state": "t", "needs": ["y"]},
            {"text": "no state here", "needs": ["z"]},
        ]
    }
]


def test_needs_given_state() -> None:
    """
    P(x|s) = 2/2, P(y|s) = 1/2, P(y|t) = 1/1; a turn without a state is skipped.
    """
    model = NeedsModel().fit(SESSIONS)
    assert {"x": 1.0, "y": 0.5} == dict(model.needs_given("s"))
    assert {"y": 1.0} == dict(model.needs_given("t"))


def test_predict_proba_mixes_state_forecast() -> None:
    """
    x: 0.6 * 1 = 0.6; y: 0.6 * 0.5 + 0.4 * 1 = 0.7; the unseen state u adds nothing.
    """
    model = NeedsModel().fit(SESSIONS)
    got = model.predict_proba([("s", 0.6), ("t", 0.4), ("u", 0.5)])
    assert ["y", "x"] == [n for n, _ in got]
    assert pytest.approx([0.7, 0.6]) == [p for _, p in got]
    assert ["y"] == [n for n, _ in model.predict_proba([("s", 0.6), ("t", 0.4)], k=1)]


def test_observe_matches_fit() -> None:
    """
    Observing the turns one by one learns what fit learns.
    """
    online = NeedsModel()
    for turn in SESSIONS[0]["turns"][:3]:
        online.observe(str(turn["state"]), turn["needs"])
    assert NeedsModel().fit(SESSIONS).graph_ == online.graph_


def test_save_load_round_trip(tmp_path: Path) -> None:
    """
    A saved model predicts the same after loading.
    """
    model = NeedsModel().fit(SESSIONS)
    model.save(tmp_path / "needs.json")
    loaded = NeedsModel.load(tmp_path / "needs.json")
    dist = [("s", 0.5), ("t", 0.5)]
    assert model.predict_proba(dist) == loaded.predict_proba(dist)
