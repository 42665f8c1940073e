"""
Tests of the self-tuning sequence forecast: the vectorised counts, the search of order,
blending and discount, its fallbacks, and that what it learned survives save and load.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graph import FollowUpPredictor
from graph._keys import BOS
from graph._seq_counts import SeqCounts, context_keys
from graph._seq_heldout import held_turns, split_folds
from graph._seq_scoring import make_plan, score_all
from graph._seq_tuning import DISCOUNTS, METHODS
from graph._seq_windows import Windows


def _source(order: int, n_sessions: int, seed: int = 0, n_states: int = 6) -> list[list[str]]:
    """
    Sessions from a source whose next state is a fixed function of the last ``order``
    states 90 % of the time, uniform otherwise.
    """
    rng = random.Random(seed)
    names = [f"s{i}" for i in range(n_states)]
    table: dict[tuple[str, ...], str] = {}
    out = []
    for _ in range(n_sessions):
        seq = [rng.choice(names) for _ in range(order)]
        for _ in range(rng.randint(6, 14)):
            ctx = tuple(seq[-order:])
            if ctx not in table:
                table[ctx] = rng.choice(names)
            seq.append(table[ctx] if rng.random() < 0.9 else rng.choice(names))
        out.append(seq)
    return out


def _reference_edges(seqs: list[list[str]], order: int) -> dict[tuple[str, str], float]:
    """
    The transition counts the one-transition-at-a-time loop gives.
    """
    agg: dict[tuple[str, str], float] = {}
    for seq in seqs:
        padded = [BOS, *seq]
        for i in range(1, len(padded)):
            for key in context_keys(padded, i, order):
                agg[(key, padded[i])] = agg.get((key, padded[i]), 0.0) + 1.0
    return agg


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from("abc"), min_size=0, max_size=7), max_size=12),
    st.integers(min_value=0, max_value=4),
)
def test_windows_count_like_the_loop(seqs: list[list[str]], order: int) -> None:
    """
    The vectorised counts equal the per-transition loop's, at every context length,
    for any sessions (empty ones and single states included).
    """
    counts = SeqCounts(order=order, method="ad", discount=0.5, half_life=None, max_edges=None)
    counts.add_batch(seqs)
    got = {
        (key, nxt): d["count"]
        for key, succ in counts.graph._succ.items()
        for nxt, d in succ.items()
    }
    assert _reference_edges(seqs, order) == got
    assert sum(len(s) for s in seqs) == counts.n_transitions


@pytest.mark.parametrize("order", [1, 2, 3])
def test_search_finds_the_order_of_the_source(order: int) -> None:
    """
    On sessions whose next state depends on exactly the last ``order`` states, the
    search settles on that order: shorter loses the structure, longer adds nothing.
    """
    model = FollowUpPredictor(text=False).fit(_source(order, 600, seed=order))
    assert order == model.order_
    assert model.tuning_ is not None
    assert order == model.tuning_.order


def test_explicit_parameters_win() -> None:
    """
    A given order is kept and only the rest is searched; given everything, nothing is.
    """
    data = _source(2, 300)
    model = FollowUpPredictor(order=4, text=False).fit(data)
    assert 4 == model.order_
    assert model.tuning_ is not None
    assert {4} == {row[0] for row in model.tuning_.board}
    given = {"order": 1, "method": "ad", "discount": 0.3, "text": False}
    decay_only = FollowUpPredictor(**given).fit(data)
    assert (1, "ad", 0.3) == (decay_only.order_, decay_only.method_, decay_only.discount_)
    assert decay_only.tuning_ is not None
    assert ((1, "ad", 0.3),) == tuple(row[:3] for row in decay_only.tuning_.board)
    fixed = FollowUpPredictor(half_life=None, **given).fit(data)
    assert (1, "ad", 0.3, None) == (fixed.order_, fixed.method_, fixed.discount_, fixed.tuning_)
    assert "nothing was searched" in fixed.explain()


def test_search_scores_what_the_model_predicts() -> None:
    """
    The search's held-out top-3 and log-loss of a candidate are those of the model fit
    on the training part and scored on the held-out turns (four states: every state is
    a candidate, so the shortcut is exact).
    """
    seqs = _source(2, 60, n_states=4)
    win = Windows(seqs, 3)
    [(train, held)] = split_folds(win)[0][:1]
    turns = held_turns(win, train, held, 3)
    rows = {(r[0], r[1], r[2]): r[3:5] for r in score_all(turns, [1, 2, 3], METHODS, DISCOUNTS)}
    held_sessions = sorted(set(win.session[held].tolist()))
    fit_on = [s for i, s in enumerate(seqs) if i not in held_sessions]
    scored = [seqs[i] for i in held_sessions]
    for order, method, discount in [
        (1, "kn", 0.7),
        (2, "kn", 0.85),
        (3, "ad", 0.5),
        (2, "ppm", 0.5),
    ]:
        model = FollowUpPredictor(order=order, method=method, discount=discount, text=False)
        model.fit(fit_on)
        hits, loss, n = 0, 0.0, 0
        for seq in scored:
            for i in range(1, len(seq)):
                dist = dict(model.predict_proba(seq[:i], k=None))
                top = [s for s, _ in model.predict_proba(seq[:i], k=3)]
                hits += seq[i] in top
                loss -= math.log(max(dist.get(seq[i], 0.0), 1e-9))
                n += 1
        top3, log_loss = rows[(order, method, discount)]
        assert n == turns.n
        assert pytest.approx(hits / n, abs=1e-9) == top3
        assert pytest.approx(loss / n, rel=1e-6) == log_loss


def test_too_few_sessions_fall_back_to_the_defaults() -> None:
    """
    Fewer than 20 sessions: a warning, the documented defaults, and a working model.
    """
    with pytest.warns(UserWarning, match="too few"):
        model = FollowUpPredictor(text=False).fit(_source(1, 12))
    assert (2, "kn", 0.75, None) == (model.order_, model.method_, model.discount_, model.tuning_)
    assert "defaults" in model.explain()
    assert 3 == len(model.predict_proba(["s1"], k=3))


def test_too_few_sessions_with_a_given_order_fall_back_silently() -> None:
    """
    With the order given, only the smoothing was to be chosen: too few sessions use the
    default smoothing without a warning (the test run turns warnings into errors).
    """
    model = FollowUpPredictor(order=1, text=False).fit(_source(1, 5))
    assert (1, "kn", 0.75, None) == (model.order_, model.method_, model.discount_, model.tuning_)


def test_empty_fit_is_silent() -> None:
    """
    fit([]) starts an empty model with the defaults and no warning (online learning
    starts that way); it forecasts nothing until it observes.
    """
    model = FollowUpPredictor(text=False).fit([])
    assert [] == model.predict_proba(["a"])
    model.observe(["a"]).observe(["a", "b"])
    assert "b" == model.predict_proba(["a"], k=1)[0][0]


def test_single_state_and_single_turn_sessions() -> None:
    """
    A corpus of one state, and sessions of one turn, fit and forecast without errors.
    """
    one_state = FollowUpPredictor(text=False).fit([["a"] * 5] * 40)
    assert "a" == one_state.predict_proba(["a"], k=1)[0][0]
    assert pytest.approx(1.0) == sum(p for _, p in one_state.predict_proba(["a"], k=None))
    single = FollowUpPredictor(text=False).fit([[s] for s in "abcabcabca" * 4])
    assert {"a", "b", "c"} == {s for s, _ in single.predict_proba([], k=None)}
    assert pytest.approx(1.0) == sum(p for _, p in single.predict_proba(["b"], k=None))


def test_degenerate_corpora_large_enough_to_judge_decay() -> None:
    """
    One state, and one turn per session, also fit where the search judges decay (a
    single held-out part with enough last turns): no decay, full forecasts.
    """

    one_state = [["a"] * 10] * 3000
    assert 1 == len(split_folds(Windows(one_state, 1))[0])
    model = FollowUpPredictor(text=False).fit(one_state)
    assert (None, "a") == (model.half_life_, model.predict_proba(["a"], k=1)[0][0])
    assert pytest.approx(1.0) == sum(p for _, p in model.predict_proba(["a"] * 3, k=None))
    assert model.tuning_ is not None and "does not drift" in model.tuning_.decay
    single = FollowUpPredictor(text=False).fit([[s] for s in "abcd" * 1000])
    assert single.half_life_ is None
    assert ["a", "b", "c", "d"] == sorted(s for s, _ in single.predict_proba([], k=None))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.sampled_from("xyz"), min_size=1, max_size=5), min_size=20, max_size=45))
def test_any_small_corpus_fits(seqs: list[list[str]]) -> None:
    """
    Whatever the sessions, the search returns a valid choice and full forecasts are
    distributions.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = FollowUpPredictor(text=False).fit(seqs)
    assert 0 <= model.order_ <= 5
    assert model.method_ in METHODS
    for history in ([], ["x"], ["y", "z", "x"], ["q"]):
        assert pytest.approx(1.0) == sum(p for _, p in model.predict_proba(history, k=None))


