"""
Cache benchmark: the request path and the preloader on each cache backend.

    python -m simulations.cache_bench [--n 2000] [--items 20] [--preloads 2000]
        [--repeat 3] [--redis-url redis://127.0.0.1:6379/0] [--sessions 10000]
        [--backends memory,redis] [--json out.json]

For each backend (``memory``, ``redis``) it measures, with the real engine (tiktoken,
compressor, budget, swap controller):

- ``handle_per_s``: throughput of ``handle()`` when all of a request's items are warm;
- ``p50_ms``/``p99_ms``: the request-path overhead, one ``handle()`` that assembles a
  context from ``--items`` items, all hits (``fetch_p50_ms``/``fetch_p99_ms``: the
  part of it that gets the items from the cache);
- ``bare_get_p50_ms``/``bare_get_p99_ms``: a bare aiocache ``get`` of the same items
  (one after another, decoded by the same serializer) in the same run, and
  ``ratio_p50``/``ratio_p99``: our fetch over the bare gets (the ratio to beat is 2);
- ``preloads_per_s``: background loads (fetch, compress, serialize, store; on Redis
  with the lease) per second.

Each latency measurement runs ``--repeat`` times and the run with the lowest p99 is
kept (the p99 of every run is in the JSON): on a shared machine other processes only
add noise.

Without ``--redis-url`` it starts a ``redis-server`` of its own on a free loopback
port (the Redis row is skipped when the binary is missing). Last it churns
``--sessions`` sessions through a memory engine and reports the peak RSS.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio

from preload import (
    CacheConfig,
    DictSource,
    EngineConfig,
    PreloadEngine,
    PreloaderConfig,
    TiktokenCounter,
)
from preload.caches import JsonSerializer, MsgPackSerializer
from preload.learning import MarkovForecaster, NullForecaster
from simulations._redis import start_redis

TEXT = (
    "Flights service. Search and book flights between cities; fares in EUR, "
    "baggage rules, seat maps and the Tōkyō–Lisboa route. "
)


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def bench_backend(
    cache: CacheConfig,
    counter: TiktokenCounter,
    *,
    n: int,
    items: int,
    preloads: int,
    repeat: int = 3,
) -> dict[str, Any]:
    """
    Measure one backend.
    """
    keys = [f"kb:item{i}" for i in range(items)]
    texts = {k: f"{k}: {TEXT * 4}" for k in keys}
    texts |= {f"pre:{i}": f"pre {i}: {TEXT * 4}" for i in range(preloads)}
    config = EngineConfig(cache=cache, preloader=PreloaderConfig(queue_size=preloads + 1))
    source = DictSource(texts)
    result: dict[str, Any] = {}
    async with PreloadEngine(
        config, sources={"kb": source}, forecaster=NullForecaster(), counter=counter
    ) as engine:
        await engine.cache.clear() if engine.cache is not None else None
        first = await engine.handle(session_id="warm", text="warm up", needs=keys)
        assert first.misses == items, first
        sessions = [f"s{i}" for i in range(max(1, n // 8))]
        for i in range(200):  # warm every code path
            await engine.handle(session_id=sessions[i % len(sessions)], text="hi", needs=keys)

        # Each measurement runs `repeat` times and keeps the run with the lowest p99
        # (timeit's best-of-N): other processes on a shared machine only add noise.
        runs: list[tuple[list[float], float]] = []
        for r in range(repeat):
            handle_ms: list[float] = []
            names = [f"r{r}s{i}" for i in range(max(1, n // 8))]  # fresh: short histories
            gc.collect()
            start = time.perf_counter()
            for i in range(n):
                t0 = time.perf_counter()
                ctx = await engine.handle(
                    session_id=names[i % len(names)], text="what about Osaka?", needs=keys
                )
                handle_ms.append((time.perf_counter() - t0) * 1000)
                assert ctx.hits == items, ctx
            runs.append((handle_ms, time.perf_counter() - start))
        handle_ms, wall = min(runs, key=lambda run: _pct(run[0], 0.99))

        fetch_runs: list[list[float]] = []
        for _ in range(repeat):
            fetch_ms: list[float] = []
            for _ in range(n):
                t0 = time.perf_counter()
                got = await engine.preloader.get_many(keys)
                fetch_ms.append((time.perf_counter() - t0) * 1000)
            assert all(f.status == "hit" for f in got.values())
            fetch_runs.append(fetch_ms)
        fetch_ms = min(fetch_runs, key=lambda run: _pct(run, 0.99))

        # A bare aiocache get of the same items: the backend alone, with our serializer.
        assert engine.cache is not None
        bare_runs = [await _bare_gets(engine, cache, keys, n) for _ in range(repeat)]
        bare_ms = min(bare_runs, key=lambda run: _pct(run, 0.99))

        start = time.perf_counter()
        for i in range(preloads):
            engine.preloader.schedule(f"pre:{i}", 0.5)
        await engine.wait_idle()
        preload_wall = time.perf_counter() - start
        m = engine.metrics()
        assert m.preloads >= preloads * 0.99, m

    result = {
        "handle_per_s": round(n / wall, 1),
        "p50_ms": round(_pct(handle_ms, 0.50), 4),
        "p99_ms": round(_pct(handle_ms, 0.99), 4),
        "fetch_p50_ms": round(_pct(fetch_ms, 0.50), 4),
        "fetch_p99_ms": round(_pct(fetch_ms, 0.99), 4),
        "bare_get_p50_ms": round(_pct(bare_ms, 0.50), 4),
        "bare_get_p99_ms": round(_pct(bare_ms, 0.99), 4),
        "ratio_p50": round(_pct(fetch_ms, 0.50) / _pct(bare_ms, 0.50), 2),
        "ratio_p99": round(_pct(fetch_ms, 0.99) / _pct(bare_ms, 0.99), 2),
        "handle_mean_ms": round(statistics.fmean(handle_ms), 4),
        "p99_each_run_ms": [round(_pct(run, 0.99), 4) for run, _ in runs],
        "repeat": repeat,
        "preloads_per_s": round(preloads / preload_wall, 1),
        "items": items,
        "requests": n,
    }
    return result


def _bare_backend(cache: CacheConfig) -> Any:
    """
    aiocache's own cache for ``cache.backend``, with the configured serializer: on
    Redis, the same server and namespace the engine's cache uses.
    """
    from aiocache import RedisCache as AioRedisCache
    from aiocache import SimpleMemoryCache

    serializer = MsgPackSerializer() if cache.serializer == "msgpack" else JsonSerializer()
    if cache.backend != "redis":
        return SimpleMemoryCache(serializer=serializer, timeout=None)
    url = urlsplit(cache.redis_url)
    return AioRedisCache(
        serializer=serializer,
        namespace=cache.namespace,
        timeout=None,
        endpoint=url.hostname or "127.0.0.1",
        port=url.port or 6379,
        db=int(url.path.lstrip("/") or 0),
        password=unquote(url.password) if url.password else None,
        ssl=url.scheme == "rediss",
    )


async def _bare_gets(
    engine: PreloadEngine, cache: CacheConfig, keys: list[str], n: int
) -> list[float]:
    assert engine.cache is not None
    routed = [engine.preloader.key_of(k) for k in keys]
    cks = [r[1] for r in routed if r is not None]
    backend = _bare_backend(cache)
    try:
        if cache.backend != "redis":  # the engine's values, copied into a bare cache
            for ck in cks:
                await backend.set(ck, await engine.cache.get(ck))
        for ck in cks:  # connected and warm, as the engine's cache is
            await backend.get(ck)
        out: list[float] = []
        for _ in range(n):
            t0 = time.perf_counter()
            for ck in cks:
                value = await backend.get(ck)
                assert value is not None
            out.append((time.perf_counter() - t0) * 1000)
    finally:
        if cache.backend == "redis":  # aiocache's close() calls redis-py's deprecated close()
            await backend.client.aclose()
        else:
            await backend.close()
    return out


async def churn(counter: TiktokenCounter, sessions: int) -> dict[str, Any]:
    """
    Push ``sessions`` sessions of three turns each through a memory engine that
    learns online, preloads, cancels and forgets (1,000 sessions kept, 32 cache
    entries); report resident memory every 1,000 sessions and its peak.
    """
    items = {f"kb:{i}": f"item {i}: {TEXT}" for i in range(3 * 17)}
    config = EngineConfig(
        cache=CacheConfig(max_entries=32), preloader=PreloaderConfig(max_preloads_per_turn=2)
    )
    rss: list[float] = []
    start = time.perf_counter()
    async with PreloadEngine(
        config,
        sources={"kb": DictSource(items)},
        counter=counter,
        forecaster=MarkovForecaster(1, persistence=0.5),  # learns online
        max_sessions=1000,
    ) as engine:
        for s in range(sessions):
            sid = f"churn{s}"
            for turn in range(3):
                topic = (s + turn) % 17
                needs = [f"kb:{topic * 3 + s % 2}", f"kb:{topic * 3 + 2}"]
                await engine.handle(
                    session_id=sid, text=f"turn {turn}", state=f"topic{topic}", needs=needs
                )
                engine.reply(sid, "ok")
            if s % 3:
                engine.end_session(sid)
            if s % 1000 == 999:
                await engine.wait_idle()
                rss.append(_rss_mb())
        m = engine.metrics()
    return {
        "sessions": sessions,
        "wall_s": round(time.perf_counter() - start, 1),
        "rss_after_1000_mb": round(rss[0], 1) if rss else None,
        "rss_end_mb": round(rss[-1], 1) if rss else None,
        "rss_by_1000_mb": [round(r, 1) for r in rss],
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "cache_entries": m.cache_entries,
        "preloads": m.preloads,
        "cancelled": m.cancelled,
        "evicted_unused": m.evicted_unused,
    }


def _line(name: str, r: dict[str, Any]) -> str:
    return (
        f"{name:<7} handle {r['handle_per_s']:>8,.0f}/s  p50 {r['p50_ms']:.3f} ms  "
        f"p99 {r['p99_ms']:.3f} ms | fetch p50 {r['fetch_p50_ms']:.3f} p99 "
        f"{r['fetch_p99_ms']:.3f} ms | bare get p50 {r['bare_get_p50_ms']:.3f} p99 "
        f"{r['bare_get_p99_ms']:.3f} ms | ratio p50 {r['ratio_p50']:.2f} p99 "
        f"{r['ratio_p99']:.2f} | preloads {r['preloads_per_s']:>8,.0f}/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="requests measured per backend")
    parser.add_argument("--items", type=int, default=20, help="items per request")
    parser.add_argument("--preloads", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement, best kept")
    parser.add_argument("--redis-url", help="an existing Redis (default: start one)")
    parser.add_argument("--sessions", type=int, default=10_000, help="sessions to churn")
    parser.add_argument("--backends", default="memory,redis")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    counter = TiktokenCounter()
    results: dict[str, Any] = {"backends": {}}
    server = None
    try:
        for backend in filter(None, args.backends.split(",")):
            if backend == "memory":
                cache = CacheConfig()
            else:
                url = args.redis_url
                if url is None:
                    server = start_redis()
                    if server is None:
                        print("redis: skipped (no redis-server; apt-get install -y redis-server)")
                        continue
                    url = server[1]
                cache = CacheConfig(backend="redis", redis_url=url, namespace="cache_bench")
            r = anyio.run(
                partial(
                    bench_backend,
                    cache,
                    counter,
                    n=args.n,
                    items=args.items,
                    preloads=args.preloads,
                    repeat=args.repeat,
                )
            )
            results["backends"][backend] = r
            print(_line(backend, r), flush=True)
    finally:
        if server is not None:
            server[0].kill()
            server[0].wait()
    if args.sessions:
        c = anyio.run(churn, counter, args.sessions)
        results["churn"] = c
        print(
            f"churn   {c['sessions']:,} sessions x 3 turns in {c['wall_s']} s: RSS "
            f"{c['rss_after_1000_mb']} MB after 1,000, {c['rss_end_mb']} MB at the end, "
            f"peak {c['peak_rss_mb']} MB; cache entries {c['cache_entries']}, preloads "
            f"{c['preloads']:,}, cancelled {c['cancelled']:,}, evicted unused "
            f"{c['evicted_unused']:,}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
