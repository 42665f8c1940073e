"""
:class:`EngineConfig`: every section, read from a TOML file or a mapping.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ._checks import build_section
from ._experiments import ARM_KEYS, ExperimentsConfig, arm_keys_text, merge_tables
from ._learning import CallsConfig, PredictionConfig, RetrievalConfig
from ._loading import CacheConfig, PreloaderConfig, TokensConfig
from ._serving import LimitsConfig, ReplayConfig, ServerConfig
from ._window import BudgetConfig, CompressionConfig, PricingConfig, SwapConfig

__all__ = ["EngineConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """
    The whole engine configuration.

    .. versionadded:: 0.1
    """

    tenant: str = "default"
    tokens: TokensConfig = field(default_factory=TokensConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    preloader: PreloaderConfig = field(default_factory=PreloaderConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    swap: SwapConfig = field(default_factory=SwapConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    prediction: PredictionConfig = field(default_factory=PredictionConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    pricing: PricingConfig = field(default_factory=PricingConfig)
    experiments: ExperimentsConfig = field(default_factory=lambda: ExperimentsConfig())

    def __post_init__(self) -> None:
        if not self.tenant:
            raise ConfigError("tenant", "must not be empty")
        for arm in self.experiments.arms:
            self.arm_config(arm)  # each overlay checked against the whole schema

    def arm_config(self, arm: str) -> EngineConfig:
        """
        The configuration a session of the experiment's ``arm`` is served with: this
        one with the arm's overlay merged in (and no experiment of its own).

        Raises:
            KeyError: The experiment has no such arm.
            ConfigError: The overlay holds an unknown key, a bad value, or a key that
                is engine-wide (not in :data:`ARM_KEYS`), named as
                ``experiments.arms.<arm>.<section>.<key>``.

        .. versionadded:: 0.6
        """
        return _arm_config(self, arm)

    @classmethod
    def from_toml(cls, path: str | Path) -> EngineConfig:
        """
        Read a configuration file.

        Raises:
            ConfigError: The file is missing or not TOML, or a key is unknown or invalid.
        """
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("-", "file not found", path) from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError("-", f"cannot read: {exc}", path) from exc
        return cls.from_dict(data, source=path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str | Path | None = None) -> EngineConfig:
        """
        Build a configuration from nested mappings, as TOML gives them.
        """
        return build_section(cls, data, "", source)

    def replace(self, **changes: Any) -> EngineConfig:
        """
        A copy with some top-level fields replaced.
        """
        return dataclasses.replace(self, **changes)


def _arm_config(config: EngineConfig, arm: str) -> EngineConfig:
    overlay = config.experiments.arms[arm].overlay
    prefix = f"experiments.arms.{arm}.overlay."
    base = dataclasses.asdict(config)
    del base["experiments"]
    try:
        merged = build_section(EngineConfig, merge_tables(base, overlay), "", None)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc.key}", exc.problem) from None
    for section, value in overlay.items():
        if section not in ARM_KEYS:
            raise ConfigError(
                f"{prefix}{section}",
                f"is engine-wide; an arm can change only {arm_keys_text()}",
            )
        allowed = ARM_KEYS[section]
        for key in value:
            if allowed is not None and key not in allowed:
                raise ConfigError(
                    f"{prefix}{section}.{key}",
                    f"is engine-wide; an arm can change only {arm_keys_text()}",
                )
    return merged
