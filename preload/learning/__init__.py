"""
Learning what the next request needs, off the request path: the forecaster protocol,
the engine's forecaster, the baselines a replay compares it with, the importance
scorer, the views many engines share of one fitted model, and what is learned from
feedback: the content-value predictor and the adaptive budget.
"""

from __future__ import annotations

from ._adaptive import AdaptiveBudget as AdaptiveBudget
from ._adaptive import JudgedItem as JudgedItem
from ._baselines import MarkovForecaster as MarkovForecaster
from ._baselines import NullForecaster as NullForecaster
from ._baselines import OracleForecaster as OracleForecaster
from ._baselines import PopularForecaster as PopularForecaster
from ._call_predictors import CallPredictor as CallPredictor
from ._call_predictors import EngineCallPredictor as EngineCallPredictor
from ._call_predictors import OracleCallPredictor as OracleCallPredictor
from ._call_predictors import read_only_tools as read_only_tools
from ._engine_forecaster import EngineForecaster as EngineForecaster
from ._forecasting import Forecast as Forecast
from ._forecasting import Forecaster as Forecaster
from ._forecasting import StateNamer as StateNamer
from ._importance import Importance as Importance
from ._importance import ImportanceScorer as ImportanceScorer
from ._shared import SharedCallPredictor as SharedCallPredictor
from ._shared import SharedForecaster as SharedForecaster
from ._shared import SharedModels as SharedModels
from ._shared import read_models as read_models
from ._think_time import ThinkTimes as ThinkTimes
from ._value import Candidate as Candidate
from ._value import ValuePredictor as ValuePredictor

__all__ = [
    "AdaptiveBudget",
    "CallPredictor",
    "Candidate",
    "EngineCallPredictor",
    "EngineForecaster",
    "Forecast",
    "Forecaster",
    "Importance",
    "ImportanceScorer",
    "JudgedItem",
    "MarkovForecaster",
    "NullForecaster",
    "OracleCallPredictor",
    "OracleForecaster",
    "PopularForecaster",
    "SharedCallPredictor",
    "SharedForecaster",
    "SharedModels",
    "StateNamer",
    "ThinkTimes",
    "ValuePredictor",
    "read_models",
    "read_only_tools",
]
