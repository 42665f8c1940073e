"""
Reading session logs and knowledge files: good lines kept, bad lines named.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from preload import (
    EmptyInputError,
    InputError,
    JsonlKnowledgeSource,
    MissingItemError,
    read_sessions,
)

GOOD = {
    "session_id": "s1",
    "user": "u1",
    "turns": [
        {"t": 0.0, "text": "find a drama", "state": "Media:Find", "needs": ["service:Media"]},
        {"t": 20.0, "text": "rent it", "state": "Media:Rent", "system": "Done.", "acts": ["x"]},
    ],
}


def test_sessions_are_read_with_unknown_keys_kept(
    write_jsonl: Callable[[Path, list[object]], Path], tmp_path: Path
) -> None:
    """
    A session's fields are read; keys the format does not know are kept aside.
    """
    sessions, errors = read_sessions(write_jsonl(tmp_path / "s.jsonl", [GOOD]))
    assert [] == errors
    (session,) = sessions
    assert ("s1", "u1", 2) == (session.session_id, session.user, len(session.turns))
    assert ("service:Media",) == session.turns[0].needs
    assert {"acts": ["x"]} == dict(session.turns[1].extra)


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    """
    A line that is not JSON stops the read with the file and line number.
    """
    path = tmp_path / "s.jsonl"
    path.write_text(f'{_dump(GOOD)}\n{{"session_id": "s2", "turns": [\n')
    with pytest.raises(InputError, match=r"s\.jsonl:2: not JSON"):
        read_sessions(path)


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"turns": []}, "'session_id'"),
        ({"session_id": "x", "turns": "no"}, "'turns' must be a list"),
        ({"session_id": "x", "turns": [{"t": -1}]}, "'t' must be"),
        ({"session_id": "x", "turns": [{"t": 0, "needs": "a"}]}, "'needs' must be"),
        ({"session_id": "x", "turns": [{"t": 5}, {"t": 1}]}, "goes back in time"),
    ],
)
def test_invalid_sessions_say_what_is_wrong(
    write_jsonl: Callable[[Path, list[object]], Path], tmp_path: Path, record: object, problem: str
) -> None:
    """
    A line that is JSON but not a session says which field is wrong, and where.
    """
    with pytest.raises(InputError, match=rf"s\.jsonl:1: .*{problem}"):
        read_sessions(write_jsonl(tmp_path / "s.jsonl", [record]))


def test_skip_bad_lines_keeps_the_good_ones(tmp_path: Path) -> None:
    """
    With skip_bad_lines, bad lines are reported and every good line is kept.
    """
    path = tmp_path / "s.jsonl"
    path.write_text(f"{_dump(GOOD)}\nnot json\n{_dump({**GOOD, 'session_id': 's3'})}\n")
    sessions, errors = read_sessions(path, skip_bad_lines=True)
    assert ["s1", "s3"] == [s.session_id for s in sessions]
    assert [2] == [e.line for e in errors]


def test_empty_log_is_its_own_error(tmp_path: Path) -> None:
    """
    A log with no session is an EmptyInputError naming the file.
    """
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(EmptyInputError, match="empty.jsonl: no sessions"):
        read_sessions(path)


def test_missing_file_names_its_path(tmp_path: Path) -> None:
    """
    A missing file is an InputError with its path.
    """
    with pytest.raises(InputError, match="absent.jsonl: cannot open"):
        read_sessions(tmp_path / "absent.jsonl")


async def test_knowledge_source_serves_items_and_names_bad_lines(
    write_jsonl: Callable[[Path, list[object]], Path], tmp_path: Path
) -> None:
    """
    The knowledge source serves each key's text; a bad line names file and line.
    """
    rows = [
        {"key": "service:A", "text": "about A", "kind": "service"},
        {"key": "db:A:Find", "text": "rows", "category": "examples"},
    ]
    source = JsonlKnowledgeSource(write_jsonl(tmp_path / "k.jsonl", rows))
    assert "about A" == await source.fetch("service:A")
    assert ("task_context", "examples") == (
        source.category("service:A"),
        source.category("db:A:Find"),
    )
    with pytest.raises(MissingItemError, match="service:B"):
        await source.fetch("service:B")
    write_jsonl(tmp_path / "bad.jsonl", [*rows, {"key": "x"}])
    with pytest.raises(InputError, match=r"bad\.jsonl:3: item 'x': 'text'"):
        JsonlKnowledgeSource(tmp_path / "bad.jsonl")


def _dump(record: object) -> str:
    import json

    return json.dumps(record)
