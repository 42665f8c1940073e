"""
The content-value predictor: P(used) of window candidates, learned online.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from preload import InputError
from preload.learning import Candidate, ValuePredictor


def _teach(predictor: ValuePredictor, rounds: int) -> None:
    """
    Windows of two items: the relevant one is always used, the other never.
    """
    for _ in range(rounds):
        good = Candidate(key="db:hotels", source="kb", kind="db", relevance=0.8, forecast=0.6)
        bad = Candidate(key="db:music", source="kb", kind="db", relevance=0.1, forecast=0.1)
        rows = [predictor.row(good, "u1"), predictor.row(bad, "u1")]
        predictor.learn(rows, ["db:hotels", "db:music"], [True, False], "u1")


def test_it_answers_only_after_enough_feedback_of_both_kinds() -> None:
    """
    Below ``min_feedback`` judged items, or with one outcome only, it answers None
    (the fixed values serve); after, the used kind of item is worth more.
    """
    predictor = ValuePredictor(min_feedback=40)
    one = Candidate(key="k", relevance=0.5)
    assert predictor.predict([predictor.row(one, None)]) is None
    only_used = ValuePredictor(min_feedback=2)
    only_used.learn([only_used.row(one, None)] * 4, ["k"] * 4, [True] * 4, None)
    assert not only_used.ready
    _teach(predictor, 10)
    assert predictor.predict([predictor.row(one, None)]) is None  # 20 < 40
    _teach(predictor, 20)
    good = predictor.row(Candidate(key="db:hotels", relevance=0.8, forecast=0.6), "u1")
    bad = predictor.row(Candidate(key="db:music", relevance=0.1, forecast=0.1), "u1")
    p_good, p_bad = predictor.predict([good, bad]) or [0.0, 0.0]
    assert p_good > 0.5 > p_bad


def test_it_is_saved_and_loaded_as_json_and_learns_on(tmp_path: Path) -> None:
    """
    A saved predictor answers the same after loading, and goes on learning; a file of
    another format is refused naming it.
    """
    predictor = ValuePredictor(min_feedback=10)
    _teach(predictor, 20)
    path = tmp_path / "values.json"
    predictor.save(path)
    loaded = ValuePredictor.load(path)
    rows = [predictor.row(Candidate(key="db:hotels", relevance=0.8), "u1")]
    assert predictor.predict(rows) == pytest.approx(loaded.predict(rows) or [])
    _teach(loaded, 5)
    assert 50 == loaded.seen
    (tmp_path / "other.json").write_text('{"format": "something else"}', encoding="utf-8")
    with pytest.raises(InputError, match="not a preload.value-predictor file"):
        ValuePredictor.load(tmp_path / "other.json")
