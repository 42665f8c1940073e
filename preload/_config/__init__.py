"""
Engine configuration: TOML files read into frozen dataclasses.

Every section of a TOML file maps to one dataclass; an unknown key or a value of the
wrong type is a :class:`~preload.ConfigError` that names the dotted key and the file.
The defaults *are* the embedded default configuration; ``configs/default.toml`` spells
them out. The sections live by what they configure: loading (``_loading``), the window
(``_window``), learning and forecasting (``_learning``), serving and replaying
(``_serving``), experiments (``_experiments``); :class:`EngineConfig` holds them all
(``_engine``), and ``_checks`` reads a table into a section.
"""

from __future__ import annotations

from ._engine import EngineConfig as EngineConfig
from ._experiments import ARM_KEYS as ARM_KEYS
from ._experiments import ArmConfig as ArmConfig
from ._experiments import ExperimentsConfig as ExperimentsConfig
from ._learning import CallsConfig as CallsConfig
from ._learning import PredictionConfig as PredictionConfig
from ._learning import RetrievalConfig as RetrievalConfig
from ._loading import CacheConfig as CacheConfig
from ._loading import PreloaderConfig as PreloaderConfig
from ._loading import TokensConfig as TokensConfig
from ._serving import MAX_TENANTS as MAX_TENANTS
from ._serving import MAX_TEXT_CHARS as MAX_TEXT_CHARS
from ._serving import LatencyConfig as LatencyConfig
from ._serving import LimitsConfig as LimitsConfig
from ._serving import ReplayConfig as ReplayConfig
from ._serving import ServerConfig as ServerConfig
from ._window import CATEGORIES as CATEGORIES
from ._window import OBJECTIVES as OBJECTIVES
from ._window import AdaptiveBudgetConfig as AdaptiveBudgetConfig
from ._window import BudgetConfig as BudgetConfig
from ._window import CategoryConfig as CategoryConfig
from ._window import CompressionConfig as CompressionConfig
from ._window import ObjectivesConfig as ObjectivesConfig
from ._window import PricingConfig as PricingConfig
from ._window import SwapConfig as SwapConfig

__all__ = [
    "ARM_KEYS",
    "CATEGORIES",
    "MAX_TENANTS",
    "MAX_TEXT_CHARS",
    "OBJECTIVES",
    "AdaptiveBudgetConfig",
    "ArmConfig",
    "BudgetConfig",
    "CacheConfig",
    "CallsConfig",
    "CategoryConfig",
    "CompressionConfig",
    "EngineConfig",
    "ExperimentsConfig",
    "LatencyConfig",
    "LimitsConfig",
    "ObjectivesConfig",
    "PredictionConfig",
    "PreloaderConfig",
    "PricingConfig",
    "ReplayConfig",
    "RetrievalConfig",
    "ServerConfig",
    "SwapConfig",
    "TokensConfig",
]
