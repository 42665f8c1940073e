"""
Reading session logs and knowledge files: good lines kept, bad lines named.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from preload import (
    MAX_LABEL_CHARS,
    EmptyInputError,
    EngineConfig,
    InputError,
    JsonlKnowledgeSource,
    KnowledgeItem,
    MissingItemError,
    PreloadEngine,
    PreloaderConfig,
    read_knowledge,
    read_sessions,
)
from preload._config import MAX_TEXT_CHARS
from preload._sessions import MAX_SESSION_SECONDS
from preload.calls import ToolCall

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


def test_a_line_nested_past_reading_names_file_and_line(tmp_path: Path) -> None:
    """
    A line nested deeper than the JSON decoder reads stops the read with the file and
    line number (it raised RecursionError), and with ``skip_bad_lines`` is skipped and
    counted, the lines around it kept; so does a number of more digits than Python
    converts (it raised ValueError).
    """
    path = tmp_path / "s.jsonl"
    deep = '{"session_id": "s2", "turns": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path.write_text(f"{_dump(GOOD)}\n{deep}\n{_dump({**GOOD, 'session_id': 's3'})}\n")
    with pytest.raises(InputError, match=r"s\.jsonl:2: JSON nested deeper"):
        read_sessions(path)
    sessions, errors = read_sessions(path, skip_bad_lines=True)
    assert ["s1", "s3"] == [s.session_id for s in sessions]
    assert [2] == [e.line for e in errors]
    huge = '{"session_id": "s2", "turns": [{"t": ' + "1" * 5_000 + "}]}"
    path.write_text(f"{_dump(GOOD)}\n{huge}\n")
    with pytest.raises(InputError, match=r"s\.jsonl:2: a number JSON cannot read"):
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
    rows: list[object] = [
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


# Times: finite, non-negative, bounded, never decreasing; a bool is not a number.


@pytest.mark.parametrize(
    ("t", "problem"),
    [
        ("NaN", r"'t' must be a finite number of seconds, not nan$"),
        ("Infinity", r"'t' must be a finite number of seconds, not inf"),
        ("-Infinity", r"'t' must be a finite number of seconds, not -inf"),
        (
            "1e400",
            (
                r"'t' must be a finite number of seconds, not inf \(JSON reads numbers too large for a "
                r"float, such as 1e400, as infinity\)"
            ),
        ),
        ("-1", r"'t' must be a non-negative number of seconds since the session began, not -1"),
        ("-0.5", r"'t' must be a non-negative number of seconds since the session began, not -0.5"),
        ("10000000.5", r"'t' must be at most MAX_SESSION_SECONDS \(10,000,000 seconds"),
        (
            "1" + "0" * 400,
            r"'t' must be at most MAX_SESSION_SECONDS .*, not 100000000000000000000\.\.\.; give seconds",
        ),
        ("true", r"'t' must be a non-negative number of seconds, not true"),
        ('"5"', r"'t' must be a non-negative number of seconds, not a string"),
        ("null", r"'t' must be a non-negative number of seconds, not null"),
    ],
)
def test_bad_times_name_line_turn_and_field(tmp_path: Path, t: str, problem: str) -> None:
    """
    A turn time that is not a finite number of seconds in 0..MAX_SESSION_SECONDS is
    refused with the line, the session, the turn index and the field.
    """
    path = tmp_path / "s.jsonl"
    line = f'{{"session_id": "s2", "turns": [{{"t": 0}}, {{"t": {t}}}]}}'
    path.write_text(f"{_dump(GOOD)}\n{line}\n")
    with pytest.raises(InputError, match=rf"s\.jsonl:2: session 's2', turn 1: {problem}"):
        read_sessions(path)


def test_the_longest_session_is_accepted(
    write_jsonl: Callable[[Path, list[object]], Path], tmp_path: Path
) -> None:
    """
    A turn at exactly MAX_SESSION_SECONDS is read; integer times become floats.
    """
    record = {"session_id": "s", "turns": [{"t": 0}, {"t": MAX_SESSION_SECONDS}]}
    (session,), _ = read_sessions(write_jsonl(tmp_path / "s.jsonl", [record]))
    assert [0.0, float(MAX_SESSION_SECONDS)] == [turn.t for turn in session.turns]
    assert float is type(session.turns[1].t)


def test_times_must_not_decrease(
    write_jsonl: Callable[[Path, list[object]], Path], tmp_path: Path
) -> None:
    """
    A turn earlier than the one before it is refused, naming both turns; equal times
    are fine.
    """
    turns = [{"t": 0}, {"t": 5}, {"t": 5}, {"t": 4.5}]
    path = write_jsonl(tmp_path / "s.jsonl", [{"session_id": "s", "turns": turns}])
    with pytest.raises(
        InputError,
        match=r"s\.jsonl:1: session 's', turn 3: 't' goes back in time \(4\.5 after 5\.0 at "
        r"turn 2\); times must not decrease within a session",
    ):
        read_sessions(path)


# Non-UTF-8 lines: named by line number, skippable.

NOT_UTF8 = b'{"session_id": "s2", "turns": [{"t": 0, "text": "caf\xe9"}]}\n'


def test_non_utf8_line_is_named_and_skippable(tmp_path: Path) -> None:
    """
    A line that is not UTF-8 is an InputError with its line number; with
    skip_bad_lines the lines around it are kept.
    """
    path = tmp_path / "nonutf8.jsonl"
    after = {**GOOD, "session_id": "s3"}
    path.write_bytes(f"{_dump(GOOD)}\n".encode() + NOT_UTF8 + f"{_dump(after)}\n".encode())
    with pytest.raises(
        InputError,
        match=r"nonutf8\.jsonl:2: not UTF-8 text \(invalid continuation byte at byte 53 of the "
        r"line\); save the file as UTF-8",
    ):
        read_sessions(path)
    sessions, errors = read_sessions(path, skip_bad_lines=True)
    assert ["s1", "s3"] == [s.session_id for s in sessions]
    assert [2] == [e.line for e in errors]


def test_non_utf8_line_is_skipped_by_simulate(
    write_jsonl: Callable[[Path, list[object]], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """
    ``preload simulate --skip-bad-lines`` skips a non-UTF-8 line like any bad line.
    """
    from preload.cli import main

    path = tmp_path / "nonutf8.jsonl"
    path.write_bytes(f"{_dump(GOOD)}\n".encode() + NOT_UTF8)
    knowledge = write_jsonl(
        tmp_path / "k.jsonl", [{"key": "service:Media", "text": "Media service."}]
    )
    args = ["simulate", "--sessions", str(path), "--knowledge", str(knowledge)]
    args += ["--strategies", "lru", "--processes", "1"]
    assert 2 == main(args)
    assert "nonutf8.jsonl:2: not UTF-8 text" in " ".join(capsys.readouterr().err.split())
    assert 0 == main([*args, "--skip-bad-lines"])
    assert "nonutf8.jsonl:2: not UTF-8 text" in " ".join(capsys.readouterr().err.split())


def test_byte_order_mark_on_the_first_line_is_allowed(tmp_path: Path) -> None:
    """
    A UTF-8 byte-order mark (as some editors write) does not make line 1 bad.
    """
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + f"{_dump(GOOD)}\r\n".encode())
    sessions, errors = read_sessions(path)
    assert (["s1"], []) == ([s.session_id for s in sessions], errors)


def test_non_utf8_knowledge_line_is_named_and_skippable(tmp_path: Path) -> None:
    """
    The knowledge reader names a non-UTF-8 line too, and skips it on request.
    """
    path = tmp_path / "k.jsonl"
    path.write_bytes(
        b'{"key": "a", "text": "A"}\n{"key": "b", "text": "\xff"}\n{"key": "c", "text": "C"}\n'
    )
    with pytest.raises(InputError, match=r"k\.jsonl:2: not UTF-8 text \(invalid start byte"):
        read_knowledge(path)
    items, errors = read_knowledge(path, skip_bad_lines=True)
    assert (["a", "c"], [2]) == ([i.key for i in items], [e.line for e in errors])


# Silent acceptance: duplicate ids and keys, sessions without turns.


def test_duplicate_session_id_names_both_lines(tmp_path: Path) -> None:
    """
    A session_id read before is refused naming its first line; skipping keeps the
    first session of the id and every other good line.
    """
    path = tmp_path / "s.jsonl"
    again = {**GOOD, "user": "u2"}
    other = {**GOOD, "session_id": "s9"}
    path.write_text("\n".join(_dump(r) for r in [other, {}, GOOD, again, other]) + "\n")
    with pytest.raises(InputError, match=r"s\.jsonl:2: 'session_id' must be"):
        read_sessions(path)
    path.write_text("\n".join(_dump(r) for r in [other, GOOD, again]) + "\n")
    with pytest.raises(
        InputError,
        match=r"s\.jsonl:3: duplicate session_id 's1' \(first on line 2\); give each session "
        r"its own id",
    ):
        read_sessions(path)
    path.write_text("\n".join(_dump(r) for r in [other, {}, GOOD, again, other]) + "\n")
    sessions, errors = read_sessions(path, skip_bad_lines=True)
    assert [("s9", "u1"), ("s1", "u1")] == [(s.session_id, s.user) for s in sessions]
    assert [2, 4, 5] == [e.line for e in errors]
    assert "(first on line 1)" in str(errors[2])


def test_session_without_turns_is_refused(
    write_jsonl: Callable[[Path, list[object]], Path], tmp_path: Path
) -> None:
    """
    ``"turns": []`` is refused; skipping it keeps the others.
    """
    path = write_jsonl(tmp_path / "s.jsonl", [GOOD, {"session_id": "s2", "turns": []}])
    with pytest.raises(
        InputError,
        match=r"s\.jsonl:2: session 's2': 'turns' is empty; a session needs at least one turn",
    ):
        read_sessions(path)
    sessions, errors = read_sessions(path, skip_bad_lines=True)
    assert (["s1"], [2]) == ([s.session_id for s in sessions], [e.line for e in errors])


def test_duplicate_knowledge_key_names_both_lines(
    write_jsonl: Callable[[Path, list[object]], Path], tmp_path: Path
) -> None:
    """
    A key read before is refused naming its first line; skipping keeps the first item.
    """
    rows: list[object] = [
        {"key": "a", "text": "first"},
        {"key": "b", "text": "B"},
        {"key": "a", "text": "second"},
    ]
    path = write_jsonl(tmp_path / "k.jsonl", rows)
    with pytest.raises(
        InputError,
        match=r"k\.jsonl:3: duplicate key 'a' \(first on line 1\); give each item its own key",
    ):
        read_knowledge(path)
    items, errors = read_knowledge(path, skip_bad_lines=True)
    assert [("a", "first"), ("b", "B")] == [(item.key, item.text) for item in items]
    assert [3] == [e.line for e in errors]
    assert [3] == [e.line for e in JsonlKnowledgeSource(path, skip_bad_lines=True).bad_lines]


# Size limits.


@pytest.mark.parametrize("name", ["text", "system"])
def test_turn_text_above_the_limit_is_refused(
    write_jsonl: Callable[[Path, list[object]], Path], tmp_path: Path, name: str
) -> None:
    """
    A turn's text or system reply longer than MAX_TEXT_CHARS is refused naming line,
    turn and field; exactly the limit is fine.
    """
    at_limit = {"t": 0, name: "x" * MAX_TEXT_CHARS}
    above = {"t": 1, name: "x" * (MAX_TEXT_CHARS + 1)}
    path = write_jsonl(tmp_path / "s.jsonl", [{"session_id": "s", "turns": [at_limit, above]}])
    with pytest.raises(
        InputError,
        match=rf"s\.jsonl:1: session 's', turn 1: '{name}' is 100,001 characters, above the "
        r"limit of 100,000 \(max_text_chars\); shorten it, or read with a larger max_text_chars",
    ):
        read_sessions(path)
    (session,), _ = read_sessions(path, max_text_chars=MAX_TEXT_CHARS + 1)
    assert 2 == len(session.turns)


def test_max_text_chars_can_be_lowered(
    write_jsonl: Callable[[Path, list[object]], Path], tmp_path: Path
) -> None:
    """
    ``max_text_chars`` sets the limit; a bad limit is a ValueError.
    """
    path = write_jsonl(tmp_path / "s.jsonl", [GOOD])
    with pytest.raises(
        InputError, match=r"session 's1', turn 0: 'text' is 12 characters, above the limit of 5"
    ):
        read_sessions(path, max_text_chars=5)
    with pytest.raises(ValueError, match="max_text_chars must be 0 or more"):
        read_sessions(path, max_text_chars=-1)
    with pytest.raises(ValueError, match="limit must be at least 1"):
        read_sessions(path, limit=0)


def test_knowledge_text_above_the_preloader_limit_is_refused(
    write_jsonl: Callable[[Path, list[object]], Path], tmp_path: Path
) -> None:
    """
    An item longer than the preloader's max_item_chars is refused naming line and key.
    """
    limit = PreloaderConfig().max_item_chars
    rows: list[object] = [
        {"key": "small", "text": "x" * limit},
        {"key": "big", "text": "x" * (limit + 1)},
    ]
    path = write_jsonl(tmp_path / "k.jsonl", rows)
    with pytest.raises(
        InputError,
        match=r"k\.jsonl:2: item 'big': 'text' is 4,000,001 characters, above the limit of "
        r"4,000,000 \(preloader.max_item_chars\); split the item, or raise the limit",
    ):
        read_knowledge(path)
    items, errors = read_knowledge(path, skip_bad_lines=True)
    assert (["small"], [2]) == ([i.key for i in items], [e.line for e in errors])
    assert 2 == len(read_knowledge(path, max_item_chars=limit + 1)[0])


# Knowledge records: ``category`` (DESIGN.md) and ``kind`` (the shipped data).


def test_knowledge_reads_category_and_kind(
    write_jsonl: Callable[[Path, list[object]], Path], tmp_path: Path
) -> None:
    """
    ``category`` is the context category; ``kind`` is kept and, without a category,
    gives it; neither is required.
    """
    rows: list[object] = [
        {"key": "service:A", "text": "A", "kind": "service"},
        {"key": "slot:A:city", "text": "cities", "kind": "slot"},
        {"key": "task:x", "text": "X", "kind": "task", "category": "examples"},
        {"key": "intent:A:Find", "text": "find", "category": "domain_knowledge"},
        {"key": "plain", "text": "P"},
        {"key": "db:A:Find", "text": "rows", "kind": None, "category": None},
    ]
    items, errors = read_knowledge(write_jsonl(tmp_path / "k.jsonl", rows))
    assert [] == errors
    assert [
        KnowledgeItem(key="service:A", text="A", category="task_context", kind="service"),
        KnowledgeItem(key="slot:A:city", text="cities", category="domain_knowledge", kind="slot"),
        KnowledgeItem(key="task:x", text="X", category="examples", kind="task"),
        KnowledgeItem(key="intent:A:Find", text="find", category="domain_knowledge"),
        KnowledgeItem(key="plain", text="P", category="domain_knowledge"),
        KnowledgeItem(key="db:A:Find", text="rows", category="domain_knowledge"),
    ] == items


# Wrong types, and JSON values that are not objects.


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"session_id": 7, "turns": [{}]}, "'session_id' must be a non-empty string, not a number"),
        ({"session_id": "", "turns": [{}]}, "'session_id' must be a non-empty string, not ''"),
        ({"session_id": None, "turns": [{}]}, "'session_id' must be a non-empty string, not null"),
        (
            {"session_id": "x", "user": 3, "turns": [{}]},
            "session 'x': 'user' must be a string, not a number",
        ),
        (
            {"session_id": "x", "user": ["u"], "turns": [{}]},
            "session 'x': 'user' must be a string, not an array",
        ),
        ({"session_id": "x"}, "session 'x': 'turns' must be a list, not null"),
        (
            {"session_id": "x", "turns": {"t": 0}},
            "session 'x': 'turns' must be a list, not an object",
        ),
        (
            {"session_id": "x", "turns": [[0]]},
            "session 'x', turn 0: expected an object, not an array",
        ),
        (
            {"session_id": "x", "turns": [{}, "hi"]},
            "session 'x', turn 1: expected an object, not a string",
        ),
        (
            {"session_id": "x", "turns": [{"text": 5}]},
            "session 'x', turn 0: 'text' must be a string, not a number",
        ),
        (
            {"session_id": "x", "turns": [{"text": None}]},
            "session 'x', turn 0: 'text' must be a string, not null",
        ),
        (
            {"session_id": "x", "turns": [{"state": 1}]},
            "session 'x', turn 0: 'state' must be a string, not a number",
        ),
        (
            {"session_id": "x", "turns": [{"system": False}]},
            "session 'x', turn 0: 'system' must be a string, not false",
        ),
        (
            {"session_id": "x", "turns": [{"needs": "a"}]},
            "session 'x', turn 0: 'needs' must be a list of strings, not a string",
        ),
        (
            {"session_id": "x", "turns": [{"needs": ["a", 2]}]},
            r"session 'x', turn 0: 'needs' must be a list of strings; needs\[1\] is a number",
        ),
    ],
)
def test_wrong_types_name_the_field(
    write_jsonl: Callable[[Path, list[object]], Path], tmp_path: Path, record: object, problem: str
) -> None:
    """
    A field of the wrong type is refused naming the line, the session and turn where
    there is one, the field and the type it had.
    """
    with pytest.raises(InputError, match=rf"s\.jsonl:1: {problem}$"):
        read_sessions(write_jsonl(tmp_path / "s.jsonl", [record]))


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"text": "t"}, "'key' must be a non-empty string, not null"),
        ({"key": "", "text": "t"}, "'key' must be a non-empty string, not ''"),
        ({"key": 1, "text": "t"}, "'key' must be a non-empty string, not a number"),
        ({"key": "a", "text": ["t"]}, "item 'a': 'text' must be a string, not an array"),
        (
            {"key": "a", "text": "t", "category": 3},
            "item 'a': 'category' must be a string, not a number",
        ),
        ({"key": "a", "text": "t", "kind": {}}, "item 'a': 'kind' must be a string, not an object"),
    ],
)
def test_wrong_knowledge_types_name_the_field(
    write_jsonl: Callable[[Path, list[object]], Path], tmp_path: Path, record: object, problem: str
) -> None:
    """
    A knowledge field of the wrong type is refused naming the line, the key and the field.
    """
    with pytest.raises(InputError, match=rf"k\.jsonl:1: {problem}$"):
        read_knowledge(write_jsonl(tmp_path / "k.jsonl", [record]))


@pytest.mark.parametrize(
    ("value", "shown"),
    [("[1, 2]", "an array"), ('"x"', "a string"), ("3", "a number"), ("null", "null")],
)
def test_json_that_is_not_an_object_is_refused(tmp_path: Path, value: str, shown: str) -> None:
    """
    A line holding valid JSON that is not an object is refused naming the line, in
    both readers, and can be skipped.
    """
    sessions = tmp_path / "s.jsonl"
    sessions.write_text(f"{_dump(GOOD)}\n{value}\n")
    with pytest.raises(
        InputError,
        match=rf"s\.jsonl:2: expected a JSON object with 'session_id' and 'turns', not {shown}$",
    ):
        read_sessions(sessions)
    assert [2] == [e.line for e in read_sessions(sessions, skip_bad_lines=True)[1]]
    knowledge = tmp_path / "k.jsonl"
    knowledge.write_text(f'{{"key": "a", "text": "A"}}\n{value}\n')
    with pytest.raises(
        InputError, match=rf"k\.jsonl:2: expected a JSON object with 'key' and 'text', not {shown}$"
    ):
        read_knowledge(knowledge)


def test_unknown_session_keys_are_kept(
    write_jsonl: Callable[[Path, list[object]], Path], tmp_path: Path
) -> None:
    """
    Keys of a session record the format does not know are kept in ``extra``.
    """
    record = {**GOOD, "services": ["Media_2"], "meta": {"done": True}}
    (session,), _ = read_sessions(write_jsonl(tmp_path / "s.jsonl", [record]))
    assert {"services": ["Media_2"], "meta": {"done": True}} == dict(session.extra)


def test_all_lines_bad_names_the_first_skipped(tmp_path: Path) -> None:
    """
    When every line was skipped, the EmptyInputError carries a note with the first
    skipped line's problem.
    """
    path = tmp_path / "s.jsonl"
    path.write_text("[]\n{}\n")
    with pytest.raises(EmptyInputError) as info:
        read_sessions(path, skip_bad_lines=True)
    assert [
        "2 bad lines were skipped; the first: " + f"{path}:1: expected a JSON object with "
        "'session_id' and 'turns', not an array"
    ] == info.value.__notes__


@pytest.mark.parametrize(
    ("heading", "read"),
    [("## Session logs", read_sessions), ("## Knowledge files", read_knowledge)],
)
def test_the_examples_in_docs_formats_are_read(
    tmp_path: Path, heading: str, read: Callable[[Path], tuple[list[object], list[InputError]]]
) -> None:
    """
    The example line of each format in docs/formats.md reads without errors.
    """
    doc = (Path(__file__).parent.parent / "docs" / "formats.md").read_text(encoding="utf-8")
    section = doc[doc.index(heading) :]
    start = section.index("```json\n") + len("```json\n")
    example = section[start : section.index("\n```", start)]
    path = tmp_path / "example.jsonl"
    path.write_text(example + "\n", encoding="utf-8")
    records, errors = read(path)
    assert (1, []) == (len(records), errors)


def test_a_turn_with_more_needs_than_a_request_may_have_is_refused(tmp_path: Path) -> None:
    """
    A turn that declares more needs than ``limits.max_needs`` is refused when the log
    is read, naming the line, not halfway through a replay.
    """
    needs = [f"k{i}" for i in range(257)]
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"session_id": "x", "turns": [{"t": 0, "needs": needs}]}) + "\n")
    with pytest.raises(InputError, match=r"s.jsonl:1: .*'needs' has 257 keys, above the limit"):
        read_sessions(path)


# Tool calls in session logs.


def test_tool_calls_are_read_with_their_arguments(
    write_jsonl: Callable[[Path, list[object]], Path], tmp_path: Path
) -> None:
    """
    A turn's tool_calls become ToolCalls; read_only defaults to false.
    """
    call = {"name": "Flights:Search", "args": {"from": "Lisbon", "n": 2}, "read_only": True}
    rows: list[object] = [
        {"session_id": "s", "turns": [{"t": 0, "text": "x", "tool_calls": [call, {"name": "B"}]}]}
    ]
    [session], _ = read_sessions(write_jsonl(tmp_path / "s.jsonl", rows))
    first, second = session.turns[0].tool_calls
    assert ("Flights:Search", {"from": "Lisbon", "n": 2}, True) == (
        first.name,
        dict(first.args),
        first.read_only,
    )
    assert ("B", {}, False) == (second.name, dict(second.args), second.read_only)
    assert (None, None) == (first.result, second.result)


def test_a_calls_result_is_read_and_written_back(
    write_jsonl: Callable[[Path, list[object]], Path], tmp_path: Path
) -> None:
    """
    A call's ``result`` (a string, or null) is kept, is no part of the call's
    identity, and comes back in the session's mapping.
    """
    calls = [
        {"name": "Users:Find", "args": {"email": "a@b.c"}, "result": "u_1"},
        {"name": "B", "result": None},
    ]
    rows: list[object] = [
        {"session_id": "s", "turns": [{"t": 0, "text": "x", "tool_calls": calls}]}
    ]
    [session], _ = read_sessions(write_jsonl(tmp_path / "s.jsonl", rows))
    first, second = session.turns[0].tool_calls
    assert ("u_1", None) == (first.result, second.result)
    assert first == ToolCall(name="Users:Find", args={"email": "a@b.c"})
    written = session.as_mapping()["turns"][0]["tool_calls"]
    assert [
        calls[0] | {"read_only": False},
        {"name": "B", "args": {}, "read_only": False},
    ] == written


@pytest.mark.parametrize(
    ("tool_calls", "message"),
    [
        ({"name": "x"}, "'tool_calls' must be a list of calls, not an object"),
        (["x"], r"tool_calls\[0\] must be an object with 'name' and 'args', not a string"),
        ([{"args": {}}], r"tool_calls\[0\]\.name: a tool's name must be a string, not NoneType"),
        ([{"name": ""}], r"tool_calls\[0\]\.name: a tool's name must have 1 to 200 characters"),
        ([{"name": "a", "args": [1]}], r"tool_calls\[0\]\.args must be an object, not an array"),
        (
            [{"name": "a"}, {"name": "b", "args": {"x": {"y": [[[[[[[[[1]]]]]]]]]}}}],
            r"tool_calls\[1\]\.args: args\['x'\]\['y'\].* nests deeper than 8 levels",
        ),
        (
            [{"name": "a", "read_only": "yes"}],
            r"tool_calls\[0\]\.read_only must be true or false, not a string",
        ),
        ([{"name": "a"}] * 33, "'tool_calls' has 33 calls, above the limit of 32 a turn"),
        (
            [{"name": "a", "result": {"id": 1}}],
            r"tool_calls\[0\]\.result must be a string or null, not an object",
        ),
        (
            [{"name": "a"}, {"name": "a", "result": "x" * 100_001}],
            r"'tool_calls\[1\]\.result' is 100,001 characters, above the limit of 100,000",
        ),
    ],
)
def test_tool_calls_of_the_wrong_shape_are_named_and_skippable(
    write_jsonl: Callable[[Path, list[object]], Path],
    tmp_path: Path,
    tool_calls: object,
    message: str,
) -> None:
    """
    The error names the file, the line, the session, the turn and the call's field;
    with skip_bad_lines the line is skipped and counted, the others kept.
    """
    good = {"session_id": "good", "turns": [{"t": 0, "text": "x"}]}
    bad = {
        "session_id": "bad",
        "turns": [{"t": 0, "text": "x"}, {"t": 1, "tool_calls": tool_calls}],
    }
    path = write_jsonl(tmp_path / "s.jsonl", [good, bad])
    with pytest.raises(InputError, match=rf"s\.jsonl:2: session 'bad', turn 1: {message}"):
        read_sessions(path)
    sessions, errors = read_sessions(path, skip_bad_lines=True)
    assert (["good"], [2]) == ([s.session_id for s in sessions], [e.line for e in errors])


def test_a_name_with_a_reserved_control_character_is_refused_with_its_line(
    tmp_path: Path,
) -> None:
    """
    A state or need holding a control character the forecaster reserves is refused by
    the reader naming the file, the line and the field (the fuzz test found it
    reaching the forecaster).
    """
    path = tmp_path / "s.jsonl"
    path.write_text(
        '{"session_id": "a", "turns": [{"t": 0, "needs": ["ok"]}]}\n'
        '{"session_id": "b", "turns": [{"t": 0, "needs": ["k\\u001e"]}]}\n',
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"needs\[0\] 'k\\x1e' holds the control character") as e:
        read_sessions(path)
    assert 2 == e.value.line


async def test_the_engine_refuses_a_reserved_character_in_a_request() -> None:
    """
    ``handle`` refuses a state or need holding a reserved control character with a
    ValueError naming it, before anything is served.
    """
    async with PreloadEngine(EngineConfig(), sources={}) as engine:
        with pytest.raises(ValueError, match=r"needs\[1\] 'b\\x1f'"):
            await engine.handle(session_id="s", text="hi", needs=["a", "b\x1f"])
        with pytest.raises(ValueError, match="^state"):
            await engine.handle(session_id="s", text="hi", state="x\x02")
        assert 0 == engine.statistics().requests


@pytest.mark.parametrize(
    ("session", "where"),
    [
        ({"session_id": "s" * 1_001, "turns": [{"t": 0}]}, "'session_id'"),
        ({"session_id": "s", "user": "u" * 1_001, "turns": [{"t": 0}]}, "session 's': 'user'"),
        ({"session_id": "s", "turns": [{"t": 0, "state": "x" * 1_001}]}, "turn 0: 'state'"),
        ({"session_id": "s", "turns": [{"t": 0, "needs": ["k", "k" * 1_001]}]}, r"needs\[1\]"),
    ],
)
def test_a_label_above_its_limit_is_refused_with_its_line(
    write_jsonl: Callable[[Path, list[object]], Path],
    tmp_path: Path,
    session: object,
    where: str,
) -> None:
    """
    A session id, user, state or need key above ``MAX_LABEL_CHARS`` is refused by the
    reader naming the line and the field; the lines before it are read, and with
    ``skip_bad_lines`` the line is skipped and counted.
    """
    path = write_jsonl(tmp_path / "s.jsonl", [GOOD, session])
    with pytest.raises(InputError, match=rf"s\.jsonl:2: .*{where} has 1,001 characters") as e:
        read_sessions(path)
    assert 2 == e.value.line
    sessions, skipped = read_sessions(path, skip_bad_lines=True)
    assert (["s1"], [2]) == ([s.session_id for s in sessions], [e.line for e in skipped])
    assert 1_000 == MAX_LABEL_CHARS
    ok = {"session_id": "s" * 1_000, "turns": [{"t": 0, "state": "x" * 1_000}]}
    assert 1 == len(read_sessions(write_jsonl(tmp_path / "ok.jsonl", [ok]))[0])


def test_a_knowledge_key_above_its_limit_is_refused_with_its_line(
    write_jsonl: Callable[[Path, list[object]], Path], tmp_path: Path
) -> None:
    """
    A knowledge key above ``MAX_LABEL_CHARS`` could never be named by a request: it is
    refused naming the line.
    """
    path = write_jsonl(tmp_path / "k.jsonl", [{"key": "a", "text": "t"}, {"key": "k" * 1_001}])
    with pytest.raises(InputError, match=r"k\.jsonl:2: 'key' has 1,001 characters"):
        read_knowledge(path)


async def test_the_engine_refuses_a_label_above_its_limit() -> None:
    """
    ``handle`` refuses a session id, user, state or need above ``MAX_LABEL_CHARS``
    with a ValueError naming it, before anything is served; ``call`` and
    ``record_call`` refuse such a session id too.
    """
    long = "x" * (MAX_LABEL_CHARS + 1)
    async with PreloadEngine(EngineConfig(), sources={}) as engine:
        for kwargs, where in [
            ({"session_id": long}, "session_id"),
            ({"user": long}, "user"),
            ({"state": long}, "state"),
            ({"needs": ["a", long]}, r"needs\[1\]"),
        ]:
            with pytest.raises(ValueError, match=rf"^{where} has 1,001 characters"):
                await engine.handle(**{"session_id": "s", "text": "hi", **kwargs})
        with pytest.raises(ValueError, match="^session_id has 1,001"):
            engine.record_call(long, "lookup", {}, "r")
        assert 0 == engine.statistics().requests
        await engine.handle(session_id="x" * MAX_LABEL_CHARS, text="hi", state="s" * 1_000)
        assert 1 == engine.statistics().requests
