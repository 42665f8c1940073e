"""
The source ``serve_bench`` gives its replicas (``preload serve --sources
simulations.serve_plugins:sources``): the knowledge file of
``PRELOAD_BENCH_KNOWLEDGE`` behind a lognormal latency (median
``PRELOAD_BENCH_MEDIAN_MS``, p95 ``PRELOAD_BENCH_P95_MS``), which hangs while the
Redis key ``bench:hang`` (at ``PRELOAD_BENCH_REDIS``) lives: the bench's "the source
hangs for 10 s" fault. And the tools ``serve_calls_bench`` gives them (``--tools
simulations.serve_plugins:tools``): each replica's own backend in process, or, with
``PRELOAD_BENCH_BACKEND_URL``, a client of the one ``simulations.serve_backend`` both
replicas share.
"""

from __future__ import annotations

import functools
import math
import os
import random
from collections.abc import Mapping
from typing import Any

import anyio
import httpx

from preload import CallSource, JsonlKnowledgeSource, LatencyConfig, Source, read_sessions
from preload.replay import SimulatedCallSource

_Z95 = 1.6448536269514722


class SlowKnowledge:
    """
    A knowledge file with a source's latency, and a switch that makes it hang.
    """

    def __init__(self, path: str, median_ms: float, p95_ms: float, redis_url: str) -> None:
        self.inner = JsonlKnowledgeSource(path)
        self.name = self.inner.name
        self.mu = math.log(median_ms / 1000)
        self.sigma = max(math.log(p95_ms / median_ms) / _Z95, 1e-9)
        self.redis_url = redis_url
        self._redis: Any = None
        self._rng = random.Random()

    def __contains__(self, key: object) -> bool:
        return key in self.inner

    def category(self, key: str) -> str:
        return self.inner.category(key)

    async def fetch(self, key: str) -> str:
        import redis.asyncio
        from redis.exceptions import RedisError

        if self._redis is None:
            self._redis = redis.asyncio.Redis.from_url(self.redis_url, socket_timeout=1.0)
        try:
            hang_ms = await self._redis.pttl("bench:hang")
        except (RedisError, OSError):  # Redis restarting: no hang switch to read
            hang_ms = -2
        if hang_ms > 0:
            await anyio.sleep(hang_ms / 1000)
        await anyio.sleep(self._rng.lognormvariate(self.mu, self.sigma))
        return await self.inner.fetch(key)


def sources(tenant: str) -> dict[str, Source]:
    """
    The bench's knowledge source, for every tenant.
    """
    source = SlowKnowledge(
        os.environ["PRELOAD_BENCH_KNOWLEDGE"],
        float(os.environ.get("PRELOAD_BENCH_MEDIAN_MS", "150")),
        float(os.environ.get("PRELOAD_BENCH_P95_MS", "1000")),
        os.environ["PRELOAD_BENCH_REDIS"],
    )
    return {source.name: source}


class _Client:
    """
    One tenant's own client of the replica's one backend: another object, the same
    calls.
    """

    def __init__(self, backend: CallSource, backend_name: str | None) -> None:
        self.backend = backend
        self.name = backend.name
        self.backend_name = backend_name

    def read_only(self, name: str) -> bool | None:
        return self.backend.read_only(name)

    async def call(self, name: str, args: Mapping[str, Any]) -> str:
        return await self.backend.call(name, args)


class BackendError(RuntimeError):
    """
    The shared tool backend answered a call with an error.
    """

    def __init__(self, name: str, status: int, body: str) -> None:
        super().__init__(f"tool backend answered {status} to a call of {name!r}: {body[:300]}")
        self.status = status


class RemoteBackend:
    """
    A client of the tool backend both replicas share (``simulations.serve_backend`` at
    ``url``): the same name and read-only tools as the in-process backend (``local``,
    built from the same sessions and never called), each call a ``POST /call`` through
    one HTTP client, made in the loop of the first call.
    """

    def __init__(self, url: str, local: SimulatedCallSource) -> None:
        self.url = url.rstrip("/")
        self.local = local
        self.name = local.name
        self._http: httpx.AsyncClient | None = None

    def read_only(self, name: str) -> bool | None:
        return self.local.read_only(name)

    async def call(self, name: str, args: Mapping[str, Any]) -> str:
        """
        The backend's result of the call.

        Raises:
            BackendError: The backend answered other than 200.
            httpx.HTTPError: It did not answer (60 s at most).
        """
        if self._http is None:  # the pool's bound would be another capacity: none
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=200)
            self._http = httpx.AsyncClient(base_url=self.url, timeout=60.0, limits=limits)
        response = await self._http.post("/call", json={"name": name, "args": dict(args)})
        if response.status_code != 200:
            raise BackendError(name, response.status_code, response.text)
        result: str = response.json()["result"]
        return result


def tools(tenant: str) -> list[CallSource]:
    """
    The bench's tool backend, one for all of a replica's tenants: the tools the
    sessions of ``PRELOAD_BENCH_SESSIONS`` call, each answering with the result they
    recorded after a lognormal latency (median ``PRELOAD_BENCH_CALL_MEDIAN_MS``, 400
    ms, p95 ``PRELOAD_BENCH_CALL_P95_MS``, 2 s: the replay's ``db``), the same for the
    same call on every replica (seeded by ``PRELOAD_BENCH_SEED``), at most
    ``PRELOAD_BENCH_CALL_CAPACITY`` calls at once (0, the default: no bound): on each
    replica, in process; or, when ``PRELOAD_BENCH_BACKEND_URL`` is set, on the one
    ``simulations.serve_backend`` there, for both replicas together, through one HTTP
    client a replica. Every tenant gets that source itself, one object, unless
    ``PRELOAD_BENCH_CLIENT_EACH`` is 1: then each its own client of it, which names
    the backend it calls ``PRELOAD_BENCH_BACKEND_NAME`` when that is set (its
    ``backend_name``: the fleet-wide bound is then counted over every tenant's calls).
    """
    if os.environ.get("PRELOAD_BENCH_CLIENT_EACH") == "1":
        return [_Client(_backend(), os.environ.get("PRELOAD_BENCH_BACKEND_NAME") or None)]
    return [_backend()]


def simulated_backend() -> SimulatedCallSource:
    """
    The in-process tool backend the environment's ``PRELOAD_BENCH_*`` settings describe
    (see :func:`tools`); ``serve_backend`` serves one.
    """
    sessions, _ = read_sessions(os.environ["PRELOAD_BENCH_SESSIONS"])
    latency = LatencyConfig(
        median_ms=float(os.environ.get("PRELOAD_BENCH_CALL_MEDIAN_MS", "400")),
        p95_ms=float(os.environ.get("PRELOAD_BENCH_CALL_P95_MS", "2000")),
    )
    seed = int(os.environ.get("PRELOAD_BENCH_SEED", "0"))
    capacity = int(os.environ.get("PRELOAD_BENCH_CALL_CAPACITY", "0"))
    return SimulatedCallSource(sessions, latency, random.Random(seed), capacity=capacity)


@functools.cache
def _backend() -> CallSource:
    url = os.environ.get("PRELOAD_BENCH_BACKEND_URL")
    return RemoteBackend(url, simulated_backend()) if url else simulated_backend()
