"""
learning.
"""

from __future__ import annotations

from ._forecasters import EngineForecaster as EngineForecaster
from ._forecasters import Forecast as Forecast
from ._forecasters import Forecaster as Forecaster
from ._forecasters import MarkovForecaster as MarkovForecaster
from ._forecasters import NullForecaster as NullForecaster
from ._forecasters import OracleForecaster as OracleForecaster
from ._forecasters import PopularForecaster as PopularForecaster
from ._importance import Importance as Importance
from ._importance import ImportanceScorer as ImportanceScorer

__all__ = [
    "EngineForecaster",
    "Forecast",
    "Forecaster",
    "Importance",
    "ImportanceScorer",
    "MarkovForecaster",
    "NullForecaster",
    "OracleForecaster",
    "PopularForecaster",
]
