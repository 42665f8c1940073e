"""
Replays: recorded sessions through the real engine on a virtual clock, side by side
with baseline strategies and an oracle, and the report they make (a table, charts).
"""

from __future__ import annotations

from ._clock import VirtualClockLoop as VirtualClockLoop
from ._demo import DemoData as DemoData
from ._demo import generate_demo as generate_demo
from ._plot import plot_report as plot_report
from ._replay import MAX_VIRTUAL_S as MAX_VIRTUAL_S
from ._replay import replay as replay
from ._report import ReplayReport as ReplayReport
from ._report import StrategyReport as StrategyReport
from ._simulated import SimulatedCallSource as SimulatedCallSource
from ._simulated import SimulatedSource as SimulatedSource
from ._strategies import ALL_STRATEGIES as ALL_STRATEGIES
from ._strategies import LEARNING_STRATEGIES as LEARNING_STRATEGIES
from ._strategies import STRATEGIES as STRATEGIES
from ._strategies import FittedStrategies as FittedStrategies
from ._strategies import fit_strategies as fit_strategies
from ._table import REPORT_COLUMNS as REPORT_COLUMNS
from ._table import report_table as report_table

__all__ = [
    "ALL_STRATEGIES",
    "LEARNING_STRATEGIES",
    "MAX_VIRTUAL_S",
    "REPORT_COLUMNS",
    "STRATEGIES",
    "DemoData",
    "FittedStrategies",
    "ReplayReport",
    "SimulatedCallSource",
    "SimulatedSource",
    "StrategyReport",
    "VirtualClockLoop",
    "fit_strategies",
    "generate_demo",
    "plot_report",
    "replay",
    "report_table",
]
