"""
preload: predictive context preloading for LLM agents and chat servers.

.. versionadded:: 0.1
"""

from __future__ import annotations

from ._budget import Allocation as Allocation
from ._budget import BudgetManager as BudgetManager
from ._budget import HierarchicalBudgetManager as HierarchicalBudgetManager
from ._budget import Option as Option
from ._budget import Selection as Selection
from ._budget import select as select
from ._budget import select_exact as select_exact
from ._budget import select_fptas as select_fptas
from ._budget import select_greedy as select_greedy
from ._cache import CacheStatistics as CacheStatistics
from ._cache import ItemCache as ItemCache
from ._cache import cache_key as cache_key
from ._cache import make_cache as make_cache
from ._clock import VirtualClockLoop as VirtualClockLoop
from ._compression import Compressor as Compressor
from ._compression import Level as Level
from ._compression import MultiLevelCompressor as MultiLevelCompressor
from ._compression import Representation as Representation
from ._compression import Summarizer as Summarizer
from ._compression import TruncatingCompressor as TruncatingCompressor
from ._compression import truncate_text as truncate_text
from ._config import BudgetConfig as BudgetConfig
from ._config import CacheConfig as CacheConfig
from ._config import CategoryConfig as CategoryConfig
from ._config import CompressionConfig as CompressionConfig
from ._config import EngineConfig as EngineConfig
from ._config import LatencyConfig as LatencyConfig
from ._config import PredictionConfig as PredictionConfig
from ._config import PreloaderConfig as PreloaderConfig
from ._config import ReplayConfig as ReplayConfig
from ._config import TokensConfig as TokensConfig
from ._demo import DemoData as DemoData
from ._demo import generate_demo as generate_demo
from ._engine import PreloadEngine as PreloadEngine
from ._errors import CacheError as CacheError
from ._errors import ConfigError as ConfigError
from ._errors import EmptyInputError as EmptyInputError
from ._errors import EngineStateError as EngineStateError
from ._errors import InputError as InputError
from ._errors import LoadTimeoutError as LoadTimeoutError
from ._errors import MissingItemError as MissingItemError
from ._errors import PreloadError as PreloadError
from ._errors import SourceError as SourceError
from ._forecast import EngineForecaster as EngineForecaster
from ._forecast import Forecast as Forecast
from ._forecast import Forecaster as Forecaster
from ._forecast import MarkovForecaster as MarkovForecaster
from ._forecast import NullForecaster as NullForecaster
from ._forecast import OracleForecaster as OracleForecaster
from ._forecast import PopularForecaster as PopularForecaster
from ._history import CompressedConversation as CompressedConversation
from ._history import Fact as Fact
from ._history import HistoryDecision as HistoryDecision
from ._history import extract_facts as extract_facts
from ._metrics import MetricsSnapshot as MetricsSnapshot
from ._preloader import Fetched as Fetched
from ._preloader import Preloader as Preloader
from ._prometheus import PrometheusCollector as PrometheusCollector
from ._redis import RedisItemCache as RedisItemCache
from ._replay import STRATEGIES as STRATEGIES
from ._replay import ReplayReport as ReplayReport
from ._replay import SimulatedSource as SimulatedSource
from ._replay import StrategyReport as StrategyReport
from ._replay import replay as replay
from ._scoring import Importance as Importance
from ._scoring import ImportanceScorer as ImportanceScorer
from ._sessions import Session as Session
from ._sessions import Turn as Turn
from ._sessions import read_sessions as read_sessions
from ._sources import DictSource as DictSource
from ._sources import DirectorySource as DirectorySource
from ._sources import JsonlKnowledgeSource as JsonlKnowledgeSource
from ._sources import KnowledgeItem as KnowledgeItem
from ._sources import Source as Source
from ._sources import SourceRouter as SourceRouter
from ._sources import read_knowledge as read_knowledge
from ._swap import Context as Context
from ._swap import ContextItem as ContextItem
from ._swap import Decision as Decision
from ._swap import SwapController as SwapController
from ._tokens import TiktokenCounter as TiktokenCounter
from ._tokens import TokenCounter as TokenCounter

__version__ = "0.1.0"

__all__ = [
    "STRATEGIES",
    "Allocation",
    "BudgetConfig",
    "BudgetManager",
    "CacheConfig",
    "CacheError",
    "CacheStatistics",
    "CategoryConfig",
    "CompressedConversation",
    "CompressionConfig",
    "Compressor",
    "ConfigError",
    "Context",
    "ContextItem",
    "Decision",
    "DemoData",
    "DictSource",
    "DirectorySource",
    "EmptyInputError",
    "EngineConfig",
    "EngineForecaster",
    "EngineStateError",
    "Fact",
    "Fetched",
    "Forecast",
    "Forecaster",
    "HierarchicalBudgetManager",
    "HistoryDecision",
    "Importance",
    "ImportanceScorer",
    "InputError",
    "ItemCache",
    "JsonlKnowledgeSource",
    "KnowledgeItem",
    "LatencyConfig",
    "Level",
    "LoadTimeoutError",
    "MarkovForecaster",
    "MetricsSnapshot",
    "MissingItemError",
    "MultiLevelCompressor",
    "NullForecaster",
    "Option",
    "OracleForecaster",
    "PopularForecaster",
    "PredictionConfig",
    "PreloadEngine",
    "PreloadError",
    "Preloader",
    "PreloaderConfig",
    "PrometheusCollector",
    "RedisItemCache",
    "ReplayConfig",
    "ReplayReport",
    "Representation",
    "Selection",
    "Session",
    "SimulatedSource",
    "Source",
    "SourceError",
    "SourceRouter",
    "StrategyReport",
    "Summarizer",
    "SwapController",
    "TiktokenCounter",
    "TokenCounter",
    "TokensConfig",
    "TruncatingCompressor",
    "Turn",
    "VirtualClockLoop",
    "cache_key",
    "extract_facts",
    "generate_demo",
    "make_cache",
    "read_knowledge",
    "read_sessions",
    "replay",
    "select",
    "select_exact",
    "select_fptas",
    "select_greedy",
    "truncate_text",
]
