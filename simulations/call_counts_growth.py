"""
Call counts growth: what the call forecast's counts cost in memory as it learns online,
session after session, as a server's engine does from every session that ends, and how
well it forecasts meanwhile.

    python -m simulations.call_counts_growth [--data ../shared/data] [--corpora sgd]
        [--sessions 6000] [--every 1000] [--max-vocabulary N] [--judge 100] [--shuffle]
        [--split train]

Reads ``<data>/<corpus>/sessions-<split>.jsonl`` (``--split``: ``train``, or ``dev``,
as a tenant's engine learns its own sessions from nothing) and feeds its first ``--sessions``
sessions (``--shuffle``: as many drawn at random, seed 0; the file's order drifts from
service to service, as traffic that changes would) one at a time to
``graph.CallForecaster.partial_fit`` (with ``max_vocabulary`` set to
``--max-vocabulary``, 0 for no bound; the model's default when not given). Every
``--every`` sessions it prints the memory the forecaster holds (``tracemalloc``, after a
full collection), the KB it grew by a learned turn since the last line, the word counts
it holds (``vocabulary_``, the ones ``max_vocabulary`` bounds) and among them the alias
counts (words said in place of a value, by value), the words counted per tool and the
cue words counted per argument (words seen beside its values), the most word counts it
held after a session and the most memory traced since the last line (what a bound
lets it reach between two looks, learning included), the milliseconds a
session took to learn since the last line (under ``tracemalloc``, which slows it), and
the share of the read-only calls of the first ``--judge`` sessions of
``sessions-dev.jsonl`` whose exact name and arguments the forecast guessed with
``p >= 0.1`` (three guesses) once their request arrived, as
``simulations.call_forecast_bench`` counts them (0 to skip; with ``--split dev``, skip
it: those are sessions it learned).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
import tracemalloc
from pathlib import Path
from typing import Any

from graph import CallForecaster
from simulations._data import add_data_arguments, corpus_folders
from simulations.call_forecast_bench import THRESHOLDS, evaluate, ours

_THRESHOLD = 0.1


def _read(path: Path, limit: int) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line, _ in zip(f, range(limit), strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, corpora="sgd")
    parser.add_argument("--sessions", type=int, default=6000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--max-vocabulary", type=int, default=None)
    parser.add_argument("--judge", type=int, default=100)
    parser.add_argument("--shuffle", action="store_true")
    parser.add_argument("--split", choices=("train", "dev"), default="train")
    args = parser.parse_args()
    params: dict[str, Any] = {}
    if args.max_vocabulary is not None:
        params["max_vocabulary"] = args.max_vocabulary or None
    for corpus, folder in corpus_folders(args.data, args.corpora):
        path = folder / f"sessions-{args.split}.jsonl"
        sessions = _read(path, 1 << 30 if args.shuffle else args.sessions)
        if args.shuffle:
            random.Random(0).shuffle(sessions)
            sessions = sessions[: args.sessions]
        judged = _read(folder / "sessions-dev.jsonl", args.judge) if args.judge else []
        model = CallForecaster(**params)
        which = "sessions drawn at random (seed 0) of the" if args.shuffle else "first"
        print(
            f"{corpus}: the {which} {len(sessions):,} {args.split} sessions, read from {path}; "
            f"max_vocabulary {model.max_vocabulary or 'none'}"
            + (f"; judged on the first {len(judged):,} dev sessions" if judged else "")
        )
        tracemalloc.start()
        gc.collect()
        base = last = tracemalloc.get_traced_memory()[0]
        turns = spent = 0.0
        most = 0  # the most word counts held after a session, since the last line
        for i, session in enumerate(sessions, 1):
            start = time.perf_counter()
            model.partial_fit([session])
            spent += time.perf_counter() - start
            turns += len(session["turns"])
            most = max(most, model.vocabulary_)
            if i % args.every and i != len(sessions):
                continue
            gc.collect()
            now, peak = tracemalloc.get_traced_memory()
            counts = model.counts_
            said = counts.alias_counts()
            words = sum(len(grams) for grams in counts.words.values())
            cues = sum(len(per) for per in model.evidence_.cues.values())
            line = (
                f"  {i:>6,} sessions: {(now - base) / 1e6:>6.1f} MB "
                f"({(now - last) / 1e3 / max(1.0, turns):>5.2f} KB a turn since), "
                f"word counts {model.vocabulary_:>8,} (alias counts {said:>7,}, "
                f"words {words:>7,}, cue words {cues:>6,}; at most {most:>8,} and "
                f"{(peak - base) / 1e6:.1f} MB since the last line), "
                f"{1000 * spent / args.every:.1f} ms a session"
            )
            if judged:
                hit = evaluate(judged, ours(model), "request")["hit"]
                line += f", request hit {hit[THRESHOLDS.index(_THRESHOLD)]:.3f}"
            print(line, flush=True)
            last, turns, spent, most = now, 0.0, 0.0, 0
            tracemalloc.reset_peak()
        tracemalloc.stop()


if __name__ == "__main__":
    main()
