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

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import anyio

from .._config import EngineConfig
from .._errors import ConfigError, PreloadError
from .._sources import DictSource
from .._tokens import TiktokenCounter
from ..engine import PreloadEngine
from ..experiments import SessionOutcome
from ..learning import EngineCallPredictor, read_only_tools
from ._clock import VirtualClockLoop
from ._report import ReplayReport, StrategyReport
from ._run import StrategyRun
from ._simulated import SimulatedCallSource, SimulatedSource
from ._strategies import (
    STRATEGIES,
    FittedStrategies,
    call_predictor_for,
    check_known,
    fitted_forecaster,
    strategy_cache,
    strategy_config,
)
from ._tenants import tenant_name, with_capacity
from ._workers import cancel_on_signal, run_here, run_in_processes

if TYPE_CHECKING:
    from .._sessions import Session
    from ..learning import CallPredictor

__all__ = ["MAX_VIRTUAL_S", "check_timeline", "replay", "replay_strategy"]

#: The latest virtual time a replay may reach: up to here the clock still tells
#: tenths of a millisecond apart (one unit in the last place is about 1.2e-4 s).
MAX_VIRTUAL_S = 1e12


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


def check_timeline(sessions: Sequence[Session], config: EngineConfig, seed: int) -> None:
    """
    Refuse a replay whose last turn would come after :data:`MAX_VIRTUAL_S` (or never):
    past it the clock cannot tell a load's latency from no time at all.

    Raises:
        ConfigError: ``replay.arrival_rate`` spreads the sessions too far apart.
    """
    rate = config.replay.arrival_rate
    starts = arrivals(len(sessions), rate, seed)
    ends = (
        start + (s.turns[-1].t if s.turns else 0.0)
        for s, start in zip(sessions, starts, strict=True)
    )
    end = max(ends, default=0.0)
    if not end <= MAX_VIRTUAL_S:  # also catches inf and NaN
        raise ConfigError(
            "replay.arrival_rate",
            f"{rate!r} sessions per second spreads {len(sessions)} sessions over {end:.3g} "
            f"virtual seconds, past the {MAX_VIRTUAL_S:.0e} s up to which the clock tells "
            "milliseconds apart; raise it, or replay fewer sessions",
        )


async def replay_strategy(
    name: str,
    sessions: Sequence[Session],
    knowledge: DictSource,
    config: EngineConfig,
    *,
    train: Sequence[Session] = (),
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    fitted: FittedStrategies | None = None,
) -> StrategyReport:
    """
    Replay ``sessions`` through one strategy; run it on a :class:`VirtualClockLoop`.
    With ``fitted``, its learning strategies' forecasters and call predictor are used
    as they are (the caller runs this in a process of its own).
    """
    if fitted is not None and name in fitted.forecasters:
        forecaster = fitted.forecasters[name]
    else:
        forecaster = fitted_forecaster(name, config, sessions, train)
    calls = SimulatedCallSource(
        [*train, *sessions],
        config.replay.latency_for("db"),
        random.Random(seed + 3),
        capacity=config.replay.call_capacity,
    )
    source = SimulatedSource(knowledge, config.replay.latency, random.Random(seed + 1))
    starts = arrivals(len(sessions), config.replay.arrival_rate, seed)
    cache = strategy_cache(name, config, sessions, starts, source.name)
    counter = TiktokenCounter(config.tokens.encoding, cache_size=config.tokens.cache_size)
    if name == "engine" and fitted is not None and fitted.call_predictor is not None:
        call_predictor: CallPredictor | None = fitted.call_predictor
    else:
        call_predictor = call_predictor_for(name, sessions, train)
    if isinstance(call_predictor, EngineCallPredictor):  # as the engine's own would
        call_predictor = EngineCallPredictor(call_predictor.model, tools=read_only_tools([calls]))
    engines = [
        PreloadEngine(
            strategy_config(name, config).replace(tenant=tenant_name(i, config)),
            sources={source.name: source},
            forecaster=forecaster,
            cache=cache,
            counter=counter,
            offload=False,
            call_sources=[calls],
            call_predictor=call_predictor,
        )
        for i in range(config.replay.tenants)
    ]
    run = StrategyRun(engines, config, seed, forecaster.predicts_states, progress, calls)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for engine in engines:
                await stack.enter_async_context(engine)
            async with anyio.create_task_group() as tg:
                for session, start in zip(sessions, starts, strict=True):
                    tg.start_soon(run.session, session, start)
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        if leaves and all(isinstance(e, PreloadError) for e in leaves):
            raise leaves[0] from None  # bad input, not a bug: its own message says it
        raise
    return run.report()


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


# Rough relative cost of each strategy's replay, to balance the worker processes.
_COST = {
    "engine": 6,
    "markov1": 3,
    "cold": 3,
    "global_oracle": 2,
    "oracle": 1,
    "request_oracle": 1,
    "said_oracle": 1,
    "popular": 1,
    "lru": 1,
}


#: Turns a strategy replays between two progress reports.
_PROGRESS_EVERY = 250


# What every strategy's replay reads: set before the workers fork, which inherit it
# (never pickled).
_JOB: dict[str, Any] = {}


