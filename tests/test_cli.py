"""
The preload command: its report, its model files and its answers to bad input.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from preload import EngineConfig, read_sessions
from preload.cli import main
from preload.learning import EngineForecaster
from preload.replay import REPORT_COLUMNS, generate_demo, plot_report, replay


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
    for chart in ("wait_cdf", "p99", "rates"):
        assert (tmp_path / "plots" / f"{chart}.png").read_bytes().startswith(b"\x89PNG")
        assert "<svg" in (tmp_path / "plots" / f"{chart}.svg").read_text()


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


def test_simulate_says_which_budget_held_guesses_back(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    With one call run ahead a step and half a call a read-only call, simulate says
    how many guesses each budget held back (the source's limit none), and the JSON
    report keeps to its keys.
    """
    sessions, knowledge = files
    config = tmp_path / "tight.toml"
    config.write_text("[calls]\nmax_per_turn = 1\nmax_per_call = 0.5\n", encoding="utf-8")
    out = tmp_path / "out.json"
    args = ["simulate", "--sessions", str(sessions), "--knowledge", str(knowledge)]
    args += ["--train", str(sessions), "--strategies", "engine", "--processes", "1"]
    args += ["--config", str(config)]
    assert 0 == main([*args, "--json", str(out)])
    said = " ".join(capsys.readouterr().err.split())  # the notes under the table
    line = said[said.index("held back") :]
    step, source, allowance = (
        int(re.search(rf"(\d+) by calls\.{key}", line).group(1))  # type: ignore[union-attr]
        for key in ("max_per_turn", "max_in_flight_per_source", "max_per_call")
    )
    assert step > 0 and allowance > 0 and source == 0
    assert "speculative_skipped_step" not in json.loads(out.read_text())["strategies"]["engine"]


def test_simulate_says_how_many_guesses_a_busy_backend_held_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    On a backend that serves two calls at once (``[replay] call_capacity``), the
    source's limit falls as its calls slow, and simulate says how many guesses it held
    back meanwhile, among those the source's limit held.
    """
    config = tmp_path / "busy.toml"
    config.write_text("[replay]\ncall_capacity = 2\n", encoding="utf-8")
    args = ["simulate", "--limit", "200", "--strategies", "engine", "--processes", "1"]
    assert 0 == main([*args, "--config", str(config)])
    said = " ".join(capsys.readouterr().err.split())
    found = re.search(r"(\d+) by calls\.max_in_flight_per_source \((\d+) while the backend", said)
    assert found is not None, said
    source, slow = int(found.group(1)), int(found.group(2))
    assert 0 < slow <= source


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
    assert "1 bad line skipped" in _error(capsys)
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
        ("strategy", "argument --strategies: unknown strategy 'magic'"),
        ("no-config", "argument --config: config file"),
        ("redis", "c.toml: config key 'cache.backend': 'redis': a replay runs on a virtual"),
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
    elif setup == "no-config":
        args += ["--config", str(tmp_path / "nowhere.toml")]
        message += f" {tmp_path / 'nowhere.toml'} not found"
    elif setup == "redis":
        (tmp_path / "c.toml").write_text('[cache]\nbackend = "redis"\n')
        args += ["--config", str(tmp_path / "c.toml")]
    else:
        args += ["--strategies", "lru,magic"]
    assert 2 == main(args)
    err = capsys.readouterr().err
    assert message in err
    assert 1 == len([line for line in err.splitlines() if line.startswith("error:")])
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["predict", "--model", "m.json", "-k", "-1", "A"],
            "argument -k: must be 1 or more, got -1",
        ),
        (["simulate", "--limit", "0"], "argument --limit: must be 1 or more, got 0"),
        (["simulate", "--limit", "-3"], "argument --limit: must be 1 or more, got -3"),
        (["simulate", "--limit", "x"], "argument --limit: expected a whole number, got 'x'"),
        (["simulate", "--strategies", ""], "argument --strategies: names no strategy"),
        (["simulate", "--strategies", " , "], "argument --strategies: names no strategy"),
        (
            ["simulate", "--strategies", "engine,engine"],
            "argument --strategies: names 'engine' twice",
        ),
        (["simulate", "--processes", "-2"], "argument --processes: must be 0 or more, got -2"),
        (["simulate", "--bogus"], "unrecognized arguments: --bogus"),
        (["predict", "--model", "m.json"], "argument STATE: give the session's states so far"),
    ],
)
def test_bad_arguments_are_named(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    An out-of-range or malformed argument ends with one line naming it, exit code 2,
    before any work (no demo generated, no model read).
    """
    assert 2 == main(args)
    err = capsys.readouterr().err
    assert [f"error: {message}"] == [line[: len(message) + 7] for line in err.splitlines()]


