"""
Type-checked examples of the public API (mypy --strict reads this file; pytest does not
collect it). If a public signature changes, this file stops type-checking.
"""

from __future__ import annotations

from preload import (
    Context,
    DictSource,
    EngineConfig,
    EngineForecaster,
    Forecast,
    JsonlKnowledgeSource,
    MetricsSnapshot,
    PreloadEngine,
)
from preload.experiments import (
    ArmStatistics,
    ExperimentSummary,
    SessionOutcome,
    read_outcomes,
    summarize,
    write_outcomes,
)
from preload.learning import SharedModels
from preload.replay import ReplayReport, generate_demo, replay


async def serve(path: str) -> tuple[int, str, str]:
    """
    The README's library example.
    """
    config = EngineConfig.from_toml("configs/default.toml")
    sources = {"kb": JsonlKnowledgeSource(path), "extra": DictSource({"k": "v"})}
    async with PreloadEngine(config, sources=sources) as engine:
        ctx: Context = await engine.handle(
            session_id="s1",
            text="find me a drama",
            state="Media_2:FindMovies",
            needs=["service:Media_2"],
        )
        engine.reply("s1", "I found 3 dramas.")
        forecast: Forecast | None = engine.forecast_of("s1")
        snapshot: MetricsSnapshot = engine.metrics()
        assert forecast is None or isinstance(forecast.needs, tuple)
        assert snapshot.requests >= 1
        return ctx.tokens, ctx.render(), ctx.explain()


def compare() -> ReplayReport:
    """
    Replaying the demo through two strategies.
    """
    demo = generate_demo(20, seed=1)
    forecaster = EngineForecaster(3, top_states=5)
    forecaster.fit(demo.sessions)
    states, needs = forecaster.predict(["Flights:SearchFlights"], k=3)
    assert all(isinstance(p, float) for _, p in states + needs)
    return replay(demo.sessions, demo.knowledge, strategies=["lru", "engine"], processes=1)


async def experiment(path: str) -> list[ExperimentSummary]:
    """
    An A/B test on a live engine: the arm of a session, its outcomes, the report.
    """
    config = EngineConfig.from_toml("configs/experiment.toml")
    async with PreloadEngine(config, sources={"kb": DictSource({"k": "v"})}) as engine:
        ctx = await engine.handle(session_id="s1", text="hello", needs=["k"])
        engine.feedback("s1", used=["k"], score=1.0)
        arm: str | None = engine.arm_of("s1")
        assert arm == ctx.arm
        stats: dict[str, ArmStatistics] = engine.arm_statistics()
        assert stats
        outcomes: list[SessionOutcome] = engine.experiment_outcomes()
    write_outcomes(path, outcomes)
    return summarize(read_outcomes(path), control="control", confidence=0.9)


async def shared(model: str, calls_model: str) -> list[PreloadEngine]:
    """
    Two tenants' engines reading one copy of a fitted forecaster and call forecaster,
    as ``server.share_models`` builds them.
    """
    models = SharedModels.load(model, calls_model)
    engines = []
    for tenant in ("acme", "beta"):
        engine = PreloadEngine(
            EngineConfig(tenant=tenant),
            sources={"kb": DictSource({"k": "v"})},
            forecaster=models.forecaster(),
            call_predictor=models.call_predictor(),
        )
        engines.append(engine)
    return engines