def test_mixture_survives_save_and_load(tmp_path: Path) -> None:
    """
    A model whose weights were learned ("mix") predicts the same after loading, with
    the same learned attributes and explanation.
    """
    model = FollowUpPredictor(method="mix", text=False).fit(_source(2, 200))
    assert model.mixture_ is not None
    model.save(tmp_path / "m.json")
    loaded = FollowUpPredictor.load(tmp_path / "m.json")
    assert (model.order_, model.method_, model.mixture_) == (
        loaded.order_,
        loaded.method_,
        loaded.mixture_,
    )
    assert model.explain() == loaded.explain()
    for history in ([], ["s1"], ["s2", "s3"], ["s0", "s1", "s2"]):
        assert model.predict_proba(history, k=None) == loaded.predict_proba(history, k=None)


def test_mixture_weights_follow_the_evidence() -> None:
    """
    On an order-2 source, the learned weight of a long, well-counted context is
    higher than that of the same length seen once.
    """
    model = FollowUpPredictor(order=2, method="mix", text=False).fit(_source(2, 800, n_states=4))
    assert model.mixture_ is not None
    counts = model.counts_
    many = counts._mix_weight("\x1es1\x1fs2", 200.0, 2)
    once = counts._mix_weight("\x1es1\x1fs2", 1.0, 1)
    assert many > once


