"""
Many tenants on one replica: every tenant's engine open from start (``server.
max_open_tenants = 0``), against at most ``--max-open`` of them open at once (each value
of a comma-separated list in turn), each opened at its tenant's first request and the
least recently used closed for another; with ``--shared``, also every engine reading one
copy of the models.

One ``preload serve`` replica on a real Redis, ``--tenants`` keys, every tenant's engine
with its own copy of a forecaster fitted on the dataset's train split (``--model``; and
of a call forecaster with ``--calls-model``). The dev sessions are played
``--concurrency`` at once, each by a tenant drawn from a Zipf law of exponent ``--zipf``
(a few tenants busy, most seldom: as a service's customers are), the same draws for both
settings; each turn its request and its reply, the think time between turns the log's
divided by 20 (at most 2 s). Reported for each setting: the seconds until the replica
was ready, its resident memory then and at the end, the client's request times (p50,
p99, max), the replica's event-loop lag (p99 and max, ``/metrics``), and the engines
opened and closed. With ``--shared``, two settings more with ``server.share_models``
(every engine open from start, and at most the first ``--max-open``): one copy of the
models, read at start, for every tenant's engine, which none learns into.

    python -m simulations.tenants_bench [--data ../shared/data] [--dataset star]
        [--tenants 48] [--max-open 24,8] [--sessions 150] [--concurrency 20] [--zipf 1.5]
        [--shared]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from preload import read_sessions
from preload.server import append_key
from simulations._data import add_data_arguments
from simulations._rows import print_rows
from simulations.serve_bench import (
    Redis,
    Replica,
    metric,
    metrics_of,
    played_turns,
    replica_data,
    serve_command,
    server_config,
    train,
)


def tenant_draws(n_sessions: int, n_tenants: int, zipf: float, seed: int = 0) -> list[int]:
    """
    The tenant of each session: tenant ``i`` (from 0) drawn with weight ``1 / (i + 1) **
    zipf``.
    """
    weights = [1 / (i + 1) ** zipf for i in range(n_tenants)]
    return random.Random(seed).choices(range(n_tenants), weights, k=n_sessions)


async def play(
    url: str, sessions: list[Any], keys: list[str], draws: list[int], concurrency: int
) -> tuple[list[float], int, int]:
    """
    Play the sessions, ``concurrency`` at once; the client time of every request, and
    the needs the requests named and how many of them were warm.
    """
    times: list[float] = []
    counted = [0, 0]  # hits, needs
    queue = list(zip(sessions, draws, strict=True))
    limits = httpx.Limits(max_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def worker() -> None:
            while queue:
                session, tenant = queue.pop(0)
                headers = {"Authorization": f"Bearer {keys[tenant]}"}
                path = f"/v1/sessions/{session.session_id}"
                async for turn, answer, _, took in played_turns(http, path, session, headers):
                    times.append(took)
                    answer.raise_for_status()
                    counted[0] += answer.json()["hits"]
                    counted[1] += len(turn.needs)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return times, counted[0], counted[1]


def run_setting(
    max_open: int, shared: bool, args: argparse.Namespace, folder: Path, sessions: list[Any]
) -> dict[str, Any]:
    """
    Start Redis and a replica with ``server.max_open_tenants = max_open`` (and
    ``server.share_models = shared``), play the sessions, and return the figures.
    """
    data = args.data / args.dataset
    setting = f"{max_open}{'-shared' if shared else ''}"
    # a Redis of its own: the last setting's cache and sessions (the same ids) would
    # be warm in it, on disk in its append-only file
    store = folder / f"redis-{setting}"
    store.mkdir()
    redis = Redis(store)
    redis.start()
    replica: Replica | None = None
    try:
        keys_file = folder / "keys.jsonl"
        keys_file.unlink(missing_ok=True)
        keys = [append_key(keys_file, f"t{n:03d}") for n in range(args.tenants)]
        server = {"max_open_tenants": max_open, "share_models": shared}
        config = server_config(folder, redis.url, server)
        command, env = serve_command(
            config, keys_file, data, redis, model=args.model, calls_model=args.calls_model
        )
        log = args.logs / f"replica-{setting}.log" if args.logs is not None else None
        if log is not None:
            log.unlink(missing_ok=True)
        replica = Replica("a", command, env, log)
        ready_s = replica.start()
        rss_start = metric(metrics_of(replica), "process_resident_memory_bytes")
        draws = tenant_draws(len(sessions), args.tenants, args.zipf)
        began = time.monotonic()
        times, hits, needs = asyncio.run(play(replica.url, sessions, keys, draws, args.concurrency))
        wall = time.monotonic() - began
        page = metrics_of(replica)
        p50, p99 = np.percentile(np.array(times) * 1000, [50, 99])
        return {
            "max_open_tenants": max_open,
            "share_models": shared,
            "tenants_used": len(set(draws)),
            "ready_s": round(ready_s, 1),
            "rss_start_mb": round(rss_start / 2**20),
            "rss_end_mb": round(metric(page, "process_resident_memory_bytes") / 2**20),
            "requests": len(times),
            "wall_s": round(wall, 1),
            "request_p50_ms": round(float(p50), 1),
            "request_p99_ms": round(float(p99), 1),
            "request_max_ms": round(max(times) * 1000, 1),
            "hit_rate": round(hits / needs, 3) if needs else "-",
            "lag_p99_ms": round(
                metric(page, r'preload_loop_lag_seconds\{quantile="0.99"\}') * 1000, 1
            ),
            "lag_max_ms": round(metric(page, "preload_loop_lag_max_seconds") * 1000, 1),
            "gc_max_ms": round(metric(page, "preload_gc_pause_max_seconds") * 1000, 1),
            "redis_lost": len(re.findall("is unreachable", log.read_text())) if log else "-",
            "opened": int(metric(page, "preload_tenant_engines_opened_total")),
            "closed": int(metric(page, "preload_tenant_engines_closed_total")),
        }
    finally:
        if replica is not None:
            replica.stop()
        redis.stop()


def main() -> None:
    """
    Parse the arguments, run both settings and print the table.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_data_arguments(parser)
    parser.add_argument("--dataset", default="star", help="folder under --data (star)")
    parser.add_argument("--tenants", type=int, default=48, help="tenants' keys (48)")
    parser.add_argument(
        "--max-open", default="24,8", help="the bounded settings' bounds, comma-separated (24,8)"
    )
    parser.add_argument("--sessions", type=int, default=150, help="dev sessions played (150)")
    parser.add_argument("--concurrency", type=int, default=20, help="sessions at once (20)")
    parser.add_argument("--zipf", type=float, default=1.5, help="tenants' popularity law (1.5)")
    parser.add_argument("--model", type=Path, help="a model from 'preload train' (else fit)")
    parser.add_argument("--calls-model", type=Path, help="a call forecaster for every tenant")
    parser.add_argument("--logs", type=Path, help="write each replica's output here")
    parser.add_argument(
        "--shared",
        action="store_true",
        help="also with server.share_models: every engine open from start, and the first bound",
    )
    args = parser.parse_args()
    try:
        bounds = [int(n) for n in args.max_open.split(",")]
    except ValueError:
        parser.error(f"--max-open {args.max_open!r}: give whole numbers, as 24,8")
    if args.tenants < 1 or min(bounds) < 1:
        parser.error("--tenants and every --max-open must be at least 1")
    data = replica_data(parser, args)
    sessions, _ = read_sessions(data / "sessions-dev.jsonl")
    sessions = sessions[: args.sessions]
    with tempfile.TemporaryDirectory(prefix="tenants-bench-") as tmp:
        folder = Path(tmp)
        if args.model is None:
            args.model = folder / "model.json"
            train(data / "sessions-train.jsonl", args.model)
        settings = [(m, False) for m in (0, *bounds)]
        if args.shared:
            settings += [(0, True), (bounds[0], True)]
        rows = [run_setting(m, shared, args, folder, sessions) for m, shared in settings]
    print(
        f"{args.tenants} tenants' keys, {len(sessions)} sessions drawn by Zipf {args.zipf}, "
        f"{args.concurrency} at once; model {args.model.name}"
        + (f", calls model {args.calls_model.name}" if args.calls_model else "")
    )
    print_rows(
        rows,
        "max_open_tenants: 0, every tenant's engine opened at start; share_models: one copy "
        "of the models for every engine, which none learns into (else a copy each); "
        "ready_s: until the replica answered /readyz; rss: its resident memory; request: "
        "the client's time for a request (ms); hit_rate: the requests' needs that were "
        "warm; lag: the replica's event-loop lag (ms); gc_max: its longest garbage "
        "collection (ms); redis_lost: times its cache called Redis unreachable (with "
        "--logs); opened, closed: tenants' engines",
    )


if __name__ == "__main__":
    main()
