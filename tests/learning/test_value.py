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


def test_usefulness_is_learned_per_state_and_saved(tmp_path: Path) -> None:
    """
    The same item used in one state and not in another: its usefulness in context
    tells the two apart (the state-blind features cannot), and survives a save; an
    older version of the file is refused naming the version.
    """
    predictor = ValuePredictor(min_feedback=10)
    here = Candidate(key="db:trains", relevance=0.5, context="book_train")
    there = Candidate(key="db:trains", relevance=0.5, context="chat")
    for _ in range(30):
        rows = [predictor.row(here, None), predictor.row(there, None)]
        predictor.learn(rows, ["db:trains"] * 2, [True, False], None, ["book_train", "chat"])
    p_here, p_there = (
        predictor.predict([predictor.row(here, None), predictor.row(there, None)]) or []
    )
    assert p_here > 0.5 > p_there
    path = tmp_path / "values.json"
    predictor.save(path)
    loaded = ValuePredictor.load(path)
    assert loaded.predict([loaded.row(here, None)]) == pytest.approx([p_here])
    path.write_text(path.read_text().replace('"version": 2', '"version": 1'), encoding="utf-8")
    with pytest.raises(InputError, match="version 1; this preload reads 2"):
        ValuePredictor.load(path)


def test_a_recent_use_in_the_session_raises_the_value() -> None:
    """
    Items an answer of the session used a turn ago are used again; others are not:
    the predictor learns the recency of use.
    """
    predictor = ValuePredictor(min_feedback=10)
    for i in range(40):
        again = Candidate(key=f"a{i}", relevance=0.3, used_since=1)
        new = Candidate(key=f"b{i}", relevance=0.3)
        rows = [predictor.row(again, None), predictor.row(new, None)]
        predictor.learn(rows, [f"a{i}", f"b{i}"], [True, False], None)
    p_again, p_new = (
        predictor.predict(
            [
                predictor.row(Candidate(key="x", relevance=0.3, used_since=1), None),
                predictor.row(Candidate(key="y", relevance=0.3), None),
            ]
        )
        or []
    )
    assert p_again > 0.5 > p_new
