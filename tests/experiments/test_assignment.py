"""
Sessions are assigned to arms by a stable hash, in proportion to the arms' weights,
and each arm's overlay is checked against the whole configuration schema.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from preload import ConfigError, EngineConfig
from preload.experiments import assign, bucket

ARMS = {"control": 1.0, "sticky": 1.0}


def _config(overlay: dict[str, Any], **arm: Any) -> dict[str, Any]:
    return {
        "experiments": {
            "name": "hysteresis",
            "arms": {"control": {}, "b": {"overlay": overlay, **arm}},
        }
    }


def test_assignment_is_a_fixed_function_of_name_salt_and_session() -> None:
    """
    The mapping is SHA-256 based, so it is the same in every process and run: these
    values are pinned, and a subprocess (another hash seed) agrees.
    """
    ids = [f"s{i}" for i in range(8)]
    here = [assign("hysteresis", "2026-12", i, ARMS) for i in ids]
    expected = ["control", "control", "sticky", "control", "sticky", "sticky", "sticky", "control"]
    assert expected == here
    assert 0.0263574 == pytest.approx(bucket("hysteresis", "2026-12", "s0"), abs=1e-7)
    code = (
        "from preload.experiments import assign;"
        f"print(','.join(assign('hysteresis', '2026-12', i, {ARMS!r}) for i in {ids!r}))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    assert ",".join(here) == there.stdout.strip()


def test_a_new_salt_reshuffles_the_sessions() -> None:
    """
    Another salt puts a good share of the sessions into the other arm.
    """
    ids = [f"s{i}" for i in range(400)]
    moved = sum(assign("x", "a", i, ARMS) != assign("x", "b", i, ARMS) for i in ids)
    assert 120 < moved < 280


def test_weights_are_respected_over_many_sessions() -> None:
    """
    With weights 1, 3 and 6, 20,000 sessions split about 10 %, 30 % and 60 %.
    """
    weights = {"a": 1.0, "b": 3.0, "c": 6.0}
    counts = Counter(assign("w", "", f"session-{i}", weights) for i in range(20_000))
    assert 0.10 == pytest.approx(counts["a"] / 20_000, abs=0.01)
    assert 0.30 == pytest.approx(counts["b"] / 20_000, abs=0.015)
    assert 0.60 == pytest.approx(counts["c"] / 20_000, abs=0.015)


def test_an_overlay_merges_into_the_base_config() -> None:
    """
    An arm's config is the base with its overlay merged key by key; the other arm is
    the base.
    """
    config = EngineConfig.from_dict(
        {
            "swap": {"layout": "category"},
            **_config(
                {"swap": {"hysteresis": 0.3}, "budget": {"categories": {"system": {"max": 700}}}}
            ),
        }
    )
    b = config.arm_config("b")
    assert (0.3, "category") == (b.swap.hysteresis, b.swap.layout)
    assert (200, 700) == (b.budget.categories["system"].min, b.budget.categories["system"].max)
    assert config.arm_config("control").swap == config.swap
    assert not b.experiments.enabled


@pytest.mark.parametrize(
    ("data", "key", "problem"),
    [
        (
            _config({"swap": {"hystersis": 0.2}}),
            "experiments.arms.b.overlay.swap.hystersis",
            "unknown key",
        ),
        (
            _config({"swap": {"hysteresis": 2}}),
            "experiments.arms.b.overlay.swap.hysteresis",
            r"within \[0, 1\]",
        ),
        (_config({"swap": {"layout": 3}}), "experiments.arms.b.overlay.swap.layout", "not one of"),
        (
            _config({"cache": {"backend": "redis"}}),
            "experiments.arms.b.overlay.cache",
            "engine-wide",
        ),
        (
            _config({"retrieval": {"value_model": False}}),
            "experiments.arms.b.overlay.retrieval.value_model",
            "engine-wide",
        ),
        (_config({}, weight=0), "experiments.arms.b.weight", "positive"),
        (_config({}, wieght=1), "experiments.arms.b.wieght", "unknown key"),
        ({"experiments": {"name": "x", "arms": {"only": {}}}}, "experiments.arms", "two arms"),
        ({"experiments": {"arms": {"a": {}, "b": {}}}}, "experiments.name", "needs a name"),
        (
            {"experiments": {"name": "x", "arms": {"a": {}, "b c": {}}}},
            "experiments.arms.b c",
            "letters",
        ),
    ],
)
def test_bad_experiments_are_config_errors_naming_the_key(
    data: dict[str, Any], key: str, problem: str
) -> None:
    """
    An unknown key of an overlay, a bad value, an engine-wide section, a weight that
    is not positive, a single arm, a missing name or a bad arm name: a ConfigError
    naming the dotted key.
    """
    with pytest.raises(ConfigError, match=f"'{re.escape(key)}': .*{problem}"):
        EngineConfig.from_dict(data)


def test_the_example_config_loads() -> None:
    """
    configs/experiment.toml is a valid experiment whose arms differ.
    """
    config = EngineConfig.from_toml(Path(__file__).parents[2] / "configs" / "experiment.toml")
    arms = list(config.experiments.arms)
    assert len(arms) >= 2
    assert config.arm_config(arms[0]) != config.arm_config(arms[1])
