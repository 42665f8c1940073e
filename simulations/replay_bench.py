"""
Replay benchmark: the six strategies on the real session logs, pre-fitted on train.

    python -m simulations.replay_bench [--data ../shared/data] [--corpora sgd,star]
        [--limit N] [--json out.json]

Reads ``<data>/<corpus>/sessions-train.jsonl``, ``sessions-dev.jsonl`` and
``knowledge.jsonl`` (the shared corpora beside the project) and prints one table a
corpus, with the wall time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from preload import EngineConfig, JsonlKnowledgeSource, read_sessions
from preload.replay import replay, report_table
from simulations._data import add_data_arguments, corpus_folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_data_arguments(parser, corpora="sgd,star")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    config = EngineConfig.from_toml(args.config) if args.config else EngineConfig()
    console = Console(width=140, emoji=False, highlight=False)
    results = {}
    for corpus, folder in corpus_folders(args.data, args.corpora):
        console.print(f"data: {folder} (train -> dev)")
        train, _ = read_sessions(folder / "sessions-train.jsonl")
        dev, _ = read_sessions(folder / "sessions-dev.jsonl", limit=args.limit)
        knowledge = JsonlKnowledgeSource(folder / "knowledge.jsonl")
        report = replay(dev, knowledge, config, train=train, name=f"{corpus}/dev")
        console.print(report_table(report))
        console.print(f"wall {report.wall_s:.1f} s for {report.turns} turns x 6 strategies")
        results[corpus] = report.to_json()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