def test_version_1_files_still_load(tmp_path: Path) -> None:
    """
    A file written before the search (version 1, no learned section) loads, and its
    parameters are what it learned with.
    """
    model = FollowUpPredictor(order=2, method="kn", discount=0.6, text=False).fit(_source(1, 30))
    data = model.to_json()
    data["version"] = 1
    del data["learned"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    old = FollowUpPredictor.load(path)
    assert (2, "kn", 0.6) == (old.order_, old.method_, old.discount_)
    assert model.predict_proba(["s1"], k=None) == old.predict_proba(["s1"], k=None)


def test_version_2_files_still_load(tmp_path: Path) -> None:
    """
    A file written before the search said why decay was or was not taken (version 2)
    loads and forecasts as it did; its explanation leaves the reason out.
    """
    model = FollowUpPredictor(text=False).fit(_drifting(3000))
    assert model.tuning_ is not None and "the log drifts" in model.tuning_.decay
    assert "Time decay: the log drifts" in model.explain()
    data = model.to_json()
    data["version"] = 2
    del data["learned"]["tuning"]["decay"]
    path = tmp_path / "v2.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    old = FollowUpPredictor.load(path)
    assert model.half_life_ == old.half_life_
    assert model.predict_proba(["d1"], k=None) == old.predict_proba(["d1"], k=None)
    assert "Time decay" not in old.explain()


def test_corrupt_learned_section_is_refused(tmp_path: Path) -> None:
    """
    A learned method that does not exist is refused as a corrupt file.
    """
    from graph import ModelFileError

    data = FollowUpPredictor(order=1, method="ppm", text=False).fit(_source(1, 25)).to_json()
    data["learned"]["method"] = "nope"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ModelFileError, match="corrupt"):
        FollowUpPredictor.load(path)


