"""
A replay runs the config's experiment in its engine strategy and reports each
session's outcome by arm; the command writes them and reports on them.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from preload import EngineConfig
from preload.cli import main
from preload.experiments import read_outcomes
from preload.replay import generate_demo, replay

EXPERIMENT = {
    "experiments": {
        "name": "threshold",
        "salt": "t",
        "arms": {
            "control": {},
            "strict": {"overlay": {"swap": {"swap_threshold": 0.9}}},
        },
    }
}


def test_the_engine_strategy_records_every_session_by_arm() -> None:
    """
    Every replayed session has one outcome in the engine strategy, in the arm its id
    is assigned to; the baselines run the base config and record none.
    """
    demo = generate_demo(30, seed=4)
    config = EngineConfig.from_dict(EXPERIMENT)
    report = replay(
        demo.sessions, demo.knowledge, config, strategies=("lru", "engine"), processes=1
    )
    outcomes = report.strategies["engine"].outcomes
    assert sorted(s.session_id for s in demo.sessions) == sorted(o.session_id for o in outcomes)
    assert {"control", "strict"} == {o.arm for o in outcomes}
    assert {"threshold"} == {o.experiment for o in outcomes}
    assert all(o.recall is not None and o.used_share is not None for o in outcomes)
    assert () == report.strategies["lru"].outcomes


def test_an_experiment_of_identical_arms_changes_no_figure() -> None:
    """
    An A/A test (two arms without overlay) serves every session as without the
    experiment: the engine's figures are the same.
    """
    demo = generate_demo(20, seed=6)
    same = EngineConfig.from_dict(
        {"experiments": {"name": "aa", "arms": {"control": {}, "copy": {}}}}
    )
    with_arms = replay(demo.sessions, demo.knowledge, same, strategies=("engine",), processes=1)
    without = replay(
        demo.sessions, demo.knowledge, EngineConfig(), strategies=("engine",), processes=1
    )
    a, b = with_arms.strategies["engine"], without.strategies["engine"]
    assert replace(a, wall_s=0.0, outcomes=()).contract() == replace(b, wall_s=0.0).contract()


@pytest.fixture(name="experiment_files")
def _experiment_files(tmp_path: Path) -> dict[str, Path]:
    """
    A small session log, its knowledge and an experiment config.
    """
    demo = generate_demo(24, seed=5)
    sessions = tmp_path / "sessions.jsonl"
    sessions.write_text("".join(json.dumps(s.as_mapping()) + "\n" for s in demo.sessions))
    knowledge = tmp_path / "knowledge.jsonl"
    knowledge.write_text(
        "".join(json.dumps({"key": k, "text": v}) + "\n" for k, v in demo.knowledge.items())
    )
    config = tmp_path / "experiment.toml"
    config.write_text(
        '[experiments]\nname = "threshold"\n[experiments.arms.control]\n'
        "[experiments.arms.strict]\noverlay = { swap = { swap_threshold = 0.9 } }\n"
    )
    return {"sessions": sessions, "knowledge": knowledge, "config": config}


def _simulate(files: dict[str, Path], *extra: str) -> int:
    args = ["simulate", "--strategies", "engine", "--processes", "1", *extra]
    for name in ("sessions", "knowledge", "config"):
        args += [f"--{name}", str(files[name])]
    return main(args)


def test_simulate_writes_outcomes_and_report_reads_them(
    experiment_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    simulate prints the per-arm table and writes one outcome a session; report prints
    each arm with its interval and the difference, and --json the same figures.
    """
    out = tmp_path / "outcomes.jsonl"
    assert 0 == _simulate(experiment_files, "--experiment-out", str(out))
    printed = capsys.readouterr()
    assert "experiment threshold" in printed.out and "wrote 24 session outcomes" in printed.err
    assert 24 == len(read_outcomes(out))
    assert 0 == main(["report", str(out)])
    table = capsys.readouterr().out
    assert "control arm: control" in table and "tokens_per_turn" in table and "strict" in table
    assert 0 == main(["report", str(out), "--json", "--control", "strict"])
    (summary,) = json.loads(capsys.readouterr().out)
    assert "strict" == summary["control"]
    assert ["control"] == list(summary["differences"])
    hit: dict[str, Any] = summary["differences"]["control"]["hit_rate"]
    assert {"n", "n_control", "diff", "low", "high", "p"} == set(hit)
    # the same sessions in two files (two replicas' outcomes) report the same
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    halves = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    halves[0].write_text("".join(lines[:10]), encoding="utf-8")
    halves[1].write_text("".join(lines[10:]), encoding="utf-8")
    assert 0 == main(["report", *map(str, halves), "--json", "--control", "strict"])
    assert [summary] == json.loads(capsys.readouterr().out)


def test_bad_experiment_input_exits_2_naming_it(
    experiment_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    --experiment-out without an experiment, an overlay's unknown key, a bad outcomes
    line and an unknown --control: exit 2 with the file, line, key or argument.
    """
    plain = dict(experiment_files, config=tmp_path / "plain.toml")
    plain["config"].write_text("[swap]\nhysteresis = 0.2\n")
    assert 2 == _simulate(plain, "--experiment-out", str(tmp_path / "o.jsonl"))
    assert "--experiment-out" in capsys.readouterr().err
    typo = dict(experiment_files, config=tmp_path / "typo.toml")
    typo["config"].write_text(
        '[experiments]\nname = "x"\n[experiments.arms.a]\n'
        "[experiments.arms.b]\noverlay = { swap = { hystersis = 0.2 } }\n"
    )
    assert 2 == _simulate(typo)
    assert "'experiments.arms.b.overlay.swap.hystersis': unknown key" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"experiment": "x", "arm": "a", "session_id": "s", "turns": 1}\n{oops\n')
    assert 2 == main(["report", str(bad)])
    assert f"{bad}:2: not JSON" in capsys.readouterr().err
    good = tmp_path / "good.jsonl"
    good.write_text(
        '{"experiment": "x", "arm": "a", "session_id": "s", "turns": 1}\n'
        '{"experiment": "x", "arm": "b", "session_id": "t", "turns": 1}\n'
    )
    assert 2 == main(["report", str(good), "--control", "c"])
    assert "has no arm 'c'" in capsys.readouterr().err
