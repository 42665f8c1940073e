"""
Compression: levels shrink, repeats go, results are remembered, a summarizer writes
the summary.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preload import CompressionConfig, TiktokenCounter
from preload.compression import (
    MultiLevelCompressor,
    SummarizingCompressor,
    TruncatingCompressor,
)

COUNTER = TiktokenCounter()

PROSE = (
    "The Hilton on Main Street has 300 rooms. It was opened in 1998 by John Smith. "
    "The hotel has a pool and a gym. The hotel has a pool and a gym. "
    "Breakfast is served from 7 am to 10 am in the Garden Room. "
    "Parking costs 25 dollars a night and the garage closes at midnight. "
    "Guests may bring pets weighing under 20 pounds. "
    "Late checkout until 2 pm can be booked at the front desk.\n"
) * 3


@pytest.fixture(name="compressor")
def _compressor() -> MultiLevelCompressor:
    """
    A compressor with the real tokenizer and the default configuration.
    """
    return MultiLevelCompressor(COUNTER)


def test_levels_shrink_and_are_named(compressor: MultiLevelCompressor) -> None:
    """
    Prose gets the dedup, summary, key_points and minimal levels, each strictly
    smaller than the one above, with quality in [0, 1] and full at quality 1.
    """
    rep = compressor.compress(key="k", source="kb", category="domain_knowledge", text=PROSE)
    names = [lv.name for lv in rep.levels]
    assert "full" == names[0]
    assert {"dedup", "minimal"} <= set(names)
    for upper, lower in zip(rep.levels, rep.levels[1:], strict=False):
        assert lower.tokens < upper.tokens
    assert all(0.0 <= lv.quality <= 1.0 for lv in rep.levels)
    assert [COUNTER.count(lv.text) for lv in rep.levels] == [lv.tokens for lv in rep.levels]


def test_dedup_removes_the_repeated_sentences(compressor: MultiLevelCompressor) -> None:
    """
    The text repeated three times keeps each sentence once at the dedup level.
    """
    rep = compressor.compress(key="k", source="kb", category="domain_knowledge", text=PROSE)
    assert 1 == rep.level("dedup").text.count("Breakfast is served")
    assert 1.0 == rep.level("dedup").quality


def test_small_items_keep_only_full(compressor: MultiLevelCompressor) -> None:
    """
    An item of at most ``min_tokens`` tokens is not compressed.
    """
    rep = compressor.compress(key="k", source="kb", category="x", text="Service: Alarm_1")
    assert ["full"] == [lv.name for lv in rep.levels]


def test_results_are_remembered_by_text(compressor: MultiLevelCompressor) -> None:
    """
    Compressing the same text twice returns the same levels object.
    """
    first = compressor.compress(key="a", source="kb", category="x", text=PROSE)
    second = compressor.compress(key="b", source="kb", category="y", text=PROSE)
    assert first.levels is second.levels
    assert "b" == second.key


async def test_an_async_summarizer_replaces_summary(compressor: MultiLevelCompressor) -> None:
    """
    The summarizer's text becomes the ``summary`` level, cut to its budget.
    """
    calls: list[int] = []

    async def summarize(text: str, max_tokens: int) -> str:
        calls.append(max_tokens)
        return "The Hilton on Main Street has 300 rooms and a pool."

    llm = MultiLevelCompressor(COUNTER, summarizer=summarize)
    rep = await llm.acompress(key="k", source="kb", category="x", text=PROSE)
    assert "The Hilton on Main Street has 300 rooms and a pool." == rep.level("summary").text
    assert 1 == len(calls)


def test_config_ratios_must_shrink() -> None:
    """
    Ratios that do not shrink from summary to minimal are a configuration error.
    """
    with pytest.raises(ValueError, match="ratios must shrink"):
        CompressionConfig(summary_ratio=0.1, key_points_ratio=0.3)


@settings(max_examples=40, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(
            [
                "The hotel is in Paris.",
                "1. city=Paris; stars=4",
                "2. city=London; stars=5",
                "Breakfast starts at 7 am and costs 25 dollars.",
                "| a | b |",
                "name: Hilton",
                "Call 555-0100 before 10 pm on Friday.",
            ]
        ),
        max_size=40,
    ).map("\n".join)
)
def test_no_level_has_more_tokens_than_the_level_above(text: str) -> None:
    """
    Whatever the text, levels strictly shrink and their token counts are exact.
    """
    rep = MultiLevelCompressor(COUNTER).compress(key="k", source="s", category="c", text=text)
    for upper, lower in zip(rep.levels, rep.levels[1:], strict=False):
        assert lower.tokens < upper.tokens
    assert [COUNTER.count(lv.text) for lv in rep.levels] == [lv.tokens for lv in rep.levels]


def test_a_compressor_with_a_summarizer_declares_it() -> None:
    """
    MultiLevelCompressor (with a summarizer) is a SummarizingCompressor, for mypy and
    at run time; TruncatingCompressor, which has neither summarizer nor ``acompress``,
    is not.
    """

    async def summarize(text: str, max_tokens: int) -> str:
        return text

    declared: SummarizingCompressor = MultiLevelCompressor(COUNTER, summarizer=summarize)
    assert isinstance(declared, SummarizingCompressor)
    assert not isinstance(TruncatingCompressor(COUNTER), SummarizingCompressor)
