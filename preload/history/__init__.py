"""
history.
"""

from __future__ import annotations

from ._conversation import CompressedConversation as CompressedConversation
from ._fact_model import FEATURES as FEATURES
from ._fact_model import StandingFact as StandingFact
from ._facts import Fact as Fact
from ._facts import extract_facts as extract_facts
from ._prepared import PreparedExchange as PreparedExchange
from ._selection import HistoryDecision as HistoryDecision

__all__ = [
    "FEATURES",
    "CompressedConversation",
    "Fact",
    "HistoryDecision",
    "PreparedExchange",
    "StandingFact",
    "extract_facts",
]
