"""
Token counting with the real tokenizer.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from preload import TiktokenCounter


def test_counts_match_tiktoken(counter: TiktokenCounter) -> None:
    """
    Counts are the cl100k_base token counts.
    """
    assert 2 == counter.count("hello world")
    assert 0 == counter.count("")


def test_repeated_counts_come_from_the_cache(counter: TiktokenCounter) -> None:
    """
    A repeated text is counted once and then answered from the cache.
    """
    text = "a text counted twice " * 3
    first = counter.count(text)
    assert first == counter._cache.get(text)
    assert first == counter.count(text)


def test_the_cache_keeps_texts_of_at_most_its_characters() -> None:
    """
    A history's context is a new text every turn: the cache keeps the latest of them
    within ``cache_chars``, and a text longer than that alone is counted, not kept.
    """
    counter = TiktokenCounter(cache_chars=10_000)
    texts = [f"turn {i}: " + "the history so far " * 50 for i in range(40)]
    counts = [counter.count(text) for text in texts]
    assert counter._cache.chars <= 10_000
    assert 0 < len(counter._cache) < len(texts)
    assert counts[-1] == counter._cache.get(texts[-1])
    assert counter._cache.get(texts[0]) is None
    long = "word " * 5_000
    assert counter.count(long) == counter.count(long) > 0
    assert counter._cache.get(long) is None
    assert counts[-1] == counter._cache.get(texts[-1])  # nothing dropped for it


@given(st.text(max_size=200), st.integers(min_value=0, max_value=60))
def test_truncate_fits_and_is_a_prefix(text: str, limit: int) -> None:
    """
    A truncated text never exceeds the limit, is a prefix, and is valid text.
    """
    counter = _COUNTER
    cut = counter.truncate(text, limit)
    assert text.startswith(cut)
    assert counter.count(cut) <= max(limit, 0)


_COUNTER = TiktokenCounter()
