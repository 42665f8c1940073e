"""
EngineForecaster files: errors name the file, not an invented line, and keep their cause.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graph import ModelFileError
from preload import EngineForecaster, InputError


def test_a_corrupt_inner_model_names_the_file_and_keeps_the_cause(tmp_path: Path) -> None:
    """
    A forecaster file whose needs model is not one raises InputError for the whole
    file (no line number) chained to graph's ModelFileError.
    """
    path = tmp_path / "model.json"
    document = {
        "format": EngineForecaster.FORMAT,
        "version": EngineForecaster.VERSION,
        "order": 1,
        "top_states": 3,
        "user_needs": False,
        "model": {"format": "something-else"},
        "users": {},
        "user_turns": {},
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(InputError) as caught:
        EngineForecaster.load(path)
    assert (str(path), None) == (caught.value.path, caught.value.line)
    assert str(caught.value).startswith(f"{path}: ")
    assert isinstance(caught.value.__cause__, ModelFileError)
