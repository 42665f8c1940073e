"""
Store benchmark: what one long session costs the server's session store on Redis, with
the store keeping its last ``--keep`` turns (``limits.max_session_turns``) and keeping
them all.

    python -m simulations.store_bench [--data ../shared/data] [--turns 5000]
        [--every 1000] [--keep 1000]

Reads ``<data>/sgd/sessions-dev.jsonl``: its turns in order, as one session of
``--turns`` turns, each stored as the server stores a turn (request, state, needs,
reply, tool calls; ``preload.server``'s ``RedisSessionStore``), on a ``redis-server`` of
its own (started on a free loopback port, without persistence). Every ``--every`` turns
it prints, for each store: the bytes Redis holds for the session's list of turns
(``MEMORY USAGE``), the turns it holds, the time of one append (the mean since the last
line) and of the read a replica makes to take the session up (its last ``--keep``
turns) and of ``GET /v1/sessions/{id}``'s read (every turn the store holds), each the
best of five.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
import redis.asyncio

from preload.server import RedisSessionStore
from simulations._data import add_data_arguments, corpus_folders
from simulations._redis import start_redis

_FIELDS = ("text", "state", "needs", "system", "tool_calls")


def _turns(path: Any, count: int) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            for turn in json.loads(line)["turns"]:
                turns.append({k: turn[k] for k in _FIELDS if k in turn})
                if len(turns) == count:
                    return turns
    return turns


async def _best(read: Callable[[], Awaitable[Any]]) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        await read()
        best = min(best, time.perf_counter() - start)
    return 1000 * best


async def _run(url: str, turns: list[dict[str, Any]], every: int, keep: int) -> None:
    client = redis.asyncio.Redis.from_url(url)
    try:
        for label, max_turns in ((f"keeps {keep:,}", keep), ("keeps all", None)):
            store = RedisSessionStore(url, prefix=f"bench{max_turns or 0}", max_turns=max_turns)
            key = store.keys("t", "long")[0]
            spent = 0.0
            try:
                for i, turn in enumerate(turns):
                    start = time.perf_counter()
                    async with store.hold("t", "long", start=-1) as held:
                        await held.append(turn, expected=i, epoch="e", user="u")
                    spent += time.perf_counter() - start
                    if (i + 1) % every:
                        continue
                    size = await client.memory_usage(key, samples=0) or 0
                    held_turns = await client.llen(key)
                    take_up = await _best(partial(store.read, "t", "long", -keep))
                    whole = await _best(partial(store.read, "t", "long"))
                    print(
                        f"  {label:<12} {i + 1:>6,} turns: list {size / 1e6:>7.2f} MB, "
                        f"{held_turns:>6,} turns held, append {1000 * spent / every:.2f} ms, "
                        f"take-up read {take_up:.1f} ms, whole read {whole:.1f} ms",
                        flush=True,
                    )
                    spent = 0.0
            finally:
                await store.delete("t", "long")
                await store.aclose()
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--turns", type=int, default=5000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--keep", type=int, default=1000)
    args = parser.parse_args()
    (_, folder), *_ = corpus_folders(args.data, "sgd")
    path = folder / "sessions-dev.jsonl"
    turns = _turns(path, args.turns)
    print(f"sgd: one session of {len(turns):,} dev turns, read from {path}")
    server = start_redis()
    if server is None:
        sys.exit("store_bench: no redis-server (apt-get install -y redis-server)")
    proc, url = server
    try:
        anyio.run(_run, url, turns, args.every, args.keep)
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
