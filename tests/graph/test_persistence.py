"""
Tests of the persistence helpers every model saves and loads through.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graph import ModelFileError
from graph import _persistence as persistence
from graph._persistence import (
    atomic_write_json,
    check_document,
    decode_floats,
    encode_floats,
    map_corrupt_data,
    read_json,
)


def test_atomic_write_is_compact_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    """
    The document is written as compact JSON, and only the destination remains.
    """
    path = tmp_path / "m.json"
    atomic_write_json(path, {"format": "x", "version": 1, "a": [1, 2.5]})
    assert '{"format":"x","version":1,"a":[1,2.5]}' == path.read_text(encoding="utf-8")
    assert ["m.json"] == [p.name for p in tmp_path.iterdir()]
    assert {"format": "x", "version": 1, "a": [1, 2.5]} == read_json(path)


def test_a_written_model_has_the_mode_of_any_new_file(tmp_path: Path) -> None:
    """
    The model file is as readable as any file the process creates (the umask's mode),
    not owner-only as a temporary file is: another user may serve it.
    """
    plain = tmp_path / "plain.txt"
    plain.write_text("x", encoding="utf-8")
    atomic_write_json(tmp_path / "m.json", {"a": 1})
    assert plain.stat().st_mode == (tmp_path / "m.json").stat().st_mode


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    """
    Data JSON cannot encode leaves the previous file untouched and no temporary file.
    """
    path = tmp_path / "m.json"
    atomic_write_json(path, {"old": True})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"new": object()})
    assert {"old": True} == read_json(path)
    assert ["m.json"] == [p.name for p in tmp_path.iterdir()]


def test_read_json_names_the_file(tmp_path: Path) -> None:
    """
    Invalid JSON, invalid UTF-8 and JSON nested deeper than the decoder reads raise
    ModelFileError naming the file.
    """
    path = tmp_path / "bad.json"
    path.write_text("{nope", encoding="utf-8")
    with pytest.raises(ModelFileError, match=r"bad\.json.*not valid JSON"):
        read_json(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ModelFileError, match=r"bad\.json.*not valid JSON"):
        read_json(path)
    path.write_text("[" + "1" * 5_000 + "]", encoding="utf-8")  # more digits than int reads
    with pytest.raises(ModelFileError, match=r"bad\.json.*not valid JSON"):
        read_json(path)
    path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(ModelFileError, match=r"bad\.json.*nested deeper"):
        read_json(path)


def test_documents_read_share_their_numbers_and_strings(tmp_path: Path) -> None:
    """
    Two model files read (two tenants' copies of one model) hold one object for each
    number and each text, keys and values, nested at any depth, and read as written.
    """
    doc = {"counts": {"San Jose": [2.5, {"Italian": 2.5}]}, "deep": [[[["San Jose"]]]]}
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    atomic_write_json(first, doc)
    atomic_write_json(second, doc)
    a, b = read_json(first), read_json(second)
    assert doc == a == b
    (key_a,), (key_b,) = a["counts"], b["counts"]
    assert key_a is key_b is a["deep"][0][0][0][0] is b["deep"][0][0][0][0]
    assert a["counts"][key_a][0] is b["counts"][key_b][1]["Italian"]


def test_the_numbers_shared_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Past ``MAX_SHARED_NUMBERS`` distinct numbers, a number read is an object of its
    own, and still the number written.
    """
    monkeypatch.setattr(persistence, "_numbers", {})
    monkeypatch.setattr(persistence, "MAX_SHARED_NUMBERS", 2)
    path = tmp_path / "m.json"
    atomic_write_json(path, [0.25, 0.5, 0.75, 0.75])
    assert [0.25, 0.5, 0.75, 0.75] == read_json(path)
    assert {"0.25", "0.5"} == set(persistence._numbers)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([], "not a graph.X document"),
        ({"format": "graph.Y", "version": 1}, "not a graph.X document"),
        ({"format": "graph.X", "version": 2}, r"unknown version 2 \(this code reads version 1\)"),
        ({"format": "graph.X"}, "unknown version None"),
    ],
)
def test_check_document(data: object, problem: str) -> None:
    """
    A document of another format or version is refused, naming the source.
    """
    with pytest.raises(ModelFileError, match=rf"'src\.json': {problem}"):
        check_document(data, "graph.X", 1, "src.json")
    check_document({"format": "graph.X", "version": 1}, "graph.X", 1, "src.json")


def test_map_corrupt_data() -> None:
    """
    Errors of malformed data become ModelFileError; a ModelFileError passes unchanged;
    other errors pass only when named.
    """
    corrupt = pytest.raises(ModelFileError, match=r"'f': corrupt thing data \('k'\)")
    with corrupt as info, map_corrupt_data("f", "thing data"):
        raise KeyError("k")
    assert isinstance(info.value.__cause__, KeyError)
    inner = ModelFileError("g", "inner")
    with pytest.raises(ModelFileError) as passed, map_corrupt_data("f", "thing data"):
        raise inner
    assert inner is passed.value
    with pytest.raises(ArithmeticError), map_corrupt_data("f", "thing data"):
        raise ArithmeticError("a")
    named = pytest.raises(ModelFileError, match="corrupt thing data")
    with named, map_corrupt_data("f", "thing data", ArithmeticError):
        raise ArithmeticError("a")
    short = pytest.raises(ModelFileError, match=r"corrupt thing data \(i\)")
    with short, map_corrupt_data("f", "thing data"):  # a list shorter than its entry
        raise IndexError("i")


def test_floats_round_trip_as_float32() -> None:
    """
    Arrays come back with their shape, at float32 precision.
    """
    array = np.array([[1.0, 2.5, -3.25], [0.1, 1e-3, 7.0]])
    back = decode_floats(encode_floats(array), (2, 3))
    assert (2, 3) == back.shape
    assert np.float64 == back.dtype
    assert np.array_equal(array.astype(np.float32).astype(np.float64), back)
