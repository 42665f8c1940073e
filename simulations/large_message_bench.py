"""
One long message against everyone else: while one session sends a 1 MB request and
gets a 1 MB reply, how long do other sessions' requests wait for the event loop?

Generated data (distinct sentences with names and numbers); no files are read. Prints
the gap between consecutive requests of the other sessions (p50, p99, max) while the
long exchange is handled and recorded, and how long that took. The other sessions are
served by a second engine on the same event loop, so that the first one can be drained
(``wait_idle``) while they keep asking: what they measure is how long the loop, which
both share, keeps them waiting.

    python -m simulations.large_message_bench [--kb 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

import anyio
import numpy as np

from preload import DictSource, EngineConfig, PreloadEngine
from preload.learning import NullForecaster

WORDS = [
    "flight",
    "hotel",
    "booking",
    "dinner",
    "table",
    "movie",
    "ticket",
    "train",
    "station",
    "museum",
    "garden",
    "city",
    "river",
    "bridge",
    "market",
    "library",
    "concert",
    "theatre",
    "airport",
    "harbor",
    "castle",
    "beach",
]
NAMES = ("Alice", "Bob", "Chen", "Dana", "Emeka", "Fatima", "Goran", "Hana", "Ivan", "Juno")


def long_text(chars: int, seed: int = 0) -> str:
    """
    Distinct sentences with names, numbers and times, ``chars`` characters long.
    """
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    i = 0
    while size < chars:
        sentence = (
            f"{rng.choice(NAMES)} wants {rng.randint(1, 9)} {rng.choice(WORDS)} "
            f"tickets near the {rng.choice(WORDS)} at {rng.randint(1, 12)}:{rng.randint(10, 59)} "
            f"on day {i} for {rng.randint(10, 999)} dollars."
        )
        out.append(sentence)
        size += len(sentence) + 1
        i += 1
    return " ".join(out)[:chars]


async def measure(chars: int) -> tuple[list[float], float]:
    """
    Gaps between the other sessions' requests while one long exchange is served and
    recorded; and the long exchange's own time.
    """
    big = long_text(chars)
    config = EngineConfig.from_dict(
        {"limits": {"max_request_chars": 2 * chars + 10, "max_reply_chars": 2 * chars + 10}}
    )
    source = DictSource({"kb:a": "A short item about flights.", "kb:b": "Hotels in Oslo."})
    gaps: list[float] = []
    done = anyio.Event()
    engine = PreloadEngine(config, sources={"kb": source}, forecaster=NullForecaster())
    other = PreloadEngine(config, sources={"kb": source}, forecaster=NullForecaster())
    async with engine, other:
        await other.handle(session_id="warm", text="hi", needs=["kb:a", "kb:b"])

        async def others() -> None:
            i = 0
            last = time.perf_counter()
            while not done.is_set() or i < 200:
                await other.handle(session_id=f"o{i % 50}", text="hello", needs=["kb:a", "kb:b"])
                await anyio.lowlevel.checkpoint()
                now = time.perf_counter()
                gaps.append(now - last)
                last = now
                i += 1

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(others)
            await engine.handle(session_id="big", text=big)
            engine.reply("big", big)
            await engine.wait_idle()
            await engine.handle(session_id="big", text="and then?")
            elapsed = time.perf_counter() - start
            done.set()
    return gaps, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kb", type=int, default=1000, help="message size in KB (default 1000)")
    args = parser.parse_args()
    print("data: generated sentences (no files read)")
    for kb in sorted({10, 100, args.kb}):
        gaps, elapsed = asyncio.run(measure(kb * 1000))
        ms = np.percentile(np.array(gaps) * 1000, [50, 99])
        print(
            f"{kb:>5} KB message: long exchange served and recorded in {elapsed:.2f} s; "
            f"other sessions' request gaps p50 {ms[0]:.2f} ms, p99 {ms[1]:.2f} ms, "
            f"max {max(gaps) * 1000:.1f} ms over {len(gaps)} requests"
        )


if __name__ == "__main__":
    main()
