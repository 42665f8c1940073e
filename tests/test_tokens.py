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
    assert text in counter._cache
    assert first == counter.count(text)


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
