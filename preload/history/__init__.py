"""
history.
"""

from __future__ import annotations

from ._conversation import CompressedConversation as CompressedConversation
from ._conversation import Fact as Fact
from ._conversation import HistoryDecision as HistoryDecision
from ._conversation import extract_facts as extract_facts

__all__ = [
    "CompressedConversation",
    "Fact",
    "HistoryDecision",
    "extract_facts",
]
