"""
What one long-lived session costs in memory: the dev sessions of a corpus joined into one
conversation of ``--turns`` turns, played through one real :class:`preload.PreloadEngine`
(the default configuration; each turn's request, its tool calls through ``engine.call``
with a call source answering the log's result, its reply), and at every ``--every`` turns
the memory Python has allocated (``tracemalloc``, after the engine went idle and a full
collection), the characters of the texts the token counter keeps counts for, and the
turns the engine keeps (``--keep``: ``limits.max_session_turns``, the configuration's
1,000 by default).

    python -m simulations.memory_bench [--data ../shared/data] [--corpora sgd]
        [--turns 1000] [--every 250] [--keep 1000]

``tracemalloc`` slows the process several times over: the figures are the memory, not the
time. Compare the memory added per turn between two stretches of one run: the whole
engine (its forecasters, its cache) is in the figure, and grows most at the start.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import tempfile
import tracemalloc
from pathlib import Path

from preload import EngineConfig, LimitsConfig, PreloadEngine, read_sessions
from simulations._data import add_data_arguments, dev_logs
from simulations.history_calls_bench import LoggedResults


async def play(
    log: Path, turns: int, every: int, keep: int | None
) -> list[tuple[int, float, int, int]]:
    """
    The corpus's dev turns, one after another, as one session (the engine keeping its
    last ``keep`` turns, the configuration's when None): at every ``every`` turns, the
    turns played, the megabytes traced, the token counter's cached characters and the
    turns the engine keeps.
    """
    sessions, _ = read_sessions(log)
    played = [turn for session in sessions for turn in session.turns][:turns]
    source = LoggedResults(sessions)
    rows: list[tuple[int, float, int, int]] = []
    config = EngineConfig()
    if keep is not None:
        config = dataclasses.replace(config, limits=LimitsConfig(max_session_turns=keep))
    async with PreloadEngine(config, sources={}, call_sources=[source]) as engine:
        tracemalloc.start()
        try:
            for i, turn in enumerate(played, 1):
                await engine.handle(session_id="long", text=turn.text)
                for call in turn.tool_calls:
                    await engine.call("long", call.name, call.args)
                engine.reply("long", turn.system or "")
                if i % every == 0:
                    await engine.wait_idle()
                    gc.collect()
                    traced, _ = tracemalloc.get_traced_memory()
                    cache = getattr(engine.counter, "_cache", None)  # a dict before 0.14
                    chars = cache.chars if hasattr(cache, "chars") else sum(map(len, cache or ()))
                    rows.append((i, traced / 1e6, chars, len(engine.turns_of("long"))))
        finally:
            tracemalloc.stop()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, corpora="sgd")
    parser.add_argument("--turns", type=int, default=1000, help="turns played (1,000)")
    parser.add_argument("--every", type=int, default=250, help="measured every (250) turns")
    parser.add_argument(
        "--keep", type=int, default=None, help="limits.max_session_turns (the configuration's)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for name, log, origin in dev_logs(args.data, args.corpora, Path(tmp)):
            print(f"{name}: one session of {args.turns} dev turns, {origin}")
            before = (0, 0.0)
            for turns, mb, chars, kept in asyncio.run(play(log, args.turns, args.every, args.keep)):
                per_turn = (mb - before[1]) * 1000 / (turns - before[0])
                print(
                    f"  {turns:>6} turns: {mb:7.1f} MB traced ({per_turn:5.1f} KB a turn "
                    f"since {before[0]}), token counts kept for {chars / 1e6:.1f} M characters, "
                    f"{kept} turns kept"
                )
                before = (turns, mb)


if __name__ == "__main__":
    main()
