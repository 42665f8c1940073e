"""
Replays: recorded sessions through the real engine on a virtual clock, side by side
with baseline strategies and an oracle, and the report they make.
"""

from __future__ import annotations

from ._clock import VirtualClockLoop as VirtualClockLoop
from ._demo import DemoData as DemoData
from ._demo import generate_demo as generate_demo
from ._replay import STRATEGIES as STRATEGIES
from ._replay import ReplayReport as ReplayReport
from ._replay import SimulatedSource as SimulatedSource
from ._replay import StrategyReport as StrategyReport
from ._replay import replay as replay
from ._table import report_table as report_table

__all__ = [
    "STRATEGIES",
    "DemoData",
    "ReplayReport",
    "SimulatedSource",
    "StrategyReport",
    "VirtualClockLoop",
    "generate_demo",
    "replay",
    "report_table",
]
