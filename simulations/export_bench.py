"""
Training again on what was served: ``GET /v1/sessions`` of a real ``preload serve``
replica on a real Redis, over HTTP.

Reads ``<data>/<dataset>/`` (``--data``, ``../shared/data`` by default; STAR unless
``--dataset``). It plays ``--sessions`` train sessions (shuffled by ``--seed``),
``--concurrency`` at once, through one replica that runs their tools
(``simulations.serve_plugins:tools``: the results the log recorded, after a lognormal
latency of median 5 ms, p95 20 ms; nothing run ahead): each turn's request (text, state,
needs), its calls through ``POST /v1/sessions/{id}/calls``, its reply. It writes
``--bulk`` (20,000) more sessions, of another tenant, straight into the store (the same
sessions over again, as the replica stores them, served over the last :data:`BULK_DAYS`
days, evenly). Then it exports the bulk tenant's sessions while a probe sends a request
every 20 ms to a session of a third tenant, then the bulk tenant's last day
(``?since=``), then the played tenant's. It reports:

- each export: sessions, bytes, wall time and rate (for the played tenant also its
  turns and tool calls, read-only ones apart); the last day's reads the sessions of
  the day alone (the tenant's index on Redis), so its time is the day's share of the
  whole export's;
- the probe's request time during the bulk export against the same probe just before
  (p50, p99, max, in ms; the client's, HTTP included);
- what the export teaches: ``preload train --calls-out`` on the same sessions from the
  log, from the export as sent (in the store's order), and from the export put in the
  log's order, each call forecaster asked at the request of every turn of ``--dev``
  dev sessions (as ``call_forecast_bench``: the share of read-only calls among its
  guesses of p >= 0.05, and its guesses a call). A fit holds out every fifth session
  it is given to calibrate on, so the order moves the figures by a few points; in the
  log's order, an export that lost nothing the forecaster reads gives the log's.

    python -m simulations.export_bench [--dataset star] [--sessions 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from preload import read_sessions
from preload.learning import EngineCallPredictor
from preload.server import append_key
from preload.server._store_redis import RedisSessionStore
from simulations._data import add_data_arguments, corpus_folders, write_log
from simulations.call_forecast_bench import evaluate, load_sessions, ours
from simulations.serve_bench import (
    Redis,
    Replica,
    post,
    quantiles,
    serve_command,
    server_config,
)

PROBE_EVERY_S = 0.02
#: The bulk sessions were served over this many days, evenly (within the store's TTL).
BULK_DAYS = 6
DAY_S = 86_400.0


async def play(session: Any, http: httpx.AsyncClient, replica: Replica) -> int:
    """
    One session's turns (request, calls, reply), each retried as clients do (under its
    request or call id, so that a retry is not recorded twice); the calls that failed.
    """
    failed = 0
    base = f"/v1/sessions/{session.session_id}"
    for i, turn in enumerate(session.turns):
        body = {"text": turn.text, "state": turn.state, "needs": list(turn.needs)}
        response, _, _ = await post(
            http, [replica], 0, f"{base}/requests", {**body, "request_id": f"r{i}"}
        )
        if response is None or response.status_code != 200:
            raise RuntimeError(f"{base}: request {i} failed: {response}")
        for j, call in enumerate(turn.tool_calls):
            sent = {"name": call.name, "args": call.args, "call_id": f"c{i}.{j}"}
            answer, _, _ = await post(http, [replica], 0, f"{base}/calls", sent)
            failed += answer is None or answer.status_code != 200
        if turn.system is not None:
            await post(http, [replica], 0, f"{base}/replies", {"text": turn.system})
    return failed


async def probe(http: httpx.AsyncClient, url: str, key: str, stop: asyncio.Event) -> list[float]:
    """
    A request of another tenant every ``PROBE_EVERY_S`` until ``stop``; each one's time.
    """
    headers = {"Authorization": f"Bearer {key}"}
    times: list[float] = []
    n = 0
    while not stop.is_set():
        began = time.monotonic()
        response = await http.post(
            f"{url}/v1/sessions/probe/requests", json={"text": f"p{n}"}, headers=headers
        )
        response.raise_for_status()
        times.append(time.monotonic() - began)
        n += 1
        await asyncio.sleep(PROBE_EVERY_S)
    return times


async def seed(redis_url: str, sessions: list[Any], n: int, concurrency: int) -> None:
    """
    ``n`` sessions of the tenant ``bulk`` written straight into the replica's store, as
    it stores them (the log's sessions over again, under new ids), served over the last
    :data:`BULK_DAYS` days, evenly.
    """
    store = RedisSessionStore(redis_url, prefix="preload:session")  # configs/server.toml's
    now = time.time()
    every = BULK_DAYS * DAY_S / max(n, 1)
    todo = list(range(n))

    async def worker() -> None:
        while todo:
            i = todo.pop()
            session = sessions[i % len(sessions)]
            for j, turn in enumerate(session.turns):
                stored: dict[str, Any] = {
                    "text": turn.text,
                    "state": turn.state,
                    "needs": list(turn.needs),
                    "system": turn.system,
                    "at": now - (n - i) * every + turn.t,
                }
                if turn.tool_calls:
                    stored["tool_calls"] = [
                        {"name": c.name, "args": c.args, "read_only": c.read_only}
                        for c in turn.tool_calls
                    ]
                async with store.hold("bulk", f"bulk{i}") as held:
                    await held.append(stored, expected=j, epoch="e", user=None)

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await store.aclose()


async def export(
    http: httpx.AsyncClient, url: str, key: str, probe_key: str, since: float | None = None
) -> tuple[bytes, float, list[float]]:
    """
    The tenant's export (of the sessions served ``since`` then, when given), its wall
    time, and the probe's request times meanwhile.
    """
    stop = asyncio.Event()
    probing = asyncio.create_task(probe(http, url, probe_key, stop))
    began = time.monotonic()
    exported = bytearray()
    headers = {"Authorization": f"Bearer {key}"}
    params = {} if since is None else {"since": since}
    async with http.stream("GET", f"{url}/v1/sessions", headers=headers, params=params) as response:
        response.raise_for_status()
        async for chunk in response.aiter_bytes():
            exported += chunk
    took = time.monotonic() - began
    stop.set()
    return bytes(exported), took, await probing


async def drive(
    args: argparse.Namespace, sessions: list[Any], replica: Replica, key: str, probe_key: str
) -> dict[str, Any]:
    url = replica.url
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=2 * args.concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits, headers=headers) as http:
        queue = list(reversed(sessions))
        failed = [0]

        async def worker() -> None:
            while queue:
                failed[0] += await play(queue.pop(), http, replica)

        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        played_s = time.monotonic() - began

        began = time.monotonic()
        await seed(args.redis_url, sessions, args.bulk, args.concurrency)
        seeded_s = time.monotonic() - began

        stop = asyncio.Event()
        probing = asyncio.create_task(probe(http, url, probe_key, stop))
        await asyncio.sleep(args.probe_s)
        stop.set()
        before = await probing

        bulk, bulk_s, during = await export(http, url, args.bulk_key, probe_key)
        day, day_s, _ = await export(http, url, args.bulk_key, probe_key, since=time.time() - DAY_S)
        exported, export_s, _ = await export(http, url, key, probe_key)
    return {
        "played_s": played_s,
        "failed_calls": failed[0],
        "seeded_s": seeded_s,
        "bulk": bulk,
        "bulk_s": bulk_s,
        "day": day,
        "day_s": day_s,
        "export": exported,
        "export_s": export_s,
        "before": before,
        "during": during,
    }


def train_calls(sessions: Path, folder: Path) -> Path:
    """
    ``preload train --calls-out`` on ``sessions``; the call forecaster's file.
    """
    out = folder / f"{sessions.stem}-calls.json"
    command = [sys.executable, "-m", "preload", "train", "--sessions", str(sessions)]
    command += ["--out", str(folder / f"{sessions.stem}-model.json"), "--calls-out", str(out)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return out


def taught(calls: Path, dev: list[dict[str, Any]]) -> tuple[float, float]:
    """
    The share of the dev sessions' read-only calls among the guesses of p >= 0.05 at
    the request, and the guesses a call.
    """
    result = evaluate(dev, ours(EngineCallPredictor.load(calls).model), "request")
    return result["hit"][0], result["per_call"][0]


def ms(values: list[float]) -> str:
    p50, _, p99 = quantiles(values)  # in ms
    top = max(values, default=float("nan")) * 1000
    return f"p50 {p50:.1f}, p99 {p99:.1f}, max {top:.1f} ms ({len(values)} requests)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--dataset", default="star")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--dev", type=int, default=300)
    parser.add_argument("--bulk", type=int, default=20_000)
    parser.add_argument("--probe-s", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", help="where the replica's output goes (default: nowhere)")
    parser.add_argument("--keep", help="a folder to copy the played and exported logs into")
    args = parser.parse_args()
    (_, data), *_ = corpus_folders(args.data, args.dataset)
    print(f"reading {args.dataset} from {data} (the shared session logs)", flush=True)
    train, _ = read_sessions(data / "sessions-train.jsonl")
    random.Random(args.seed).shuffle(train)
    chosen = train[: args.sessions]
    dev = load_sessions(data / "sessions-dev.jsonl")[: args.dev]
    with tempfile.TemporaryDirectory(prefix="preload-export-bench-") as tmp:
        folder = Path(tmp)
        played = write_log(folder / "played.jsonl", chosen)
        redis = Redis(folder)
        redis.start()
        replica = None
        try:
            keys = folder / "keys.jsonl"
            key, probe_key = append_key(keys, "bench"), append_key(keys, "probe")
            args.bulk_key, args.redis_url = append_key(keys, "bulk"), redis.url
            config = server_config(folder, redis.url)
            with config.open("a", encoding="utf-8") as out:
                out.write("\n[calls]\nspeculate = false\n")
            command, env = serve_command(config, keys, data, redis, tools=True)
            env.update(
                PRELOAD_BENCH_SESSIONS=str(played),
                PRELOAD_BENCH_CALL_MEDIAN_MS="5",
                PRELOAD_BENCH_CALL_P95_MS="20",
            )
            replica = Replica("a", command, env, Path(args.log) if args.log else None)
            replica.start()
            run = asyncio.run(drive(args, chosen, replica, key, probe_key))
        finally:
            if replica is not None:
                replica.stop()
            redis.stop()
        exported = folder / "exported.jsonl"
        exported.write_bytes(run["export"])
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            for kept in (played, exported):
                (Path(args.keep) / kept.name).write_bytes(kept.read_bytes())
        lines = [json.loads(line) for line in run["export"].decode().splitlines()]
        turns = [t for s in lines for t in s["turns"]]
        calls = [c for t in turns for c in t.get("tool_calls", ())]
        read_only = sum(bool(c.get("read_only")) for c in calls)
        logged = sum(len(t.tool_calls) for s in chosen for t in s.turns)
        print(
            f"played {len(chosen)} sessions in {run['played_s']:.1f} s "
            f"({run['failed_calls']} calls failed; {logged} calls in the log)"
        )
        print(
            f"export: {len(lines)} sessions, {len(turns)} turns, {len(calls)} tool calls "
            f"({read_only} read-only), {len(run['export']) / 1e6:.1f} MB in "
            f"{run['export_s']:.2f} s ({len(lines) / run['export_s']:.0f} sessions/s)"
        )
        bulk = run["bulk"].count(b"\n")
        print(
            f"bulk: {bulk} sessions of tenant bulk written straight into the store in "
            f"{run['seeded_s']:.1f} s, exported ({len(run['bulk']) / 1e6:.1f} MB) in "
            f"{run['bulk_s']:.2f} s ({bulk / run['bulk_s']:.0f} sessions/s)"
        )
        day = run["day"].count(b"\n")
        print(
            f"bulk, its last day (?since=): {day} sessions ({len(run['day']) / 1e6:.1f} MB) in "
            f"{run['day_s']:.2f} s ({run['day_s'] / run['bulk_s']:.2f} of the whole export's "
            f"time for {day / max(bulk, 1):.2f} of its sessions)"
        )
        print(f"probe before the exports: {ms(run['before'])}")
        print(f"probe during the bulk export: {ms(run['during'])}")
        # a fit holds out every fifth session it is given: the export's order (the
        # store's) holds out others than the log's; in the log's order it is the same fit
        by_id = {line["session_id"]: line for line in lines}
        in_order = folder / "exported-in-order.jsonl"
        in_order.write_text(
            "".join(json.dumps(by_id[s.session_id]) + "\n" for s in chosen), encoding="utf-8"
        )
        labels = ("the log", "the export", "the export in the log's order")
        for label, sessions in zip(labels, (played, exported, in_order), strict=True):
            hit, per_call = taught(train_calls(sessions, folder), dev)
            print(
                f"call forecaster trained on {label}: {hit:.3f} of {args.dev} dev sessions' "
                f"read-only calls among its guesses of p >= 0.05 at the request, "
                f"{per_call:.2f} guesses a call"
            )


if __name__ == "__main__":
    main()