def _run_strategy(name: str, on_progress: Callable[[int], None]) -> tuple[dict[str, Any], float]:
    """
    Replay one strategy of :data:`_JOB` on a virtual clock; its report as a dict and
    the virtual time it took.
    """
    job = _JOB
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        if done[0] >= _PROGRESS_EVERY:
            on_progress(done[0])
            done[0] = 0

    virtual = [0.0]

    async def main() -> StrategyReport:
        cancel_on_signal(asyncio.current_task())
        report = await replay_strategy(
            name,
            job["sessions"],
            job["knowledge"],
            job["config"],
            train=job["train"],
            seed=job["seed"],
            progress=progress,
            fitted=job["fitted"],
        )
        virtual[0] = anyio.current_time()
        return report

    start = time.perf_counter()
    try:
        report = anyio.run(main, backend_options={"loop_factory": VirtualClockLoop})
    finally:
        cancel_on_signal(None)
    report = replace(report, wall_s=round(time.perf_counter() - start, 3))
    if done[0]:
        on_progress(done[0])
    return asdict(report), virtual[0]


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
    tenants: int | None = None,
    capacity: float | None = None,
    fitted: FittedStrategies | None = None,
) -> ReplayReport:
    """
    Replay sessions through several strategies and report each one's figures.

    Args:
        sessions: What to replay.
        knowledge: The texts the sessions' needs refer to.
        config: The engine configuration every strategy shares.
        strategies: Which strategies, from :data:`STRATEGIES`, each once.
        train: Sessions to pre-fit the learning strategies on; without them they start
            cold and learn online.
        seed: Fixes arrivals and latencies (the config's seed when None).
        name: The data set's name in the report.
        on_progress: Called with a strategy's name and a number of turns replayed.
        processes: Worker processes (the config's, else one per core, at most one per
            strategy); 1 replays in this process. An interrupted replay (Ctrl-C, or an
            exception raised by a signal handler) kills its workers before the
            exception leaves.
        tenants: Spread the sessions over this many tenants sharing one cache (the
            config's ``replay.tenants`` when None).
        capacity: Size the cache to this fraction of the working set, in entries and
            bytes (the config's ``cache.max_entries`` and ``max_bytes`` when None).
        fitted: The learning strategies fitted once (:func:`fit_strategies`), used
            instead of fitting them on ``train`` here; every strategy then runs in a
            forked worker process (one at a time when ``processes`` is 1), so that
            each replay starts from the same fitted state.

    Raises:
        ConfigError: A strategy is unknown or named twice, the cache is not in memory,
            the tenants or the capacity are out of range, or the arrival rate spreads
            the sessions beyond what the clock tells apart.

    .. versionchanged:: 0.5
       ``tenants``, ``capacity`` and the ``global_oracle`` strategy.
    .. versionchanged:: 0.6
       ``fitted``.
    """
    config = config or EngineConfig()
    if tenants is not None:
        if isinstance(tenants, bool) or not isinstance(tenants, int) or tenants < 1:
            raise ConfigError("tenants", f"must be 1 or more, got {tenants!r}")
        config = config.replace(replay=replace(config.replay, tenants=tenants))
    _check(strategies, config, processes)
    source = knowledge if isinstance(knowledge, DictSource) else DictSource(knowledge, name="kb")
    if capacity is not None:
        config = with_capacity(config, capacity, sessions, source)
    seed = config.replay.seed if seed is None else seed
    check_timeline(sessions, config, seed)
    start = time.perf_counter()
    workers = processes or config.replay.processes or (os.cpu_count() or 1)
    workers = max(1, min(workers, len(strategies)))
    _JOB.update(
        sessions=list(sessions),
        knowledge=source,
        config=config,
        train=list(train),
        seed=seed,
        fitted=fitted,
    )
    try:
        if workers == 1 and fitted is None:
            results = run_here(strategies, _run_strategy, on_progress)
        else:
            # The learning strategies take longest: start them first.
            heavy_first = sorted(strategies, key=lambda s: -_COST.get(s, 1))
            results = run_in_processes(heavy_first, _run_strategy, workers, on_progress)
    finally:
        _JOB.clear()
    missing = sorted({n for s in sessions for t in s.turns for n in t.needs if n not in source})
    return ReplayReport(
        name=name,
        sessions=len(sessions),
        turns=sum(len(s.turns) for s in sessions),
        states=len({t.state for s in sessions for t in s.turns if t.state is not None}),
        needs=len({n for s in sessions for t in s.turns for n in t.needs}),
        strategies={s: _strategy_report(results[s][0]) for s in strategies},
        wall_s=round(time.perf_counter() - start, 3),
        virtual_s=round(max((v for _, v in results.values()), default=0.0), 3),
        missing_keys=tuple(missing),
    )


def _check(strategies: Sequence[str], config: EngineConfig, processes: int | None) -> None:
    check_known(strategies)
    if len(set(strategies)) != len(strategies):
        raise ConfigError("strategies", f"{list(strategies)} names a strategy twice")
    if config.cache.backend != "memory":
        raise ConfigError(
            "cache.backend",
            f"{config.cache.backend!r}: a replay runs on a virtual clock, and its strategies "
            "must not share warm items, so it keeps each strategy's cache in memory; "
            'use backend = "memory" (Redis is for serving replicas)',
        )
    if processes is not None and processes < 0:
        raise ConfigError("processes", f"must not be negative, got {processes}")


def _strategy_report(data: dict[str, Any]) -> StrategyReport:
    outcomes = tuple(SessionOutcome.from_json(o) for o in data["outcomes"])
    return StrategyReport(**{**data, "waits_ms": tuple(data["waits_ms"]), "outcomes": outcomes})
