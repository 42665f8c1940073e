"""
What ``server.share_models`` costs the forecasts, and what ``server.tenant_learning``
gives back: the replay of a corpus's dev sessions (all, or the first ``--limit``)
through the engine pre-fitted on its train sessions,

- learning online into its models, as every engine with copies of its own does
  (``learning``);
- from the same fitted models frozen, through the views a server's tenants get when
  they share them (``shared``: ``preload.learning.SharedModels``, learning nothing
  into them);
- through such views that learn a call forecaster of their own over the shared one
  (``shared + own``: ``tenant_learning``).

Each replay starts from the same fitted state (each runs in a forked worker process).
With ``--unseen`` (0.5 by default; 0 leaves it out), the three replays are made again
from models fitted on the train sessions with the calls of that share of the
read-only tools taken out (every other one, in the order of their names): a tenant
whose tools the shared model, fitted on other tenants' logs, partly never saw.
Reported for each: the needs' hit rate, the preloads wasted, the request wait p95, the
read-only calls served from speculation, their wait p95, and the calls run ahead per
read-only call, as ``preload simulate`` reports them.

    python -m simulations.shared_models_bench [--data ../shared/data] [--corpora sgd,star]
        [--limit N] [--unseen SHARE] [--max-vocabulary N]

Reads the corpora's train and dev logs and knowledge under ``--data``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

from preload import EngineConfig, EngineForecaster, JsonlKnowledgeSource, read_sessions
from preload.learning import EngineCallPredictor, SharedModels
from preload.replay import FittedStrategies, StrategyReport, fit_strategies, replay
from simulations._data import (
    add_data_arguments,
    corpus_folders,
    read_only_names,
    unseen_tools,
    without_tools,
)
from simulations._rows import print_rows

COLUMNS = (
    "hit_rate",
    "wasted_ratio",
    "p95_ms",
    "call_hit_rate",
    "call_wait_p95_ms",
    "speculative_calls",
)


def shared_views(fitted: FittedStrategies, read_only: set[str], *, learn: bool) -> FittedStrategies:
    """
    The engine's fitted forecaster and call forecaster as one engine of a server with
    ``share_models`` gets them: views of one copy, running ahead the tools of
    ``read_only`` (as an engine's call sources declare them); with ``learn``, the view of
    the call forecaster learns one of its own over it (``tenant_learning``).
    """
    forecaster = fitted.forecasters["engine"]
    assert isinstance(forecaster, EngineForecaster)
    calls = fitted.call_predictor
    shared = SharedModels(
        forecaster, calls.model if isinstance(calls, EngineCallPredictor) else None
    )
    view = shared.forecaster()
    assert view is not None
    return FittedStrategies(
        forecasters={"engine": view},
        call_predictor=shared.call_predictor(read_only.__contains__, learn=learn),
    )


def row(report: StrategyReport) -> dict[str, Any]:
    """
    The columns of one strategy's report, rounded.
    """
    out: dict[str, Any] = {}
    for column in COLUMNS:
        value = getattr(report, column)
        out[column] = "-" if value is None else round(value, 3)
    return out


def main() -> None:
    """
    Parse the arguments, replay each corpus both ways and print the table.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_data_arguments(parser, corpora="sgd,star")
    parser.add_argument("--limit", type=int, help="the first N dev sessions (all of them)")
    parser.add_argument(
        "--unseen",
        type=float,
        default=0.5,
        help="replay again with this share of the read-only tools unseen in training (0.5; 0: not)",
    )
    parser.add_argument(
        "--max-vocabulary",
        type=int,
        help="the engine's calls.max_vocabulary (what a call forecaster learning online "
        "may hold; the default's when not given)",
    )
    args = parser.parse_args()
    config = EngineConfig()
    if args.max_vocabulary is not None:
        config = replace(config, calls=replace(config.calls, max_vocabulary=args.max_vocabulary))
    rows: list[dict[str, Any]] = []
    for corpus, folder in corpus_folders(args.data, args.corpora):
        print(f"data: {folder} (train -> dev)", flush=True)
        train, _ = read_sessions(folder / "sessions-train.jsonl")
        dev, _ = read_sessions(folder / "sessions-dev.jsonl", limit=args.limit)
        print(f"{len(dev)} dev sessions, {len(train)} train sessions", flush=True)
        knowledge = JsonlKnowledgeSource(folder / "knowledge.jsonl")
        read_only = read_only_names([*train, *dev])
        cases = [("all", train)]
        if args.unseen:
            hidden = unseen_tools(read_only, args.unseen)
            cases.append(
                (f"{len(hidden)} of {len(read_only)} unseen", without_tools(train, hidden))
            )
        for tools, fitted_on in cases:
            began = time.perf_counter()
            fitted = fit_strategies(fitted_on, config, strategies=["lru", "engine"])
            print(
                f"fitted the engine on {len(train)} train sessions, tools {tools}: "
                f"{time.perf_counter() - began:.0f} s",
                flush=True,
            )
            modes = (
                ("learning", fitted),
                ("shared", shared_views(fitted, read_only, learn=False)),
                ("shared + own", shared_views(fitted, read_only, learn=True)),
            )
            for mode, models in modes:
                report = replay(
                    dev,
                    knowledge,
                    config,
                    strategies=["lru", "engine"] if mode == "learning" else ["engine"],
                    name=f"{corpus}/dev",
                    processes=1,
                    fitted=models,
                )
                for name, strategy in report.strategies.items():
                    label = "lru" if name == "lru" else mode
                    rows.append(
                        {"corpus": corpus, "tools": tools, "engine": label, **row(strategy)}
                    )
                print(rows[-1], flush=True)
    print_rows(
        rows,
        "tools: the read-only tools the shared model saw in training (all, or the train "
        "sessions without the calls of some); engine: learning, learning online into its "
        "fitted models (a copy each); shared, the same models frozen, as "
        "server.share_models serves them; shared + own, with a call forecaster of its "
        "own learning over them (server.tenant_learning); lru for reference. "
        "hit_rate: needs warm; wasted_ratio: preloads never used; p95_ms: request wait; "
        "call_hit_rate: read-only calls served from speculation; call_wait_p95_ms: their "
        "wait; speculative_calls: calls run ahead per read-only call",
        width=17,
    )


if __name__ == "__main__":
    main()
