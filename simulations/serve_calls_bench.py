"""
Tool calls run ahead by ``preload serve``: two replicas on one Redis, over real HTTP.

Reads ``<data>/<dataset>/`` (``--data``, ``../shared/data`` by default; SGD unless
``--dataset``; ``retail``: a folder ``simulations.retail_corpus`` wrote, ``--chained``
for calls that take what the last one returned): the dev sessions to play (the first ``--sessions`` of them, shuffled by
``--seed``, each played once), and a call forecaster (``--calls-model``, else fit on
the train sessions with ``preload train --calls-out``); it says which. For each
strategy it starts a ``redis-server`` on a free loopback port and two replicas
(``preload serve --tools simulations.serve_plugins:tools``: the tools the dev sessions
call, answering with the results they recorded after the replay's ``db`` latency,
lognormal, median 400 ms, p95 2 s, the same for the same call on both replicas; with
``--capacity N`` each replica's tools serve at most N calls at once, the others waiting
their turn, as a busy backend makes them; with ``--shared-backend`` the two replicas
share one backend instead, as a chat server's replicas do: a ``simulations.serve_backend``
process the bench starts on a free loopback port before the replicas (and stops after
them, one per strategy), which they call over HTTP, and which serves at most
``--capacity`` calls at once for both together, first come first served; with
``--tenants N`` the sessions spread over N tenants in turn, each tenant's engine given
the replica's one backend (or client of the shared one) as one source object, or with
``--client-each`` each its own client of it, another object, which with
``--backend-name NAME`` names the backend it calls, its ``backend_name``, so that the
fleet-wide bound counts every tenant's calls to it), then
plays the sessions, ``--concurrency`` at once, as the replay does: each turn's request
(text, state, needs), then, at a turn with ``tool_calls``, the agent's model decides
(lognormal, median 800 ms, p95 3 s: the replay's ``[replay.agent]``, drawn the same for
every strategy) before each of the turn's calls, made one after the other through ``POST
/v1/sessions/{id}/calls`` with the log's exact arguments, then the reply, then a
think time (the log's gap divided by ``--compress``, between 50 ms and 3 s). A session
that ends is deleted, which ends it on the replica that holds it (its learner learns
from it). Requests alternate between the replicas; a turn's calls go to the replica
that took its request (``--route sticky``, the default) or to the other one (``--route
other``, as a load balancer that does not keep a session on one replica may).

Strategies:

- ``off``: ``[calls] speculate = false``: results are shared by exact call (the replay's
  ``lru``).
- ``engine``: the call forecaster given (or fit), which also learns online from the
  sessions that end.
- ``engine_shared`` (not run unless asked): the same forecaster read as a shared model
  (``server.share_models``), which learns nothing online.
- ``engine_shared_learning`` (not run unless asked): the shared model, with a call
  forecaster of the tenant's own learning over it (``server.tenant_learning``).
- ``engine_before_calls`` (not run unless asked): ``engine`` without the forecast after
  a call (``[calls] moments = ["reply", "request"]``).
- ``engine_narrow`` (not run unless asked): ``engine`` with the speculation limits of
  before 0.24 (``[calls] max_in_flight_per_source = 8``, ``workers = 8``), to see
  what they hold back under load (``--concurrency``).
- ``engine_fixed`` (not run unless asked): ``engine`` with a source's limit that does
  not fall while its calls are slow (``[calls] source_slowdown = 0``, as before 0.25),
  to see what the fall buys when the tools' backend is busy (``--capacity``).
- ``engine_fleet`` (not run unless asked): ``engine`` with a bound on the calls run ahead
  at once on a source by all the replicas together (``[calls]
  fleet_max_in_flight_per_source = F``, F from ``--fleet``, 4 by default), to see what it
  holds back, and buys, when the replicas share a busy backend (``--shared-backend
  --capacity N``).

Report (a table, and ``--json PATH``), per strategy: the read-only calls made; of those,
the share served from a result run ahead (``call_hit``: warm, or joined in flight:
``joined``), from the replicas' ``/metrics``; the calls run ahead per read-only call,
and those wasted; the calls not run ahead for the source's limit (``held``; ``slow``:
of those, while it was lowered for the source's slowness) and for the bound of all the
replicas together (``fleet``: ``[calls] fleet_max_in_flight_per_source``, 0 on a server
that does not count them), and the most of that bound's slots the replicas held at once
in Redis (``slots``, sampled every 20 ms: the calls run ahead at once by both); with
``--shared-backend``, the calls the backend served (the
JSON's ``backend_calls``, the agent's and those run ahead); the client's wait for a
read-only call at p50/p95 (as the replay's
``call_wait_p50_ms``/``call_wait_p95_ms``, but measured over HTTP, the round trip
included), and at p95 for the calls that are not read-only (``rw p95``: never run
ahead, they wait only for the backend); the request's client time at p99; and the replicas' loop-lag p99.

    python -m simulations.serve_calls_bench [--dataset sgd] [--sessions 400]
        [--concurrency 60]
        [--strategies off,engine[,engine_shared,engine_shared_learning,engine_before_calls,
        engine_narrow,engine_fixed,engine_fleet]] [--capacity 0] [--shared-backend]
        [--fleet 4] [--tenants 1 [--client-each [--backend-name NAME]]] [--route sticky]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import shutil
import sys
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from preload import LatencyConfig, read_sessions
from preload.calls import slot_name
from preload.replay._simulated import draw
from preload.server import append_key
from simulations._data import (
    add_data_arguments,
    read_only_names,
    unseen_tools,
    without_tools,
    write_log,
)
from simulations.serve_backend import SharedBackend
from simulations.serve_bench import (
    Redis,
    Replica,
    metric,
    metric_total,
    metrics_of,
    quantiles,
    serve_command,
    server_config,
    train,
)

#: The replay's agent decision delay (``[replay.agent]``).
AGENT = LatencyConfig(median_ms=800.0, p95_ms=3000.0)
STRATEGIES = ("off", "engine")
#: The ``[server]`` settings of each strategy ``--strategies`` takes.
SERVER: dict[str, dict[str, object]] = {
    "off": {},
    "engine": {},
    "engine_shared": {"share_models": True},
    "engine_shared_learning": {"share_models": True, "tenant_learning": True},
    "engine_before_calls": {},
    "engine_narrow": {},
    "engine_fixed": {},
    "engine_fleet": {},
}
#: The ``[calls]`` settings of each strategy, beside ``speculate`` (``{fleet}``: ``--fleet``).
CALLS: dict[str, str] = {
    "engine_before_calls": 'moments = ["reply", "request"]\n',
    "engine_narrow": "max_in_flight_per_source = 8\nworkers = 8\n",
    "engine_fixed": "source_slowdown = 0\n",
    "engine_fleet": "fleet_max_in_flight_per_source = {fleet}\n",
}
KNOWN = tuple(SERVER)
COUNTERS = (
    "read_only_calls",
    "call_hits",
    "call_joins",
    "call_misses",
    "call_failures",
    "speculative",
    "speculative_used_after_call",
    "speculative_wasted",
    "speculative_skipped",
    "speculative_skipped_step",
    "speculative_skipped_source",
    "speculative_skipped_slow",
    "speculative_skipped_allowance",
    "speculative_skipped_fleet",  # 0 from a server that does not count it
)


@dataclass
class Played:
    """
    What the client saw of one strategy's run.
    """

    call_waits: list[float] = field(default_factory=list)  # read-only calls, seconds
    write_waits: list[float] = field(default_factory=list)  # the others, seconds
    request_waits: list[float] = field(default_factory=list)
    failed: Counter[str] = field(default_factory=Counter)
    counters: dict[str, float] = field(default_factory=dict)
    lags: list[float] = field(default_factory=list)
    backend_calls: int | None = None  # the shared backend's, with --shared-backend
    most_slots: int = 0  # fleet-wide slots held at once, at most (engine_fleet)
    wall_s: float = 0.0


def config_file(folder: Path, redis_url: str, strategy: str, fleet: int) -> Path:
    """
    ``serve_bench``'s server configuration, with ``[calls] speculate`` and the
    ``[server]`` and ``[calls]`` settings of ``strategy`` (``fleet``: ``--fleet``).
    """
    speculate = strategy != "off"
    path = server_config(folder, redis_url, SERVER[strategy])
    with path.open("a", encoding="utf-8") as out:
        out.write(f"\n[calls]\nspeculate = {'true' if speculate else 'false'}\n")
        out.write(CALLS.get(strategy, "").replace("{fleet}", str(fleet)))
    return path


async def play(
    session: Any,
    http: httpx.AsyncClient,
    replicas: list[Replica],
    order: list[int],
    played: Played,
    args: argparse.Namespace,
    headers: dict[str, str],
) -> None:
    sid = session.session_id
    previous_t = 0.0
    for i, turn in enumerate(session.turns):
        think = min(max((turn.t - previous_t) / args.compress, 0.05), 3.0) if i else 0.0
        previous_t = turn.t
        await asyncio.sleep(think)
        order[0] += 1
        at = replicas[order[0] % len(replicas)].url
        body = {"text": turn.text, "state": turn.state, "needs": list(turn.needs)}
        began = time.monotonic()
        response = await http.post(f"{at}/v1/sessions/{sid}/requests", json=body, headers=headers)
        played.request_waits.append(time.monotonic() - began)
        if response.status_code != 200:
            played.failed[f"request {response.status_code}"] += 1
            return
        if turn.tool_calls:
            rng = random.Random(zlib.crc32(f"{args.seed}:{sid}:{i}".encode()))
            call_at = at if args.route == "sticky" else replicas[(order[0] + 1) % 2].url
            for call in turn.tool_calls:
                await asyncio.sleep(draw(AGENT, rng))  # before each call, as the replay
                began = time.monotonic()
                response = await http.post(
                    f"{call_at}/v1/sessions/{sid}/calls",
                    json={"name": call.name, "args": call.args},
                    headers=headers,
                )
                if response.status_code != 200:
                    played.failed[f"call {response.status_code}"] += 1
                else:
                    waits = played.call_waits if call.read_only else played.write_waits
                    waits.append(time.monotonic() - began)
        if turn.system:
            response = await http.post(
                f"{at}/v1/sessions/{sid}/replies", json={"text": turn.system}, headers=headers
            )
            if response.status_code != 204:
                played.failed[f"reply {response.status_code}"] += 1
    response = await http.delete(
        f"{replicas[order[0] % len(replicas)].url}/v1/sessions/{sid}", headers=headers
    )
    if response.status_code != 204:
        played.failed[f"delete {response.status_code}"] += 1


def scrape(replicas: list[Replica], played: Played) -> None:
    """
    The call counters of both replicas, summed, and their loop-lag p99s.
    """
    for replica in replicas:
        text = metrics_of(replica)
        for name in COUNTERS:  # every tenant's; 0 for a metric the server lacks
            value = metric_total(text, rf"preload_{name}_total\{{[^}}]*\}}")
            played.counters[name] = played.counters.get(name, 0.0) + value
        played.lags.append(metric(text, r'preload_loop_lag_seconds\{quantile="0.99"\}'))


async def count_slots(
    redis_url: str, tenants: list[str], backend: str | None, played: Played
) -> None:
    """
    Until cancelled, every 20 ms: the fleet-wide slots of the tenants' tool backend
    that the replicas hold in Redis (the calls run ahead at once by both together,
    under ``[calls] fleet_max_in_flight_per_source``; each tenant's, and those of the
    ``backend`` the tenants' sources name), the most of them kept.
    """
    import redis.asyncio

    names = [f"preload.slots:{slot_name(t, 'backend')}" for t in tenants]
    if backend is not None:
        names.append(f"preload.slots:{slot_name('', '', backend)}")
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        while True:
            async with client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.zcard(name)
                held = sum(await pipe.execute())
            played.most_slots = max(played.most_slots, held)
            await asyncio.sleep(0.02)
    finally:
        await client.aclose()


async def drive(
    args: argparse.Namespace,
    sessions: list[Any],
    replicas: list[Replica],
    keys: list[str],
    slots: tuple[str, list[str], str | None],
) -> Played:
    played = Played()
    counting = asyncio.create_task(count_slots(*slots, played))
    order = [0]
    # each session its tenant's, in turn
    queue = [(s, keys[i % len(keys)]) for i, s in enumerate(sessions)][::-1]
    limits = httpx.Limits(max_connections=2 * args.concurrency)
    began = time.monotonic()
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def worker() -> None:
            while queue:
                session, key = queue.pop()
                headers = {"Authorization": f"Bearer {key}"}
                await play(session, http, replicas, order, played, args, headers)

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    played.wall_s = time.monotonic() - began
    counting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await counting
    await asyncio.get_running_loop().run_in_executor(None, scrape, replicas, played)
    return played


def run_strategy(strategy: str, args: argparse.Namespace, sessions: list[Any], dev: Path) -> Played:
    with tempfile.TemporaryDirectory(prefix="preload-calls-bench-") as tmp:
        folder = Path(tmp)
        redis = Redis(folder)
        redis.start()
        backend: SharedBackend | None = None
        replicas: list[Replica] = []
        try:
            keys = folder / "keys.jsonl"
            tenants = ["bench"] if args.tenants == 1 else [f"t{i}" for i in range(args.tenants)]
            tenant_keys = [append_key(keys, tenant) for tenant in tenants]
            config = config_file(folder, redis.url, strategy, args.fleet)
            command, env = serve_command(
                config,
                keys,
                args.data / args.dataset,
                redis,
                calls_model=args.calls_model if strategy != "off" else None,
                tools=True,
            )
            env.update(
                PRELOAD_BENCH_SESSIONS=str(dev),
                PRELOAD_BENCH_SEED=str(args.seed),
                PRELOAD_BENCH_CALL_CAPACITY=str(args.capacity),
                PRELOAD_BENCH_CLIENT_EACH="1" if args.client_each else "0",
                PRELOAD_BENCH_BACKEND_NAME=args.backend_name or "",
            )
            if args.shared_backend:  # before the replicas, which call it
                backend = SharedBackend(env)
                backend.start()
                env["PRELOAD_BENCH_BACKEND_URL"] = backend.url
            for name in ("a", "b"):
                replicas.append(Replica(name, command, env))
                replicas[-1].start()
            slots = (redis.url, tenants, args.backend_name)
            played = asyncio.run(drive(args, sessions, replicas, tenant_keys, slots))
            if backend is not None:
                played.backend_calls = backend.calls()
            return played
        finally:
            for replica in replicas:
                replica.stop()
            if backend is not None:
                backend.stop()
            redis.stop()


def figures(played: Played) -> dict[str, Any]:
    c = played.counters
    calls = c.get("read_only_calls", 0.0)
    p50, p95, _ = quantiles(played.call_waits)
    return {
        "read_only_calls": int(calls),
        "call_hit_rate": (c["call_hits"] + c["call_joins"]) / calls if calls else None,
        "call_joins": int(c.get("call_joins", 0)),
        "speculative": c["speculative"] / calls if calls else None,
        "speculative_wasted": c["speculative_wasted"] / calls if calls else None,
        "speculative_skipped": int(c.get("speculative_skipped", 0)),
        **{
            f"speculative_skipped_{budget}": int(c.get(f"speculative_skipped_{budget}", 0))
            for budget in ("step", "source", "slow", "allowance", "fleet")
        },
        "used_after_call": int(c.get("speculative_used_after_call", 0)),
        "call_wait_p50_ms": p50,
        "call_wait_p95_ms": p95,
        "write_wait_p95_ms": quantiles(played.write_waits)[1],
        "request_p99_ms": quantiles(played.request_waits)[2],
        "loop_lag_p99_ms": max(played.lags) * 1000 if played.lags else math.nan,
        "backend_calls": played.backend_calls,
        "most_slots": played.most_slots,
        "failed": dict(played.failed),
        "wall_s": played.wall_s,
    }


def show(rows: dict[str, dict[str, Any]]) -> None:
    width = max(13, *map(len, rows))
    print(
        f"{'strategy':{width}} {'ro calls':>8} {'call hit':>8} {'joined':>6} {'after':>6} "
        f"{'spec/call':>9} {'wasted':>6} {'held':>5} {'slow':>5} {'fleet':>5} {'slots':>5} {'wait p50':>8} "
        f"{'wait p95':>8} "
        f"{'rw p95':>6} {'req p99':>7} {'lag p99':>7}"
    )
    for name, r in rows.items():
        hit = r["call_hit_rate"]
        spec = r["speculative"]
        wasted = r["speculative_wasted"]
        print(
            f"{name:{width}} {r['read_only_calls']:>8} {hit if hit is not None else math.nan:>8.3f} "
            f"{r['call_joins']:>6} {r['used_after_call']:>6} "
            f"{spec if spec is not None else math.nan:>9.2f} "
            f"{wasted if wasted is not None else math.nan:>6.2f} "
            f"{r['speculative_skipped_source']:>5} {r['speculative_skipped_slow']:>5} "
            f"{r['speculative_skipped_fleet']:>5} {r['most_slots']:>5} "
            f"{r['call_wait_p50_ms']:>8.0f} {r['call_wait_p95_ms']:>8.0f} "
            f"{r['write_wait_p95_ms']:>6.0f} {r['request_p99_ms']:>7.0f} {r['loop_lag_p99_ms']:>7.1f}"
        )
        if r["failed"]:
            print(f"  {name}: failed {r['failed']}")
    print(
        "ro calls: read-only calls made; call hit: of those, served from a result run "
        "ahead (warm, or joined in flight: joined); after: of those, run after a call (made "
        "or run ahead); spec/call, wasted: calls run ahead, "
        "and those never made, per read-only call; held: calls not run ahead for "
        "the source's limit ([calls] max_in_flight_per_source); slow: of those, held while "
        "the limit was lowered for the source's slowness ([calls] source_slowdown); fleet: calls "
        "not run ahead for the bound of all the replicas together ([calls] "
        "fleet_max_in_flight_per_source); slots: the most of its slots held at once in "
        "Redis, sampled every 20 ms; wait: the client's wait for a "
        "read-only call, ms (HTTP included); rw p95: the same for the calls that are not "
        "read-only (never run ahead); req p99: a request's client time, ms; lag "
        "p99: the replicas' event-loop lag, ms"
    )


def unseen_logs(logs: Path, share: float, folder: Path) -> Path:
    """
    The train sessions of ``logs`` with the calls of ``share`` of their read-only tools
    taken out, written into ``folder``; says which tools.
    """
    train, _ = read_sessions(logs)
    read_only = read_only_names(train)
    hidden = unseen_tools(read_only, share)
    out = write_log(folder / "sessions-train-unseen.jsonl", without_tools(train, hidden))
    print(f"call forecaster fitted without the calls of {len(hidden)} of {len(read_only)} tools:")
    print(f"  {', '.join(sorted(hidden))}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument(
        "--dataset",
        choices=("sgd", "star", "retail"),
        default="sgd",
        help="retail: simulations.retail_corpus's folder under --data",
    )
    parser.add_argument("--sessions", type=int, default=400, help="dev sessions played")
    parser.add_argument("--concurrency", type=int, default=60, help="sessions at once")
    parser.add_argument("--compress", type=float, default=10.0, help="think-time divisor")
    parser.add_argument("--calls-model", type=Path, help="call forecaster (else fit on train)")
    parser.add_argument(
        "--unseen",
        type=float,
        default=0.0,
        help="fit the call forecaster on train with the calls of this share of the "
        "read-only tools taken out, as other tenants' logs would be (not with --calls-model)",
    )
    parser.add_argument(
        "--capacity",
        type=int,
        default=0,
        help="the tools serve at most this many calls at once on each replica (with "
        "--shared-backend: on the one backend, for both replicas), the others wait their "
        "turn (0: no bound)",
    )
    parser.add_argument(
        "--shared-backend",
        action="store_true",
        help="the replicas share one tool backend, a simulations.serve_backend process "
        "they call over HTTP, rather than each its own in process",
    )
    parser.add_argument(
        "--fleet",
        type=int,
        default=4,
        help="engine_fleet's [calls] fleet_max_in_flight_per_source: calls run ahead at "
        "once on a source by all the replicas together (4)",
    )
    parser.add_argument(
        "--tenants",
        type=int,
        default=1,
        help="the sessions spread over this many tenants, in turn (1)",
    )
    parser.add_argument(
        "--client-each",
        action="store_true",
        help="each tenant its own client of the replica's one backend (another object), "
        "rather than the backend's one client for all",
    )
    parser.add_argument(
        "--backend-name",
        default=None,
        help="with --client-each: each client names the backend it calls so (its "
        "backend_name), so that the fleet-wide bound counts every tenant's calls to it",
    )
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--route", choices=("sticky", "other"), default="sticky")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in strategies if s not in KNOWN]
    if unknown or not strategies:
        sys.exit(f"serve_calls_bench: --strategies takes {', '.join(KNOWN)}; got {unknown}")
    if (
        args.sessions < 1
        or args.concurrency < 1
        or args.compress <= 0
        or args.capacity < 0
        or args.tenants < 1
        or args.fleet < 1
        or (args.backend_name is not None and not args.client_each)
    ):
        sys.exit(
            "serve_calls_bench: --sessions, --concurrency, --compress, --tenants and --fleet "
            "must be positive, --capacity not negative, --backend-name only with --client-each"
        )
    if args.calls_model is not None and not args.calls_model.is_file():
        sys.exit(f"serve_calls_bench: no {args.calls_model} (--calls-model)")
    if not 0 <= args.unseen <= 1 or (args.unseen and args.calls_model is not None):
        sys.exit("serve_calls_bench: --unseen takes a share in [0, 1], without --calls-model")
    if shutil.which("redis-server") is None:
        sys.exit("serve_calls_bench needs redis-server (apt-get install -y redis-server)")
    data = args.data / args.dataset
    dev = data / "sessions-dev.jsonl"
    if not dev.is_file():
        sys.exit(f"serve_calls_bench: no {dev} (--data DIR)")
    sessions, _ = read_sessions(dev)
    random.Random(args.seed).shuffle(sessions)
    sessions = sessions[: args.sessions]
    print(f"data: {data} ({len(sessions)} of sessions-dev, shuffled by seed {args.seed})")
    with tempfile.TemporaryDirectory(prefix="preload-calls-model-") as tmp:
        forecasting = any(s != "off" for s in strategies)
        if forecasting and args.calls_model is None:
            args.calls_model = Path(tmp) / "calls.json"
            logs = data / "sessions-train.jsonl"
            if args.unseen:
                logs = unseen_logs(logs, args.unseen, Path(tmp))
            train(logs, Path(tmp) / "model.json", args.calls_model)
        elif forecasting:
            print(f"call forecaster: {args.calls_model}")
        rows = {}
        for strategy in strategies:
            rows[strategy] = figures(run_strategy(strategy, args, sessions, dev))
    bound = f"{args.capacity} calls at once" if args.capacity else "no bound"
    print(
        f"{len(sessions)} sessions, {args.concurrency} at once, think times / {args.compress:g},"
        " a turn's calls sent to "
        + ("the replica that took its request" if args.route == "sticky" else "the other replica")
        + (
            f"; one tool backend for both replicas, over HTTP ({bound})"
            if args.shared_backend
            else f"; each replica its own tool backend ({bound})"
        )
        + (
            f"; {args.tenants} tenants, "
            + ("each its own client of" if args.client_each else "one source object for")
            + (" the shared backend" if args.shared_backend else " each replica's backend")
            + (f", which each client names {args.backend_name!r}" if args.backend_name else "")
            if args.tenants > 1
            else ""
        )
    )
    show(rows)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
