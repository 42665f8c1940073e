"""
Replay: recorded sessions run through the real engine on a virtual clock.

Each strategy gets its own engine, the same sessions, the same arrival times and the
same simulated sources. Sessions arrive as a Poisson process and overlap as on a real
server; within a session, each turn arrives at its recorded ``t``. Loads take a
latency drawn from the source's distribution. A need is a *hit* when it is in the
cache when its turn arrives; a preload still in flight then is a *partial hit*, and its
remaining wait counts as latency. The figures are per strategy, and the strategies
run in parallel processes.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np

from .._config import EngineConfig, LatencyConfig
from .._engine import PreloadEngine
from .._errors import ConfigError
from .._sources import DictSource
from ..caches import MemoryCache
from ..learning import (
    EngineForecaster,
    Forecaster,
    MarkovForecaster,
    NullForecaster,
    OracleForecaster,
    PopularForecaster,
)
from ._clock import VirtualClockLoop

if TYPE_CHECKING:
    from .._sessions import Session

__all__ = ["STRATEGIES", "ReplayReport", "SimulatedSource", "StrategyReport", "replay"]

#: Every strategy a replay knows, in report order.
STRATEGIES = ("cold", "lru", "popular", "markov1", "engine", "oracle")

#: Virtual seconds a session lingers after its last turn before it ends (its
#: preloads made after the last turn count as wasted, as on a real server).
SESSION_TAIL_S = 30.0


class SimulatedSource:
    """
    A source whose loads take a random time, drawn per item kind (the key's text
    before its first ``:``) or else from the default distribution.

    Args:
        inner: Where the texts come from.
        latency: Distributions by kind; ``default`` applies to the rest.
        rng: The random generator (seeded by the replay).

    .. versionadded:: 0.1
    """

    def __init__(
        self, inner: DictSource, latency: Mapping[str, LatencyConfig], rng: random.Random
    ) -> None:
        self.name = inner.name
        self.inner = inner
        self.latency = latency
        self.rng = rng
        self.calls = 0

    def __contains__(self, key: object) -> bool:
        return key in self.inner

    def category(self, key: str) -> str:
        """
        The inner source's category of ``key``.
        """
        return self.inner.category(key)

    def delay(self, key: str) -> float:
        """
        Draw one load latency for ``key`` in seconds.
        """
        kind = key.split(":", 1)[0]
        dist = self.latency.get(kind) or self.latency["default"]
        if dist.distribution == "constant":
            return dist.median_ms / 1000
        return self.rng.lognormvariate(math.log(dist.median_ms / 1000), dist.sigma)

    async def fetch(self, key: str) -> str:
        """
        The inner text, after the drawn latency.
        """
        self.calls += 1
        await anyio.sleep(self.delay(key))
        return await self.inner.fetch(key)


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyReport:
    """
    One strategy's figures over a replay.

    .. versionadded:: 0.1
    """

    hit_rate: float
    wasted_ratio: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    tokens_per_turn: float
    top1: float | None
    top3: float | None
    loads: int
    preloads: int
    partial_hits: int = 0
    misses: int = 0
    missing_needs: int = 0
    turns: int = 0
    wall_s: float = field(default=0.0, compare=False)

    def contract(self) -> dict[str, Any]:
        """
        The keys of DESIGN.md's JSON report.
        """
        keys = (
            "hit_rate",
            "wasted_ratio",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "tokens_per_turn",
            "top1",
            "top3",
            "loads",
            "preloads",
        )
        return {k: getattr(self, k) for k in keys}


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayReport:
    """
    A whole replay: the data set and every strategy's figures.

    .. versionadded:: 0.1
    """

    name: str
    sessions: int
    turns: int
    states: int
    needs: int
    strategies: dict[str, StrategyReport]
    wall_s: float
    virtual_s: float
    missing_keys: tuple[str, ...] = field(default=())
    skipped_lines: int = 0

    def to_json(self) -> dict[str, Any]:
        """
        DESIGN.md's report: exactly its keys.
        """
        return {
            "dataset": {
                "name": self.name,
                "sessions": self.sessions,
                "turns": self.turns,
                "states": self.states,
                "needs": self.needs,
            },
            "strategies": {name: rep.contract() for name, rep in self.strategies.items()},
            "wall_s": self.wall_s,
            "virtual_s": self.virtual_s,
        }


def make_forecaster(name: str, config: EngineConfig, sessions: Mapping[str, Session]) -> Forecaster:
    """
    The forecaster behind a strategy.

    Raises:
        ConfigError: The strategy is unknown.
    """
    p = config.prediction
    if name in ("cold", "lru"):
        return NullForecaster()
    if name == "popular":
        return PopularForecaster(top=config.preloader.max_preloads_per_turn)
    if name == "markov1":
        return MarkovForecaster(1, top_states=p.top_states)
    if name == "engine":
        return EngineForecaster.from_config(config)
    if name == "oracle":
        return OracleForecaster(sessions)
    raise ConfigError("strategies", f"unknown strategy {name!r}; choose from {STRATEGIES}")


def arrivals(n: int, rate: float, seed: int) -> list[float]:
    """
    Start times of ``n`` sessions arriving as a Poisson process.
    """
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(n):
        out.append(t)
        t += rng.expovariate(rate)
    return out


async def replay_strategy(
    name: str,
    sessions: Sequence[Session],
    knowledge: DictSource,
    config: EngineConfig,
    *,
    train: Sequence[Session] = (),
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> StrategyReport:
    """
    Replay ``sessions`` through one strategy; run it on a :class:`VirtualClockLoop`.
    """
    by_id = {s.session_id: s for s in sessions}
    forecaster = make_forecaster(name, config, by_id)
    if train:
        forecaster.fit(train)
    source = SimulatedSource(knowledge, config.replay.latency, random.Random(seed + 1))
    engine = PreloadEngine(
        config,
        sources={source.name: source},
        forecaster=forecaster,
        cache=None if name == "cold" else MemoryCache(config.cache),
        offload=False,
    )
    starts = arrivals(len(sessions), config.replay.arrival_rate, seed)
    waits: list[float] = []
    tokens: list[int] = []
    top = [0, 0, 0]  # turns judged, top-1 right, top-3 right
    missing: set[str] = set()

    async def run(session: Session, start: float) -> None:
        for i, turn in enumerate(session.turns):
            await anyio.sleep_until(start + turn.t)
            if forecaster.predicts_states and i > 0 and turn.state is not None:
                forecast = engine.forecast_of(session.session_id)
                states = [s for s, _ in forecast.states[:3]] if forecast else []
                top[0] += 1
                top[1] += bool(states) and states[0] == turn.state
                top[2] += turn.state in states
            ctx = await engine.handle(
                session_id=session.session_id,
                text=turn.text,
                state=turn.state,
                needs=turn.needs,
                user=session.user,
            )
            if turn.system:
                engine.reply(session.session_id, turn.system)
            waits.append(ctx.waited_s)
            tokens.append(ctx.tokens)
            missing.update(ctx.missing)
            if progress is not None:
                progress(1)
        await anyio.sleep(SESSION_TAIL_S)
        engine.end_session(session.session_id)

    async with engine, anyio.create_task_group() as tg:
        for session, start in zip(sessions, starts, strict=True):
            tg.start_soon(run, session, start)
    m = engine.metrics()
    served = m.hits + m.partial_hits + m.misses
    ms = np.percentile(np.array(waits or [0.0]) * 1000, [50, 95, 99])
    return StrategyReport(
        hit_rate=m.hits / served if served else 0.0,
        wasted_ratio=m.wasted / m.preloads if m.preloads else 0.0,
        p50_ms=round(float(ms[0]), 3),
        p95_ms=round(float(ms[1]), 3),
        p99_ms=round(float(ms[2]), 3),
        tokens_per_turn=float(np.mean(tokens)) if tokens else 0.0,
        top1=top[1] / top[0] if forecaster.predicts_states and top[0] else None,
        top3=top[2] / top[0] if forecaster.predicts_states and top[0] else None,
        loads=m.loads + m.preloads,
        preloads=m.preloads,
        partial_hits=m.partial_hits,
        misses=m.misses,
        missing_needs=m.missing,
        turns=len(waits),
    )


# Rough relative cost of each strategy's replay, to balance the worker processes.
_COST = {"engine": 6, "markov1": 3, "cold": 3, "oracle": 1, "popular": 1, "lru": 1}

# State handed to forked worker processes (inherited, never pickled).
_JOB: dict[str, Any] = {}


def _run_in_process(name: str) -> tuple[str, dict[str, Any], float]:
    job = _JOB
    progress_queue = job["queue"]
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        if done[0] >= 250:
            progress_queue.put((name, done[0]))
            done[0] = 0

    virtual = [0.0]

    async def main() -> StrategyReport:
        report = await replay_strategy(
            name,
            job["sessions"],
            job["knowledge"],
            job["config"],
            train=job["train"],
            seed=job["seed"],
            progress=progress,
        )
        virtual[0] = anyio.current_time()
        return report

    start = time.perf_counter()
    report = anyio.run(main, backend_options={"loop_factory": VirtualClockLoop})
    report = replace(report, wall_s=round(time.perf_counter() - start, 3))
    progress_queue.put((name, done[0]))
    return name, asdict(report), virtual[0]


def replay(
    sessions: Sequence[Session],
    knowledge: Mapping[str, str] | DictSource,
    config: EngineConfig | None = None,
    *,
    strategies: Sequence[str] = STRATEGIES,
    train: Sequence[Session] = (),
    seed: int | None = None,
    name: str = "sessions",
    on_progress: Callable[[str, int], None] | None = None,
    processes: int | None = None,
) -> ReplayReport:
    """
    Replay sessions through several strategies and report each one's figures.

    Args:
        sessions: What to replay.
        knowledge: The texts the sessions' needs refer to.
        config: The engine configuration every strategy shares.
        strategies: Which strategies, from :data:`STRATEGIES`.
        train: Sessions to pre-fit the learning strategies on; without them they start
            cold and learn online.
        seed: Fixes arrivals and latencies (the config's seed when None).
        name: The data set's name in the report.
        on_progress: Called with a strategy's name and a number of turns replayed.
        processes: Worker processes (the config's, else one per core, at most one per
            strategy); 1 replays in this process.

    Raises:
        ConfigError: A strategy is unknown, or the cache is not in memory.
    """
    config = config or EngineConfig()
    for s in strategies:
        if s not in STRATEGIES:
            raise ConfigError("strategies", f"unknown strategy {s!r}; choose from {STRATEGIES}")
    if config.cache.backend != "memory":
        raise ConfigError(
            "cache.backend",
            f"{config.cache.backend!r}: a replay runs on a virtual clock, and its strategies "
            "must not share warm items, so it keeps each strategy's cache in memory; "
            'use backend = "memory" (Redis is for serving replicas)',
        )
    source = knowledge if isinstance(knowledge, DictSource) else DictSource(knowledge, name="kb")
    seed = config.replay.seed if seed is None else seed
    start = time.perf_counter()
    workers = processes or config.replay.processes or (os.cpu_count() or 1)
    workers = max(1, min(workers, len(strategies)))
    results: dict[str, tuple[dict[str, Any], float]] = {}
    ctx = multiprocessing.get_context("fork") if workers > 1 else None
    progress_queue: Any = ctx.Queue() if ctx is not None else queue.SimpleQueue()
    _JOB.update(
        sessions=list(sessions),
        knowledge=source,
        config=config,
        train=list(train),
        seed=seed,
        queue=progress_queue,
    )
    try:
        if ctx is None:
            for s in strategies:
                _, rep, virtual = _run_in_process(s)
                results[s] = (rep, virtual)
                _drain(progress_queue, on_progress)
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                # The learning strategies take longest: start them first.
                heavy_first = sorted(strategies, key=lambda s: -_COST.get(s, 1))
                futures = [pool.submit(_run_in_process, s) for s in heavy_first]
                while not all(f.done() for f in futures):
                    _drain(progress_queue, on_progress, timeout=0.2)
                for f in futures:
                    s, rep, virtual = f.result()
                    results[s] = (rep, virtual)
                _drain(progress_queue, on_progress)
    finally:
        _JOB.clear()
    missing = sorted({n for s in sessions for t in s.turns for n in t.needs if n not in source})
    return ReplayReport(
        name=name,
        sessions=len(sessions),
        turns=sum(len(s.turns) for s in sessions),
        states=len({t.state for s in sessions for t in s.turns if t.state is not None}),
        needs=len({n for s in sessions for t in s.turns for n in t.needs}),
        strategies={s: StrategyReport(**results[s][0]) for s in strategies},
        wall_s=round(time.perf_counter() - start, 3),
        virtual_s=round(max((v for _, v in results.values()), default=0.0), 3),
        missing_keys=tuple(missing),
    )


def _drain(
    progress_queue: Any, on_progress: Callable[[str, int], None] | None, timeout: float = 0.0
) -> None:
    try:
        item = progress_queue.get(timeout=timeout) if timeout else progress_queue.get_nowait()
    except queue.Empty:
        return
    while True:
        if on_progress is not None:
            on_progress(*item)
        try:
            item = progress_queue.get_nowait()
        except queue.Empty:
            return
