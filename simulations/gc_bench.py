"""
What remembered sessions cost the garbage collector: CPython's full collection walks
every container object the collector tracks and stops every thread meanwhile, so its
length grows with the sessions an engine remembers (up to ``engine.max_sessions``).

Replays ``--sessions`` dev sessions of ``<data>/<corpus>/sessions-dev.jsonl``
(``--data``, ``../shared/data`` by default; the knowledge file is the source) into one
:class:`preload.PreloadEngine` with the default configuration, a request and its reply
per turn, the learner drained at the end. As ``preload serve`` does, what was made
before the sessions is frozen out of the collector's sight (:func:`gc.freeze`). Then:

- tracked objects per remembered session (the count is deterministic: a busy machine
  does not change it), with the types that make most of it, and the references they
  hold (a pass follows each: its length grows with both);
- the same for the sessions' histories alone (:class:`preload.history.CompressedConversation`
  fed the same exchanges, its context taken once), the part the history code owns;
- one full :func:`gc.collect` with the sessions remembered, and with none (the
  engine as it was before the replay): the fastest of ``--repeats``.

    python -m simulations.gc_bench [--data ../shared/data] [--corpora star,sgd]
        [--sessions 400] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections import Counter
from pathlib import Path
from typing import Any

from preload import DictSource, PreloadEngine, read_knowledge, read_sessions
from preload.history import CompressedConversation
from simulations._data import add_data_arguments, corpus_folders

TOP_TYPES = 8


def tracked() -> tuple[Counter[str], int]:
    """
    The objects the collector tracks (frozen ones excluded), by type name, and the
    references they hold (which a pass follows, each once or twice).
    """
    gc.collect()
    objects = gc.get_objects()
    return Counter(type(o).__name__ for o in objects), sum(
        len(gc.get_referents(o)) for o in objects
    )


def fastest_collection(repeats: int) -> float:
    """
    The fastest of ``repeats`` full collections, in seconds.
    """
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        gc.collect()
        best = min(best, time.perf_counter() - began)
    return best


def per_session(
    before: tuple[Counter[str], int], after: tuple[Counter[str], int], sessions: int
) -> dict[str, Any]:
    """
    Tracked objects added per session, in all and by type (the most first), and the
    references they hold.
    """
    added = after[0] - before[0]
    return {
        "per_session": (after[0].total() - before[0].total()) / sessions,
        "references": (after[1] - before[1]) / sessions,
        "by_type": {name: count / sessions for name, count in added.most_common(TOP_TYPES)},
    }


async def replay_engine(corpus: Path, sessions: list[Any], repeats: int) -> dict[str, Any]:
    """
    The sessions replayed into one engine: tracked objects per remembered session and
    a full collection's time with them and without.
    """
    items, _ = read_knowledge(corpus / "knowledge.jsonl")
    source = DictSource({item.key: item.text for item in items})
    async with PreloadEngine(sources={"kb": source}) as engine:
        first = sessions[0].turns[0]  # what any first request builds, out of the count
        await engine.handle(session_id="warm-up", text=first.text, needs=list(first.needs))
        engine.reply("warm-up", first.system or "")
        await engine.wait_idle()
        engine.end_session("warm-up")
        await engine.wait_idle()
        gc.collect()
        gc.freeze()
        try:
            empty_s = fastest_collection(repeats)
            before = tracked()
            for session in sessions:
                sid = session.session_id
                for turn in session.turns:
                    await engine.handle(
                        session_id=sid, text=turn.text, state=turn.state, needs=list(turn.needs)
                    )
                    if turn.system:
                        engine.reply(sid, turn.system)
            await engine.wait_idle()
            after = tracked()
            full_s = fastest_collection(repeats)
        finally:
            gc.unfreeze()
    return {
        **per_session(before, after, len(sessions)),
        "collection_ms": full_s * 1000,
        "collection_ms_without": empty_s * 1000,
    }


def replay_histories(sessions: list[Any]) -> dict[str, Any]:
    """
    The sessions' histories alone: tracked objects per history.
    """
    counter = CompressedConversation(1).counter
    before = tracked()
    histories = []
    for session in sessions:
        history = CompressedConversation(1500, counter=counter)
        for turn in session.turns:
            history.add_exchange(turn.text, turn.system or "")
        history.get_context(300)
        histories.append(history)
    after = tracked()
    return per_session(before, after, len(histories))


def report(name: str, figures: dict[str, Any]) -> None:
    kinds = ", ".join(f"{kind} {n:.1f}" for kind, n in figures["by_type"].items())
    print(
        f"  {name}: {figures['per_session']:.1f} tracked objects per session ({kinds}), "
        f"holding {figures['references']:.0f} references"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, corpora="star,sgd")
    parser.add_argument("--sessions", type=int, default=400, help="dev sessions to remember")
    parser.add_argument("--repeats", type=int, default=5, help="collections timed, the fastest")
    args = parser.parse_args()
    folders = corpus_folders(args.data, args.corpora)
    print(f"data: {args.data} (dev sessions, knowledge)")
    for name, corpus in folders:
        sessions, _ = read_sessions(corpus / "sessions-dev.jsonl", limit=args.sessions)
        engine = asyncio.run(replay_engine(corpus, sessions, args.repeats))
        histories = replay_histories(sessions)
        turns = sum(len(s.turns) for s in sessions)
        print(f"{name}: {len(sessions)} remembered sessions ({turns} turns)")
        report("engine", engine)
        report("history alone", histories)
        print(
            f"  one full collection: {engine['collection_ms']:.1f} ms with them, "
            f"{engine['collection_ms_without']:.1f} ms without (fastest of {args.repeats})"
        )


if __name__ == "__main__":
    main()
