"""
The outcomes file: written and read back, bad lines named by file and line.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preload import EmptyInputError, InputError
from preload.experiments import (
    METRICS,
    OutcomeTally,
    SessionOutcome,
    read_outcome_files,
    read_outcomes,
    summarize,
    write_outcomes,
)
from preload.experiments import _outcomes as outcomes_module


def _outcome(arm: str, session: str, hit_rate: float | None) -> SessionOutcome:
    return SessionOutcome(
        experiment="x", arm=arm, session_id=session, turns=2, hit_rate=hit_rate, wait_ms=1.5
    )


def test_outcomes_round_trip(tmp_path: Path) -> None:
    """
    What write_outcomes writes, read_outcomes reads back the same; blank lines and
    unknown keys are ignored.
    """
    outcomes = [_outcome("control", "s1", 1.0), _outcome("b", "s2", None)]
    path = tmp_path / "o.jsonl"
    assert 2 == write_outcomes(path, outcomes)
    with path.open("a", encoding="utf-8") as f:
        f.write("\n" + json.dumps({**outcomes[0].to_json(), "session_id": "s3", "x": 1}) + "\n")
    back = read_outcomes(path)
    assert outcomes == back[:2]
    assert "s3" == back[2].session_id


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "not JSON"),
        ("[" * 5_000 + "]" * 5_000, "nested deeper"),
        ("[1, 2]", "expected a JSON object"),
        ('{"arm": "b", "session_id": "s", "turns": 1}', "'experiment' must be a non-empty string"),
        ('{"experiment": "x", "arm": "b", "session_id": "s", "turns": -1}', "'turns'"),
        (
            '{"experiment": "x", "arm": "b", "session_id": "s", "turns": 1, "hit_rate": 1.5}',
            "share",
        ),
        (
            '{"experiment": "x", "arm": "b", "session_id": "s", "turns": 1, "wait_ms": -2}',
            "negative",
        ),
        (
            '{"experiment": "x", "arm": "b", "session_id": "s", "turns": 1, "score": "good"}',
            "'score'",
        ),
        ('{"experiment": "x", "arm": "b", "session_id": "s", "turns": 1, "score": NaN}', "finite"),
        ('{"experiment": "x", "arm": "b", "session_id": "s1", "turns": 1}', "already on line 1"),
    ],
)
def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    """
    The first good line is line 1; the bad one, line 2, is named with its problem.
    """
    path = tmp_path / "o.jsonl"
    good = json.dumps(_outcome("control", "s1", 1.0).to_json())
    path.write_text(f"{good}\n{line}\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"o\.jsonl:2: .*{problem}"):
        read_outcomes(path)


def test_an_overlong_line_and_an_empty_file_are_refused(tmp_path: Path) -> None:
    """
    A line above the limit is named; a file without outcomes is an EmptyInputError.
    """
    path = tmp_path / "o.jsonl"
    path.write_text("x" * 70_000 + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"o\.jsonl:1: line longer than 65536"):
        read_outcomes(path)
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(EmptyInputError, match="no outcomes found"):
        read_outcomes(path)


def test_summaries_compare_each_arm_with_the_control() -> None:
    """
    The arm named control is the control wherever it comes; a metric no session of
    an arm measured has n 0 and no mean.
    """
    outcomes = [
        _outcome("b", "s1", 0.5),
        _outcome("control", "s2", 1.0),
        _outcome("b", "s3", 0.7),
        _outcome("control", "s4", 0.8),
    ]
    (summary,) = summarize(outcomes)
    assert "control" == summary.control
    assert {"b": 2, "control": 2} == summary.sessions
    assert summary.differences["b"]["hit_rate"].diff == pytest.approx(0.6 - 0.9)
    assert (0, None) == (summary.arms["b"]["score"].n, summary.arms["b"]["score"].mean)
    (other,) = summarize(outcomes, control="b")
    assert ["control"] == list(other.differences)


def _tally(
    turns: list[tuple[int, int, float]], feedback: list[tuple[int, int, float]]
) -> OutcomeTally:
    """
    A tally of requests (hits, misses, wait in seconds) and feedback (items, used,
    score).
    """
    tally = OutcomeTally()
    for hits, misses, wait_s in turns:
        tally.turn(
            hits=hits,
            partial_hits=0,
            misses=misses,
            tokens=100 * (hits + misses),
            needs=hits + misses,
            held=hits,
            wait_s=wait_s,
        )
    for items, used, score in feedback:
        tally.feedback(items=items, used=used, score=score)
    return tally


_TURN = st.tuples(
    st.integers(0, 3), st.integers(0, 3), st.floats(0, 5, allow_nan=False, allow_infinity=False)
)
_FEEDBACK = st.tuples(
    st.integers(1, 4), st.integers(0, 1), st.floats(-1, 1, allow_nan=False, allow_infinity=False)
)


@settings(max_examples=60, deadline=None)
@given(
    turns=st.lists(_TURN, min_size=2, max_size=8),
    feedback=st.lists(_FEEDBACK, max_size=4),
    split=st.integers(1, 7),
    cut=st.integers(0, 4),
)
def test_partial_outcomes_of_replicas_merge_into_the_whole(
    tmp_path_factory: pytest.TempPathFactory,
    turns: list[tuple[int, int, float]],
    feedback: list[tuple[int, int, float]],
    split: int,
    cut: int,
) -> None:
    """
    A session whose requests and feedback two replicas shared (each served some of
    its requests, and took feedback on its own windows), each writing its own
    outcomes file, reads back from both files as the outcome of one engine that
    served it all: the counts add up, and the metrics are worked out from the sums.
    """
    split = min(split, len(turns) - 1)
    folder = tmp_path_factory.mktemp("replicas")
    a, b = folder / "a.jsonl", folder / "b.jsonl"
    other = _tally(turns, []).outcome("x", "control", "s2")
    write_outcomes(a, [_tally(turns[:split], feedback[:cut]).outcome("x", "b", "s1"), other])
    write_outcomes(b, [_tally(turns[split:], feedback[cut:]).outcome("x", "b", "s1")])
    merged = {o.session_id: o for o in read_outcome_files([a, b])}
    whole = _tally(turns, feedback).outcome("x", "b", "s1")
    got = merged["s1"]
    assert (whole.arm, whole.turns) == (got.arm, got.turns)
    assert got.counts is not None and whole.counts is not None
    assert asdict(whole.counts) == pytest.approx(asdict(got.counts))
    for metric in METRICS:
        expected, value = whole.metric(metric), got.metric(metric)
        assert (expected is None) == (value is None), metric
        if expected is not None:
            assert value == pytest.approx(expected, abs=1e-9), metric
    assert other == merged["s2"]


def test_outcomes_carry_their_counts(tmp_path: Path) -> None:
    """
    An engine's outcome carries the counts it was worked out from, written and read
    back with it; an outcome without them (written before 0.10) reads as before.
    """
    outcome = _tally([(2, 1, 0.25)], [(3, 1, 0.5)]).outcome("x", "b", "s1")
    assert outcome.counts is not None and (2, 1) == (outcome.counts.hits, outcome.counts.misses)
    path = tmp_path / "o.jsonl"
    write_outcomes(path, [outcome, _outcome("control", "s2", 1.0)])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    counts = lines[0]["counts"]
    assert (1, 2, 1, 0.25, 3, 1, 1, 0.5) == (
        counts["requests"],
        counts["hits"],
        counts["misses"],
        counts["wait_s"],
        counts["feedback_items"],
        counts["feedback_used"],
        counts["scores"],
        counts["score_sum"],
    )
    assert "counts" not in lines[1]
    assert [outcome, _outcome("control", "s2", 1.0)] == [
        SessionOutcome.from_json(json.loads(o.to_line()))
        for o in (outcome, _outcome("control", "s2", 1.0))
    ]
    assert [outcome, _outcome("control", "s2", 1.0)] == read_outcomes(path)


def _counted(**counts: object) -> str:
    line = {"experiment": "x", "arm": "b", "session_id": "s", "turns": 1, "counts": counts}
    return json.dumps(line)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (_counted(requests=1, hits=-1), "'counts.hits' must be a whole number >= 0, got -1"),
        (_counted(requests=1, hits=1.5), "'counts.hits' must be a whole number >= 0"),
        (_counted(requests=1, wait_s=-0.5), "'counts.wait_s' must be a finite number >= 0"),
        (_counted(requests=2), "'counts.requests' is 2, but 'turns' is 1"),
        (
            json.dumps({"experiment": "x", "arm": "b", "session_id": "s", "turns": 1, "counts": 3}),
            "'counts' must be a JSON object",
        ),
    ],
)
def test_bad_counts_are_named_by_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "o.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_outcomes(path)
    assert f"{path}:1:" in str(info.value) and problem in str(info.value)


def test_sessions_that_cannot_merge_are_refused_naming_both_files(tmp_path: Path) -> None:
    """
    A session in two files merges only when both lines carry their counts and name
    the same arm; a file named twice is refused, since it would count twice.
    """
    counted = _tally([(1, 0, 0.0)], []).outcome("x", "b", "s1")
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    write_outcomes(a, [counted])
    write_outcomes(b, [_outcome("b", "s1", 1.0)])  # no counts
    write_outcomes(c, [replace(counted, arm="control")])
    with pytest.raises(InputError) as info:
        read_outcome_files([a, b])
    message = str(info.value)
    assert f"{b}:1:" in message and f"also on {a}:1" in message and "no 'counts'" in message
    with pytest.raises(InputError, match="in arm 'control' here and in arm 'b' on .*a.jsonl:1"):
        read_outcome_files([a, c])
    with pytest.raises(InputError, match="named twice"):
        read_outcome_files([a, tmp_path / "." / "a.jsonl"])
    assert [counted] == read_outcome_files([a])


def test_a_folder_stands_for_its_outcomes_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A folder (as server.outcomes_dir keeps a tenant's) reads as its *.jsonl files, the
    others left alone; an empty folder, a file named again through its folder, and
    more files or sessions than the limits are refused, naming the file.
    """
    folder = tmp_path / "acme"
    folder.mkdir()
    counted = _tally([(1, 0, 0.0)], []).outcome("x", "b", "s1")
    write_outcomes(folder / "r1.jsonl", [counted])
    write_outcomes(folder / "r2.jsonl", [counted, replace(counted, session_id="s2")])
    (folder / ".r3.jsonl.tmp").write_text("not an outcome\n", encoding="utf-8")
    assert {"s1": 2, "s2": 1} == {o.session_id: o.turns for o in read_outcome_files([folder])}
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: a folder without outcomes files"):
        read_outcome_files([tmp_path / "empty"])
    with pytest.raises(InputError, match="r1.jsonl: named twice"):
        read_outcome_files([folder, folder / "r1.jsonl"])
    monkeypatch.setattr(outcomes_module, "MAX_OUTCOME_FILES", 1)
    with pytest.raises(InputError, match="r2.jsonl: more than 1 outcomes files"):
        read_outcome_files([folder])
    monkeypatch.setattr(outcomes_module, "MAX_OUTCOME_FILES", 10)
    monkeypatch.setattr(outcomes_module, "MAX_OUTCOME_SESSIONS", 1)  # a file each holds one
    write_outcomes(tmp_path / "s2.jsonl", [replace(counted, session_id="s2")])
    with pytest.raises(InputError, match="s2.jsonl:1: more than 1 sessions in the files"):
        read_outcome_files([folder / "r1.jsonl", tmp_path / "s2.jsonl"])
