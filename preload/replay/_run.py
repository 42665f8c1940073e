"""
One strategy's replay of the sessions on its engines: each session's turns at their
times, their needs, calls and feedback, and the strategy's report from what they waited
for and what the engines counted.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import numpy as np

from ._report import StrategyReport
from ._simulated import SimulatedCallSource, draw
from ._tenants import tenant_of

if TYPE_CHECKING:
    from .._config import EngineConfig
    from .._sessions import Session, Turn
    from ..engine import PreloadEngine
    from ..window import Context


#: A read-only call that waited its whole latency, less this, ran only when asked (it
#: joined no call in flight).
RAN_TOLERANCE_S = 1e-3


#: Virtual seconds a session lingers after its last turn before it ends (its
#: preloads made after the last turn count as wasted, as on a real server).
SESSION_TAIL_S = 30.0


class StrategyRun:
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
        self.decides = config.replay.agent_decides
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
        The agent decides (a drawn delay, the same for every strategy) before each of
        the turn's calls (or once before all of them, ``replay.agent_decides``), which
        it makes one after the other; the time they waited for results.
        """
        rng = random.Random(zlib.crc32(f"{self.seed}:{session_id}:{index}".encode()))
        waited = 0.0
        for i, call in enumerate(turn.tool_calls):
            if i == 0 or self.decides == "each_call":
                await anyio.sleep(draw(self.agent, rng))
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
        m = total([e.metrics() for e in self.engines])
        c = total([e.call_statistics() for e in self.engines])
        served = m.hits + m.partial_hits + m.misses
        ms = percentiles(self.waits, (50, 95, 99))
        calls = c.read_only_calls
        call_ms = percentiles(self.call_waits, (50, 95)) if calls else (None, None)
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
            turn_wait_p95_ms=percentiles(self.turn_waits, (95,))[0],
            read_only_calls=calls,
            used_after_reply=c.used_after_reply,
            used_at_request=c.used_at_request,
            used_after_call=c.used_after_call,
            call_tail_ran=tail_ran,
            call_tail_joined=tail_joined,
            speculative_skipped_step=c.speculative_skipped_step,
            speculative_skipped_source=c.speculative_skipped_source,
            speculative_skipped_slow=c.speculative_skipped_slow,
            speculative_skipped_allowance=c.speculative_skipped_allowance,
            waits_ms=tuple(w * 1000 for w in self.waits),
            prefix_reused_tokens=mean(self.reused),
            input_cost_per_turn=mean(self.costs),
            naive_input_cost_per_turn=mean(self.naive_costs),
            needs_in_window_recall=self.recall[0] / self.recall[1] if self.recall[1] else None,
            outcomes=tuple(o for e in self.engines for o in e.experiment_outcomes()),
            deferred=m.deferred,
            ttl_skipped=m.ttl_skipped,
            rejected=m.rejected,
            preloads_lost=m.preloads_lost,
        )


def mean(values: Sequence[float]) -> float:
    return round(float(np.mean(values)), 6) if values else 0.0


S = TypeVar("S")


def total(snapshots: Sequence[S]) -> S:
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


def percentiles(seconds: Sequence[float], qs: Sequence[float]) -> tuple[float, ...]:
    """
    Percentiles of waits given in seconds, in milliseconds (three decimals).
    """
    ms = np.percentile(np.array(seconds or [0.0]) * 1000, list(qs))
    return tuple(round(float(v), 3) for v in ms)
