"""
Tests of FollowUpPredictor: hand-computed probabilities, backoff, online learning,
scikit-learn conventions and persistence.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from graph import FollowUpPredictor, ModelFileError

# Transitions with the start marker <s>:
#   <s>->a, a->b | <s>->a, a->c | <s>->b, b->c
LOG = [["a", "b"], ["a", "c"], ["b", "c"]]
MORE = [["c", "a", "b"], ["b", "a", "c", "a"]]


def _probs(dist: list[tuple[str, float]]) -> dict[str, float]:
    """
    Turn a forecast into a dict.
    """
    return dict(dist)


def test_absolute_discounting_by_hand() -> None:
    """
    Order 1, absolute discount D = 0.5, on LOG.

    Unigram: a, b, c each 2 of 6 -> 1/3.
    Context (a,): b 1, c 1 (total 2) -> alpha = (1 - 0.5) / 2 = 0.25 each, gamma = 0.5.
    P(b|a) = P(c|a) = 0.25 + 0.5 / 3 = 5/12; P(a|a) = 0.5 / 3 = 1/6.
    Start context (<s>,): a 2, b 1 (total 3) -> alpha a = 1.5/3, b = 0.5/3, gamma = 1/3.
    P(a|<s>) = 0.5 + 1/9 = 11/18, P(b|<s>) = 1/6 + 1/9 = 5/18, P(c|<s>) = 1/9.
    """
    model = FollowUpPredictor(order=1, method="ad", discount=0.5).fit(LOG)
    after_a = model.predict_proba(["a"], k=None)
    assert pytest.approx({"b": 5 / 12, "c": 5 / 12, "a": 1 / 6}) == _probs(after_a)
    assert ["b", "c", "a"] == [s for s, _ in after_a]  # ties broken by name
    start = model.predict_proba([], k=None)
    assert pytest.approx({"a": 11 / 18, "b": 5 / 18, "c": 1 / 18 * 2}) == _probs(start)
    assert ["a", "b"] == [s for s, _ in model.predict_proba([], k=2)]


def test_kneser_ney_by_hand() -> None:
    """
    Order 1, Kneser-Ney, D = 0.5, on LOG: the unigram uses continuation counts.

    Distinct left contexts: a <- {<s>} = 1, b <- {<s>, a} = 2, c <- {a, b} = 2; total 5.
    P(b|a) = 0.25 + 0.5 * 2/5 = 0.45 = P(c|a); P(a|a) = 0.5 * 1/5 = 0.1.
    """
    model = FollowUpPredictor(order=1, method="kn", discount=0.5).fit(LOG)
    assert pytest.approx({"b": 0.45, "c": 0.45, "a": 0.1}) == _probs(
        model.predict_proba(["a"], k=None)
    )


def test_ppm_by_hand() -> None:
    """
    Order 1, PPM-C blending on LOG.

    Context (a,): b 1, c 1, two distinct -> each 1/(2+2), escape 2/4.
    P(b|a) = 1/4 + 1/2 * 1/3 = 5/12; P(a|a) = 1/2 * 1/3 = 1/6.
    """
    model = FollowUpPredictor(order=1, method="ppm").fit(LOG)
    assert pytest.approx({"b": 5 / 12, "c": 5 / 12, "a": 1 / 6}) == _probs(
        model.predict_proba(["a"], k=None)
    )


def test_backoff_for_unseen_context() -> None:
    """
    With the order-2 context (x, a) never seen, order 2 backs off to (a,) exactly like
    order 1; an unseen last state backs off to the unigram without crashing.
    """
    order2 = FollowUpPredictor(order=2, method="ad", discount=0.5).fit(LOG)
    order1 = FollowUpPredictor(order=1, method="ad", discount=0.5).fit(LOG)
    assert pytest.approx(_probs(order1.predict_proba(["x", "a"], k=None))) == _probs(
        order2.predict_proba(["x", "a"], k=None)
    )
    assert pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}) == _probs(
        order2.predict_proba(["never-seen"], k=None)
    )


def test_probabilities_sum_to_one() -> None:
    """
    Every full forecast is a distribution, for every method and order.
    """
    for method in ("kn", "ad", "ppm"):
        for order in (1, 2, 3, 5):
            model = FollowUpPredictor(order=order, method=method, discount=0.75).fit(LOG + MORE)
            for history in ([], ["a"], ["b", "a", "c"], ["q"], ["c", "a", "b", "a"]):
                total = sum(p for _, p in model.predict_proba(history, k=None))
                assert pytest.approx(1.0) == total


@pytest.mark.parametrize("method", ["kn", "ad", "ppm"])
def test_fit_equals_partial_fits(method: str) -> None:
    """
    fit(A + B) predicts exactly like partial_fit(A).partial_fit(B).
    """
    whole = FollowUpPredictor(order=3, method=method, discount=0.75).fit(LOG + MORE)
    parts = (
        FollowUpPredictor(order=3, method=method, discount=0.75).partial_fit(LOG).partial_fit(MORE)
    )
    for history in ([], ["a"], ["c", "a"], ["b", "a", "c"], ["z", "a"]):
        assert whole.predict_proba(history, k=None) == parts.predict_proba(history, k=None)


def test_observe_equals_partial_fit() -> None:
    """
    Observing every prefix of each session learns what partial_fit learns.
    """
    batch = FollowUpPredictor(order=2, method="kn", discount=0.75).fit(LOG + MORE)
    online = FollowUpPredictor(order=2, method="kn", discount=0.75)
    for seq in LOG + MORE:
        for i in range(1, len(seq) + 1):
            online.observe(seq[:i])
    assert batch.graph_ == online.graph_
    for history in ([], ["a"], ["c", "a"], ["b", "a", "c"]):
        assert batch.predict_proba(history) == online.predict_proba(history)


def test_turn_mappings_and_sessions() -> None:
    """
    Turn mappings and session mappings give the same model as plain states.
    """
    sessions = [{"user": "u1", "turns": [{"state": s, "text": "hi"} for s in seq]} for seq in LOG]
    plain = FollowUpPredictor(order=2, method="kn", discount=0.75, text=False).fit(LOG)
    rich = FollowUpPredictor(order=2, method="kn", discount=0.75, text=False).fit(sessions)
    assert plain.graph_ == rich.graph_
    assert plain.predict_proba(["a"]) == rich.predict_proba([{"state": "a", "text": "x"}])


def test_clone_and_set_params() -> None:
    """
    clone keeps the parameters and drops the learned state; set_params takes effect.
    """
    model = FollowUpPredictor(order=3, method="kn", discount=0.6).fit(LOG)
    copy = clone(model)
    assert model.get_params() == copy.get_params()
    with pytest.raises(NotFittedError):
        copy.predict_proba(["a"])
    model.set_params(order=1, method="ad", discount=0.5).fit(LOG)
    assert pytest.approx({"b": 5 / 12, "c": 5 / 12, "a": 1 / 6}) == _probs(
        model.predict_proba(["a"], k=None)
    )


def test_invalid_params_rejected_in_fit() -> None:
    """
    Parameters are validated by fit, not by __init__.
    """
    model = FollowUpPredictor(method="nope")
    with pytest.raises(ValueError, match="method"):
        model.fit(LOG)


def test_predict_and_score() -> None:
    """
    predict gives top-1 per history; score is the top-k hit rate after the first turn.
    """
    model = FollowUpPredictor(order=1, method="ad", discount=0.5).fit(LOG)
    assert ["b", "a"] == model.predict([["a"], []])
    # Turns scored: a->b (top-1 after a is b: hit), a->c (miss), b->c: after b only c seen.
    assert pytest.approx(2 / 3) == model.score(LOG, k=1)
    assert 1.0 == model.score(LOG, k=3)


def test_save_load_round_trip(tmp_path: Path) -> None:
    """
    A saved predictor predicts the same after loading.
    """
    model = FollowUpPredictor(order=3, method="kn", discount=0.75).fit(
        [{"user": "u", "turns": [{"state": s} for s in seq]} for seq in LOG + MORE]
    )
    model.save(tmp_path / "model.json")
    loaded = FollowUpPredictor.load(tmp_path / "model.json")
    assert model.get_params() == loaded.get_params()
    for history in ([], ["a"], ["c", "a"], ["b", "a", "c"]):
        assert model.predict_proba(history, k=None) == loaded.predict_proba(history, k=None)
        assert model.predict_proba(history, user="u") == loaded.predict_proba(history, user="u")


def test_load_unknown_version_and_corrupt(tmp_path: Path) -> None:
    """
    Loading a future version or a truncated file names the file and the problem.
    """
    model = FollowUpPredictor(order=2, method="ppm").fit(LOG)
    data = model.to_json()
    data["version"] = 7
    future = tmp_path / "future.json"
    future.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ModelFileError, match=r"future\.json.*unknown version 7"):
        FollowUpPredictor.load(future)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(model.to_json())[:-20], encoding="utf-8")
    with pytest.raises(ModelFileError, match=r"broken\.json.*not valid JSON"):
        FollowUpPredictor.load(broken)
    del data["global"]
    data["version"] = 1
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ModelFileError, match=r"missing\.json.*corrupt"):
        FollowUpPredictor.load(missing)


def test_per_user_blending() -> None:
    """
    A user's own habit (a -> c) outweighs the global habit (a -> b) for that user only.
    """
    others = [{"user": "o", "turns": [{"state": "a"}, {"state": "b"}]}] * 10
    mine = [{"user": "me", "turns": [{"state": "a"}, {"state": "c"}]}] * 5
    model = FollowUpPredictor(order=1, method="ppm", user_weight=1.0).fit(others + mine)
    assert "b" == model.predict_proba(["a"], k=1)[0][0]
    assert "c" == model.predict_proba(["a"], k=1, user="me")[0][0]
    assert "b" == model.predict_proba(["a"], k=1, user="stranger")[0][0]


def test_merge_equals_fit_on_union() -> None:
    """
    Two shards merged predict like one model fit on both.
    """
    left = FollowUpPredictor(order=2, method="kn", discount=0.75).fit(LOG)
    right = FollowUpPredictor(order=2, method="kn", discount=0.75).fit(MORE)
    whole = FollowUpPredictor(order=2, method="kn", discount=0.75).fit(LOG + MORE)
    left.merge(right)
    assert whole.graph_ == left.graph_
    for history in ([], ["a"], ["c", "a"]):
        assert pytest.approx(_probs(whole.predict_proba(history, k=None))) == _probs(
            left.predict_proba(history, k=None)
        )


def test_pruning_caps_edges() -> None:
    """
    With max_edges the graph stays near the cap (within the 25 % amortizing slack).
    """
    seqs = [[f"s{(i * 7 + j * j) % 13}" for j in range(8)] for i in range(200)]
    model = FollowUpPredictor(order=4, max_edges=150).fit(seqs)
    assert model.graph_.n_edges <= 150 * 1.25
    assert 1.0 == pytest.approx(sum(p for _, p in model.predict_proba(["s1", "s2"], k=None)))


def test_decay_follows_drift() -> None:
    """
    With a short half-life the recent habit wins; without decay the older majority wins.
    """
    old = [["a", "b"]] * 30
    new = [["a", "c"]] * 10
    assert "b" == FollowUpPredictor(order=1).fit(old + new).predict_proba(["a"], k=1)[0][0]
    decayed = FollowUpPredictor(order=1, half_life=5).fit(old + new)
    assert "c" == decayed.predict_proba(["a"], k=1)[0][0]


def test_an_empty_state_name_in_a_history_is_no_crash() -> None:
    """
    A history holding an empty state name (a request whose label was "") is predicted
    from, as an unseen state, never an IndexError (found by the CLI fuzz test).
    """
    sessions = [["a", "b", "c"], ["a", "b", "d"]] * 15
    model = FollowUpPredictor(order=2, method="kn", text=False).fit(
        [{"turns": [{"state": s} for s in seq]} for seq in sessions]
    )
    assert model.predict_proba(["a", ""], k=2)
