"""
Tests of check_name: state and need names may not hold the characters graph builds
its keys from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graph import (
    FollowUpPredictor,
    GraphError,
    InvalidStateError,
    NeedsForecaster,
    NeedsModel,
    PatternGraph,
)
from graph._keys import RESERVED, check_name

DATA = Path("/work/shared/data")


@pytest.mark.parametrize("char", RESERVED)
def test_check_name_rejects_every_reserved_character(char: str) -> None:
    """
    Each reserved character is refused wherever it sits, with an error naming the
    name and the character and saying what to do.
    """
    for name in (f"{char}a", f"a{char}b", f"ab{char}"):
        with pytest.raises(InvalidStateError, match="reserved") as info:
            check_name(name)
        assert name == info.value.name
        assert char == info.value.char
        assert repr(name) in str(info.value)
        assert repr(char) in str(info.value)
        assert "remove or replace" in str(info.value)
        assert isinstance(info.value, GraphError)
        assert isinstance(info.value, ValueError)


def test_reserved_characters_are_the_key_separators() -> None:
    """
    The separators NeedsAfter joins its keys with are among the refused characters.
    """
    assert {"\x02", "\x1c", "\x1d", "\x1e", "\x1f"} == set(RESERVED)


@pytest.mark.parametrize(
    "name", ["Hotels_1:SearchHotel", "db:@0:@1", "task:doctor_followup", "a b|c=d", "é"]
)
def test_check_name_accepts_ordinary_names(name: str) -> None:
    """
    Names with punctuation, spaces and non-ASCII letters pass unchanged.
    """
    assert name == check_name(name)


def test_models_refuse_reserved_characters_in_states_and_needs() -> None:
    """
    The predictor refuses such a state and the needs model such a state or need.
    """
    with pytest.raises(InvalidStateError, match=r"'a\\x1cb'"):
        FollowUpPredictor(order=1, text=False).fit([["x", "a\x1cb"]])
    with pytest.raises(InvalidStateError, match=r"'\\x1d'"):
        NeedsModel().fit([[{"state": "s\x1d", "needs": ["n"]}]])
    with pytest.raises(InvalidStateError, match=r"'\\x1c'"):
        NeedsModel().fit([[{"state": "s", "needs": ["n\x1c"]}]])
    with pytest.raises(InvalidStateError):
        PatternGraph().add(("a",), "b\x1dc")


def _real_sessions(name: str, n: int) -> list[dict[str, Any]]:
    """
    The first ``n`` training sessions of a data set, or skip when it is absent.
    """
    path = DATA / name / "sessions-train.jsonl"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    out = []
    with path.open(encoding="utf-8") as fh:
        for line, _ in zip(fh, range(n), strict=False):
            out.append({"turns": json.loads(line)["turns"]})
    return out


@pytest.mark.parametrize("name", ["sgd", "star"])
def test_real_state_and_need_names_pass(name: str) -> None:
    """
    The states and needs of the real data sets are all valid names, and a small needs
    forecast fits on them.
    """
    sessions = _real_sessions(name, 300)
    for session in sessions:
        for turn in session["turns"]:
            if turn.get("state") is not None:
                check_name(turn["state"])
            for need in turn.get("needs") or ():
                check_name(need)
    model = NeedsForecaster(predictor=FollowUpPredictor(order=2, text=False)).fit(sessions)
    assert model.predict_proba(sessions[0]["turns"][:1], k=3)
