"""
replay.
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

__all__ = [
    "STRATEGIES",
    "DemoData",
    "ReplayReport",
    "SimulatedSource",
    "StrategyReport",
    "VirtualClockLoop",
    "generate_demo",
    "replay",
]
