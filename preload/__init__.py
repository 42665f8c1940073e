"""
preload: predictive context preloading for LLM agents and chat servers.

.. versionadded:: 0.1
"""

from __future__ import annotations

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
from ._metrics import MetricsSnapshot as MetricsSnapshot
from ._prometheus import PrometheusCollector as PrometheusCollector
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
from ._tokens import TiktokenCounter as TiktokenCounter
from ._tokens import TokenCounter as TokenCounter
from .caches._memory import CacheStatistics as CacheStatistics
from .caches._memory import MemoryCache as MemoryCache
from .caches._memory import cache_key as cache_key
from .caches._memory import make_cache as make_cache
from .caches._redis import RedisCache as RedisCache
from .compression._compressor import Compressor as Compressor
from .compression._compressor import Level as Level
from .compression._compressor import MultiLevelCompressor as MultiLevelCompressor
from .compression._compressor import Representation as Representation
from .compression._compressor import Summarizer as Summarizer
from .compression._compressor import TruncatingCompressor as TruncatingCompressor
from .compression._compressor import truncate_text as truncate_text
from .history._conversation import CompressedConversation as CompressedConversation
from .history._conversation import Fact as Fact
from .history._conversation import HistoryDecision as HistoryDecision
from .history._conversation import extract_facts as extract_facts
from .learning._forecasters import EngineForecaster as EngineForecaster
from .learning._forecasters import Forecast as Forecast
from .learning._forecasters import Forecaster as Forecaster
from .learning._forecasters import MarkovForecaster as MarkovForecaster
from .learning._forecasters import NullForecaster as NullForecaster
from .learning._forecasters import OracleForecaster as OracleForecaster
from .learning._forecasters import PopularForecaster as PopularForecaster
from .learning._importance import Importance as Importance
from .learning._importance import ImportanceScorer as ImportanceScorer
from .loading._preloader import Fetched as Fetched
from .loading._preloader import Preloader as Preloader
from .replay._clock import VirtualClockLoop as VirtualClockLoop
from .replay._demo import DemoData as DemoData
from .replay._demo import generate_demo as generate_demo
from .replay._replay import STRATEGIES as STRATEGIES
from .replay._replay import ReplayReport as ReplayReport
from .replay._replay import SimulatedSource as SimulatedSource
from .replay._replay import StrategyReport as StrategyReport
from .replay._replay import replay as replay
from .window._budget import Allocation as Allocation
from .window._budget import BudgetManager as BudgetManager
from .window._budget import HierarchicalBudgetManager as HierarchicalBudgetManager
from .window._budget import Option as Option
from .window._budget import Selection as Selection
from .window._budget import select as select
from .window._budget import select_exact as select_exact
from .window._budget import select_fptas as select_fptas
from .window._budget import select_greedy as select_greedy
from .window._swap import Context as Context
from .window._swap import ContextItem as ContextItem
from .window._swap import Decision as Decision
from .window._swap import SwapController as SwapController

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
    "JsonlKnowledgeSource",
    "KnowledgeItem",
    "LatencyConfig",
    "Level",
    "LoadTimeoutError",
    "MarkovForecaster",
    "MemoryCache",
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
    "RedisCache",
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
