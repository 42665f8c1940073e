"""
Requests without known needs: the engine retrieves from the sources that can search,
values the candidates, and learns what answers used from feedback.
"""

from __future__ import annotations

import pytest

from preload import DictSource, EngineConfig, PreloadEngine, RetrievalConfig
from preload.learning import NullForecaster

ITEMS = {
    "db:hotels": "Hotels in Lisbon: rooms by price, rating and distance to the station.",
    "db:trains": "Trains from Lisbon to Porto: departures, platforms and fares.",
    "db:music": "Concerts in Lisbon tonight: fado, jazz and tickets.",
}


async def test_a_request_without_needs_gets_the_relevant_items() -> None:
    """
    With ``needs=()`` the window holds what the searching sources found relevant to
    the text, not what is unrelated to it.
    """
    async with PreloadEngine(
        EngineConfig(), sources={"kb": DictSource(ITEMS)}, forecaster=NullForecaster()
    ) as engine:
        ctx = await engine.handle(session_id="s", text="a cheap hotel room near the station")
        off = engine.config.replace(retrieval=RetrievalConfig(search=False))
    keys = [item.key for item in ctx.items]
    assert "db:hotels" in keys and "db:music" not in keys
    assert 1 <= engine.statistics().retrieved
    assert off.retrieval.search is False


async def test_feedback_is_checked_counted_and_never_raises_for_unknowns() -> None:
    """
    Feedback on an unknown session, or naming keys that were not in the window, is
    ignored and counted; a single string is a TypeError naming the fix.
    """
    async with PreloadEngine(
        EngineConfig(), sources={"kb": DictSource(ITEMS)}, forecaster=NullForecaster()
    ) as engine:
        engine.feedback("nobody", used=["db:hotels"])
        await engine.handle(session_id="s", text="hotel rooms in Lisbon")
        engine.feedback("s", used=["db:hotels", "db:not-shown"])
        with pytest.raises(TypeError, match=r"write \['db:hotels'\]"):
            engine.feedback("s", used="db:hotels")
        await engine.wait_idle()
        stats = engine.statistics()
    assert 2 == stats.feedback_ignored  # the unknown session, the key not shown
    assert stats.feedback >= 1


async def test_learned_values_replace_the_fixed_ones_once_enough_feedback_came() -> None:
    """
    Both items match the request, the concerts better; answers always use the trains
    and never the concerts. Before feedback the window values the concerts more (by
    relevance); once the value predictor has seen enough, the trains.
    """
    items = {
        "db:trains": "Lisbon tonight: trains to Porto, platforms and fares.",
        "db:music": "Lisbon tonight: concerts tonight, fado tonight, jazz and tickets.",
    }
    text = "what is on in Lisbon tonight"
    config = EngineConfig(retrieval=RetrievalConfig(min_feedback=60))
    async with PreloadEngine(
        config, sources={"kb": DictSource(items)}, forecaster=NullForecaster()
    ) as engine:
        first = await engine.handle(session_id="s0", text=text)
        engine.feedback("s0", used=["db:trains"])
        for i in range(1, 40):
            await engine.handle(session_id=f"s{i}", text=text)
            engine.feedback(f"s{i}", used=["db:trains"])
        await engine.wait_idle()
        assert engine.values is not None and engine.values.ready
        last = await engine.handle(session_id="last", text=text)
    before = {item.key: item.value for item in first.items}
    after = {item.key: item.value for item in last.items}
    assert before["db:music"] > before["db:trains"]
    assert after["db:trains"] > 0.5 > after.get("db:music", 0.0)  # not worth a place now
