"""
Requests without known needs: the engine retrieves from the sources that can search,
values the candidates, and learns what answers used from feedback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from preload import (
    DictSource,
    EngineConfig,
    EngineForecaster,
    InputError,
    PreloadEngine,
    RetrievalConfig,
    Session,
    Turn,
)
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


async def test_a_window_is_judged_once() -> None:
    """
    Feedback sent again on the same window (a client's retry) is ignored and counted:
    the window's items are learned from once and its score joins the arm once; the
    next request's window takes feedback again.
    """
    arms = {"a": {"weight": 1}, "b": {"weight": 1}}
    config = EngineConfig.from_dict({"experiments": {"name": "once", "arms": arms}})
    async with PreloadEngine(
        config, sources={"kb": DictSource(ITEMS)}, forecaster=NullForecaster()
    ) as engine:
        await engine.handle(session_id="s", text="hotel rooms in Lisbon")
        engine.feedback("s", used=["db:hotels"], score=1.0)
        engine.feedback("s", used=["db:hotels"], score=1.0)
        once = engine.statistics()
        await engine.handle(session_id="s", text="and trains to Porto")
        engine.feedback("s", used=["db:trains"], score=0.5)
        stats, arm = engine.statistics(), engine.arm_statistics()[str(engine.arm_of("s"))]
    assert 1 == once.feedback_ignored == stats.feedback_ignored
    assert stats.feedback > once.feedback  # the next window was judged
    assert (2, 1.5) == (arm.scores, arm.score_sum)


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


async def test_the_learned_values_are_saved_and_loaded_with_the_forecaster(
    tmp_path: Path,
) -> None:
    """
    ``save_model`` writes the forecaster with the value predictor learned from
    feedback; an engine given the loaded forecaster values the items as learned from
    its first request. A corrupt ``values`` section is an InputError naming it.
    """
    items = {
        "db:trains": "Lisbon tonight: trains to Porto, platforms and fares.",
        "db:music": "Lisbon tonight: concerts tonight, fado tonight, jazz and tickets.",
    }
    text = "what is on in Lisbon tonight"
    turn = Turn(t=0, state="Lisbon:Search", needs=("db:trains",))
    forecaster = EngineForecaster(2).fit(
        [Session(session_id=f"s{i}", turns=(turn,)) for i in range(4)]
    )
    config = EngineConfig(retrieval=RetrievalConfig(min_feedback=60))
    path = tmp_path / "model.json"
    async with PreloadEngine(
        config, sources={"kb": DictSource(items)}, forecaster=forecaster
    ) as engine:
        for i in range(40):
            await engine.handle(session_id=f"s{i}", text=text)
            engine.feedback(f"s{i}", used=["db:trains"])
        await engine.wait_idle()
        await engine.save_model(path)
    loaded = EngineForecaster.load(path)
    async with PreloadEngine(config, sources={"kb": DictSource(items)}, forecaster=loaded) as fresh:
        assert fresh.values is loaded.values and fresh.values is not None and fresh.values.ready
        first = await fresh.handle(session_id="new", text=text)
    values = {item.key: item.value for item in first.items}
    assert values["db:trains"] > 0.5 > values.get("db:music", 0.0)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["values"]["coef"] = "nonsense"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(InputError, match="values: corrupt value predictor"):
        EngineForecaster.load(path)


async def test_items_an_answer_just_used_stay_candidates_once_learned() -> None:
    """
    Once the value predictor answers, an item the session's last answer used is a
    candidate of the next window even when the search no longer finds it, and its
    recent use makes it worth its place.
    """
    items = {
        "db:trains": "Trains to Porto: platforms and fares.",
        "db:music": "Concerts tonight: fado, jazz and tickets.",
        "db:bus": "Buses to Porto, and concerts tonight on the bus.",
    }
    config = EngineConfig(retrieval=RetrievalConfig(min_feedback=40))
    async with PreloadEngine(
        config, sources={"kb": DictSource(items)}, forecaster=NullForecaster()
    ) as engine:
        for i in range(30):  # what a session used, it uses again on its next turn
            await engine.handle(session_id=f"s{i}", text="trains to Porto")
            engine.feedback(f"s{i}", used=["db:trains"])
            await engine.handle(session_id=f"s{i}", text="and concerts tonight?")
            engine.feedback(f"s{i}", used=["db:trains", "db:music"])
            await engine.wait_idle()
        assert engine.values is not None and engine.values.ready
        await engine.handle(session_id="new", text="trains to Porto")
        engine.feedback("new", used=["db:trains"])
        await engine.wait_idle()
        ctx = await engine.handle(session_id="new", text="concerts tonight")
    assert {"db:trains", "db:music"} <= {item.key for item in ctx.items}
    assert "db:trains" not in dict(await DictSource(items).search("concerts tonight", 8))


async def test_the_adaptive_budget_learns_from_feedback_off_the_request_path() -> None:
    """
    With ``budget.adaptive.enabled`` feedback reaches the adaptive budget through the
    learner; windows whose marginal items go unused shrink the category's cap, and
    ``explain`` says why.
    """
    items = {f"db:{i}": f"Hotel {i} in Lisbon: rooms, prices and ratings." for i in range(6)}
    config = EngineConfig.from_dict(
        {"budget": {"adaptive": {"enabled": True, "min_evidence": 5, "learning_rate": 0.2}}}
    )
    async with PreloadEngine(
        config, sources={"kb": DictSource(items)}, forecaster=NullForecaster()
    ) as engine:
        for i in range(30):
            await engine.handle(session_id=f"s{i}", text="hotel rooms in Lisbon")
            engine.feedback(f"s{i}", used=[])
        await engine.wait_idle()
        adaptive = engine.adaptive
        assert adaptive is not None
        assert adaptive.evidence["domain_knowledge"] == 30
        cap = adaptive.caps()["domain_knowledge"]
        assert config.budget.categories["domain_knowledge"].min == cap
        shrunk = await engine.handle(session_id="last", text="hotel rooms in Lisbon")
    assert sum(it.tokens for it in shrunk.items if it.category == "domain_knowledge") <= cap
    assert "domain_knowledge: up to" in adaptive.explain()


async def test_an_arm_that_adapts_its_budget_learns_on_its_own() -> None:
    """
    An experiment arm whose overlay enables the adaptive budget has its own; only its
    sessions teach it, and the other arm (and the engine) have none.
    """
    items = {f"db:{i}": f"Hotel {i} in Lisbon: rooms, prices and ratings." for i in range(4)}
    adaptive = {"adaptive": {"enabled": True, "min_evidence": 1}}
    config = EngineConfig.from_dict(
        {
            "experiments": {
                "name": "adapt",
                "arms": {"control": {}, "adaptive": {"overlay": {"budget": adaptive}}},
            }
        }
    )
    async with PreloadEngine(
        config, sources={"kb": DictSource(items)}, forecaster=NullForecaster()
    ) as engine:
        for i in range(20):
            await engine.handle(session_id=f"s{i}", text="hotel rooms in Lisbon")
            engine.feedback(f"s{i}", used=[])
        await engine.wait_idle()
        arms = {name: arm.adaptive for name, arm in engine._experiment.arms.items()}
        learned = engine.arm_statistics()["adaptive"].sessions
    assert engine.adaptive is None and arms["control"] is None
    budget = arms["adaptive"]
    assert budget is not None
    assert 0 < learned == budget.evidence["domain_knowledge"] < 20
