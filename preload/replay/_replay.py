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
import math
import os
import random
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import numpy as np

from .._config import EngineConfig, ExperimentsConfig
from .._errors import ConfigError, InputError, PreloadError
from .._sources import DictSource
from .._tokens import TiktokenCounter
from ..caches import MemoryCache
from ..engine import PreloadEngine
from ..experiments import OutcomeCounts, SessionOutcome
from ..learning import (
    CallPredictor,
    EngineCallPredictor,
    EngineForecaster,
    Forecaster,
    MarkovForecaster,
    NullForecaster,
    OracleCallPredictor,
    OracleForecaster,
    PopularForecaster,
)
from ._clock import VirtualClockLoop
from ._report import ReplayReport, StrategyReport
from ._simulated import SimulatedCallSource, SimulatedSource, draw
from ._tenants import BeladyValue, tenant_name, tenant_of, with_capacity
from ._workers import cancel_on_signal, run_here, run_in_processes

if TYPE_CHECKING:
    from .._sessions import Session, Turn
    from ..window import Context

__all__ = [
    "ALL_STRATEGIES",
    "LEARNING_STRATEGIES",
    "MAX_VIRTUAL_S",
    "STRATEGIES",
    "FittedStrategies",
    "check_timeline",
    "fit_strategies",
    "replay",
]

#: The strategies a replay runs unless told otherwise, in report order.
STRATEGIES = ("cold", "lru", "popular", "markov1", "engine", "oracle")

#: Every strategy a replay knows: the default ones, ``global_oracle`` (knows every
#: session's future needs and times, preloads exactly what will be used and evicts
#: what is used furthest in the future: the ceiling of a shared cache) and
#: ``request_oracle`` (the oracle, but a turn's calls start only as its request
#: arrives: the ceiling of forecasting calls from the request) and ``said_oracle``
#: (the oracle, but a call starts before its request only when its arguments were
#: said by then: the ceiling of forecasting calls from what was said).
ALL_STRATEGIES = (*STRATEGIES, "global_oracle", "request_oracle", "said_oracle")

#: The strategies that know the sessions' future.
_ORACLES = ("oracle", "global_oracle", "request_oracle", "said_oracle")

#: The strategies that learn from training sessions (the others fit nothing).
LEARNING_STRATEGIES = ("popular", "markov1", "engine")

#: A read-only call that waited its whole latency, less this, ran only when asked (it
#: joined no call in flight).
RAN_TOLERANCE_S = 1e-3

#: Virtual seconds a session lingers after its last turn before it ends (its
#: preloads made after the last turn count as wasted, as on a real server).
SESSION_TAIL_S = 30.0

#: The latest virtual time a replay may reach: up to here the clock still tells
#: tenths of a millisecond apart (one unit in the last place is about 1.2e-4 s).
MAX_VIRTUAL_S = 1e12


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
    if name in _ORACLES:
        return OracleForecaster(sessions)
    raise ConfigError("strategies", f"unknown strategy {name!r}; choose from {ALL_STRATEGIES}")


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


@dataclass(frozen=True, slots=True, kw_only=True)
class FittedStrategies:
    """
    The learning strategies fitted once on training sessions (:func:`fit_strategies`),
    for several replays of the same sessions, such as a sweep of cache capacities.

    A replay given them runs every strategy in a forked worker process, which learns
    online into its own copy: each replay starts from the same fitted state and
    reports what a replay that fitted its own would.

    .. versionadded:: 0.6
    """

    #: The fitted forecaster of each learning strategy, by strategy name.
    forecasters: Mapping[str, Forecaster]
    #: The engine strategy's call predictor, fitted on the training sessions' calls.
    call_predictor: CallPredictor | None = None


