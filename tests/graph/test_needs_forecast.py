"""
Tests of what the needs forecast learns beyond the state forecast: words that name a
need relative to the current task, and the mixer's saved form.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest

from graph import READ_TURNS, FollowUpPredictor, ModelFileError, NeedsForecaster
from graph import _bounded as bounded
from graph import _transition_needs as transition_needs
from graph._needs_features import _absolute, _relative


def test_relative_need_round_trip() -> None:
    """
    Segments naming a part of the state become ``@i`` and come back for another state.
    """
    parts = ["Hotels_1", "SearchHotel"]
    assert "db:@0:@1" == _relative("db:Hotels_1:SearchHotel", parts)
    assert "slot:@0:street_address" == _relative("slot:Hotels_1:street_address", parts)
    assert "task:other" == _relative("task:other", parts)
    assert "db:Cars_2:Rent" == _absolute("db:@0:@1", ("Cars_2", "Rent"))
    assert _absolute("db:@0:@1", ("only",)) is None


def _sessions(n: int, seed: int = 0) -> list[dict[str, object]]:
    """
    Tasks ``t0``..``t5``: after a reply asking to confirm, the next turn books (needs
    ``db:<task>:book``); after any other reply it asks for a slot. Task ``t5`` never
    asks to confirm in these sessions.
    """
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for _ in range(n):
        task = f"t{rng.randrange(6)}"
        confirm = rng.random() < 0.5
        reply = "please confirm the booking" if confirm else "which day would suit you"
        if task == "t5":
            reply = "one moment"
        nxt = [f"service:{task}", f"db:{task}:book" if confirm else f"slot:{task}:day"]
        out.append(
            {
                "turns": [
                    {"state": f"{task}:book", "text": "book it", "system": reply,
                     "needs": [f"service:{task}"]},
                    {"state": f"{task}:book", "text": "ok", "system": "done", "needs": nxt},
                ]
            }
        )  # fmt: skip
    return out


def test_reply_words_carry_over_to_a_task_never_seen_with_them() -> None:
    """
    "confirm" was only ever seen before ``t0``..``t4`` bookings; in ``t5`` it still
    ranks ``t5``'s booking over its slot (the word names the current task's booking),
    and "which day" the other way round.
    """
    model = NeedsForecaster(predictor=FollowUpPredictor(order=1, text=False)).fit(_sessions(800))
    turn = {"state": "t5:book", "text": "book it", "system": "please confirm the booking",
            "needs": ["service:t5"]}  # fmt: skip
    confirm = dict(model.predict_proba([turn], k=None))
    assert confirm["db:t5:book"] > confirm["slot:t5:day"]
    day = dict(model.predict_proba([dict(turn, system="which day would suit you")], k=None))
    assert day["slot:t5:day"] > day["db:t5:book"]


def test_words_the_model_never_counted_leave_nothing_behind() -> None:
    """
    Forecasting turns full of words the model never counted (names, codes, typos)
    gives the same forecast and keeps nothing for them, so that a model that no longer
    learns (a server's shared one) stays the size it was however many turns it reads.
    """
    model = NeedsForecaster(predictor=FollowUpPredictor(order=1, text=False)).fit(_sessions(300))
    turn = {"state": "t1:book", "text": "book it", "system": "please confirm the booking",
            "needs": ["service:t1"]}  # fmt: skip
    expected = model.predict_proba([turn], k=None)
    with_words = dict(turn, text="book it guest0 code0x", system="please confirm the booking 0q")
    assert expected == model.predict_proba([with_words], k=None)
    remembered = len(model._assoc_top)
    for i in range(1, 200):
        texts = {"text": f"book it guest{i} code{i}x", "system": f"please confirm the booking {i}q"}
        assert expected == model.predict_proba([dict(turn, **texts)], k=None)
    assert remembered == len(model._assoc_top)


def test_the_answers_a_model_caches_stay_within_their_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    Asked about ever new states and needs (as a server's model that no longer learns
    is, for as long as it serves), the model's caches of answers hold at most their
    bounds (made small here), and its forecasts stay what they were.
    """
    model = NeedsForecaster(predictor=FollowUpPredictor(order=2, text=False)).fit(_sessions(300))

    def turns(i: int) -> list[dict[str, object]]:
        return [
            {"state": f"t{i % 5}:book", "text": "book it", "system": "please confirm",
             "needs": [f"service:t{i % 5}", f"need:{i}"]},
            {"state": f"new{i}:book", "text": "ok", "system": "done", "needs": [f"need:{i}"]},
        ]  # fmt: skip

    expected = [model.predict_proba(turns(i), k=None) for i in range(120)]
    monkeypatch.setattr(bounded, "MAX_CACHED", 16)
    monkeypatch.setattr(transition_needs, "_PER_STATE", 4)
    model = NeedsForecaster.from_json(json.loads(json.dumps(model.to_json())))
    assert expected == [model.predict_proba(turns(i), k=None) for i in range(120)]
    counts = model.predictor_.counts_
    assert 0 < len(counts._results) <= 16 and 0 < len(counts._levels) <= 16
    after = model.after_
    assert 0 < len(after._cache) <= 16 and all(len(c) <= 4 for c in after._cache.values())
    assert 0 < len(after._from) <= 16 and all(len(c) <= 4 for c in after._from.values())
    assert 0 < len(model.needs_._cache) <= 16


def test_mixer_of_the_wrong_width_names_the_file(tmp_path: Path) -> None:
    """
    A saved forecaster whose mixer does not fit this code's features is refused.
    """
    model = NeedsForecaster(predictor=FollowUpPredictor(order=1, text=False)).fit(_sessions(300))
    data = model.to_json()
    assert data["mixer"] is not None
    data["mixer"][0] = data["mixer"][0][:-1]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ModelFileError, match=r"old\.json.*coefficients"):
        NeedsForecaster.from_json(json.loads(path.read_text()), source=path)


