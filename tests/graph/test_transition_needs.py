"""
Tests of NeedsAfter (needs of the next turn given the transition) and of how the needs
forecast uses it.
"""

from __future__ import annotations

import json

import pytest

from graph import FollowUpPredictor, NeedsAfter, NeedsForecaster


def _model() -> NeedsAfter:
    """
    ``b`` after ``a`` (which used ``x``) asks for ``slot`` twice; ``b`` after ``b``
    calls ``db`` once.
    """
    model = NeedsAfter(prior=2.0)
    key = NeedsAfter.needs_key(["x"])
    model.observe("a", key, "b", ["svc", "slot"])
    model.observe("a", key, "b", ["svc", "slot", "slot"])
    model.observe("b", NeedsAfter.needs_key(["svc"]), "b", ["svc", "db"])
    return model


def test_needs_key_ignores_order_and_duplicates() -> None:
    """
    The key of a set of needs does not depend on their order or repetition.
    """
    assert NeedsAfter.needs_key(["y", "x", "y"]) == NeedsAfter.needs_key(["x", "y"])


def test_given_smooths_towards_coarser_levels() -> None:
    """
    p1(slot|b) = 2/3; p2 = (2 + 2 * 2/3) / (2 + 2) = 5/6; p3 (same two turns) =
    (2 + 2 * 5/6) / 4 = 11/12. db: p1 = 1/3, p2 = p3 = 2 * 1/3 / 4 then 2 * 1/6 / 4.
    """
    got = dict(_model().given("a", NeedsAfter.needs_key(["x"]), "b"))
    assert pytest.approx(11 / 12) == got["slot"]
    assert pytest.approx(1 / 12) == got["db"]
    assert pytest.approx(1.0) == got["svc"]


def test_given_without_state_or_unseen() -> None:
    """
    Without a current state only P(need | next state) is left; an unseen next state
    gives nothing.
    """
    model = _model()
    assert pytest.approx(2 / 3) == dict(model.given(None, "", "b"))["slot"]
    assert () == model.given("a", "", "never-seen")


def test_observe_invalidates_the_cache() -> None:
    """
    A new transition into ``b`` changes what ``given`` returns for ``b``.
    """
    model = _model()
    before = dict(model.given(None, "", "b"))["db"]
    model.observe("a", "", "b", ["db"])
    assert pytest.approx(1 / 3) == before
    assert pytest.approx(2 / 4) == dict(model.given(None, "", "b"))["db"]


def test_merge_and_json_round_trip() -> None:
    """
    Merging two halves equals learning everything; JSON keeps the counts.
    """
    whole = _model()
    half = NeedsAfter(prior=2.0)
    half.observe("a", NeedsAfter.needs_key(["x"]), "b", ["svc", "slot"])
    other = NeedsAfter(prior=2.0)
    key = NeedsAfter.needs_key(["x"])
    other.observe("a", key, "b", ["svc", "slot"])
    other.observe("b", NeedsAfter.needs_key(["svc"]), "b", ["svc", "db"])
    merged = half.merge(other)
    assert whole.to_json() == merged.to_json()
    loaded = NeedsAfter.from_json(json.loads(json.dumps(whole.to_json())))
    assert whole.given("a", key, "b") == loaded.given("a", key, "b")


def test_from_json_rejects_mismatched_keys() -> None:
    """
    Rows and turn counts that name different keys are corrupt.
    """
    data = {"prior": 2.0, "turns": {"b": 1.0}, "rows": {}}
    with pytest.raises(ValueError, match="different keys"):
        NeedsAfter.from_json(data)


def _sessions() -> list[list[dict[str, object]]]:
    """
    Entering ``book`` from ``search`` asks for ``slot:time``; staying in ``book`` after
    that calls ``db:book``. P(need | book) alone cannot tell the two apart.
    """
    out = []
    for i in range(120):
        turns: list[dict[str, object]] = [
            {"state": "search", "needs": ["svc", "db:search"]},
            {"state": "book", "needs": ["svc", "slot:time"]},
            {"state": "book", "needs": ["svc", "db:book"]},
        ]
        if i % 2:
            turns.append({"state": "bye", "needs": []})
        out.append(turns)
    return out


