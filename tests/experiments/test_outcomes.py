"""
The outcomes file: written and read back, bad lines named by file and line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from preload import EmptyInputError, InputError
from preload.experiments import SessionOutcome, read_outcomes, summarize, write_outcomes


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
