"""
Two ``preload serve`` replicas on one Redis, under load and faults, over real HTTP.

Reads ``<data>/<dataset>/`` (``--data``, ``../shared/data`` by default: dev sessions to
replay, train sessions for the model, the knowledge file), and says which. It starts a ``redis-server`` (append-only file on, as
``configs/server.toml`` asks) on a free loopback port and two replicas as subprocesses,
trains a model with ``preload train`` unless one is given, then replays dev sessions
with ``httpx.AsyncClient``: each turn's request (its text, state and needs), then its
reply, then a think time (the log's gap divided by ``--compress``), ``--concurrency``
sessions at once (160; once every session has been played, they are played again under
new ids, so that the load lasts the whole run), with requests
paced to ``--rate`` a second and alternating between the replicas. The source behind the
knowledge has a lognormal latency (median 150 ms, p95 1 s). With ``--tenants N`` the
sessions are spread over N tenants by their ids (a key each; each replica then serves
each tenant with an engine of its own, as ``preload serve`` does).

Faults, unless ``--no-faults``: at 25 % of the run one replica is killed with SIGKILL and
restarted; at 50 % redis-server is restarted (SIGTERM, then started on its AOF); at 70 %
the source hangs for 10 s. A request that fails (connection refused, 503, 409) is
retried with the same ``request_id``, on the other replica; the server records a
retried turn once. A fault's window runs from its start to 2 s after it is repaired.

Report (a table, and ``--json PATH``): requests accepted, failed (outside the fault
windows, and in all), retried; client and server time at p50/p95/p99, and the client's
p99 on turns whose needs were all warm (outside the fault windows and the first
``--warmup`` seconds, 3 by default, while the client opens its connections and every
session's first turn comes at once; and also leaving out
the ``--settle`` seconds after each, 5 by default, while the requests that waited out a
fault are served at once), and what the slowest 1 % of those spent their
time on (the server's lease, handle and write, from ``Server-Timing``, and the rest
outside the server); the event loop's lag p99 (each replica's
``/metrics``, read before it is killed and at the end: the largest); the hit rate;
cross-replica hits (items one replica stored that the other used); the changes served
from a replica's copy and written without the session's lease, and how many of those
the store refused (then served again under the lease); turns lost (every
accepted turn must be in its session as ``GET /v1/sessions/{id}`` gives it); the garbage
collector's pauses (each replica's ``/metrics``: how many, their total, the longest;
every thread of the replica stands still meanwhile); the CPU time each request cost,
until the first fault (or the end): each replica's (``process_cpu_seconds_total``),
redis-server's (``INFO cpu``) and the client's, and how many of the machine's cores were
busy meanwhile, with these processes and in all (``/proc/stat``): on a shared machine
the tail of the client's times follows how busy its cores are.

The client is the instrument, so its own garbage collector is off while it measures
(what it loaded frozen first, the garbage collected after): on, its passes over the
reference cycles httpx and anyio leave stopped it for up to a quarter of a second with
requests in flight, time it then counted as theirs. It reports its loop's longest lag
and any collection that ran anyway. The servers' collectors stay on, as configured.
Each session plays through one of ``--pools`` clients (40), which keeps a connection for
each of its sessions and replica (``--connections`` caps them in all): no request waits
in the client for a connection another session's slow turn holds, and, since httpcore's
pool looks at every connection it keeps (a poll of each socket) for every request, small
pools keep the client's CPU low (one pool of 32 was half of it).

    python -m simulations.serve_bench [--data ../shared/data] [--dataset star] [--rate 100]
        [--duration 60] [--tenants 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from preload import read_sessions
from preload.server import append_key
from preload.server._monitor import Reservoir, watch_gc
from simulations._data import add_data_arguments

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, process: subprocess.Popen[bytes], name: str, timeout_s: float) -> None:
    """
    Poll ``url`` (a readiness route of the server ``process`` runs), backing off from
    10 ms to 200 ms, until it answers 200.

    Raises:
        RuntimeError: ``process`` exited first.
        TimeoutError: It did not answer 200 in ``timeout_s``.
    """
    began = time.monotonic()
    pause = 0.01
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        if time.monotonic() - began > timeout_s:
            raise TimeoutError(f"{name} not ready in {timeout_s:g} s")
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


class Redis:
    """
    A redis-server with its append-only file in ``folder``.
    """

    def __init__(self, folder: Path, nice: int = 0) -> None:
        self.folder = folder
        self.nice = nice
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=(lambda: os.nice(self.nice)) if self.nice else None,  # noqa: PLW1509
        )
        deadline = time.monotonic() + 30
        with redis.Redis(port=self.port, socket_connect_timeout=0.2) as client:
            while True:
                try:
                    client.ping()
                    return
                except (redis.ConnectionError, redis.BusyLoadingError):
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise
                    time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # a clean shutdown: the AOF is flushed
            self.process.wait(timeout=30)
        self.process = None


class Replica:
    """
    One ``preload serve`` process on a fixed port (restarted on the same one).
    """

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], log: Path | None = None
    ) -> None:
        self.name = name
        self.log = log
        self.port = free_port()
        self.args = [*args, "--port", str(self.port)]
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        """
        Start it; returns once /readyz answers, with the seconds that took.
        """
        began = time.monotonic()
        out: Any = subprocess.DEVNULL
        if self.log is not None:
            out = self.log.open("ab")
        self.process = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=out)
        if self.log is not None:
            out.close()
        wait_ready(f"{self.url}/readyz", self.process, f"replica {self.name}", 120.0)
        return time.monotonic() - began

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Outcome:
    start: float
    client_s: float
    server_s: float
    status: int
    attempts: int
    warm: bool
    needs: int
    hits: int
    phases: dict[str, float] = field(default_factory=dict)


def server_timing(response: httpx.Response) -> dict[str, float]:
    """
    The ``Server-Timing`` durations, in seconds by name: ``app`` (the whole request in
    the server) and, for a request, its ``lease``, ``handle`` and ``write``.
    """
    found = re.findall(r"(\w+);dur=([0-9.]+)", response.headers.get("server-timing", ""))
    return {name: float(ms) / 1000 for name, ms in found}


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    accepted: dict[str, list[str]] = field(default_factory=dict)
    windows: list[tuple[str, float, float]] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    remote_hits: list[float] = field(default_factory=list)
    unleased: list[tuple[float, float]] = field(default_factory=list)  # changes, refused
    gc: list[tuple[float, float, float, float]] = field(
        default_factory=list
    )  # max, count, sum, forced
    replies_failed: int = 0
    client_lags: list[float] = field(default_factory=list)
    client_gc: Reservoir = field(default_factory=Reservoir)  # the client's own pauses
    cpu: list[dict[str, float]] = field(default_factory=list)  # at the start, before a fault
    wall_s: float = 0.0
    lost: int = 0

    def in_fault(self, at: float, settle_s: float = 0.0) -> bool:
        """
        Whether ``at`` falls in a fault window, or within ``settle_s`` after one.
        """
        return any(a <= at <= b + settle_s for _, a, b in self.windows)


class Pacer:
    """
    Hands out request slots at ``rate`` a second.
    """

    def __init__(self, rate: float) -> None:
        self.interval = 1 / rate
        self.next = time.monotonic()

    async def slot(self) -> None:
        now = time.monotonic()
        self.next = max(self.next + self.interval, now)
        if self.next > now:
            await asyncio.sleep(self.next - now)


RETRY = {409, 502, 503, 504}


async def post(
    http: httpx.AsyncClient,
    replicas: list[Replica],
    first: int,
    path: str,
    body: Any,
    headers: dict[str, str] | None = None,
) -> tuple[httpx.Response | None, int, float]:
    """
    POST with retries on the other replica; the response (None when every attempt
    failed), the attempts, the last attempt's client time.
    """
    pause = 0.05
    elapsed = 0.0
    for attempt in range(40):
        replica = replicas[(first + attempt) % len(replicas)]
        began = time.monotonic()
        try:
            response = await http.post(f"{replica.url}{path}", json=body, headers=headers)
        except httpx.TransportError:
            response = None
        except AttributeError:  # httpcore on anyio: a socket the killed replica reset
            response = None  # while it connected ('NoneType' has no 'getpeername')
        elapsed = time.monotonic() - began
        if response is not None and response.status_code not in RETRY:
            return response, attempt + 1, elapsed
        await asyncio.sleep(pause)
        pause = min(pause * 2, 1.0)
    return None, 40, elapsed


async def played_turns(
    http: httpx.AsyncClient, path: str, session: Any, headers: dict[str, str]
) -> AsyncIterator[tuple[Any, httpx.Response, float, float]]:
    """
    One session's turns at ``path`` (``/v1/sessions/<id>``): before each but the
    first, the log's gap divided by 20 (10 ms to 2 s); its request (text, state,
    needs); then, once the caller had it, its reply when the request was answered 200.
    Yields each turn, its answer, when the request began (``time.monotonic()``) and
    how long it took.
    """
    previous_t = 0.0
    for i, turn in enumerate(session.turns):
        if i:
            await asyncio.sleep(min(max((turn.t - previous_t) / 20, 0.01), 2.0))
        previous_t = turn.t
        body = {"text": turn.text, "state": turn.state, "needs": list(turn.needs)}
        began = time.monotonic()
        answer = await http.post(f"{path}/requests", json=body, headers=headers)
        yield turn, answer, began, time.monotonic() - began
        if answer.status_code == 200 and turn.system:
            reply = {"text": turn.system}
            (await http.post(f"{path}/replies", json=reply, headers=headers)).raise_for_status()


async def replay_session(
    session: Any,
    http: httpx.AsyncClient,
    replicas: list[Replica],
    pacer: Pacer,
    run: Run,
    stop_at: float,
    counter: list[int],
    compress: float,
    send_state: bool = True,
    headers: dict[str, str] | None = None,
) -> None:
    sid = session.session_id
    accepted = run.accepted.setdefault(sid, [])
    previous_t = 0.0
    for i, turn in enumerate(session.turns):
        think = min(max((turn.t - previous_t) / compress, 0.05), 3.0) if i else 0.0
        previous_t = turn.t
        await asyncio.sleep(think)
        await pacer.slot()
        if time.monotonic() >= stop_at:
            return
        counter[0] += 1
        rid = f"{sid}:{i}"
        body = {
            "text": turn.text,
            "state": turn.state if send_state else None,
            "needs": list(turn.needs),
            "request_id": rid,
        }
        started = time.monotonic()
        response, attempts, client_s = await post(
            http, replicas, counter[0], f"/v1/sessions/{sid}/requests", body, headers
        )
        status = response.status_code if response is not None else 0
        phases: dict[str, float] = {}
        warm = False
        hits = 0
        if response is not None and status == 200:
            accepted.append(rid)
            phases = server_timing(response)
            got = response.json()
            hits = got["hits"]
            # Every need a hit: none loaded or joined, and none the server failed to get
            # (a load that timed out after request_deadline_s is no miss, but no hit).
            warm = (
                bool(turn.needs)
                and got["misses"] == 0
                and got["partial_hits"] == 0
                and not got["missing"]
            )
        run.outcomes.append(
            Outcome(
                started,
                client_s,
                phases.pop("app", 0.0),
                status,
                attempts,
                warm,
                len(turn.needs),
                hits,
                phases,
            )
        )
        if status != 200:
            return  # the session cannot go on without its turn
        if turn.system:
            replied, _, _ = await post(
                http,
                replicas,
                counter[0] + 1,
                f"/v1/sessions/{sid}/replies",
                {"text": turn.system},
                headers,
            )
            if replied is None or replied.status_code != 204:
                run.replies_failed += 1


def metrics_of(replica: Replica) -> str:
    """
    The replica's ``/metrics`` page.
    """
    return httpx.get(f"{replica.url}/metrics", timeout=10).text


def metric(text: str, pattern: str) -> float:
    """
    The value of the first sample of a metrics page whose name and labels match
    ``pattern`` (NaN when none does).
    """
    found = re.search("^" + pattern + _SAMPLE, text, re.MULTILINE)
    return float(found.group(1)) if found else math.nan


def metric_total(text: str, pattern: str) -> float:
    """
    The sum of the samples of a metrics page whose name and labels match ``pattern``
    (every tenant's; 0 when none does).
    """
    return sum(float(v) for v in re.findall("^" + pattern + _SAMPLE, text, re.MULTILINE))


_SAMPLE = r" ([0-9.e+-]+)$"


def scrape(replica: Replica, run: Run) -> None:
    """
    The replica's loop-lag p99, its cross-replica hits, its changes without the lease
    (and the refused ones) and its garbage collector's
    pauses, from /metrics, into ``run``.
    """
    text = metrics_of(replica)
    run.lags.append(metric(text, r'preload_loop_lag_seconds\{quantile="0.99"\}'))
    run.remote_hits.append(
        sum(float(v) for v in re.findall(r"preload_remote_hits_total\{[^}]*\} ([0-9.e+-]+)", text))
    )
    run.unleased.append(
        (
            metric(text, r"preload_changes_unleased_total\{[^}]*\}"),
            metric(text, r"preload_change_conflicts_total\{[^}]*\}"),
        )
    )
    run.gc.append(
        (
            metric(text, "preload_gc_pause_max_seconds"),
            metric(text, "preload_gc_pause_seconds_count"),
            metric(text, "preload_gc_pause_seconds_sum"),
            metric(text, "preload_gc_forced_total"),
        )
    )


def cpu_sample(replicas: list[Replica], server: Redis) -> dict[str, float]:
    """
    CPU seconds used so far by each replica (``process_cpu_seconds_total`` on its
    ``/metrics``), by redis-server (``INFO cpu``) and by this client; the machine's
    busy seconds, all cores together (``/proc/stat``, NaN where there is none); and
    the moment.
    """
    import redis

    out = {"at": time.monotonic(), "client": time.process_time()}
    for replica in replicas:
        out[f"replica {replica.name}"] = metric(metrics_of(replica), "process_cpu_seconds_total")
    with redis.Redis(port=server.port) as client:
        info = client.info("cpu")
    out["redis"] = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    out["machine"] = math.nan
    with contextlib.suppress(OSError):
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = ticks[3] + ticks[4]  # idle, iowait
        out["machine"] = (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    return out


async def faults(
    run: Run, replicas: list[Replica], server: Redis, began: float, duration: float
) -> None:
    """
    Kill and restart a replica, restart Redis, hang the source: each in its window.
    """
    import redis.asyncio

    loop = asyncio.get_running_loop()

    async def at(fraction: float) -> None:
        await asyncio.sleep(max(began + fraction * duration - time.monotonic(), 0))

    await at(0.25)
    victim = replicas[1]
    run.cpu.append(await loop.run_in_executor(None, cpu_sample, replicas, server))
    await loop.run_in_executor(None, scrape, victim, run)
    start = time.monotonic()
    victim.kill()
    await loop.run_in_executor(None, victim.start)
    run.windows.append(("replica SIGKILL + restart", start, time.monotonic() + 2))
    await at(0.5)
    start = time.monotonic()
    await loop.run_in_executor(None, server.stop)
    await loop.run_in_executor(None, server.start)
    run.windows.append(("redis-server restart", start, time.monotonic() + 2))
    await at(0.7)
    start = time.monotonic()
    client = redis.asyncio.Redis.from_url(server.url)
    await client.set("bench:hang", "1", px=10_000)
    await client.aclose()
    run.windows.append(("source hangs 10 s", start, start + 10 + 2))


def quantiles(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return (math.nan, math.nan, math.nan)
    p = np.percentile(np.array(values) * 1000, [50, 95, 99])
    return float(p[0]), float(p[1]), float(p[2])


def train(sessions: Path, out: Path, calls_out: Path | None = None) -> None:
    """
    Fit a model on ``sessions`` with ``preload train`` into ``out`` (and the call
    forecaster into ``calls_out``), and say how long it took.
    """
    began = time.monotonic()
    command = [sys.executable, "-m", "preload", "train", "--sessions", str(sessions)]
    command += ["--out", str(out)]
    if calls_out is not None:
        command += ["--calls-out", str(calls_out)]
    subprocess.run(command, check=True)
    print(f"trained on {sessions.name} in {time.monotonic() - began:.0f} s")


def replica_data(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    """
    The folder of ``--dataset`` under ``--data``, after checking that it holds dev
    sessions and that redis-server is on the PATH (else ``parser`` stops the bench);
    says which data the bench reads.
    """
    if shutil.which("redis-server") is None:
        parser.error("needs redis-server on the PATH (apt-get install -y redis-server)")
    data: Path = args.data / args.dataset
    if not (data / "sessions-dev.jsonl").is_file():
        parser.error(f"no {data / 'sessions-dev.jsonl'} (--data DIR)")
    print(f"data: {data} (sessions-dev)")
    return data


def server_config(folder: Path, redis_url: str, server: Mapping[str, object] | None = None) -> Path:
    """
    Write ``configs/server.toml`` into ``folder`` with its Redis URL set to
    ``redis_url`` and the ``[server]`` keys of ``server`` set (as TOML: numbers and
    booleans); return the file.
    """
    text = (ROOT / "configs" / "server.toml").read_text(encoding="utf-8")
    text = text.replace("redis://127.0.0.1:6379/0", redis_url)
    for key, value in (server or {}).items():
        line = f"{key} = {json.dumps(value)}"
        text, n = re.subn(rf"^{key} = .*$", line, text, count=1, flags=re.MULTILINE)
        if not n:
            assert "\n[server]\n" in text, "configs/server.toml has no [server] section"
            text = text.replace("\n[server]\n", f"\n[server]\n{line}\n", 1)
    config = folder / "server.toml"
    config.write_text(text, encoding="utf-8")
    return config


def serve_command(
    config: Path,
    keys: Path,
    data: Path,
    redis: Redis,
    *,
    model: Path | None = None,
    calls_model: Path | None = None,
    tools: bool = False,
) -> tuple[list[str], dict[str, str]]:
    """
    The command line and environment of a ``preload serve`` replica on ``redis``, with
    the benches' sources over ``data``'s knowledge (and, with ``tools``, their call
    sources: ``serve_plugins:tools``).
    """
    command = [sys.executable, "-m", "preload", "serve", "--config", str(config)]
    command += ["--keys", str(keys), "--sources", "simulations.serve_plugins:sources"]
    command += ["--log-level", "warning"]
    if tools:
        command += ["--tools", "simulations.serve_plugins:tools"]
    if model is not None:
        command += ["--model", str(model)]
    if calls_model is not None:
        command += ["--calls-model", str(calls_model)]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PRELOAD_BENCH_KNOWLEDGE": str(data / "knowledge.jsonl"),
        "PRELOAD_BENCH_REDIS": redis.url,
    }
    return command, env


@contextmanager
def cluster(args: argparse.Namespace, folder: Path) -> Iterator[tuple[Redis, list[Replica]]]:
    data = args.data / args.dataset
    redis = Redis(folder, args.redis_nice)
    redis.start()
    replicas: list[Replica] = []
    try:
        keys = folder / "keys.jsonl"
        tenants = ["bench", *(f"bench{n}" for n in range(2, args.tenants + 1))]
        args.keys = [append_key(keys, tenant) for tenant in tenants]
        config = server_config(folder, redis.url, {"share_models": args.share_models})
        command, env = serve_command(config, keys, data, redis, model=args.model)
        for name in ("a", "b"):
            log = args.logs / f"replica-{name}.log" if args.logs is not None else None
            replicas.append(Replica(name, command, env, log))
            replicas[-1].start()
        yield redis, replicas
    finally:
        for replica in replicas:
            replica.stop()
        redis.stop()


def tenant_headers(keys: list[str], session_id: str) -> dict[str, str]:
    """
    The authorization of the tenant a session belongs to: one of ``keys``, by its id.
    """
    return {"Authorization": f"Bearer {keys[zlib.crc32(session_id.encode()) % len(keys)]}"}


def played(sessions: list[Any]) -> Iterator[Any]:
    """
    The sessions in turn, and once all have been played, again under new ids
    (``<id>~2``, ...), so that the load lasts the whole run.
    """
    for n in itertools.count(1):
        for session in sessions:
            yield session if n == 1 else replace(session, session_id=f"{session.session_id}~{n}")


async def drive(args: argparse.Namespace, redis: Redis, replicas: list[Replica]) -> Run:
    sessions, _ = read_sessions(args.data / args.dataset / "sessions-dev.jsonl")
    random.Random(args.seed).shuffle(sessions)
    run = Run()
    pacer = Pacer(args.rate)
    # A connection for each session and replica, as each user of a chat server has its
    # own, so that no request waits in the client for a connection another session's
    # slow turn holds (with 32 for 160 sessions, warm turns queued behind cold ones for
    # up to 1.3 s while the sessions' first turns came); in many small pools, since
    # httpcore's pool looks at every connection it keeps (a poll of each socket) for
    # each request (48 % of the client's CPU with one pool of 32).
    sessions_each = -(-args.concurrency // args.pools)
    each = args.connections // args.pools if args.connections else sessions_each * len(replicas)
    each = max(each, len(replicas))
    limits = httpx.Limits(max_connections=each, max_keepalive_connections=each)
    began = time.monotonic()
    stop_at = began + args.duration
    counter = [0]
    feed = played(sessions)
    async with contextlib.AsyncExitStack() as stack:
        pools = [
            await stack.enter_async_context(httpx.AsyncClient(timeout=30, limits=limits))
            for _ in range(args.pools)
        ]
        http = pools[0]

        async def worker(pool: httpx.AsyncClient) -> None:
            while time.monotonic() < stop_at:
                session = next(feed)
                await replay_session(
                    session,
                    pool,
                    replicas,
                    pacer,
                    run,
                    stop_at,
                    counter,
                    args.compress,
                    args.send_state,
                    tenant_headers(args.keys, session.session_id),
                )

        async def watch_loop() -> None:  # the client's own loop lag, part of its times
            while time.monotonic() < stop_at:
                due = time.perf_counter() + 0.01
                await asyncio.sleep(0.01)  # how late the loop runs a task due to wake
                run.client_lags.append(max(time.perf_counter() - due, 0.0))

        run.cpu.append(cpu_sample(replicas, redis))
        # The client is the instrument: its collector is off while it measures. On, it
        # stopped the client for up to a quarter of a second with requests in flight
        # (passes over what it loaded, and over the reference cycles httpx and anyio
        # leave, some 40 objects a request), which the client then counted as their
        # time. The garbage is collected once the load is over.
        gc.collect()
        gc.freeze()
        gc.disable()
        tasks = [
            asyncio.create_task(worker(pools[i % len(pools)])) for i in range(args.concurrency)
        ]
        tasks.append(asyncio.create_task(watch_loop()))
        if args.faults:
            tasks.append(asyncio.create_task(faults(run, replicas, redis, began, args.duration)))
        with watch_gc(run.client_gc):  # a pass the interpreter makes anyway is counted
            await asyncio.gather(*tasks)
        gc.enable()
        gc.unfreeze()
        run.wall_s = time.monotonic() - began
        if len(run.cpu) == 1:
            run.cpu.append(cpu_sample(replicas, redis))
        for replica in replicas:
            scrape(replica, run)
        lost = 0
        for sid, rids in run.accepted.items():
            if not rids:
                continue
            got = await http.get(
                f"{replicas[0].url}/v1/sessions/{sid}", headers=tenant_headers(args.keys, sid)
            )
            stored = (
                {t.get("request_id") for t in got.json().get("turns", [])}
                if got.status_code == 200
                else set()
            )
            lost += sum(rid not in stored for rid in rids)
        run.lost = lost
    return run


def tail(warm: list[Outcome]) -> dict[str, float]:
    """
    What the slowest 1 % of warm turns (by client time) spent their time on, in mean
    milliseconds: in the server (``server``: its ``lease``, ``handle`` and ``write``)
    and outside it (``outside``: the network, the two event loops' queues, HTTP).
    """
    slowest = sorted(warm, key=lambda o: o.client_s)[-max(len(warm) // 100, 1) :] if warm else []
    if not slowest:
        return {}

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) * 1000

    return {
        "turns": len(slowest),
        "client_ms": mean([o.client_s for o in slowest]),
        "server_ms": mean([o.server_s for o in slowest]),
        **{
            f"{phase}_ms": mean([o.phases.get(phase, 0.0) for o in slowest])
            for phase in ("lease", "handle", "write")
        },
        "outside_ms": mean([o.client_s - o.server_s for o in slowest]),
    }


def cpu_use(run: Run) -> dict[str, Any]:
    """
    From the first CPU sample to the second: the CPU milliseconds per accepted request
    (with its reply) of each process, and the cores busy, ours and the machine's.
    """
    if len(run.cpu) < 2:
        return {}
    first, last = run.cpu[0], run.cpu[1]
    wall = last["at"] - first["at"]
    requests = sum(o.status == 200 and first["at"] <= o.start <= last["at"] for o in run.outcomes)
    used = {name: last[name] - first[name] for name in first if name not in ("at", "machine")}
    return {
        "seconds": wall,
        "requests": requests,
        "ms_per_request": {name: s * 1000 / max(requests, 1) for name, s in used.items()},
        "cores_busy": sum(used.values()) / wall,
        "machine_cores_busy": (last["machine"] - first["machine"]) / wall,
        "cores": os.cpu_count(),
    }


def report(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    done = run.outcomes
    ok = [o for o in done if o.status == 200]
    failed = [o for o in done if o.status != 200]
    outside = [o for o in failed if not run.in_fault(o.start)]
    first = min((o.start for o in done), default=0.0)
    steady = [
        o for o in ok if o.warm and not run.in_fault(o.start) and o.start - first >= args.warmup
    ]
    settled = [o.client_s for o in steady if not run.in_fault(o.start, args.settle)]
    warm = [o.client_s for o in steady]
    needs = sum(o.needs for o in ok)
    client = quantiles([o.client_s for o in ok])
    server = quantiles([o.server_s for o in ok])
    return {
        "dataset": f"{args.dataset} dev ({args.data / args.dataset})",
        # over the load (from the first request sent to the last), not the drain after it
        "rate": len(ok) / max(max(o.start for o in done) - first, 1e-9) if done else 0.0,
        "target_rate": args.rate,
        "redis_nice": args.redis_nice,
        "tenants": args.tenants,
        "wall_s": run.wall_s,
        "accepted": len(ok),
        "failed": len(failed),
        "failed_outside_faults": len(outside),
        "retried": sum(o.attempts > 1 for o in done),
        "failed_statuses": dict(Counter(str(o.status) for o in failed)),
        "replies_failed": run.replies_failed,
        "client_p50_ms": client[0],
        "client_p95_ms": client[1],
        "client_p99_ms": client[2],
        "client_p99_warm_ms": quantiles(warm)[2],
        "warm_turns": len(warm),
        "client_p99_warm_settled_ms": quantiles(settled)[2],
        "warm_turns_settled": len(settled),
        "settle_s": args.settle,
        "warmup_s": args.warmup,
        "server_p99_warm_ms": quantiles([o.server_s for o in steady])[2],
        "warm_tail": tail(steady),
        "client_loop_lag_p99_ms": quantiles(run.client_lags)[2],
        "client_loop_lag_max_ms": max(run.client_lags, default=math.nan) * 1000,
        "client_gc_pauses": run.client_gc.count,
        "client_gc_pause_total_ms": run.client_gc.total * 1000,
        "client_gc_pause_max_ms": run.client_gc.maximum() * 1000,
        "server_p50_ms": server[0],
        "server_p95_ms": server[1],
        "server_p99_ms": server[2],
        "loop_lag_p99_ms": max(run.lags) * 1000 if run.lags else math.nan,
        "hit_rate": sum(o.hits for o in ok) / needs if needs else math.nan,
        "cross_replica_hits": int(sum(run.remote_hits)),
        "unleased_changes": int(sum(u for u, _ in run.unleased if not math.isnan(u))),
        "unleased_refused": int(sum(r for _, r in run.unleased if not math.isnan(r))),
        "gc_pause_max_ms": max((g[0] for g in run.gc), default=math.nan) * 1000,
        "gc_pauses": int(sum(g[1] for g in run.gc)),
        "gc_pause_total_ms": sum(g[2] for g in run.gc) * 1000,
        "gc_forced": int(sum(g[3] for g in run.gc)),
        "turns_lost": run.lost,
        "cpu": cpu_use(run),
        "faults": [
            {
                "fault": f,
                "from_s": a - run.outcomes[0].start if run.outcomes else 0,
                "to_s": b - run.outcomes[0].start if run.outcomes else 0,
            }
            for f, a, b in run.windows
        ],
    }


def _run(main: Any) -> Any:
    """
    The client's loop: uvloop when installed (the server extra brings it), so that the
    client's own work weighs less on the times it measures.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--dataset", choices=["star", "sgd"], default="star")
    parser.add_argument("--rate", type=float, default=100.0, help="requests a second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=160,
        help="sessions at once (160: at most about 100 requests/s with STAR's think times)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        help="the client's HTTP connections, at most (one per session and replica)",
    )
    parser.add_argument(
        "--pools", type=int, default=40, help="HTTP clients the sessions are split over"
    )
    parser.add_argument("--compress", type=float, default=30.0, help="think-time divisor")
    parser.add_argument("--model", type=Path, help="model file (else trained on train)")
    parser.add_argument("--no-faults", dest="faults", action="store_false")
    parser.add_argument(
        "--no-state",
        dest="send_state",
        action="store_false",
        help="send requests without their state, as most clients would: the forecasts "
        "then go by the words",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds at the start left out of the warm p99s (the client's pool and the "
        "sessions' first turns ramping up)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="seconds after each fault window left out of the settled warm p99",
    )
    parser.add_argument(
        "--tenants",
        type=int,
        default=1,
        help="tenants the sessions are spread over (by id), each its own engine in each replica",
    )
    parser.add_argument(
        "--share-models",
        action="store_true",
        help="server.share_models: the tenants' engines read one copy of the model, "
        "learning nothing into it",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--logs", type=Path, help="folder for the replicas' logs")
    parser.add_argument(
        "--redis-nice",
        type=int,
        default=0,
        help="niceness of redis-server (negative: as if it had a core of its own)",
    )
    args = parser.parse_args()
    if args.pools < 1 or (args.connections is not None and args.connections < 1):
        parser.error("--pools and --connections must be at least 1")
    if args.tenants < 1:
        parser.error("--tenants must be at least 1")
    if shutil.which("redis-server") is None:
        sys.exit("serve_bench needs redis-server (apt-get install -y redis-server)")
    if not (args.data / args.dataset / "sessions-dev.jsonl").is_file():
        sys.exit(f"serve_bench: no {args.data / args.dataset / 'sessions-dev.jsonl'} (--data DIR)")
    print(f"data: {args.data / args.dataset} (sessions-dev, sessions-train, knowledge)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.model is None:
            args.model = folder / "model.json"
            train(args.data / args.dataset / "sessions-train.jsonl", args.model)
        with cluster(args, folder) as (redis, replicas):
            run = _run(drive(args, redis, replicas))
    out = report(args, run)
    print_table(out)
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


def print_table(out: dict[str, Any]) -> None:
    print(
        f"{out['dataset']}: {out['wall_s']:.0f} s, {out['rate']:.1f} requests/s while loaded "
        f"(target {out['target_rate']:.0f}), two replicas, one Redis, "
        f"{out['tenants']} tenant{'s' if out['tenants'] > 1 else ''}"
        + (f" (nice {out['redis_nice']})" if out["redis_nice"] else "")
    )
    for fault in out["faults"]:
        print(f"  fault: {fault['fault']:<28} {fault['from_s']:6.1f} s .. {fault['to_s']:6.1f} s")
    rows = [
        ("requests accepted", f"{out['accepted']}"),
        ("failed (outside faults / all)", f"{out['failed_outside_faults']} / {out['failed']}"),
        ("retried", f"{out['retried']}"),
        ("failed by status (0: no answer)", f"{out['failed_statuses']}"),
        ("replies failed", f"{out['replies_failed']}"),
        (
            "client ms p50 / p95 / p99",
            f"{out['client_p50_ms']:.1f} / {out['client_p95_ms']:.1f} / {out['client_p99_ms']:.1f}",
        ),
        (
            "client p99 ms, warm turns",
            (
                f"{out['client_p99_warm_ms']:.1f} ({out['warm_turns']} turns outside faults and "
                f"the first {out['warmup_s']:.0f} s; "
                f"server {out['server_p99_warm_ms']:.1f}, client loop lag "
                f"{out['client_loop_lag_p99_ms']:.1f})"
            ),
        ),
        (
            f"  and {out['settle_s']:.0f} s after each fault",
            f"{out['client_p99_warm_settled_ms']:.1f} ({out['warm_turns_settled']} turns)",
        ),
        (
            "slowest 1 % of warm turns, mean ms",
            (
                "client {client_ms:.1f} = server {server_ms:.1f} (lease {lease_ms:.1f}, handle "
                "{handle_ms:.1f}, write {write_ms:.1f}) + outside {outside_ms:.1f}".format(
                    **out["warm_tail"]
                )
                if out["warm_tail"]
                else "-"
            ),
        ),
        (
            "server ms p50 / p95 / p99",
            f"{out['server_p50_ms']:.1f} / {out['server_p95_ms']:.1f} / {out['server_p99_ms']:.1f}",
        ),
        ("event-loop lag p99 ms", f"{out['loop_lag_p99_ms']:.2f}"),
        ("hit rate", f"{out['hit_rate']:.3f}"),
        ("cross-replica hits", f"{out['cross_replica_hits']}"),
        (
            "changes without the lease / refused",
            f"{out['unleased_changes']} / {out['unleased_refused']}",
        ),
        (
            "client: loop lag max, GC pauses",
            (
                f"{out['client_loop_lag_max_ms']:.1f} ms; {out['client_gc_pauses']} / "
                f"{out['client_gc_pause_total_ms']:.0f} / {out['client_gc_pause_max_ms']:.1f} ms"
            ),
        ),
        (
            "GC pauses: count / total / max ms",
            (
                f"{out['gc_pauses']} / {out['gc_pause_total_ms']:.0f} / "
                f"{out['gc_pause_max_ms']:.1f} ({out['gc_forced']} with requests in flight)"
            ),
        ),
        ("turns lost", f"{out['turns_lost']}"),
    ]
    cpu = out["cpu"]
    if cpu:
        each = ", ".join(f"{name} {ms:.2f}" for name, ms in cpu["ms_per_request"].items())
        rows.append((f"CPU ms a request, first {cpu['seconds']:.0f} s", each))
        rows.append(
            (
                "cores busy: these processes / all",
                f"{cpu['cores_busy']:.2f} / {cpu['machine_cores_busy']:.2f} of {cpu['cores']}",
            )
        )
    for name, value in rows:
        print(f"  {name:<32} {value}")


if __name__ == "__main__":
    main()
