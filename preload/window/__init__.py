"""
window.
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
from ._budget import select_scaled as select_scaled
from ._swap import Context as Context
from ._swap import ContextItem as ContextItem
from ._swap import Decision as Decision
from ._swap import SwapController as SwapController

__all__ = [
    "Allocation",
    "BudgetManager",
    "Context",
    "ContextItem",
    "Decision",
    "HierarchicalBudgetManager",
    "Option",
    "Selection",
    "SwapController",
    "select",
    "select_exact",
    "select_fptas",
    "select_greedy",
    "select_scaled",
]
