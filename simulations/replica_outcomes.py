"""
An A/B test served by several replicas: what ``preload report`` gets from their
outcomes files, merged (``read_outcome_files``) or taken as they are.

Real sessions (SGD or STAR dev, read from ``../shared/data``) run through
``configs/experiment.toml``'s experiment twice, on real engines in this process (no
latency: items come from the corpus's knowledge file; each engine learns online from
nothing):

- one engine serves every turn: the reference report;
- ``--replicas`` engines share one cache and take a session's turns in turn, as a load
  balancer without affinity would: before a replica serves a turn it restores the
  session's turns from the replica that served the last (as ``preload serve`` does from
  its store). After each request the turn's needs are given as feedback (the answer
  used them), and the turn's reply is recorded, as the replay does.

Each replica's outcomes are saved to a file of its own (in a temporary folder), and the
report is made three ways: from the merged files, from the files concatenated as if each
line were a session (what a report that took partial outcomes as sessions would count),
and from the reference engine. It prints, for each arm, the sessions counted and the
mean of each metric (``wait_ms`` on the wall clock: on the replicas it includes
catching up the exchanges the other one recorded). Then it measures what the server's ``GET /v1/experiment/outcomes``
holds the event loop for: all of a replica's outcomes at once against the route's chunks.

Run ``python -m simulations.replica_outcomes`` (``--corpus sgd|star``, ``--limit N``
dev sessions, 300 by default; ``--replicas N``, 2 by default; ``--data DIR``).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio

from preload import DictSource, EngineConfig, PreloadEngine, Session, read_knowledge, read_sessions
from preload.caches import make_cache
from preload.experiments import (
    METRICS,
    SessionOutcome,
    read_outcome_files,
    summarize,
    write_outcomes,
)
from simulations._data import add_data_arguments, corpus_folders

REPO = Path(__file__).resolve().parents[1]
#: The outcomes the server's route works out and writes between two turns of the loop.
CHUNK = 200


async def _serve(
    sessions: Sequence[Session], knowledge: Mapping[str, str], replicas: int
) -> list[list[SessionOutcome]]:
    """
    Serve ``sessions`` on ``replicas`` engines sharing one cache, a session's turns
    taken in turn; each engine's outcomes.
    """
    config = EngineConfig.from_toml(REPO / "configs" / "experiment.toml")
    source = {"kb": DictSource(knowledge)}
    async with contextlib.AsyncExitStack() as stack:
        cache = make_cache(config.cache)
        stack.push_async_callback(cache.close)
        engines = [
            await stack.enter_async_context(PreloadEngine(config, sources=source, cache=cache))
            for _ in range(replicas)
        ]
        for session in sessions:
            sid = session.session_id
            last: PreloadEngine | None = None
            for i, turn in enumerate(session.turns):
                engine = engines[i % replicas]
                if last is not None and last is not engine:
                    engine.restore(sid, last.turns_of(sid))
                needs = [n for n in turn.needs if n in knowledge]
                await engine.handle(
                    session_id=sid,
                    text=turn.text,
                    state=turn.state,
                    needs=needs,
                    request_id=f"{sid}-{i}",
                )
                engine.feedback(sid, used=needs)
                engine.reply(sid, turn.system or "")
                last = engine
        for engine in engines:
            await engine.wait_idle()
        return [engine.experiment_outcomes() for engine in engines]


def _by_arm(outcomes: Sequence[SessionOutcome]) -> dict[str, tuple[int, dict[str, float]]]:
    """
    Each arm's sessions and the mean of each metric over them.
    """
    (summary,) = summarize(outcomes)
    out = {}
    for arm, figures in summary.to_json()["arms"].items():
        got = figures["metrics"]
        means = {m: got[m]["mean"] for m in METRICS if got.get(m, {}).get("mean") is not None}
        out[arm] = (figures["sessions"], means)
    return out


def _loop_hold(outcomes: Sequence[SessionOutcome]) -> tuple[float, float]:
    """
    The milliseconds it takes to write all ``outcomes`` at once, and the longest
    chunk of ``CHUNK`` as the server's route writes them.
    """
    began = time.perf_counter()
    "".join(o.to_line() for o in outcomes)
    whole = time.perf_counter() - began
    longest = 0.0
    it = iter(outcomes)
    while True:
        began = time.perf_counter()
        chunk = list(itertools.islice(it, CHUNK))
        "".join(o.to_line() for o in chunk)
        longest = max(longest, time.perf_counter() - began)
        if not chunk:
            return whole * 1000, longest * 1000


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--corpus", default="star", choices=("sgd", "star"))
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args(argv)
    ((_, folder),) = corpus_folders(args.data, args.corpus)
    sessions, _ = read_sessions(folder / "sessions-dev.jsonl")
    sessions = sessions[: args.limit]
    items, _ = read_knowledge(folder / "knowledge.jsonl")
    knowledge = {item.key: item.text for item in items}
    print(f"reading {folder}: {len(sessions)} dev sessions, {args.replicas} replicas")
    (single,) = anyio.run(_serve, sessions, knowledge, 1)
    parts = anyio.run(_serve, sessions, knowledge, args.replicas)
    with tempfile.TemporaryDirectory() as tmp:
        files = [Path(tmp) / f"replica-{i}.jsonl" for i in range(args.replicas)]
        for path, outcomes in zip(files, parts, strict=True):
            write_outcomes(path, outcomes)
        merged = read_outcome_files(files)
    split = sum(
        1
        for sid in {o.session_id for o in single}
        if sum(o.session_id == sid for p in parts for o in p) > 1
    )
    print(
        f"sessions: {len(single)}; outcomes in the replicas' files: {sum(map(len, parts))}; "
        f"sessions in more than one file: {split}"
    )
    reports = {
        "one engine": _by_arm(single),
        "replicas, merged": _by_arm(merged),
        "replicas, lines as sessions": _by_arm([o for p in parts for o in p]),
    }
    metrics = [
        m for m in METRICS if any(m in means for r in reports.values() for _, means in r.values())
    ]
    header = f"{'report':<28} {'arm':<8} {'sessions':>8} " + " ".join(f"{m:>15}" for m in metrics)
    print(header)
    for label, arms in reports.items():
        for arm, (n, means) in sorted(arms.items()):
            cells = " ".join(f"{means[m]:>15.4f}" if m in means else f"{'-':>15}" for m in metrics)
            print(f"{label:<28} {arm:<8} {n:>8} {cells}")
    biggest = max(parts, key=len)
    for count in (10_000, 100_000):
        outcomes = (biggest * (count // len(biggest) + 1))[:count]
        whole, longest = _loop_hold(outcomes)
        print(
            f"GET /v1/experiment/outcomes of {count:,} outcomes: written at once "
            f"{whole:.1f} ms on the loop; in chunks of {CHUNK}, the longest {longest:.2f} ms"
        )


if __name__ == "__main__":
    main()
