"""
Truncation cuts at sentence and word boundaries.
"""

from __future__ import annotations

from preload import TiktokenCounter
from preload.compression import truncate_text

COUNTER = TiktokenCounter()


def test_truncation_keeps_whole_sentences() -> None:
    """
    Truncation keeps the best sentences whole, in order, within the budget.
    """
    text = "First point is here. Second point matters most. Third one is filler text."
    cut = truncate_text(text, 10, COUNTER, scores=[0.1, 1.0, 0.0])
    assert "Second point matters most." == cut


def test_truncation_never_cuts_inside_a_word() -> None:
    """
    When no sentence fits, the best one is cut at a word boundary.
    """
    text = "Supercalifragilisticexpialidocious words appear here repeatedly"
    cut = truncate_text(text, 5, COUNTER)
    assert COUNTER.count(cut) <= 5
    assert text.startswith(cut)
    assert cut == "" or text[len(cut)] == " "
