"""
What one warm request costs the server, in one process: the app of ``preload serve``
(``create_app``, its lifespan, a real ``redis-server`` on a free loopback port) called
through ``httpx.ASGITransport``, so that no network, no second process and no client
loop stand between the measurement and the server's own work.

Reads ``<data>/<dataset>/`` (``--data``, ``../shared/data`` by default: dev sessions to
replay, the knowledge file behind ``simulations.serve_plugins``' source, here with a
short latency) and a model from ``preload train`` (``--model``, else none: the
forecaster learns online). Two passes over the same sessions:

1. *Quiet.* Each session is played once under another id to warm its needs, then
   again turn by turn, one request at a time, the engine idle before each (its learner
   drained): a warm request's wall time, its CPU time (the process', and the event
   loop thread's alone), its Redis round trips, and its thread hops (calls into a worker
   thread). ``/healthz`` through the same stack is the yardstick: the figures are also
   given as multiples of it, ratios a busy machine does not change much.
2. *Loaded.* ``--concurrency`` sessions at once, think times divided by ``--compress``,
   so that the learner works while requests are served: the warm requests' server time
   p50/p99, how long their history catch-up took (p50/p99, and how many went to a
   worker thread at all), and the garbage collector's pauses meanwhile.

``--profile FILE`` writes the quiet pass's cProfile (``python -m pstats FILE``) and
prints its top functions by their own time.

    python -m simulations.serve_profile [--data ../shared/data] [--dataset star]
        [--model M.json] [--sessions 40] [--concurrency 20] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import math
import os
import pstats
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np

from preload import read_sessions
from preload.server import ServerSettings, create_app
from preload.server._keys import digest
from simulations._data import add_data_arguments

from .serve_bench import Redis, server_config

KEY = "pk_profile"


@dataclass
class Tally:
    """
    What the instrumented calls counted for one request (its own task only: the
    learner's work and preloads it set off are not counted).
    """

    round_trips: int = 0
    hops: int = 0


REQUEST: ContextVar[Tally | None] = ContextVar("REQUEST", default=None)
CATCH_UPS: list[tuple[float, int]] = []  # each request's history catch-up: seconds, hops


@contextmanager
def instrumented(engines: list[Any]) -> Iterator[None]:
    """
    Count each request's Redis round trips (every command or pipeline its task sends)
    and thread hops (calls into a worker thread), and time its history catch-up.
    """
    from redis.asyncio.connection import AbstractConnection

    send = AbstractConnection.send_packed_command
    run_sync = anyio.to_thread.run_sync

    async def counted_send(self: Any, *args: Any, **kwargs: Any) -> Any:
        tally = REQUEST.get()
        if tally is not None:
            tally.round_trips += 1
        return await send(self, *args, **kwargs)

    async def counted_run_sync(*args: Any, **kwargs: Any) -> Any:
        tally = REQUEST.get()
        if tally is not None:
            tally.hops += 1
        return await run_sync(*args, **kwargs)

    def timing(caught_up: Any) -> Any:
        async def timed_caught_up(session: Any) -> Any:
            tally = REQUEST.get()
            hops = tally.hops if tally is not None else 0
            began = time.perf_counter()
            try:
                return await caught_up(session)
            finally:
                hops = (tally.hops if tally is not None else 0) - hops
                CATCH_UPS.append((time.perf_counter() - began, hops))

        return timed_caught_up

    AbstractConnection.send_packed_command = counted_send  # type: ignore[method-assign]
    anyio.to_thread.run_sync = counted_run_sync  # type: ignore[assignment]
    for engine in engines:
        engine._histories._caught_up = timing(engine._histories._caught_up)
    try:
        yield
    finally:
        AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        anyio.to_thread.run_sync = run_sync
        for engine in engines:
            del engine._histories._caught_up


@dataclass
class Sample:
    wall_s: float
    server_s: float
    cpu_s: float
    loop_cpu_s: float
    round_trips: int
    hops: int
    warm: bool


def server_time(response: httpx.Response) -> float:
    timing = re.search(r"app;dur=([0-9.]+)", response.headers.get("server-timing", ""))
    return float(timing.group(1)) / 1000 if timing else math.nan


async def timed(http: httpx.AsyncClient, path: str, body: Any = None) -> tuple[Any, Sample]:
    """
    One call through the ASGI transport (in this task), with what it cost.
    """
    tally = Tally()
    token = REQUEST.set(tally)
    cpu, loop_cpu, began = time.process_time(), time.thread_time(), time.perf_counter()
    try:
        if body is None:
            response = await http.get(path)
        else:
            response = await http.post(path, json=body)
    finally:
        REQUEST.reset(token)
    wall = time.perf_counter() - began
    cpu, loop_cpu = time.process_time() - cpu, time.thread_time() - loop_cpu
    if response.status_code >= 300:
        raise RuntimeError(f"{path}: {response.status_code} {response.text}")
    got = response.json() if response.status_code == 200 else None
    warm = got is not None and "misses" in got and not got["misses"] and not got["partial_hits"]
    sample = Sample(
        wall,
        server_time(response),
        cpu,
        loop_cpu,
        tally.round_trips,
        tally.hops,
        warm and bool(body and body.get("needs")),
    )
    return got, sample


def body_of(turn: Any, rid: str) -> dict[str, Any]:
    return {"text": turn.text, "state": turn.state, "needs": list(turn.needs), "request_id": rid}


async def quiet(
    https: list[httpx.AsyncClient],
    engines: list[Any],
    sessions: list[Any],
    profile: cProfile.Profile | None,
) -> tuple[dict[str, list[Sample]], list[Sample]]:
    """
    Warm every session's needs under another id, then serve each turn alone (every
    engine idle first): the even sessions on one replica throughout ("same"), the odd
    ones turn by turn on each replica in turn ("other": the replica has neither the
    last request nor its reply, and restores and records them first).
    """
    for session in sessions:
        sid = f"warm-{session.session_id}"
        for i, turn in enumerate(session.turns):
            await timed(https[i % 2], f"/v1/sessions/{sid}/requests", body_of(turn, str(i)))
            if turn.system:
                await timed(https[i % 2], f"/v1/sessions/{sid}/replies", {"text": turn.system})
    probes = [(await timed(https[0], "/healthz"))[1] for _ in range(200)]
    for engine in engines:
        await engine.wait_idle()
    CATCH_UPS.clear()
    samples: dict[str, list[Sample]] = {"same": [], "other": []}
    for n, session in enumerate(sessions):
        kind = "other" if n % 2 else "same"
        sid = session.session_id
        for i, turn in enumerate(session.turns):
            http = https[i % 2 if kind == "other" else 0]
            for engine in engines:
                await engine.wait_idle()
            if profile is not None:
                profile.enable()
            _, sample = await timed(http, f"/v1/sessions/{sid}/requests", body_of(turn, str(i)))
            if profile is not None:
                profile.disable()
            samples[kind].append(sample)
            if turn.system:
                await timed(http, f"/v1/sessions/{sid}/replies", {"text": turn.system})
    return samples, probes


async def loaded(
    https: list[httpx.AsyncClient], sessions: list[Any], concurrency: int, compress: float
) -> list[Sample]:
    """
    Sessions at once, with think times, each request on the replicas in turn and its
    reply on the other (as serve_bench sends them): requests served while the
    learners work.
    """
    samples: list[Sample] = []
    queue = list(reversed(sessions))
    counter = 0

    async def play() -> None:
        nonlocal counter
        while queue:
            session = queue.pop()
            sid = f"load-{session.session_id}"
            previous = 0.0
            for i, turn in enumerate(session.turns):
                think = min(max((turn.t - previous) / compress, 0.05), 3.0) if i else 0.0
                previous = turn.t
                await asyncio.sleep(think)
                counter += 1
                http = https[counter % 2]
                _, sample = await timed(http, f"/v1/sessions/{sid}/requests", body_of(turn, str(i)))
                samples.append(sample)
                if turn.system:
                    other = https[(counter + 1) % 2]
                    await timed(other, f"/v1/sessions/{sid}/replies", {"text": turn.system})

    await asyncio.gather(*(play() for _ in range(concurrency)))
    return samples


def ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q)) if values else math.nan


def median(values: list[float]) -> float:
    return float(np.median(values)) if values else math.nan


def figures(samples: list[Sample], probe: Sample) -> dict[str, Any]:
    """
    The warm requests' figures, and their medians as multiples of ``/healthz``'s.
    """
    warm = [s for s in samples if s.warm]
    return {
        "warm_requests": len(warm),
        "wall_ms_p50": ms([s.wall_s for s in warm], 50),
        "wall_ms_p99": ms([s.wall_s for s in warm], 99),
        "server_ms_p50": ms([s.server_s for s in warm], 50),
        "server_ms_p99": ms([s.server_s for s in warm], 99),
        "cpu_ms_p50": ms([s.cpu_s for s in warm], 50),
        "loop_cpu_ms_p50": ms([s.loop_cpu_s for s in warm], 50),
        "round_trips": median([s.round_trips for s in warm]),
        "round_trips_mean": float(np.mean([s.round_trips for s in warm])) if warm else math.nan,
        "round_trips_max": max((s.round_trips for s in warm), default=0),
        "thread_hops": float(np.mean([s.hops for s in warm])) if warm else math.nan,
        "thread_hops_max": max((s.hops for s in warm), default=0),
        "wall_in_healthz": median([s.wall_s for s in warm]) / probe.wall_s,
        "cpu_in_healthz": median([s.cpu_s for s in warm]) / probe.cpu_s,
    }


async def measure(args: argparse.Namespace, redis: Redis, folder: Path) -> dict[str, Any]:
    data = args.data / args.dataset
    config = server_config(folder, redis.url)
    os.environ.update(
        {
            "PRELOAD_API_KEYS": f"profile:{digest(KEY)}",
            "PRELOAD_BENCH_KNOWLEDGE": str(data / "knowledge.jsonl"),
            "PRELOAD_BENCH_REDIS": redis.url,
            "PRELOAD_BENCH_MEDIAN_MS": "2",
            "PRELOAD_BENCH_P95_MS": "10",
        }
    )
    settings = ServerSettings(
        config=str(config),
        model=str(args.model) if args.model else None,
        sources="simulations.serve_plugins:sources",
    )
    sessions, _ = read_sessions(data / "sessions-dev.jsonl")
    random.Random(args.seed).shuffle(sessions)
    profile = cProfile.Profile() if args.profile else None
    headers = {"Authorization": f"Bearer {KEY}"}
    async with AsyncExitStack() as stack:
        apps = [create_app(settings) for _ in range(2)]  # two replicas in one process
        https = []
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            https.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(transport=transport, base_url="http://x", headers=headers)
                )
            )
        engines = [app.state.server.gates["profile"].engine for app in apps]
        with instrumented(engines):
            samples, probes = await quiet(https, engines, sessions[: args.sessions], profile)
            catch_quiet = list(CATCH_UPS)
            for engine in engines:
                await engine.wait_idle()
            CATCH_UPS.clear()
            chosen = sessions[args.sessions : args.sessions + args.loaded_sessions]
            pauses = apps[0].state.server.gc_pauses  # the process' collections (one app's)
            gc_before = (pauses.count, pauses.total)
            under_load = await loaded(https, chosen, args.concurrency, args.compress)
            catch_loaded = list(CATCH_UPS)
            gc_loaded = {
                "count": pauses.count - gc_before[0],
                "total_ms": (pauses.total - gc_before[1]) * 1000,
                "max_ms": pauses.maximum() * 1000,
            }
    if profile is not None:
        profile.dump_stats(args.profile)
    probe = Sample(
        median([p.wall_s for p in probes]),
        math.nan,
        median([p.cpu_s for p in probes]),
        math.nan,
        0,
        0,
        False,
    )

    def catch_up(timings: list[tuple[float, int]]) -> dict[str, Any]:
        return {
            "count": len(timings),
            "ms_p50": ms([t for t, _ in timings], 50),
            "ms_p99": ms([t for t, _ in timings], 99),
            "with_hop": sum(h > 0 for _, h in timings),
            "ms_p99_with_hop": ms([t for t, h in timings if h > 0], 99),
        }

    return {
        "data": str(data),
        "model": str(args.model) if args.model else None,
        "healthz_wall_ms": probe.wall_s * 1000,
        "healthz_cpu_ms": probe.cpu_s * 1000,
        "quiet_same": figures(samples["same"], probe),
        "quiet_other": figures(samples["other"], probe),
        "quiet_catch_up": catch_up(catch_quiet),
        "loaded": {**figures(under_load, probe), "concurrency": args.concurrency},
        "loaded_catch_up": catch_up(catch_loaded),
        "loaded_gc": gc_loaded,
    }


def print_report(out: dict[str, Any]) -> None:
    print(f"data: {out['data']}; model: {out['model'] or 'none (learned online)'}")
    print(
        f"/healthz through the same stack (the yardstick): {out['healthz_wall_ms']:.3f} ms "
        f"wall, {out['healthz_cpu_ms']:.3f} ms CPU"
    )
    blocks = [
        ("quiet_same", "quiet, one replica (engines idle, one request at a time)"),
        ("quiet_other", "quiet, the other replica (it restores the last turn and records it)"),
        ("loaded", f"loaded ({out['loaded']['concurrency']} sessions at once, replicas in turn)"),
    ]
    for name, title in blocks:
        f = out[name]
        print(f"{title}: {f['warm_requests']} warm requests")
        rows = [
            (
                "wall ms p50 / p99",
                (
                    f"{f['wall_ms_p50']:.2f} / {f['wall_ms_p99']:.2f} "
                    f"(p50 {f['wall_in_healthz']:.1f} x /healthz)"
                ),
            ),
            ("server ms p50 / p99", f"{f['server_ms_p50']:.2f} / {f['server_ms_p99']:.2f}"),
            (
                "CPU ms p50, process / loop",
                (
                    f"{f['cpu_ms_p50']:.2f} / {f['loop_cpu_ms_p50']:.2f} "
                    f"({f['cpu_in_healthz']:.1f} x /healthz)"
                ),
            ),
            (
                "Redis round trips",
                (
                    f"{f['round_trips']:.0f} (mean {f['round_trips_mean']:.2f}, "
                    f"max {f['round_trips_max']})"
                ),
            ),
            ("thread hops", f"{f['thread_hops']:.2f} a request (max {f['thread_hops_max']})"),
        ]
        for row, value in rows:
            print(f"  {row:<28} {value}")
    g = out["loaded_gc"]
    print(
        f"loaded, garbage collections: {g['count']}, {g['total_ms']:.0f} ms in all, the "
        f"longest {g['max_ms']:.1f} ms (every thread stops)"
    )
    for name in ("quiet_catch_up", "loaded_catch_up"):
        c = out[name]
        print(
            f"{name.replace('_', ' ')}: {c['count']} requests, p50 {c['ms_p50']:.3f} ms, p99 "
            f"{c['ms_p99']:.3f} ms; {c['with_hop']} went to a worker thread "
            f"(their p99 {c['ms_p99_with_hop']:.3f} ms)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--dataset", choices=["star", "sgd"], default="star")
    parser.add_argument("--model", type=Path, help="a model from preload train (else none)")
    parser.add_argument("--sessions", type=int, default=40, help="sessions of the quiet pass")
    parser.add_argument(
        "--loaded-sessions", type=int, default=120, help="sessions of the loaded pass"
    )
    parser.add_argument("--concurrency", type=int, default=20, help="sessions at once, loaded")
    parser.add_argument("--compress", type=float, default=30.0, help="think-time divisor")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", type=Path, help="write the quiet pass's cProfile here")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("serve_profile needs redis-server (apt-get install -y redis-server)")
    if not (args.data / args.dataset / "sessions-dev.jsonl").is_file():
        sys.exit(f"serve_profile: no {args.data / args.dataset / 'sessions-dev.jsonl'} (--data)")
    with tempfile.TemporaryDirectory() as tmp:
        redis = Redis(Path(tmp))
        redis.start()
        try:
            out = asyncio.run(measure(args, redis, Path(tmp)))
        finally:
            redis.stop()
    print_report(out)
    if args.profile:
        print(f"cProfile of the quiet pass's warm requests: {args.profile}; by own time:")
        pstats.Stats(str(args.profile)).sort_stats("tottime").print_stats(25)
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
