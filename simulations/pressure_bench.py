"""
Swap under pressure: many tenants share a cache smaller than their working set.

    python -m simulations.pressure_bench [--data ../shared/data] [--corpora sgd,star]
        [--tenants 20] [--capacities 0.01,0.05,0.2,1] [--config F] [--limit N]
        [--no-jit] [--tenant-tokens 1500] [--low sgd=0.01,star=0.05]
        [--json out.json] [--plot DIR]

Reads ``<data>/<corpus>/sessions-train.jsonl`` (to pre-fit the learning strategies),
``sessions-dev.jsonl`` (replayed) and ``knowledge.jsonl`` from the shared corpora
beside the project. The dev sessions are spread over ``--tenants`` tenants (a stable
hash of the session id), each with its own copy of the knowledge under its own cache
namespace, all in one cache sized to each fraction of their working set (entries and
bytes). Prints, per corpus, the hit rate and p95 wait of cold, lru, markov1, engine,
oracle and global_oracle at each capacity, and the engine's priced input cost per turn
with the stable-to-volatile layout and laid out naively (the same windows).

The learning strategies (markov1, engine and its call predictor) are fitted on train
once per corpus (``fit_strategies``) and every replay of the corpus starts from that
fitted state in a forked worker: the figures are those of a fit per replay, without
its time (``--refit`` fits in every replay, as before, to check).

Unless ``--no-jit``, every strategy preloads just in time and leaves out items whose
TTL would end before their expected use (``preloader.just_in_time`` and
``ttl_aware``); at the ``--low`` capacities the engine is replayed once more without
them, to show what they bring. The windows carry a tenant-wide layer of
``--tenant-tokens`` (``swap.tenant_tokens``); at the largest capacity the engine is
replayed once more without it, to show what the windows cost without it.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from preload import EngineConfig, JsonlKnowledgeSource, read_sessions
from preload.replay import fit_strategies, replay
from simulations._data import add_data_arguments, corpus_folders

STRATEGIES = ("cold", "lru", "markov1", "engine", "oracle", "global_oracle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_data_arguments(parser, corpora="sgd,star")
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--capacities", default="0.01,0.05,0.2,1")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--processes", type=int)
    parser.add_argument(
        "--eviction", choices=("value", "lru"), default="value", help="the cache's eviction"
    )
    parser.add_argument(
        "--no-jit", action="store_true", help="preload at once, TTLs unchecked (as before)"
    )
    parser.add_argument("--tenant-tokens", type=int, default=1500, help="swap.tenant_tokens")
    parser.add_argument(
        "--low", default="sgd=0.01,star=0.05", help="where to show what JIT and TTLs bring"
    )
    parser.add_argument(
        "--refit", action="store_true", help="fit the strategies in every replay (slow)"
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path, help="write sweep_<corpus>.png and cost.png here")
    args = parser.parse_args()
    config = EngineConfig.from_toml(args.config) if args.config else EngineConfig()
    config = config.replace(
        replay=replace(config.replay, tenants=args.tenants),
        cache=replace(config.cache, eviction=args.eviction),
        swap=replace(config.swap, tenant_tokens=args.tenant_tokens),
        preloader=replace(
            config.preloader, just_in_time=not args.no_jit, ttl_aware=not args.no_jit
        ),
    )
    low = dict(item.split("=") for item in args.low.split(",") if item)
    capacities = [float(c) for c in args.capacities.split(",")]
    console = Console(width=150, emoji=False, highlight=False)
    results: dict[str, Any] = {}
    for corpus, folder in corpus_folders(args.data, args.corpora):
        console.print(
            f"data: {folder} (train -> dev), {args.tenants} tenants, "
            f"cache.eviction = {args.eviction!r} (lru always LRU), "
            f"preloader.just_in_time = ttl_aware = {not args.no_jit} (every strategy), "
            f"swap.tenant_tokens = {args.tenant_tokens}"
        )
        train, _ = read_sessions(folder / "sessions-train.jsonl")
        dev, _ = read_sessions(folder / "sessions-dev.jsonl", limit=args.limit)
        knowledge = JsonlKnowledgeSource(folder / "knowledge.jsonl")
        start = time.perf_counter()
        fitted = None if args.refit else fit_strategies(train, config, strategies=STRATEGIES)
        fit_s = time.perf_counter() - start
        if fitted is not None:
            console.print(f"fitted markov1 and engine on train once: {fit_s:.0f} s")
        sweep: dict[str, dict[str, dict[str, float]]] = {}
        cost: dict[str, float | None] = {}
        wall = 0.0
        for fraction in capacities:
            report = replay(
                dev,
                knowledge,
                config,
                strategies=STRATEGIES,
                train=train,
                capacity=fraction,
                name=f"{corpus}/dev",
                processes=args.processes,
                fitted=fitted,
            )
            wall += report.wall_s
            sweep[f"{fraction:g}"] = {
                name: {"hit_rate": round(r.hit_rate, 4), "p95_ms": r.p95_ms}
                for name, r in report.strategies.items()
            }
            if fraction == max(capacities):
                engine = report.strategies["engine"]
                cost = {
                    "prefix_aware": round(engine.input_cost_per_turn, 6),
                    "naive": round(engine.naive_input_cost_per_turn, 6),
                    "recall_prefix_aware": engine.needs_in_window_recall,
                    "recall_naive": engine.needs_in_window_recall,
                    "prefix_reused_tokens": engine.prefix_reused_tokens,
                    "tokens_per_turn": engine.tokens_per_turn,
                }
                late = {"deferred": engine.deferred, "ttl_skipped": engine.ttl_skipped}
        results[corpus] = {"capacity": sweep, "cost": cost}
        console.print(_table(corpus, len(dev), sweep))
        console.print(_cost_line(cost))
        run = {"dev": dev, "knowledge": knowledge, "train": train, "fitted": fitted}
        if args.tenant_tokens:
            plain = config.replace(swap=replace(config.swap, tenant_tokens=0))
            engine = _engine(run, plain, max(capacities), corpus)
            cost["without_tenant_layer"] = round(engine.input_cost_per_turn, 6)
            cost["recall_without_tenant_layer"] = engine.needs_in_window_recall
            cost["tokens_per_turn_without_tenant_layer"] = engine.tokens_per_turn
            console.print(
                f"engine without the tenant-wide layer (swap.tenant_tokens = 0): "
                f"{engine.input_cost_per_turn:.6f} a turn, {engine.tokens_per_turn:.0f} "
                f"tokens, needs in window {engine.needs_in_window_recall}"
            )
        if corpus in low and not args.no_jit:
            fraction = float(low[corpus])
            at = sweep.get(f"{fraction:g}", {}).get("engine")
            off = config.replace(
                preloader=replace(config.preloader, just_in_time=False, ttl_aware=False)
            )
            engine = _engine(run, off, fraction, corpus)
            results[corpus]["jit"] = {
                "capacity": fraction,
                "engine_jit": at,
                "engine_at_once": {"hit_rate": round(engine.hit_rate, 4), "p95_ms": engine.p95_ms},
                **late,
            }
            console.print(
                f"at {fraction:.0%}: engine {at['hit_rate'] if at else float('nan'):.3f} just in "
                f"time with TTLs checked, {engine.hit_rate:.3f} preloading at once "
                f"(p95 {at['p95_ms'] if at else float('nan'):.0f} / {engine.p95_ms:.0f} ms); "
                f"at {max(capacities):.0%} the engine deferred {late['deferred']} preloads "
                f"and left out {late['ttl_skipped']} for their TTL"
            )
        console.print(f"wall {wall + fit_s:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.plot:
        _plot(results, args.plot)
        console.print(f"plots in {args.plot}")


def _engine(run: dict[str, Any], config: EngineConfig, fraction: float, corpus: str) -> Any:
    """
    The engine alone, replayed once more under ``config``.
    """
    report = replay(
        run["dev"],
        run["knowledge"],
        config,
        strategies=("engine",),
        train=run["train"],
        capacity=fraction,
        name=f"{corpus}/dev",
        processes=1,
        fitted=run["fitted"],
    )
    return report.strategies["engine"]


def _table(corpus: str, sessions: int, sweep: dict[str, dict[str, dict[str, float]]]) -> Table:
    table = Table(title=f"{corpus}/dev: {sessions} sessions; hit rate / p95 ms by capacity")
    table.add_column("strategy")
    for fraction in sweep:
        table.add_column(f"{float(fraction):.0%}", justify="right")
    for name in STRATEGIES:
        cells = [
            f"{sweep[f][name]['hit_rate']:.3f} / {sweep[f][name]['p95_ms']:.0f}" for f in sweep
        ]
        table.add_row(name, *cells)
    return table


def _cost_line(cost: dict[str, float | None]) -> str:
    aware, naive = cost.get("prefix_aware") or 0.0, cost.get("naive") or 0.0
    ratio = aware / naive if naive else float("nan")
    return (
        f"engine input cost per turn: {aware:.6f} stable-to-volatile, {naive:.6f} naive "
        f"(ratio {ratio:.2f}); prefix reused {cost.get('prefix_reused_tokens')} of "
        f"{cost.get('tokens_per_turn')} tokens a turn; needs in window {cost.get('recall_naive')}"
    )


def _plot(results: dict[str, Any], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    for corpus, data in results.items():
        fig, ax = plt.subplots(figsize=(6, 4))
        fractions = list(data["capacity"])
        for name in STRATEGIES:
            rates = [data["capacity"][f][name]["hit_rate"] for f in fractions]
            ax.plot([float(f) * 100 for f in fractions], rates, marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("cache capacity, % of the working set")
        ax.set_ylabel("hit rate")
        ax.set_title(f"{corpus}/dev, shared cache")
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / f"sweep_{corpus}.png", dpi=120)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    corpora = list(results)
    xs = range(len(corpora))
    aware = [results[c]["cost"].get("prefix_aware") or 0.0 for c in corpora]
    naive = [results[c]["cost"].get("naive") or 0.0 for c in corpora]
    ax.bar([x - 0.2 for x in xs], naive, width=0.4, label="naive layout")
    ax.bar([x + 0.2 for x in xs], aware, width=0.4, label="stable-to-volatile")
    ax.set_xticks(list(xs), corpora)
    ax.set_ylabel("priced input per turn")
    ax.set_title("engine: the same windows, two layouts")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "cost.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