_FIT_AND_FORECAST = """
import json, random, sys
from graph import FollowUpPredictor, NeedsForecaster
rng = random.Random(0)
sessions = []
for _ in range(400):
    task, other = rng.sample(["hotel", "taxi", "bank", "doctor"], 2)
    word = rng.choice(["confirm", "which day", "anything else"])
    nxt = [f"task:{task}", f"task:{other}" if word == "anything else" else f"db:{task}"]
    sessions.append({"turns": [
        {"state": f"{task}:ask", "text": "hi", "system": word, "needs": [f"task:{task}"]},
        {"state": f"{task}:ask", "text": "ok", "system": "done", "needs": nxt},
    ]})
model = NeedsForecaster(predictor=FollowUpPredictor(order=1, text=False)).fit(sessions)
turn = {"state": "taxi:ask", "text": "hi", "system": "anything else confirm", "needs": ["task:taxi"]}
json.dump([list(model.mixer_[0]), model.predict_proba([turn], k=None)], sys.stdout)
"""


def test_fit_does_not_depend_on_the_hash_seed() -> None:
    """
    Two processes with different string hashing fit the same mixer and forecast the
    same needs (the candidates' order and the associations' ties are fixed).
    """
    import os
    import subprocess
    import sys

    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _FIT_AND_FORECAST],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1]


def test_a_long_session_is_read_from_its_latest_turns_alone() -> None:
    """
    The state and needs forecasts read a session's latest ``READ_TURNS`` turns, so a
    turn of a long session costs no more than one of a session that length: the
    forecast of a long history is the one of its latest turns, though a need used only
    early in the session would count (``persist_earlier``) if they read it all; and
    learning from a long history's new turn learns what the latest turns teach.
    """
    model = NeedsForecaster(predictor=FollowUpPredictor(order=1, text=False)).fit(_sessions(300))
    early = {"state": "t1:book", "text": "book it", "system": "ok", "needs": ["db:t1:book"]}
    turn = {"state": "t2:book", "text": "ok", "system": "which day would suit you",
            "needs": ["service:t2"]}  # fmt: skip
    long = [early, *[turn] * (READ_TURNS + 5)]
    window = long[-READ_TURNS:]
    assert model.predict_proba(long, k=None) == model.predict_proba(window, k=None)
    assert "db:t1:book" in dict(model.predict_proba([early, *window[1:]], k=None))
    assert model.predictor_.predict_proba(long) == model.predictor_.predict_proba(window)
    learned = [
        json.dumps(m.observe(history).to_json(), sort_keys=True)
        for m, history in ((copy.deepcopy(model), long), (copy.deepcopy(model), window))
    ]
    assert learned[0] == learned[1]


def _counts(model: NeedsForecaster) -> list[object]:
    """
    Every count of how often a word, a need or a transition was seen.
    """
    return [
        *model.need_turns_.values(),
        *model.token_turns_.values(),
        *(n for row in model.assoc_.values() for n in row.values()),
        *model.after_.turns.values(),
        *(n for row in model.after_.rows.values() for n in row.values()),
    ]


def test_counts_are_ints_fitted_and_loaded() -> None:
    """
    The counts of words, needs and transitions are ints, fitted and loaded, which
    CPython shares up to 256 (a float is an object of 24 bytes each): every tenant of a
    server learns in a copy of the model. Counting in floats, or reading a file's
    counts into floats, fails this.
    """
    model = NeedsForecaster(predictor=FollowUpPredictor(order=1, text=False)).fit(_sessions(60))
    loaded = NeedsForecaster.from_json(json.loads(json.dumps(model.to_json())))
    for counts in (_counts(model), _counts(loaded)):
        assert counts
        assert all(type(n) is int for n in counts)