def test_needs_forecaster_uses_the_transition() -> None:
    """
    After ``search`` the forecast ranks ``slot:time`` over ``db:book``, after ``book``
    the other way round, although the next state is ``book`` both times.
    """
    sessions = _sessions()
    model = NeedsForecaster(predictor=FollowUpPredictor(order=1, text=False)).fit(sessions)
    after_search = dict(model.predict_proba(sessions[0][:1], k=None))
    after_book = dict(model.predict_proba(sessions[0][:2], k=None))
    assert after_search["slot:time"] > after_search.get("db:book", 0.0)
    assert after_book["db:book"] > after_book.get("slot:time", 0.0)


def test_needs_forecaster_json_round_trip() -> None:
    """
    A forecaster rebuilt from its JSON predicts the same needs.
    """
    sessions = _sessions()
    model = NeedsForecaster(predictor=FollowUpPredictor(order=2, text=False)).fit(sessions)
    loaded = NeedsForecaster.from_json(json.loads(json.dumps(model.to_json())))
    for i in (1, 2, 3):
        expected = dict(model.predict_proba(sessions[1][:i], k=None))
        actual = dict(loaded.predict_proba(sessions[1][:i], k=None))
        assert pytest.approx(expected, rel=1e-6) == actual


def test_direct_needs_without_a_forecast() -> None:
    """
    From ``a`` having used ``x``, the next turn used ``slot`` in both turns seen:
    p1(slot | from a) = 2/2, and the finer level (same turns) keeps 1; from ``b``
    (after ``svc``) ``db`` follows once in one turn: (1 + 2 * 1) / (1 + 2) = 1.
    """
    model = _model()
    got = dict(model.direct("a", NeedsAfter.needs_key(["x"])))
    assert pytest.approx({"svc": 1.0, "slot": 1.0}) == got
    assert pytest.approx(1.0) == dict(model.direct("b", NeedsAfter.needs_key(["svc"])))["db"]
    assert () == model.direct("never-seen", "")
    model.observe("a", "", "c", ["other"])
    assert pytest.approx(2 / 3) == dict(model.direct("a", "zzz"))["slot"]


def test_after_stay_knows_what_the_stay_asked_already() -> None:
    """
    A form asks for two slots, one a turn, in either order, with a turn of small talk
    (which uses only ``svc``) before each: the turn's own needs are the same before
    each question, only what the stay in ``form`` used so far tells them apart.

    A stay that asked for ``slot:x`` was followed 60 times, 30 of them by ``slot:y``
    and never by ``slot:x``; from ``form`` either slot follows 60 of 240 turns. So
    P(slot:y) = (30 + 2 * 1/4) / (60 + 2) and P(slot:x) = (0 + 2 * 1/4) / 62, while
    ``direct``, which sees only this turn's ``svc``, gives both slots the same.
    """
    model = NeedsAfter(prior=2.0)
    for i in range(60):
        first, second = ("slot:x", "slot:y") if i % 2 else ("slot:y", "slot:x")
        needs = [["svc"], ["svc", first], ["svc"], ["svc", second], ["db"]]
        for j in range(1, len(needs)):
            stay = {need for turn in needs[:j] for need in turn}  # all in "form"
            model.observe(
                "form",
                NeedsAfter.needs_key(needs[j - 1]),
                "form" if j < len(needs) - 1 else "done",
                needs[j],
                stay_key=NeedsAfter.needs_key(stay),
            )
    after_x = dict(model.after_stay("form", NeedsAfter.needs_key(["svc", "slot:x"])))
    assert pytest.approx(30.5 / 62) == after_x["slot:y"]
    assert pytest.approx(0.5 / 62) == after_x["slot:x"]
    turn_only = dict(model.direct("form", NeedsAfter.needs_key(["svc"])))
    assert pytest.approx(turn_only["slot:x"]) == turn_only["slot:y"]
    assert () == model.after_stay("never-seen", "")
    merged = NeedsAfter(prior=2.0).merge(model)
    assert dict(merged.after_stay("form", NeedsAfter.needs_key(["svc", "slot:x"]))) == after_x
