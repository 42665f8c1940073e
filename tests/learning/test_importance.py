"""
ImportanceScorer: relevance, recency, references and historical utility.
"""

from __future__ import annotations

from preload.learning import ImportanceScorer


def test_the_scorer_prefers_relevant_recent_referenced_items() -> None:
    """
    Relevance, recency and explicit references raise an item's importance.
    """
    scorer = ImportanceScorer()
    texts = ["Hotel Rintaro in London has a pool.", "The weather in Paris is sunny."]
    near, far = scorer.score("As you said earlier, does Rintaro have a pool?", texts)
    assert near.score > far.score
    assert (near.references > 0.0, far.references) == (True, 0.0)
    old, new = scorer.score("weather", texts[1:] * 2, ages=[8, 0])
    assert new.score > old.score
    assert "relevance" in near.explain()


def test_the_scorer_learns_historical_utility() -> None:
    """
    An item used whenever it was loaded is worth more than one never used.
    """
    scorer = ImportanceScorer()
    for _ in range(5):
        scorer.record("db:used", used=True)
        scorer.record("db:idle", used=False)
    used, idle = scorer.score("x", ["same text", "same text"], keys=["db:used", "db:idle"])
    assert used.utility > idle.utility
    assert used.score > idle.score