@pytest.mark.parametrize(
    ("argument", "path", "message"),
    [
        ("--json", "/nonexistent-dir/x.json", "folder /nonexistent-dir does not exist"),
        ("--json", "{tmp}", "is a folder; give a file name"),
        ("--plot", "/proc/x", "cannot write into /proc/x"),
        ("--plot", "{tmp}/file.txt/sub", "cannot write into"),
    ],
)
def test_output_paths_are_checked_before_the_replay(
    argument: str, path: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    An output path that cannot be written ends the run before anything is read or
    replayed (the sessions file named does not even exist), not after the replay with
    a traceback.
    """
    (tmp_path / "file.txt").write_text("")
    path = path.format(tmp=tmp_path)
    args = ["simulate", "--sessions", str(tmp_path / "absent.jsonl"), argument, path]
    assert 2 == main(args)
    err = _error(capsys)
    assert err.startswith(f"error: argument {argument}: ")
    assert message in err
    assert "absent.jsonl" not in err


def test_a_log_of_calls_without_needs_has_no_hit_rate(
    write_jsonl: Callable[[Path, list[object]], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """
    Sessions that carry tool calls but no needs (no state either): the replay measures
    the calls, and the table shows no hit rate of needs rather than 0.000.
    """
    call = {"name": "Weather:Now", "args": {"city": "Reno", "days": 2}, "read_only": True}
    turn = {"t": 0.0, "text": "Weather in Reno?", "system": "Sunny.", "tool_calls": [call]}
    rows: list[object] = [{"session_id": f"s{i}", "turns": [turn]} for i in range(4)]
    sessions = write_jsonl(tmp_path / "calls.jsonl", rows)
    assert 0 == main(["simulate", "--sessions", str(sessions), "--strategies", "lru,engine"])
    rows_out = [line for line in capsys.readouterr().out.splitlines() if "│ lru " in line]
    cells = dict(
        zip(["", *REPORT_COLUMNS], (c.strip() for c in rows_out[0].split("│")), strict=False)
    )
    assert "-" == cells["hit rate"]
    assert "0.750" == cells["call hit"]  # the three repeats


def test_plural_wording_and_the_column_legend(
    write_jsonl: Callable[[Path, list[object]], Path],
    files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """
    One session, one strategy and one bad line read as such; the table explains its
    columns under it, and --help explains them and the exit codes too.
    """
    sessions, knowledge = files
    one = tmp_path / "one.jsonl"
    one.write_text(sessions.read_text().splitlines()[0] + "\n{oops\n")
    args = ["simulate", "--sessions", str(one), "--knowledge", str(knowledge)]
    assert 0 == main([*args, "--strategies", "lru", "--processes", "1", "--skip-bad-lines"])
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert "1 bad line skipped" in err
    assert " x 1 strategy; per strategy: lru" in err
    assert "one: 1 session, " in captured.out
    assert "hit rate  share of the turns' needs already in the cache" in captured.out
    assert "p99 ms  99th percentile" in captured.out
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    help_text = capsys.readouterr().out
    assert "columns of the table:" in help_text and "wasted" in help_text
    assert "130  stopped by SIGINT (Ctrl-C); 143  stopped by SIGTERM" in help_text


def test_limit_applies_to_the_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """
    --limit also cuts the generated demo (it used to be ignored there).
    """
    out = tmp_path / "o.json"
    code = main(
        ["simulate", "--limit", "3", "--strategies", "lru", "--processes", "1", "--json", str(out)]
    )
    assert 0 == code
    assert 3 == json.loads(out.read_text())["dataset"]["sessions"]
    assert "demo data: 3 generated sessions" in capsys.readouterr().err


def _stateless(tmp_path: Path, n_sessions: int) -> Path:
    """
    A session log whose turns carry text and needs but no state.
    """
    topics = ["find me a drama", "book a table for two", "flights to lisbon", "jazz tonight"]
    rows = [
        {
            "session_id": f"s{i}",
            "turns": [
                {"t": j, "text": f"{topics[(i + j) % 4]} {i}", "needs": [f"kb:{(i + j) % 4}"]}
                for j in range(3)
            ],
        }
        for i in range(n_sessions)
    ]
    path = tmp_path / "stateless.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_train_without_states_on_too_few_texts_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    Clustering texts into states needs as many turns as states; fewer end with a
    message (it was a ValueError traceback), and no model file.
    """
    sessions = _stateless(tmp_path, 5)
    assert 2 == main(["train", "--sessions", str(sessions), "--out", str(tmp_path / "m.json")])
    err = _error(capsys)
    assert "argument --sessions: " in err and "15 turns without a 'state'" in err
    assert "give the turns a 'state', or train on more sessions" in err
    assert not (tmp_path / "m.json").exists()


def test_simulate_checks_stateless_training_sessions_before_the_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    --train sessions without states, too few for the engine to learn states from their
    texts, are named before the replay.
    """
    sessions = _stateless(tmp_path, 5)
    args = ["simulate", "--sessions", str(sessions), "--train", str(sessions)]
    assert 2 == main([*args, "--strategies", "lru,engine", "--processes", "1"])
    err = _error(capsys)
    assert "error: argument --train: " in err and "15 turns without a 'state'" in err


def test_predict_names_the_state_of_a_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    A model trained on turns without states learns `cluster:N` states; predict --text
    names the text's state with the model's encoder and forecasts from it. A model
    without an encoder says so.
    """
    sessions = _stateless(tmp_path, 30)
    model_path = tmp_path / "m.json"
    assert 0 == main(["train", "--sessions", str(sessions), "--out", str(model_path)])
    assert re.search(r"trained on 30 sessions \(\d+ states\)", _error(capsys))
    model = EngineForecaster.from_config(EngineConfig())
    model.fit(read_sessions(sessions)[0])
    expected = model.encode("find me a drama")
    assert expected is not None and expected.startswith("cluster:")
    with monkeypatch.context() as patch:  # the model as trained, encoder included
        patch.setattr(EngineForecaster, "load", classmethod(lambda cls, path: model))
        assert 0 == main(["predict", "--model", str(model_path), "--text", "find me a drama"])
    answer = json.loads(capsys.readouterr().out)
    assert expected == answer["text_state"]
    assert answer["states"] and answer["needs"]
    model.encoder = None
    with monkeypatch.context() as patch:
        patch.setattr(EngineForecaster, "load", classmethod(lambda cls, path: model))
        assert 2 == main(["predict", "--model", str(model_path), "--text", "a drama"])
    assert "argument --text: the model " in _error(capsys)


def test_predict_warns_about_a_state_it_never_saw(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    A state the model never saw gets a warning on stderr: the forecast is the prior.
    """
    sessions, _ = files
    model = tmp_path / "model.json"
    assert 0 == main(["train", "--sessions", str(sessions), "--out", str(model)])
    capsys.readouterr()
    assert 0 == main(["predict", "--model", str(model), "Flights:SearchFlights", "Nope:Never"])
    captured = capsys.readouterr()
    assert json.loads(captured.out)["states"]
    assert (
        "warning: 1 state unknown to the model ('Nope:Never'): the forecast is the prior"
        in " ".join(captured.err.split())
    )
    assert 0 == main(["predict", "--model", str(model), "Flights:SearchFlights"])
    assert "" == capsys.readouterr().err


def test_plot_without_matplotlib_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    Without matplotlib, --plot stops before the replay and names the extra to install;
    the library function raises ImportError saying the same.
    """
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "matplotlib" else find_spec(name, *args),
    )
    assert 2 == main(["simulate", "--plot", str(tmp_path / "plots")])
    assert "argument --plot: drawing charts needs matplotlib: pip install 'preload[plot]'" in (
        _error(capsys)
    )
    assert not (tmp_path / "plots").exists()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    demo = generate_demo(2, seed=1)
    report = replay(demo.sessions, demo.knowledge, strategies=["lru"], processes=1)
    with pytest.raises(ImportError, match=r"pip install 'preload\[plot\]'"):
        plot_report(report, tmp_path / "plots")


def test_the_configured_item_limit_applies_to_the_knowledge_file(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    simulate reads the knowledge file under the config's preloader.max_item_chars, not
    the default: an item above it is refused naming the line and the key.
    """
    sessions, knowledge = files
    longest = max(len(json.loads(line)["text"]) for line in knowledge.read_text().splitlines())
    config = tmp_path / "small.toml"
    config.write_text(f"[preloader]\nmax_item_chars = {longest - 1}\n")
    argv = ["simulate", "--sessions", str(sessions), "--knowledge", str(knowledge)]
    assert 2 == main([*argv, "--config", str(config), "--strategies", "lru"])
    assert re.search(
        rf"knowledge\.jsonl:\d+: item '[^']+': 'text' is {longest:,} characters, above the "
        rf"limit of {longest - 1:,} \(preloader.max_item_chars\)",
        _error(capsys),
    )


def test_train_refuses_a_state_name_graph_cannot_take(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    A state holding graph's key separator is a one-line error naming the file, the
    line and the field, not a traceback (found by the fuzz test; the reader refuses it).
    """
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"session_id": "s", "turns": [{"t": 0, "state": "a\x1fb"}]}) + "\n")
    assert 2 == main(["train", "--sessions", str(path), "--out", str(tmp_path / "m.json")])
    err = _error(capsys)
    assert f"{path}:1: session 's', turn 0: 'state'" in err and "reserves" in err
    assert "Traceback" not in err


