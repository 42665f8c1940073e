"""
Call counts growth: what the call forecast's counts cost in memory as it learns online,
session after session, as a server's engine does from every session that ends.

    python -m simulations.call_counts_growth [--data ../shared/data] [--corpora sgd]
        [--sessions 6000] [--every 1000]

Reads ``<data>/<corpus>/sessions-train.jsonl`` and feeds its first ``--sessions``
sessions one at a time to ``graph.CallForecaster.partial_fit``. Every ``--every``
sessions it prints the memory the forecaster holds (``tracemalloc``, after a full
collection), the KB it grew by a learned turn since the last line, the alias counts it
holds (words said in place of a value, by value), the words counted per tool and the
cue words counted per argument (words seen beside its values), and
the milliseconds a session took to learn since the last line (under ``tracemalloc``,
which slows it).
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc

from graph import CallForecaster
from simulations._data import add_data_arguments, corpus_folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, corpora="sgd")
    parser.add_argument("--sessions", type=int, default=6000)
    parser.add_argument("--every", type=int, default=1000)
    args = parser.parse_args()
    for corpus, folder in corpus_folders(args.data, args.corpora):
        path = folder / "sessions-train.jsonl"
        with path.open(encoding="utf-8") as f:
            sessions = [json.loads(line) for line, _ in zip(f, range(args.sessions), strict=False)]
        print(f"{corpus}: the first {len(sessions):,} train sessions, read from {path}")
        tracemalloc.start()
        gc.collect()
        base = last = tracemalloc.get_traced_memory()[0]
        model = CallForecaster()
        turns = spent = 0.0
        for i, session in enumerate(sessions, 1):
            start = time.perf_counter()
            model.partial_fit([session])
            spent += time.perf_counter() - start
            turns += len(session["turns"])
            if i % args.every and i != len(sessions):
                continue
            gc.collect()
            now = tracemalloc.get_traced_memory()[0]
            counts = model.counts_
            said = sum(len(v) for grams in counts.said.values() for v in grams.values())
            words = sum(len(grams) for grams in counts.words.values())
            cues = sum(len(per) for per in model.evidence_.cues.values())
            print(
                f"  {i:>6,} sessions: {(now - base) / 1e6:>6.1f} MB "
                f"({(now - last) / 1e3 / max(1.0, turns):>5.2f} KB a turn since), "
                f"alias counts {said:>8,}, words {words:>8,}, cue words {cues:>7,}, "
                f"{1000 * spent / args.every:.1f} ms a session",
                flush=True,
            )
            last, turns, spent = now, 0.0, 0.0
        tracemalloc.stop()


if __name__ == "__main__":
    main()
