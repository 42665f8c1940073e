"""
Configuration: TOML into frozen dataclasses, errors that name the key and the file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from preload import ConfigError, EngineConfig, EngineForecaster

ROOT = Path(__file__).parent.parent


def test_default_toml_is_the_embedded_default() -> None:
    """
    configs/default.toml spells out exactly the defaults the package embeds.
    """
    assert EngineConfig() == EngineConfig.from_toml(ROOT / "configs" / "default.toml")


def test_unknown_key_is_named_with_its_file(tmp_path: Path) -> None:
    """
    A typo in a key is an error naming the dotted key and the file.
    """
    path = tmp_path / "c.toml"
    path.write_text("[cache]\nmax_entrys = 10\n")
    with pytest.raises(ConfigError, match=r"c\.toml: config key 'cache\.max_entrys': unknown"):
        EngineConfig.from_toml(path)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[budget]\ntotal_tokens = -5\n", "budget.total_tokens"),
        ("[preloader]\nworkers = 'many'\n", "preloader.workers"),
        ("[budget.categories.system]\nmin = 1\nmax = 0\npriority = 1\n", "budget.categories"),
        ("[budget.categories.nonsense]\nmin = 1\n", "budget.categories.nonsense"),
        ("[prediction]\norder = 9\n", "prediction.order"),
        ("[prediction]\nmixer_turns = 0\n", "prediction.mixer_turns"),
        ("[replay.latency.db]\nmedian_ms = 500.0\np95_ms = 100.0\n", "replay.latency.db.p95_ms"),
        ("[server]\ngc_thresholds = [2000, 10]\n", "server.gc_thresholds"),
        ("[server]\ngc_thresholds = [2000, 0, 10]\n", "server.gc_thresholds"),
        ("[calls]\nreply_threshold = 1.5\n", "calls.reply_threshold"),
        ("[calls]\nmax_vocabulary = -1\n", "calls.max_vocabulary"),
        ("[limits]\nmax_session_turns = 0\n", "limits.max_session_turns"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, text: str, key: str) -> None:
    """
    An invalid value is an error that names its key.
    """
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        EngineConfig.from_toml(path)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    """
    A missing configuration file is a ConfigError with its path.
    """
    with pytest.raises(ConfigError, match="nope.toml"):
        EngineConfig.from_toml(tmp_path / "nope.toml")


def test_partial_file_keeps_other_defaults(tmp_path: Path) -> None:
    """
    Keys a file leaves out keep their defaults.
    """
    path = tmp_path / "c.toml"
    path.write_text("tenant = 'acme'\n[cache]\nmax_entries = 7\n")
    config = EngineConfig.from_toml(path)
    assert ("acme", 7) == (config.tenant, config.cache.max_entries)
    assert EngineConfig().budget == config.budget


def test_prediction_settings_reach_the_forecaster(tmp_path: Path) -> None:
    """
    The engine's forecaster takes its order and its mixer's training turns from
    ``[prediction]``.
    """
    path = tmp_path / "p.toml"
    path.write_text("[prediction]\norder = 2\nmixer_turns = 300\n")
    forecaster = EngineForecaster.from_config(EngineConfig.from_toml(path))
    assert forecaster.model.max_mixer_turns == 300
    assert forecaster.model.predictor is not None
    assert forecaster.model.predictor.order == 2