def fit_strategies(
    train: Sequence[Session],
    config: EngineConfig | None = None,
    *,
    strategies: Sequence[str] = LEARNING_STRATEGIES,
) -> FittedStrategies:
    """
    Fit the learning strategies among ``strategies`` on ``train`` once, as
    :func:`replay` would with ``train=train`` (``config``'s ``[prediction]``).

    Raises:
        ConfigError: A strategy is unknown.
        InputError: A strategy cannot learn from ``train``.

    .. versionadded:: 0.6
    """
    config = config or EngineConfig()
    _check_known(strategies)
    learning = [name for name in strategies if name in LEARNING_STRATEGIES]
    return FittedStrategies(
        forecasters={name: _fitted(name, config, (), train) for name in learning},
        call_predictor=_call_predictor("engine", (), train) if "engine" in learning else None,
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
        forecaster = _fitted(name, config, sessions, train)
    calls = SimulatedCallSource(
        [*train, *sessions],
        config.replay.latency_for("db"),
        random.Random(seed + 3),
    )
    source = SimulatedSource(knowledge, config.replay.latency, random.Random(seed + 1))
    starts = arrivals(len(sessions), config.replay.arrival_rate, seed)
    cache = _strategy_cache(name, config, sessions, starts, source.name)
    counter = TiktokenCounter(config.tokens.encoding, cache_size=config.tokens.cache_size)
    if name == "engine" and fitted is not None and fitted.call_predictor is not None:
        call_predictor: CallPredictor | None = fitted.call_predictor
    else:
        call_predictor = _call_predictor(name, sessions, train)
    engines = [
        PreloadEngine(
            _strategy_config(name, config).replace(tenant=tenant_name(i, config)),
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
    run = _Run(engines, config, seed, forecaster.predicts_states, progress, calls)
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


def _strategy_cache(
    name: str,
    config: EngineConfig,
    sessions: Sequence[Session],
    starts: Sequence[float],
    source: str,
) -> MemoryCache | None:
    """
    The cache every tenant of a strategy shares: none for ``cold``; LRU for ``lru``
    (it forecasts nothing); for ``global_oracle``, every entry is worth how soon it
    is used next (Belady), compared over the whole cache; else the configured one.
    """
    if name == "cold":
        return None
    if name == "lru":
        return MemoryCache(replace(config.cache, eviction="lru"))
    if name == "global_oracle":
        whole = replace(config.cache, eviction="value", eviction_sample=config.cache.max_entries)
        return MemoryCache(whole, value=BeladyValue.of(sessions, starts, source, config))
    return MemoryCache(config.cache)


def _strategy_config(name: str, config: EngineConfig) -> EngineConfig:
    """
    The strategy's configuration: only ``engine`` and the oracles speculate calls (the
    oracles after the reply too, the earliest moment, but ``request_oracle`` only as
    the request arrives; ``said_oracle`` runs only what was said after the reply);
    only ``engine`` runs the experiment (``[experiments]``), the others the base
    configuration.
    """
    if name != "engine" and config.experiments.enabled:
        config = config.replace(experiments=ExperimentsConfig())
    if name in _ORACLES and config.calls.speculate:
        # the ceiling runs each call at the earliest moment, whatever the engine's are
        moments = ("request",) if name == "request_oracle" else ("reply", "request")
        return config.replace(calls=replace(config.calls, moments=moments))
    if name == "engine" or not config.calls.speculate:
        return config
    return config.replace(calls=replace(config.calls, speculate=False))


def _call_predictor(
    name: str, sessions: Sequence[Session], train: Sequence[Session]
) -> CallPredictor | None:
    if name in _ORACLES:
        by_id = {s.session_id: s for s in sessions}
        return OracleCallPredictor(by_id, said_first=name == "said_oracle")
    if name != "engine":
        return None
    predictor = EngineCallPredictor()
    if any(t.tool_calls for s in train for t in s.turns):
        predictor.fit(train)
    return predictor


class _Run:
    """
    One strategy's replay: drives each session's turns through the engine (the
    request, the agent deciding, its tool calls, the reply) and collects the figures.
    """

    def __init__(
        self,
        engines: Sequence[PreloadEngine],
        config: EngineConfig,
        seed: int,
        judge_states: bool,
        progress: Callable[[int], None] | None,
        calls: SimulatedCallSource | None = None,
    ) -> None:
        self.engines = engines
        self.calls = calls
        self.agent = config.replay.agent
        self.seed = seed
        self.judge_states = judge_states
        self.progress = progress
        self.waits: list[float] = []
        self.turn_waits: list[float] = []
        self.call_waits: list[float] = []
        self.call_ran: list[bool] = []  # per read-only call: it ran only when asked
        self.tokens: list[int] = []
        self.top = [0, 0, 0]  # turns judged, top-1 right, top-3 right
        self.missing: set[str] = set()
        self.failed_calls = 0
        self.virtual_end = 0.0
        self.reused: list[int] = []
        self.costs: list[float] = []
        self.naive_costs: list[float] = []
        self.recall = [0, 0]  # needs in the window, needs

    def engine_of(self, session_id: str) -> PreloadEngine:
        """
        The engine of the session's tenant.
        """
        return self.engines[tenant_of(session_id, len(self.engines))]

    async def session(self, session: Session, start: float) -> None:
        """
        Replay one session from ``start`` on.
        """
        engine = self.engine_of(session.session_id)
        for i, turn in enumerate(session.turns):
            await anyio.sleep_until(start + turn.t)
            if i > 0:
                self._judge(engine, session.session_id, turn)
            ctx = await engine.handle(
                session_id=session.session_id,
                text=turn.text,
                state=turn.state,
                needs=turn.needs,
                user=session.user,
            )
            if ctx.arm is not None:  # an experiment: the answer used the turn's needs
                engine.feedback(session.session_id, used=turn.needs)
            waited = ctx.waited_s
            self._price(ctx, turn)
            if turn.tool_calls:
                waited += await self._calls(engine, session.session_id, i, turn)
            if turn.system:
                engine.reply(session.session_id, turn.system)
            self.waits.append(ctx.waited_s)
            self.turn_waits.append(waited)
            self.tokens.append(ctx.tokens)
            self.missing.update(ctx.missing)
            if self.progress is not None:
                self.progress(1)
        await anyio.sleep(SESSION_TAIL_S)
        engine.end_session(session.session_id)

    def _price(self, ctx: Context, turn: Turn) -> None:
        """
        What the provider would charge for the window, laid out as configured and
        naively, and how many of the turn's needs it holds.
        """
        self.reused.append(ctx.prefix_reused_tokens)
        self.costs.append(ctx.input_cost)
        self.naive_costs.append(ctx.naive_input_cost)
        if turn.needs:
            held = {item.key for item in ctx.items}
            self.recall[0] += sum(need in held for need in turn.needs)
            self.recall[1] += len(turn.needs)

    def _judge(self, engine: PreloadEngine, session_id: str, turn: Turn) -> None:
        """
        Count whether the forecast made before ``turn`` had its state first, or in
        the first three.
        """
        if not self.judge_states or turn.state is None:
            return
        forecast = engine.forecast_of(session_id)
        if forecast is None:
            return
        states = [s for s, _ in forecast.states[:3]]
        self.top[0] += 1
        self.top[1] += bool(states) and states[0] == turn.state
        self.top[2] += turn.state in states

    async def _calls(self, engine: PreloadEngine, session_id: str, index: int, turn: Turn) -> float:
        """
        The agent decides (a drawn delay, the same for every strategy), then makes the
        turn's calls one after the other; the time they waited for results.
        """
        rng = random.Random(zlib.crc32(f"{self.seed}:{session_id}:{index}".encode()))
        await anyio.sleep(draw(self.agent, rng))
        waited = 0.0
        for call in turn.tool_calls:
            start = anyio.current_time()
            try:
                await engine.call(session_id, call.name, call.args)
            except Exception:  # noqa: BLE001  a failed call is counted; the turn goes on
                self.failed_calls += 1
            wait = anyio.current_time() - start
            waited += wait
            if call.read_only:
                self.call_waits.append(wait)
                self.call_ran.append(self._ran_when_asked(call.name, call.args, wait))
        return waited

    def _ran_when_asked(self, name: str, args: Mapping[str, Any], wait: float) -> bool:
        """
        Whether a call that waited ``wait`` ran only when the agent asked (it waited its
        whole latency), rather than joining a call in flight (it waited less).
        """
        if self.calls is None or wait <= 0:
            return False
        return wait >= self.calls.latency_of(name, args) - RAN_TOLERANCE_S

    def _tail(self) -> tuple[int, int]:
        """
        Of the slowest tenth of the read-only calls that waited, how many ran only
        when asked and how many joined a call in flight.
        """
        slowest = sorted(range(len(self.call_waits)), key=lambda i: -self.call_waits[i])
        tail = [i for i in slowest[: math.ceil(len(slowest) / 10)] if self.call_waits[i] > 0]
        ran = sum(self.call_ran[i] for i in tail)
        return ran, len(tail) - ran

    def report(self) -> StrategyReport:
        """
        The strategy's figures.
        """
        m = _total([e.metrics() for e in self.engines])
        c = _total([e.call_statistics() for e in self.engines])
        served = m.hits + m.partial_hits + m.misses
        ms = _percentiles(self.waits, (50, 95, 99))
        calls = c.read_only_calls
        call_ms = _percentiles(self.call_waits, (50, 95)) if calls else (None, None)
        tail_ran, tail_joined = self._tail()
        judged = self.judge_states and self.top[0]
        return StrategyReport(
            hit_rate=m.hits / served if served else None,
            wasted_ratio=m.wasted / m.preloads if m.preloads else 0.0,
            p50_ms=ms[0],
            p95_ms=ms[1],
            p99_ms=ms[2],
            tokens_per_turn=float(np.mean(self.tokens)) if self.tokens else 0.0,
            top1=self.top[1] / self.top[0] if judged else None,
            top3=self.top[2] / self.top[0] if judged else None,
            loads=m.loads + m.preloads,
            preloads=m.preloads,
            partial_hits=m.partial_hits,
            misses=m.misses,
            missing_needs=m.missing,
            turns=len(self.waits),
            call_hit_rate=(c.call_hits + c.call_joins) / calls if calls else None,
            call_wait_p50_ms=call_ms[0],
            call_wait_p95_ms=call_ms[1],
            speculative_calls=c.speculative / calls if calls else None,
            speculative_wasted=c.speculative_wasted / calls if calls else None,
            turn_wait_p95_ms=_percentiles(self.turn_waits, (95,))[0],
            read_only_calls=calls,
            used_after_reply=c.used_after_reply,
            used_at_request=c.used_at_request,
            call_tail_ran=tail_ran,
            call_tail_joined=tail_joined,
            waits_ms=tuple(w * 1000 for w in self.waits),
            prefix_reused_tokens=_mean(self.reused),
            input_cost_per_turn=_mean(self.costs),
            naive_input_cost_per_turn=_mean(self.naive_costs),
            needs_in_window_recall=self.recall[0] / self.recall[1] if self.recall[1] else None,
            outcomes=tuple(o for e in self.engines for o in e.experiment_outcomes()),
            deferred=m.deferred,
            ttl_skipped=m.ttl_skipped,
            rejected=m.rejected,
            preloads_lost=m.preloads_lost,
        )


def _mean(values: Sequence[float]) -> float:
    return round(float(np.mean(values)), 6) if values else 0.0


S = TypeVar("S")


def _total(snapshots: Sequence[S]) -> S:
    """
    The snapshots of every tenant's engine as one: counts added up.
    """
    first = snapshots[0]
    if len(snapshots) == 1:
        return first
    sums = {
        f.name: sum(getattr(s, f.name) for s in snapshots)
        for f in fields(first)  # type: ignore[arg-type]
        if type(getattr(first, f.name)) in (int, float)
    }
    return replace(first, **sums)  # type: ignore[type-var]


def _percentiles(seconds: Sequence[float], qs: Sequence[float]) -> tuple[float, ...]:
    """
    Percentiles of waits given in seconds, in milliseconds (three decimals).
    """
    ms = np.percentile(np.array(seconds or [0.0]) * 1000, list(qs))
    return tuple(round(float(v), 3) for v in ms)


def _fitted(
    name: str, config: EngineConfig, sessions: Sequence[Session], train: Sequence[Session]
) -> Forecaster:
    """
    The strategy's forecaster, fitted on ``train`` when there is any.

    Raises:
        InputError: It cannot learn from ``train`` (the engine names the states of
            turns without one from their texts, and some texts cannot be learned from).
    """
    forecaster = make_forecaster(name, config, {s.session_id: s for s in sessions})
    if not train:
        return forecaster
    unlabelled = any(t.state is None for s in train for t in s.turns)
    try:
        forecaster.fit(train)
    except PreloadError:
        raise
    except ValueError as exc:
        if not unlabelled:
            raise
        raise InputError(
            "the training sessions",
            None,
            f"strategy {name!r} cannot learn to name states from the texts of their turns "
            f"without a 'state' ({exc}); give those turns a 'state'",
        ) from None
    return forecaster


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


def _check_known(strategies: Sequence[str]) -> None:
    for s in strategies:
        if s not in ALL_STRATEGIES:
            raise ConfigError("strategies", f"unknown strategy {s!r}; choose from {ALL_STRATEGIES}")


def _check(strategies: Sequence[str], config: EngineConfig, processes: int | None) -> None:
    _check_known(strategies)
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
    outcomes = tuple(
        SessionOutcome(**{**o, "counts": OutcomeCounts(**o["counts"]) if o["counts"] else None})
        for o in data["outcomes"]
    )
    return StrategyReport(**{**data, "waits_ms": tuple(data["waits_ms"]), "outcomes": outcomes})
