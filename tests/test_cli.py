"""
The preload command: its report, its model files and its answers to bad input.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from preload.cli import main
from preload.replay import generate_demo


@pytest.fixture(name="files")
def _files(write_jsonl: Callable[[Path, list[object]], Path], tmp_path: Path) -> tuple[Path, Path]:
    """
    A small session log and its knowledge file, from the demo generator.
    """
    demo = generate_demo(30, seed=5)
    sessions = write_jsonl(tmp_path / "sessions.jsonl", [s.as_mapping() for s in demo.sessions])
    knowledge = write_jsonl(
        tmp_path / "knowledge.jsonl",
        [{"key": k, "text": v} for k, v in demo.knowledge.items()],
    )
    return sessions, knowledge


def test_simulate_writes_the_json_report(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    simulate prints a table and writes exactly the report's keys for the strategies
    asked for.
    """
    sessions, knowledge = files
    out = tmp_path / "out.json"
    code = main(
        [
            "simulate",
            "--sessions",
            str(sessions),
            "--knowledge",
            str(knowledge),
            "--train",
            str(sessions),
            "--strategies",
            "lru,engine,oracle",
            "--seed",
            "1",
            "--json",
            str(out),
            "--processes",
            "1",
            "--plot",
            str(tmp_path / "plots"),
        ]
    )
    assert 0 == code
    report = json.loads(out.read_text())
    assert {"dataset", "strategies", "wall_s", "virtual_s"} == set(report)
    assert ["lru", "engine", "oracle"] == list(report["strategies"])
    assert 30 == report["dataset"]["sessions"]
    assert "engine" in capsys.readouterr().out
    assert (tmp_path / "plots" / "hit_rate.svg").is_file()


def test_train_then_predict(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    A trained model predicts next states and needs as JSON, most likely first.
    """
    sessions, _ = files
    model = tmp_path / "model.json"
    assert 0 == main(["train", "--sessions", str(sessions), "--out", str(model)])
    capsys.readouterr()
    assert 0 == main(["predict", "--model", str(model), "Flights:SearchFlights", "-k", "2"])
    answer = json.loads(capsys.readouterr().out)
    assert 2 == len(answer["states"]) and answer["needs"]
    probabilities = [s["p"] for s in answer["states"]]
    assert probabilities == sorted(probabilities, reverse=True)


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    return " ".join(capsys.readouterr().err.split())


def test_malformed_line_is_named_and_can_be_skipped(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    A bad session line stops simulate with file and line, exit 2; with
    --skip-bad-lines it is reported and the rest replays.
    """
    sessions, knowledge = files
    lines = sessions.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([lines[0], "{oops", *lines[1:]]) + "\n")
    args = ["simulate", "--sessions", str(bad), "--knowledge", str(knowledge), "--processes", "1"]
    assert 2 == main([*args, "--strategies", "lru"])
    assert "bad.jsonl:2: not JSON" in _error(capsys)
    out = tmp_path / "o.json"
    assert 0 == main([*args, "--strategies", "lru", "--skip-bad-lines", "--json", str(out)])
    assert "1 bad lines skipped" in _error(capsys)
    assert 30 == json.loads(out.read_text())["dataset"]["sessions"]


def test_needs_without_knowledge_are_reported(
    write_jsonl: Callable[[Path, list[object]], Path],
    files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """
    Needs with no knowledge entry are counted and reported; the turns are still served.
    """
    sessions, knowledge = files
    rows = [json.loads(line) for line in knowledge.read_text().splitlines()]
    partial = write_jsonl(tmp_path / "k.jsonl", [r for r in rows if not r["key"].startswith("db:")])
    out = tmp_path / "o.json"
    code = main(
        [
            "simulate",
            "--sessions",
            str(sessions),
            "--knowledge",
            str(partial),
            "--strategies",
            "lru",
            "--processes",
            "1",
            "--json",
            str(out),
        ]
    )
    assert 0 == code
    assert "needs have no knowledge entry (db:" in _error(capsys)
    assert json.loads(out.read_text())["dataset"]["turns"] > 0


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("empty", "empty.jsonl: no sessions found"),
        ("missing", "absent.jsonl: cannot open"),
        ("config", "config key 'cache.sise': unknown key"),
        ("strategy", "unknown strategy 'magic'"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    setup: str,
    message: str,
    files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """
    Bad input ends with exit code 2 and a one-line message, never a traceback.
    """
    sessions, _ = files
    args = ["simulate", "--processes", "1", "--sessions", str(sessions)]
    if setup == "empty":
        (tmp_path / "empty.jsonl").write_text("")
        args[-1] = str(tmp_path / "empty.jsonl")
    elif setup == "missing":
        args[-1] = str(tmp_path / "absent.jsonl")
    elif setup == "config":
        (tmp_path / "c.toml").write_text("[cache]\nsise = 3\n")
        args += ["--config", str(tmp_path / "c.toml")]
    else:
        args += ["--strategies", "lru,magic"]
    assert 2 == main(args)
    err = _error(capsys)
    assert message in err
    assert "Traceback" not in err


def test_predict_with_a_corrupt_model_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    A corrupt or foreign model file is named in the error.
    """
    model = tmp_path / "model.json"
    model.write_text('{"format": "something-else"}')
    assert 2 == main(["predict", "--model", str(model), "A"])
    assert "model.json: not a preload.forecaster file" in _error(capsys)


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    """
    --version prints the version; --help lists the commands.
    """
    with pytest.raises(SystemExit) as version:
        main(["--version"])
    assert 0 == version.value.code
    assert "preload 0.1.0" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "simulate" in capsys.readouterr().out
