"""
Requests without known needs: what the window holds of what the turn needed.

Reads ``<data>/<corpus>/`` (``../shared/data`` by default: dev sessions to serve, train
sessions for the forecaster, the knowledge file). Every turn is served with
``needs=()`` (its state given, as logs label it) by a real engine (real tokenizer,
the knowledge file as an instant source) at a total budget of 1,000, 2,000 and 4,000
tokens (the categories scaled from the default's 8,000), and the background is
drained between turns (the user's reading time). Methods, each its own engine, served
turn by turn interleaved (the order rotating every turn) so that the machine's noise
falls on all alike:

- ``retriever``: the TF-IDF search alone (no forecaster, fixed values);
- ``fixed``: search plus the warm predictions of the forecaster fitted on train, valued
  by the fixed rule (the larger of relevance and forecast probability);
- ``learned``: the same, with the content-value predictor learning online from
  ``engine.feedback(used=<the turn's true needs>)`` after every turn;
- ``learned_adaptive``: ``learned`` with the adaptive budget (``[budget.adaptive]``,
  learning the categories' caps from the same feedback).

Per method and budget:

- ``recall``: needs-in-window recall, the share of the turn's true needs whose item is
  in the window;
- ``facts_kept``: on turns whose system made a backend call (``calls``), the call's
  parameter values that appeared in earlier turns of the session (matched as whole
  words, case and punctuation ignored, as ``simulations/budget_bench.py`` does) are the
  facts the context must still hold; the share of them found in the rendered window
  (its history and items);
- ``tokens_per_turn``: the window's tokens;
- ``p99_ms``: the request path's p99 (``handle``, wall clock, ms);
- ``p99_cpu_ms``: the p99 of the event loop thread's CPU time in ``handle`` (ms): the
  request path's own work, which other processes on a shared machine do not inflate
  (the search runs in a worker thread and is left out, the same for every method but
  ``retriever``'s).

    python -m simulations.learning_bench [--data ../shared/data] [--corpora sgd,star]
        [--limit 150] [--json PATH] [--plot DIR]

``--plot DIR`` writes ``learning_recall.png``: recall against budget, one line per
method and corpus (matplotlib, the ``plot`` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from preload import (
    AdaptiveBudgetConfig,
    BudgetConfig,
    EngineConfig,
    EngineForecaster,
    JsonlKnowledgeSource,
    PreloadEngine,
    RetrievalConfig,
    read_sessions,
)
from preload.learning import NullForecaster
from simulations._data import add_data_arguments, corpus_folders

BUDGETS = (1000, 2000, 4000)
METHODS = ("retriever", "fixed", "learned", "learned_adaptive")
LEARNING = ("learned", "learned_adaptive")
_WORD = re.compile(r"[a-z0-9]+")


def config_for(total: int, method: str) -> EngineConfig:
    """
    The default configuration at ``total`` tokens, its categories scaled alike, for
    ``method``.
    """
    base = BudgetConfig()
    factor = total / base.total_tokens
    categories = {
        name: replace(c, min=int(c.min * factor), max=int(c.max * factor) if c.max else c.max)
        for name, c in base.categories.items()
    }
    budget = replace(
        base,
        total_tokens=total,
        categories=categories,
        adaptive=AdaptiveBudgetConfig(enabled=method == "learned_adaptive"),
    )
    return EngineConfig(
        budget=budget,
        retrieval=RetrievalConfig(value_model=method in LEARNING, min_feedback=200),
    )


def norm(text: str) -> str:
    return " " + " ".join(_WORD.findall(text.lower())) + " "


def call_values(call: dict[str, Any]) -> list[str]:
    """
    The parameter values of one backend call (SGD ``parameters``, STAR ``constraints``).
    """
    values = call.get("parameters") or call.get("constraints") or {}
    out = []
    for value in values.values():
        text = str(value).strip()
        out.extend(re.findall(r'"([^"]+)"', text) or [text])
    return out


def facts_of(session: Any) -> list[list[str]]:
    """
    Each turn's facts: the values of its calls that earlier turns stated.
    """
    seen = " "
    out = []
    for turn in session.turns:
        calls = turn.extra.get("calls") or []
        facts = {norm(v) for call in calls for v in call_values(call)}
        out.append(sorted(f for f in facts if f.strip() and f in seen))
        seen += norm(f"{turn.text} {turn.system or ''}")
    return out


class Runner:
    """
    One method's engine at one budget, and its tallies.
    """

    def __init__(self, method: str, engine: PreloadEngine) -> None:
        self.method = method
        self.engine = engine
        self.found = self.needed = self.tokens = self.kept = self.facts = 0
        self.waits: list[float] = []
        self.cpu: list[float] = []

    async def turn(self, session: Any, turn: Any, facts: list[str]) -> None:
        engine = self.engine
        start, cpu = time.perf_counter(), time.thread_time()
        ctx = await engine.handle(
            session_id=session.session_id, text=turn.text, state=turn.state, user=session.user
        )
        self.waits.append(time.perf_counter() - start)
        self.cpu.append(time.thread_time() - cpu)
        shown = {item.key for item in ctx.items}
        self.found += sum(key in shown for key in turn.needs)
        self.needed += len(turn.needs)
        self.tokens += ctx.tokens
        if facts:
            text = norm(ctx.render())
            self.kept += sum(f in text for f in facts)
            self.facts += len(facts)
        if self.method in LEARNING:
            engine.feedback(session.session_id, used=list(turn.needs))
        if turn.system:
            engine.reply(session.session_id, turn.system)

    def result(self) -> dict[str, float]:
        return {
            "recall": self.found / self.needed if self.needed else float("nan"),
            "facts_kept": self.kept / self.facts if self.facts else float("nan"),
            "tokens_per_turn": self.tokens / len(self.waits),
            "p99_ms": float(np.percentile(np.array(self.waits) * 1000, 99)),
            "p99_cpu_ms": float(np.percentile(np.array(self.cpu) * 1000, 99)),
        }


async def serve(
    total: int, sessions: list[Any], knowledge: Path, model: Path
) -> tuple[dict[str, dict[str, float]], str]:
    """
    Serve every turn of ``sessions`` with every method at one budget, interleaved.
    Returns the figures and the learned adaptive budget's explanation.
    """
    async with AsyncExitStack() as stack:
        runners = []
        for method in METHODS:
            forecaster = NullForecaster() if method == "retriever" else EngineForecaster.load(model)
            engine = await stack.enter_async_context(
                PreloadEngine(
                    config_for(total, method),
                    sources={"kb": JsonlKnowledgeSource(knowledge)},
                    forecaster=forecaster,
                )
            )
            runners.append(Runner(method, engine))
        n = 0
        for session in sessions:
            for turn, facts in zip(session.turns, facts_of(session), strict=True):
                order = runners[n % len(runners) :] + runners[: n % len(runners)]
                n += 1
                for runner in order:
                    await runner.turn(session, turn, facts)
                for runner in runners:
                    await runner.engine.wait_idle()
            for runner in runners:
                runner.engine.end_session(session.session_id)
        adaptive = runners[METHODS.index("learned_adaptive")].engine.adaptive
        explained = adaptive.explain() if adaptive is not None else ""
        return {r.method: r.result() for r in runners}, explained


async def corpus(name: str, data: Path, limit: int, folder: Path) -> dict[str, Any]:
    sessions, _ = read_sessions(data / "sessions-dev.jsonl", limit=limit)
    train, _ = read_sessions(data / "sessions-train.jsonl")
    model = folder / f"{name}.json"
    forecaster = EngineForecaster.from_config(EngineConfig())
    forecaster.fit(train)
    forecaster.save(model)
    print(f"data: {data} (dev: {len(sessions)} sessions; forecaster fitted on train)")
    out: dict[str, Any] = {}
    for total in BUDGETS:
        out[str(total)], explained = await serve(total, sessions, data / "knowledge.jsonl", model)
        print(f"  at {total} tokens, learned_adaptive's {explained}")
    return out


def plot(results: dict[str, Any], folder: Path) -> Path:
    """
    Recall against budget, one line per method (a panel per corpus), as PNG.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.5 * len(results), 4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(results), squeeze=False)[0]
    for ax, (name, rows) in zip(axes, results.items(), strict=True):
        budgets = [int(b) for b in rows]
        for method, style in zip(METHODS, ("-", "-", "-", "--"), strict=True):
            recall = [rows[str(b)][method]["recall"] for b in budgets]
            ax.plot(budgets, recall, marker="o", linestyle=style)
        ax.set_xscale("log", base=2)
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.set_title(f"{name}: needs-in-window recall")
        ax.set_xlabel("total budget (tokens)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(METHODS, fontsize="small")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "learning_recall.png"
    figure.savefig(path, dpi=120)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, corpora="sgd,star")
    parser.add_argument("--limit", type=int, default=150, help="dev sessions a corpus")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path, help="write learning_recall.png there")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in corpus_folders(args.data, args.corpora):
            results[name] = asyncio.run(corpus(name, folder, args.limit, Path(tmp)))
            print(
                f"{name}: recall / facts kept / tokens per turn / request p99 ms "
                "(wall clock, loop CPU)"
            )
            print(f"  {'budget':>6}  " + "  ".join(f"{m:>35}" for m in METHODS))
            for total, row in results[name].items():
                cells = [
                    f"{row[m]['recall']:.3f} / {row[m]['facts_kept']:.3f} / "
                    f"{row[m]['tokens_per_turn']:4.0f} / {row[m]['p99_ms']:5.1f}, "
                    f"{row[m]['p99_cpu_ms']:4.1f}"
                    for m in METHODS
                ]
                print(f"  {total:>6}  " + "  ".join(f"{c:>35}" for c in cells))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if args.plot is not None:
        print(f"plot: {plot(results, args.plot)}")


if __name__ == "__main__":
    main()
