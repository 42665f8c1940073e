"""
The LRU by text that the token counter and the compressor remember texts in.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from preload._text_lru import TextLRU


@given(
    st.lists(st.tuples(st.text(max_size=30), st.integers(0, 5)), max_size=60),
    st.integers(1, 8),
    st.integers(1, 80),
)
def test_bounds_hold_and_the_latest_text_that_fits_is_kept(
    puts: list[tuple[str, int]], max_items: int, max_chars: int
) -> None:
    """
    Whatever is put, the LRU holds at most ``max_items`` texts of at most ``max_chars``
    characters (its count of them exact), and the latest text put is kept unless it is
    longer than ``max_chars`` alone.
    """
    lru: TextLRU[int] = TextLRU(max_items, max_chars)
    for text, value in puts:
        lru.put(text, value)
        assert len(lru) <= max_items
        assert lru.chars <= max_chars
        if len(text) <= max_chars:
            assert value == lru.get(text)
    kept = [text for text in dict.fromkeys(t for t, _ in puts) if lru.get(text) is not None]
    assert lru.chars == sum(len(text) for text in kept)


def test_the_least_recently_used_goes_first() -> None:
    """
    A text read is used again: the one neither put nor read since goes first.
    """
    lru: TextLRU[str] = TextLRU(10, 12)
    lru.put("aaaa", "a")
    lru.put("bbbb", "b")
    lru.put("cccc", "c")
    assert "a" == lru.get("aaaa")
    lru.put("dddd", "d")
    assert lru.get("bbbb") is None
    assert ["a", "c", "d"] == [lru.get(t) for t in ("aaaa", "cccc", "dddd")]


def test_a_size_of_its_own_counts_the_value_too() -> None:
    """
    The compressor's levels count with their text: sized so, fewer texts fit.
    """
    lru: TextLRU[str] = TextLRU(10, 15, lambda text, value: len(text) + len(value))
    lru.put("abc", "x" * 7)
    lru.put("def", "y" * 7)
    assert lru.get("abc") is None
    assert 10 == lru.chars
