"""
One replica for the two-process tests: an engine on a shared Redis, driven through
Redis lists so that the test (not a sleep) decides when replicas act.

Usage: ``python -P tests/caches/replica.py REDIS_URL NAME MODE KEY...`` where MODE is
``preload`` (schedule every key, wait until loaded) or ``demand`` (one request that
needs every key). It pushes NAME to ``test:ready``, waits on ``test:go:NAME``, acts,
and prints one JSON line: its source's calls by key and the request's statuses.
"""

from __future__ import annotations

import json
import sys

import anyio
import redis.asyncio

from preload import CacheConfig, EngineConfig, PreloadEngine
from preload.learning import NullForecaster
from preload.testing import ScriptedSource


async def main(url: str, name: str, mode: str, keys: list[str]) -> None:
    """
    Run the replica.
    """
    source = ScriptedSource({k: f"text of {k} ✓" for k in keys}, name="kb", latency=0.2)
    config = EngineConfig(cache=CacheConfig(backend="redis", redis_url=url, redis_timeout_s=5.0))
    client = redis.asyncio.Redis.from_url(url)
    out: dict[str, object] = {"name": name}
    try:
        async with PreloadEngine(
            config, sources={"kb": source}, forecaster=NullForecaster()
        ) as engine:
            await client.rpush("test:ready", name)
            await client.blpop([f"test:go:{name}"], timeout=60)
            if mode == "preload":
                for key in keys:
                    engine.preloader.schedule(key, 0.9)
                await engine.wait_idle()
            else:
                ctx = await engine.handle(session_id=name, text="go", needs=keys)
                out |= {"hits": ctx.hits, "partial": ctx.partial_hits, "misses": ctx.misses}
            m = engine.metrics()
            out |= {"lease_waits": m.lease_waits, "remote_loads": m.remote_loads}
    finally:
        await client.aclose()
    out["calls"] = dict(source.calls)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
