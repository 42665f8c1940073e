"""
preload: predictive context preloading for LLM agents and chat servers.

The top level holds what an application calls: the engine, its configuration, the
sources, the forecasters, the history, budgets, token counters, metrics and errors.
The parts live in subpackages with their own ``__all__``: :mod:`preload.window` (the
request path: swap, allocation, knapsack), :mod:`preload.loading` (the background
path), :mod:`preload.caches`, :mod:`preload.compression`, :mod:`preload.history`,
:mod:`preload.learning`, :mod:`preload.calls` (tool calls and speculation) and
:mod:`preload.replay`.

.. versionadded:: 0.1
"""

from __future__ import annotations

from ._config import AdaptiveBudgetConfig as AdaptiveBudgetConfig
from ._config import ArmConfig as ArmConfig
from ._config import BudgetConfig as BudgetConfig
from ._config import CacheConfig as CacheConfig
from ._config import CallsConfig as CallsConfig
from ._config import CategoryConfig as CategoryConfig
from ._config import CompressionConfig as CompressionConfig
from ._config import EngineConfig as EngineConfig
from ._config import ExperimentsConfig as ExperimentsConfig
from ._config import LatencyConfig as LatencyConfig
from ._config import LimitsConfig as LimitsConfig
from ._config import ObjectivesConfig as ObjectivesConfig
from ._config import PredictionConfig as PredictionConfig
from ._config import PreloaderConfig as PreloaderConfig
from ._config import PricingConfig as PricingConfig
from ._config import ReplayConfig as ReplayConfig
from ._config import RetrievalConfig as RetrievalConfig
from ._config import ServerConfig as ServerConfig
from ._config import SwapConfig as SwapConfig
from ._config import TokensConfig as TokensConfig
from ._errors import CacheError as CacheError
from ._errors import ConfigError as ConfigError
from ._errors import EmptyInputError as EmptyInputError
from ._errors import EngineStateError as EngineStateError
from ._errors import InputError as InputError
from ._errors import InputTooLargeError as InputTooLargeError
from ._errors import MissingItemError as MissingItemError
from ._errors import PreloadError as PreloadError
from ._errors import SourceError as SourceError
from ._errors import UnknownToolError as UnknownToolError
from ._metrics import EngineStatistics as EngineStatistics
from ._metrics import MetricsSnapshot as MetricsSnapshot
from ._prometheus import PrometheusCollector as PrometheusCollector
from ._sessions import MAX_LABEL_CHARS as MAX_LABEL_CHARS
from ._sessions import Session as Session
from ._sessions import Turn as Turn
from ._sessions import read_sessions as read_sessions
from ._sources import CategorizingSource as CategorizingSource
from ._sources import DictSource as DictSource
from ._sources import DirectorySource as DirectorySource
from ._sources import JsonlKnowledgeSource as JsonlKnowledgeSource
from ._sources import KnowledgeItem as KnowledgeItem
from ._sources import ListingSource as ListingSource
from ._sources import SearchingSource as SearchingSource
from ._sources import Source as Source
from ._sources import SourceRouter as SourceRouter
from ._sources import read_knowledge as read_knowledge
from ._tokens import TiktokenCounter as TiktokenCounter
from ._tokens import TokenCounter as TokenCounter
from .calls import CallSource as CallSource
from .calls import ToolCall as ToolCall
from .calls import ToolSet as ToolSet
from .engine import PreloadEngine as PreloadEngine
from .engine import RequestsInFlight as RequestsInFlight
from .history import CompressedConversation as CompressedConversation
from .learning import EngineForecaster as EngineForecaster
from .learning import Forecast as Forecast
from .learning import Forecaster as Forecaster
from .learning import StateNamer as StateNamer
from .window import Context as Context
from .window import HierarchicalBudgetManager as HierarchicalBudgetManager

__version__ = "0.1.0"

__all__ = [
    "MAX_LABEL_CHARS",
    "AdaptiveBudgetConfig",
    "ArmConfig",
    "BudgetConfig",
    "CacheConfig",
    "CacheError",
    "CallSource",
    "CallsConfig",
    "CategorizingSource",
    "CategoryConfig",
    "CompressedConversation",
    "CompressionConfig",
    "ConfigError",
    "Context",
    "DictSource",
    "DirectorySource",
    "EmptyInputError",
    "EngineConfig",
    "EngineForecaster",
    "EngineStateError",
    "EngineStatistics",
    "ExperimentsConfig",
    "Forecast",
    "Forecaster",
    "HierarchicalBudgetManager",
    "InputError",
    "InputTooLargeError",
    "JsonlKnowledgeSource",
    "KnowledgeItem",
    "LatencyConfig",
    "LimitsConfig",
    "ListingSource",
    "MetricsSnapshot",
    "MissingItemError",
    "ObjectivesConfig",
    "PredictionConfig",
    "PreloadEngine",
    "PreloadError",
    "PreloaderConfig",
    "PricingConfig",
    "PrometheusCollector",
    "ReplayConfig",
    "RequestsInFlight",
    "RetrievalConfig",
    "SearchingSource",
    "ServerConfig",
    "Session",
    "Source",
    "SourceError",
    "SourceRouter",
    "StateNamer",
    "SwapConfig",
    "TiktokenCounter",
    "TokenCounter",
    "TokensConfig",
    "ToolCall",
    "ToolSet",
    "Turn",
    "UnknownToolError",
    "read_knowledge",
    "read_sessions",
]