def test_train_writes_the_call_forecaster_with_calls_out(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    ``--calls-out`` also fits the call forecaster on the sessions' tool_calls and writes
    it, for ``serve --calls-model``; sessions without calls are refused naming it.
    """
    from preload.learning import EngineCallPredictor

    rows = [
        {
            "session_id": f"c{i}",
            "turns": [
                {
                    "t": 0,
                    "text": "hotels in Porto",
                    "state": "Hotels:Find",
                    "tool_calls": [
                        {"name": "find_hotels", "args": {"city": "Porto"}, "read_only": True}
                    ],
                },
                {"t": 9, "text": "book the first", "state": "Hotels:Book"},
            ],
        }
        for i in range(6)
    ]
    with_calls = tmp_path / "calls-sessions.jsonl"
    with_calls.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    model, calls = tmp_path / "model.json", tmp_path / "calls.json"
    args = ["train", "--sessions", str(with_calls), "--out", str(model)]
    assert 0 == main([*args, "--calls-out", str(calls)])
    assert "fitted the call forecaster on 6 calls" in _error(capsys)
    guesses = EngineCallPredictor.load(calls).predict_calls(
        "s", [], {"text": "hotels in Porto", "state": "Hotels:Find"}, k=1
    )
    assert [("find_hotels", {"city": "Porto"})] == [(g.name, dict(g.args)) for g in guesses]
    for row in rows:
        del row["turns"][0]["tool_calls"]
    without = tmp_path / "plain.jsonl"
    without.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    plain = ["train", "--sessions", str(without), "--out", str(tmp_path / "m2.json")]
    assert 2 == main([*plain, "--calls-out", str(tmp_path / "none.json")])
    assert "argument --calls-out: " in _error(capsys)
    assert not (tmp_path / "m2.json").exists()  # refused before anything was trained
