"""
history.
"""

from __future__ import annotations

from ._conversation import CompressedConversation as CompressedConversation
from ._exchanges import RESULT_CHARS as RESULT_CHARS
from ._exchanges import agent_side as agent_side
from ._exchanges import call_line as call_line
from ._exchanges import exchange_chars as exchange_chars
from ._fact_model import FEATURES as FEATURES
from ._fact_model import StandingFact as StandingFact
from ._facts import Fact as Fact
from ._facts import extract_facts as extract_facts
from ._prepared import PreparedExchange as PreparedExchange
from ._selection import HistoryDecision as HistoryDecision

__all__ = [
    "FEATURES",
    "RESULT_CHARS",
    "CompressedConversation",
    "Fact",
    "HistoryDecision",
    "PreparedExchange",
    "StandingFact",
    "agent_side",
    "call_line",
    "exchange_chars",
    "extract_facts",
]