def test_continuation_counts_match_kneser_ney() -> None:
    """
    The continuation counts derived from the windows are those SeqCounts keeps for
    Kneser-Ney.
    """
    seqs = _source(2, 50, n_states=5)
    win = Windows(seqs, 2)
    counts = SeqCounts(order=2, method="kn", discount=0.75, half_life=None, max_edges=None)
    counts.add_batch(seqs)
    b = win.n_names
    for n in (0, 1):
        level = win.continuation(win.count(n + 1), n)
        keys = win.context_keys(n)
        got = {
            (keys[int(k // b)], win.names[int(k % b)]): c
            for k, c in zip(level.keys.tolist(), level.counts.tolist(), strict=True)
        }
        want = {
            (key, nxt): d["count"]
            for key, succ in counts.cont._succ.items()
            for nxt, d in succ.items()
            if (key.count("\x1f") + 1 if len(key) > 1 else 0) == n
        }
        assert want == got
    assert np.all(win.depth[win.ids == 0] == 0)


def _drifting(n_sessions: int, n_states: int = 20) -> list[list[str]]:
    """
    Sessions of ``n_states`` states from an order-1 source whose successor of every state moves
    on every 300 sessions (90 % the current successor, else uniform).
    """
    rng = random.Random(3)
    names = [f"d{i}" for i in range(n_states)]
    out = []
    for i in range(n_sessions):
        shift = i // 300
        seq = [rng.choice(names)]
        for _ in range(8):
            nxt = (names.index(seq[-1]) * 3 + shift) % n_states
            seq.append(names[nxt] if rng.random() < 0.9 else rng.choice(names))
        out.append(seq)
    return out


def test_decay_is_searched_by_default() -> None:
    """
    On a drifting source the defaults take a decay (and it survives save and load);
    ``half_life=None`` keeps every count.
    """
    data = _drifting(3000)
    assert FollowUpPredictor(half_life=None, text=False).fit(data).half_life_ is None
    model = FollowUpPredictor(text=False).fit(data)
    assert model.half_life_ is not None and model.half_life_ > 0
    assert model.counts_.half_life == model.half_life_
    assert "halving every" in model.explain()
    loaded = FollowUpPredictor.from_json(json.loads(json.dumps(model.to_json())))
    assert model.half_life_ == loaded.half_life_
    assert model.predict_proba(["d1"], k=None) == loaded.predict_proba(["d1"], k=None)


def _sorted_by_task(n_blocks: int, per_block: int = 150) -> list[list[str]]:
    """
    Sessions of four tasks, each with its own successor over the same 20 states (90 %
    of the time), in blocks of one task that come round in turn: a log sorted by task,
    not time (no task drifts).
    """
    rng = random.Random(4)
    names = [f"t{i}" for i in range(20)]
    out = []
    for block in range(n_blocks):
        task = block % 4
        for _ in range(per_block):
            seq = [rng.choice(names)]
            for _ in range(8):
                nxt = (names.index(seq[-1]) * 7 + 5 * task + 1) % 20
                seq.append(names[nxt] if rng.random() < 0.9 else rng.choice(names))
            out.append(seq)
    return out


def _last_fold(seqs: list[list[str]], order: int) -> tuple[Windows, np.ndarray, np.ndarray]:
    """
    The windows, training positions and last sessions' positions the decay search uses.
    """
    from graph._seq_heldout import last_sessions

    win = Windows(seqs, order)
    folds, _ = split_folds(win)
    assert 1 == len(folds)  # decay is judged on the last sessions only
    train, held = folds[0]
    last = held & (win.session >= win.n_sessions - last_sessions(win))
    return win, train, last


def test_drift_is_told_from_a_log_sorted_by_task() -> None:
    """
    Decay is tried on a log whose newest part forecasts its end better than any older
    part, not on one sorted by task, where the last sessions' task recurs in older
    parts (though there too the newest counts forecast the last sessions well), nor on
    one that does not change.
    """
    from graph._seq_tuning import _drifts

    assert _drifts(*_last_fold(_drifting(3000), 1), 1)
    tasks = _sorted_by_task(28)
    assert not _drifts(*_last_fold(tasks, 1), 1)
    assert FollowUpPredictor(half_life="auto", text=False).fit(tasks).half_life_ is None
    assert not _drifts(*_last_fold(_source(1, 3000, n_states=20), 1), 1)


@pytest.mark.parametrize("method", ["kn", "ad", "ppm"])
def test_decayed_fit_counts_like_observing_one_by_one(method: str) -> None:
    """
    A decayed fit, counted from the windows at once, forecasts as observing every turn
    in order does, also once the weights have been rescaled (past 40 half-lives) and
    after a second batch.
    """
    seqs = _source(2, 40, seed=5)
    params = {"order": 2, "method": method, "discount": 0.6, "half_life": 3, "text": False}
    fitted = FollowUpPredictor(**params).fit(seqs[:30]).partial_fit(seqs[30:])
    observed = FollowUpPredictor(**params)
    for seq in seqs:
        for i in range(1, len(seq) + 1):
            observed.observe(seq[:i])
    assert observed.counts_.n_transitions == fitted.counts_.n_transitions
    for history in ([], ["s1"], ["s2", "s3"], ["s0", "s5", "s4"]):
        want = dict(observed.predict_proba(history, k=None))
        got = dict(fitted.predict_proba(history, k=None))
        assert want.keys() == got.keys()
        assert [pytest.approx(want[s], rel=1e-9) for s in sorted(want)] == [
            got[s] for s in sorted(want)
        ]


def _race_rows(
    seqs: list[list[str]], top: int, race_turns: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[tuple[int, str, float], tuple[float, float, tuple[float, ...] | None]], str]:
    """
    Every candidate scored on all the held-out turns by :func:`_race` with first
    rounds of ``race_turns`` turns, by ``(order, method, discount)``, and the race's
    summary.
    """
    from graph import _seq_tuning

    monkeypatch.setattr(_seq_tuning, "RACE_TURNS", race_turns)
    win = Windows(seqs, top)
    folds, _ = split_folds(win)
    race = _seq_tuning._race(win, folds, make_plan(range(1, top + 1), METHODS, DISCOUNTS), top)
    assert race is not None
    rows = {(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in race.rows}
    return rows, race.summary


def test_race_scores_its_leaders_as_a_full_search_would(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    The candidates that reach the race's second round get the top-3 and log-loss that
    scoring every candidate on every held-out turn gives them (four states: every
    state is a candidate; the mixture's weights are fit on the same halves), and the
    race scores only a few of them on all the turns.
    """
    seqs = _source(2, 700, seed=3, n_states=4)
    full, no_race = _race_rows(seqs, 3, 10**9, monkeypatch)
    raced, summary = _race_rows(seqs, 3, 300, monkeypatch)
    assert "" == no_race
    assert summary.startswith("every candidate on ")
    assert len(raced) < len(full)
    for key, (top3, loss, mixture) in raced.items():
        want_top3, want_loss, want_mixture = full[key]
        assert pytest.approx(want_top3, abs=1e-12) == top3
        assert pytest.approx(want_loss, rel=1e-9) == loss
        assert want_mixture == mixture


def test_race_keeps_the_clearly_best_candidate(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    On a set large enough to race, where order 3 is clearly best, the race finds the
    order that scoring every candidate on every turn finds, and says how it raced.
    """
    from graph import _seq_tuning

    seqs = _source(3, 2500, seed=11, n_states=8)
    raced = FollowUpPredictor(text=False, half_life=None).fit(seqs)
    assert raced.tuning_ is not None
    assert raced.tuning_.race.startswith("every candidate on ")
    assert "Raced: every candidate on " in raced.explain()
    monkeypatch.setattr(_seq_tuning, "RACE_TURNS", 10**9)
    full = FollowUpPredictor(text=False, half_life=None).fit(seqs)
    assert full.tuning_ is not None
    assert "" == full.tuning_.race
    assert 3 == raced.order_ == full.order_
    # The blendings tie at order 3; the one the race took scores as well on all turns.
    assert raced.tuning_.top3 is not None and full.tuning_.top3 is not None
    assert raced.tuning_.top3 >= full.tuning_.top3 - 0.01
    loaded = FollowUpPredictor.from_json(json.loads(json.dumps(raced.to_json())))
    assert raced.explain() == loaded.explain()


def test_explicit_parameters_win_in_a_race() -> None:
    """
    Given parameters are kept when the search races what is left to choose.
    """
    seqs = _source(3, 2500, seed=11, n_states=8)
    model = FollowUpPredictor(order=1, method="ad", text=False, half_life=None).fit(seqs)
    assert model.tuning_ is not None
    assert model.tuning_.race != ""
    assert (1, "ad") == (model.order_, model.method_)
    assert {(1, "ad")} == {row[:2] for row in model.tuning_.board}


def test_decayed_counts_are_the_weighted_counts() -> None:
    """
    The counts of every half-life, found in one pass from the plain ones, are what
    counting with that half-life's weights gives; scoring them on the plain turns'
    candidates gives the hits of gathering the decayed turns afresh (four states:
    every state is a candidate).
    """
    from graph._seq_heldout import count_fold, gather, reweigh
    from graph._seq_scoring import score_one
    from graph._seq_tuning import _decayed

    win, train, last = _last_fold(_drifting(3000, n_states=4), 2)
    plain = count_fold(win, train, 2)
    half_lives = [50.0, 400.0]
    decayed = _decayed(win, plain, train, 2, half_lives)
    turns = gather(win, plain, last, 2)
    for half_life, counted in zip(half_lives, decayed, strict=True):
        weights = win.decay_weights(train, half_life)
        for n in range(3):
            want = win.count(n, train, weights)
            assert want.keys.tolist() == counted.raw[n].keys.tolist()
            assert np.allclose(want.counts, counted.raw[n].counts, rtol=1e-12)
        fresh = held_turns(win, train, last, 2, weights)
        for method in ("kn", "ad", "ppm"):
            got = score_one(reweigh(win, turns, counted), 2, method, 0.7, None)
            assert got.tolist() == score_one(fresh, 2, method, 0.7, None).tolist()


@given(
    st.lists(
        st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=9), min_size=1, max_size=40
    ),
    st.integers(1, 4),
    st.integers(0, 2),
)
@settings(max_examples=40, deadline=None)
def test_pair_counts_and_candidates_take_either_path_alike(
    seqs: list[list[str]], n: int, queries: int
) -> None:
    """
    Counts at (context, next) pairs are the same from the dense table and from the
    sorted keys (0 for the -1 context), and a turn's candidates are the same marked in a
    turn x state table and sorted.
    """
    from graph import _seq_windows
    from graph._seq_heldout import _candidates, count_fold, top_followers

    win = Windows(seqs, 4)
    level = win.count(n)
    rng = np.random.default_rng(len(seqs))
    size = 1 + queries * 50
    ctx = rng.integers(-1, max(win.n_contexts(n), 1), size)
    nxt = rng.integers(0, win.n_names, size)
    want = [
        level.counts[level.keys.tolist().index(k)] if c >= 0 and k in level.keys else 0.0
        for c, k in zip(ctx.tolist(), (ctx * win.n_names + nxt).tolist(), strict=True)
    ]
    assert want == level.pairs(ctx, nxt).tolist()
    sparse = _seq_windows.Level(level.keys, level.counts, win.n_contexts(n), win.n_names)
    old, _seq_windows._DENSE = _seq_windows._DENSE, 0  # never a table: the sorted keys
    try:
        assert want == sparse.pairs(ctx, nxt).tolist()
    finally:
        _seq_windows._DENSE = old
    counted = count_fold(win, win.targets, 4)
    pos = np.flatnonzero(win.scored)
    if len(pos) == 0:
        return
    tables = [*counted.raw_top, *counted.cont_top]
    lengths = [*range(5), *range(4)]
    columns = [t[win.context[k][pos]] for t, k in zip(tables, lengths, strict=True)]
    target = win.ids[pos]
    marked = _candidates(win.n_names, target, columns)
    assert win.n_names + 1 <= 2 * 3 * len(columns)  # the marked table was used
    few = _candidates(win.n_names, target, columns[:1])
    wide = [
        np.pad(c, ((0, 0), (0, 3 * len(columns))), constant_values=win.n_names) for c in columns
    ]  # as many columns as there are states: sorted
    sorted_ = _candidates(win.n_names, target, [np.hstack(wide)])
    assert [a.tolist() for a in marked] == [a.tolist() for a in sorted_]
    assert set(zip(*(a.tolist() for a in few), strict=True)) <= set(
        zip(*(a.tolist() for a in marked), strict=True)
    )
    assert top_followers(level, win.n_contexts(n), win.n_names)[-1].tolist() == [win.n_names] * 3
