"""
window: the request path. The swap controller assembles each turn's context window;
the allocation splits the budget across categories; the knapsack chooses items and
their compression levels; the Pareto choice picks among candidate windows by several
objectives.
"""

from __future__ import annotations

from ._allocation import Allocation as Allocation
from ._allocation import HierarchicalBudgetManager as HierarchicalBudgetManager
from ._context import Context as Context
from ._context import ContextItem as ContextItem
from ._context import Decision as Decision
from ._knapsack import Option as Option
from ._knapsack import Selection as Selection
from ._knapsack import select as select
from ._knapsack import select_exact as select_exact
from ._knapsack import select_fptas as select_fptas
from ._knapsack import select_greedy as select_greedy
from ._knapsack import select_scaled as select_scaled
from ._pareto import MAX_CANDIDATES as MAX_CANDIDATES
from ._pareto import Choice as Choice
from ._pareto import WindowPoint as WindowPoint
from ._pareto import choose as choose
from ._pareto import frontier as frontier
from ._swap import SwapController as SwapController

__all__ = [
    "MAX_CANDIDATES",
    "Allocation",
    "Choice",
    "Context",
    "ContextItem",
    "Decision",
    "HierarchicalBudgetManager",
    "Option",
    "Selection",
    "SwapController",
    "WindowPoint",
    "choose",
    "frontier",
    "select",
    "select_exact",
    "select_fptas",
    "select_greedy",
    "select_scaled",
]
