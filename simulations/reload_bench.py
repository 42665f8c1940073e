"""
Files that change while a replica serves: the keys file (``server.keys_reload_s``) and
the model file (``server.models_reload_s``, with ``server.share_models``). How long until
a key made with ``preload keys new`` is served, a key taken out with ``preload keys
revoke`` is refused, and a model written again is forecast from, and what each change
costs the requests of the tenants served meanwhile.

One ``preload serve`` replica on a real Redis (each setting its own), its tenants'
engines open from start, each with its own copy of a forecaster fitted on the dataset's
train split (``--model``, else fitted with ``preload train``). Reads the dev sessions
of ``<data>/<dataset>/`` (``--data``, ``../shared/data`` by default) and says so. Every
setting plays the same load: ``--tenants`` tenants' sessions, ``--concurrency`` at once,
each turn's request and reply, the think time between turns the log's divided by 20 (at
most 2 s), for ``--duration`` seconds. In the ``change`` settings, at a third of the run
a new tenant's key is made with ``preload keys new`` (the command, as an operator runs
it) and its request asked every 50 ms until it is served; at two thirds, the last
tenant's keys are revoked with ``preload keys revoke`` while its sessions go on, until
one is refused. The ``steady`` setting plays the same load with no change, for
reference; ``keys shared`` changes the keys with ``server.share_models``; ``model
shared``, with ``server.share_models`` and ``models_reload_s`` as ``keys_reload_s``,
writes the model file again at half the run (the same model, written whole to a new
file that replaces it, as ``preload train`` writes) and watches ``/metrics`` until the
replica took it.

Reported for each setting: the seconds from the command's end to the new key's first
answer (``accepted_s``: the replica's next look at the file, then the tenant's engine
opening, its model copy read in a worker thread) and to the revoked key's first 401
(``refused_s``); and to the replica's count of model reloads going up (``model_s``:
the next look sees the change, the look after reads it, in a worker thread); the
other tenants' request times (p50, p99, max: the client's) in the
``--window`` seconds after each change and outside them; the replica's event-loop lag
(p99 and max, ``/metrics``); and the engines opened and closed.

    python -m simulations.reload_bench [--data ../shared/data] [--dataset star]
        [--tenants 8] [--duration 45] [--concurrency 20] [--reload 1.0] [--model M]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
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

#: How often the probe asks with the new key, and with the revoked one.
PROBE_S = 0.05


@dataclass
class Played:
    """
    What the load saw: each request's start (run seconds) and time, by tenant, and the
    moments of the changes.
    """

    until: float
    began: float = field(default_factory=time.monotonic)
    times: list[tuple[str, float, float]] = field(default_factory=list)
    changes: list[float] = field(default_factory=list)
    accepted_s: float = float("nan")
    refused_s: float = float("nan")
    model_s: float = float("nan")

    def now(self) -> float:
        return time.monotonic() - self.began


async def play(
    http: httpx.AsyncClient,
    sessions: list[Any],
    keys: dict[str, str],
    played: Played,
    concurrency: int,
) -> None:
    """
    Play the sessions round the tenants, ``concurrency`` at once, until the run's end (again under new ids when they run out); a tenant's sessions stop at its
    first refusal (its keys revoked).
    """
    tenants = list(keys)
    refused: set[str] = set()
    queue = [(session, n) for n, session in enumerate(sessions)]
    rounds = 0

    async def worker() -> None:
        nonlocal rounds
        while played.now() < played.until:
            if not queue:
                rounds += 1
                queue.extend((s, n + rounds * len(sessions)) for n, s in enumerate(sessions))
            session, n = queue.pop(0)
            tenant = tenants[n % len(tenants)]
            if tenant in refused:
                continue
            headers = {"Authorization": f"Bearer {keys[tenant]}"}
            path = f"/v1/sessions/{session.session_id}-{n}"
            turns = played_turns(http, path, session, headers)
            async for _, answer, began, took in turns:
                if answer.status_code == 401:
                    refused.add(tenant)
                    return
                answer.raise_for_status()
                played.times.append((tenant, began - played.began, took))
                if played.now() >= played.until:
                    return

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def until_status(http: httpx.AsyncClient, key: str, wanted: int) -> None:
    """
    Ask with ``key`` every ``PROBE_S`` until the answer's status is ``wanted``.
    """
    headers = {"Authorization": f"Bearer {key}"}
    while True:
        answer = await http.post(
            "/v1/sessions/probe/requests", json={"text": "hello"}, headers=headers
        )
        if answer.status_code == wanted:
            return
        await asyncio.sleep(PROBE_S)


async def change_keys(
    http: httpx.AsyncClient, keys_file: Path, revoked: str, keys: dict[str, str], played: Played
) -> None:
    """
    At a third of the run, make a new tenant's key and wait until it is served; at
    two thirds, revoke the last tenant's and wait until it is refused.
    """
    third = played.until / 3
    await asyncio.sleep(max(third - played.now(), 0))
    made = await asyncio.create_subprocess_exec(
        *_keys_command("new", "--tenant", "newcomer", "--keys", str(keys_file)),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await made.communicate()
    changed = played.now()
    played.changes.append(changed)
    await until_status(http, out.decode().strip(), 200)
    played.accepted_s = played.now() - changed
    await asyncio.sleep(max(2 * third - played.now(), 0))
    revoke = await asyncio.create_subprocess_exec(
        *_keys_command("revoke", "--tenant", revoked, "--keys", str(keys_file)),
        stdout=asyncio.subprocess.DEVNULL,
    )
    await revoke.wait()
    changed = played.now()
    played.changes.append(changed)
    await until_status(http, keys[revoked], 401)
    played.refused_s = played.now() - changed


async def change_model(http: httpx.AsyncClient, model: Path, played: Played) -> None:
    """
    At half the run, write the model file again (whole, then put in place), and wait
    until the replica's metrics count the reload.
    """
    await asyncio.sleep(max(played.until / 2 - played.now(), 0))
    await asyncio.to_thread(_write_again, model)
    changed = played.now()
    played.changes.append(changed)
    while True:
        page = (await http.get("/metrics")).text
        if metric(page, "preload_models_reloads_total") >= 1:
            break
        await asyncio.sleep(PROBE_S)
    played.model_s = played.now() - changed


def _write_again(model: Path) -> None:
    """
    Write ``model`` again whole, to a new file put in its place.
    """
    written = model.with_name(f".{model.name}.tmp")
    written.write_bytes(model.read_bytes())
    os.replace(written, model)


def _keys_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "preload", "keys", *args]


async def drive(
    url: str,
    sessions: list[Any],
    keys: dict[str, str],
    change: str,
    files: tuple[Path, Path],
    args: Any,
) -> Played:
    """
    Play the load for ``--duration`` seconds, changing the keys file (``change`` is
    "keys") or the model file ("model") of ``files``, or neither.
    """
    played = Played(args.duration)
    limits = httpx.Limits(max_connections=args.concurrency * 2 + 4)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        jobs = [play(http, sessions, keys, played, args.concurrency)]
        keys_file, model = files
        if change == "keys":
            jobs.append(change_keys(http, keys_file, list(keys)[-1], keys, played))
        elif change == "model":
            jobs.append(change_model(http, model, played))
        await asyncio.gather(*jobs)
    return played


def run_setting(
    name: str,
    change: str,
    shared: bool,
    args: argparse.Namespace,
    folder: Path,
    sessions: list[Any],
) -> dict[str, Any]:
    """
    Start Redis and a replica, play the load (changing the keys or the model file, as
    ``change`` says, or nothing), and return the figures.
    """
    data = args.data / args.dataset
    store = folder / f"redis-{name.replace(' ', '-')}"
    store.mkdir()
    redis = Redis(store)
    redis.start()
    replica: Replica | None = None
    try:
        keys_file = store / "keys.jsonl"
        keys = {f"t{n}": append_key(keys_file, f"t{n}") for n in range(args.tenants)}
        model = store / "model.json"
        shutil.copyfile(args.model, model)
        server: dict[str, object] = {"keys_reload_s": args.reload, "share_models": shared}
        if shared:
            server["models_reload_s"] = args.reload
        config = server_config(store, redis.url, server)
        command, env = serve_command(config, keys_file, data, redis, model=model)
        replica = Replica("a", command, env)
        replica.start()
        played = asyncio.run(drive(replica.url, sessions, keys, change, (keys_file, model), args))
        page = metrics_of(replica)
    finally:
        if replica is not None:
            replica.stop()
        redis.stop()
    near: list[float] = []
    far: list[float] = []
    for _, start, took in played.times:
        after = any(0 <= start - c < args.window for c in played.changes)
        (near if after else far).append(took * 1000)
    return {
        "setting": name,
        "accepted_s": round(played.accepted_s, 2),
        "refused_s": round(played.refused_s, 2),
        "model_s": round(played.model_s, 2),
        "requests": len(played.times),
        **_quantiles("near", near),
        **_quantiles("far", far),
        "lag_p99_ms": round(metric(page, r'preload_loop_lag_seconds\{quantile="0.99"\}') * 1000, 1),
        "lag_max_ms": round(metric(page, "preload_loop_lag_max_seconds") * 1000, 1),
        "opened": int(metric(page, "preload_tenant_engines_opened_total")),
        "closed": int(metric(page, "preload_tenant_engines_closed_total")),
        "reloads": int(metric(page, "preload_keys_reloads_total"))
        + int(_or_zero(metric(page, "preload_models_reloads_total"))),
    }


def _or_zero(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def _quantiles(prefix: str, times: list[float]) -> dict[str, object]:
    if not times:
        return {
            f"{prefix}_n": 0,
            f"{prefix}_p50_ms": "-",
            f"{prefix}_p99_ms": "-",
            f"{prefix}_max_ms": "-",
        }
    p50, p99 = np.percentile(times, [50, 99])
    return {
        f"{prefix}_n": len(times),
        f"{prefix}_p50_ms": round(float(p50), 1),
        f"{prefix}_p99_ms": round(float(p99), 1),
        f"{prefix}_max_ms": round(max(times), 1),
    }


def main() -> None:
    """
    Parse the arguments, run the settings and print the table.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_data_arguments(parser)
    parser.add_argument("--dataset", default="star", help="folder under --data (star)")
    parser.add_argument("--tenants", type=int, default=8, help="tenants served (8)")
    parser.add_argument("--duration", type=float, default=45.0, help="seconds a setting (45)")
    parser.add_argument("--concurrency", type=int, default=20, help="sessions at once (20)")
    parser.add_argument(
        "--reload",
        type=float,
        default=1.0,
        help="server.keys_reload_s, and models_reload_s where the models are shared (1.0)",
    )
    parser.add_argument(
        "--window", type=float, default=3.0, help="seconds after a change counted near it (3)"
    )
    parser.add_argument("--model", type=Path, help="a model from 'preload train' (else fit)")
    args = parser.parse_args()
    if args.tenants < 2 or args.duration < 9 or args.reload <= 0:
        parser.error("needs --tenants >= 2, --duration >= 9 and --reload > 0")
    data = replica_data(parser, args)
    sessions, _ = read_sessions(data / "sessions-dev.jsonl")
    with tempfile.TemporaryDirectory(prefix="reload-bench-") as tmp:
        folder = Path(tmp)
        if args.model is None:
            args.model = folder / "model.json"
            train(data / "sessions-train.jsonl", args.model)
        settings = [
            ("steady", "", False),
            ("keys", "keys", False),
            ("keys shared", "keys", True),
            ("model shared", "model", True),
        ]
        rows = [run_setting(n, c, s, args, folder, sessions) for n, c, s in settings]
    print(
        f"{args.tenants} tenants, {args.concurrency} sessions at once, {args.duration:.0f} s "
        f"a setting, keys_reload_s and models_reload_s {args.reload}; model {args.model.name}"
    )
    print_rows(
        rows,
        "accepted_s: from 'preload keys new' to the new key's first answer; refused_s: from "
        "'preload keys revoke' to the revoked key's first 401; model_s: from the model "
        "file written again to the replica's count of reloads going up; near: the other tenants' "
        f"requests started within {args.window:.0f} s after a change, far: the rest (the "
        "client's time, ms); lag: the replica's event-loop lag (ms); opened, closed: "
        "tenants' engines; reloads: changes to the keys and model files taken",
        width=13,
    )


if __name__ == "__main__":
    main()
