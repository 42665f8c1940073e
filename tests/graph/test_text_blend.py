"""
Tests of how the next-state forecast combines the sequence and text forecasts.
"""

from __future__ import annotations

import pytest

from graph._text_blend import _rerank


def test_rerank_probabilities_and_order() -> None:
    """
    The reranking scores the union of both forecasts; with weight on the sequence
    forecast only it keeps that order, and its probabilities sum to one.
    """
    seq = [("a", 0.6), ("b", 0.3), ("c", 0.1)]
    text = [("c", 0.7), ("d", 0.3)]
    out = _rerank(seq, text, ("a", frozenset({"a"})), (1.0, 0.0, 0.0, 0.0, 0.0, 0.0), None)
    assert ["a", "b", "c", "d"] == [s for s, _ in out]
    assert pytest.approx(1.0) == sum(p for _, p in out)
    top = _rerank(seq, text, ("a", frozenset({"a"})), (0.0, 1.0, 0.0, 0.0, 0.0, 0.0), 2)
    assert ["c", "d"] == [s for s, _ in top]
