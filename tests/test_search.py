"""
Sources that search their items by text (``SearchingSource``), as the engine's
retriever will ask them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from preload import DictSource, JsonlKnowledgeSource, SearchingSource


async def test_the_knowledge_file_is_searched_by_similarity(tmp_path: Path) -> None:
    """
    The items most similar to the query come first, only those that share a word, at
    most ``limit`` of them.
    """
    path = tmp_path / "kb.jsonl"
    path.write_text(
        '{"key": "trains", "text": "Trains: departures between two stations, by date."}\n'
        '{"key": "hotels", "text": "Hotels: rooms by city, price and rating."}\n'
        '{"key": "cheap", "text": "Cheap hotels near the station, rooms from 40 euros."}\n'
        '{"key": "music", "text": "Concerts and artists playing tonight."}\n',
        encoding="utf-8",
    )
    source = JsonlKnowledgeSource(path)
    assert isinstance(source, SearchingSource)
    found = await source.search("a cheap hotel room in the city", 3)
    assert ["cheap", "hotels"] == [key for key, _ in found][:2]
    assert "music" not in dict(found)
    assert all(0 < score <= 1 for _, score in found)
    assert 1 == len(await source.search("hotels", 1))
    assert [] == await source.search("   ", 5)
    assert [] == await source.search("zzz unknown words", 5)


async def test_search_limits_and_empty_sources() -> None:
    """
    A limit outside 1..1000 is refused naming it; an empty source finds nothing.
    """
    source = DictSource({"a": "alpha beta"})
    with pytest.raises(ValueError, match="limit must be 1 to 1000, not 0"):
        await source.search("alpha", 0)
    with pytest.raises(ValueError, match="not 1001"):
        await source.search("alpha", 1001)
    assert [] == await DictSource({}).search("alpha", 3)
    assert [] == await DictSource({"x": "", "y": "  "}).search("alpha", 3)
    assert [("a", pytest.approx(1.0))] == await source.search("alpha beta " * 5_000, 3)
