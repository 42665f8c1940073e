"""
Requests without known needs: what the window holds of what the turn needed.

Reads ``../shared/data/<corpus>/`` (dev sessions to serve, train sessions for the
forecaster, the knowledge file). Every turn is served with ``needs=()`` (its state given, as logs label it) by a real engine
(real tokenizer, the knowledge file as an instant source) at a total budget of 1,000,
2,000 and 4,000 tokens (the categories scaled from the default's 8,000), and the
background is drained between turns (the user's reading time). Methods:

- ``retriever``: the TF-IDF search alone (no forecaster, fixed values);
- ``fixed``: search plus the warm predictions of the forecaster fitted on train, valued
  by the fixed rule (the larger of relevance and forecast probability);
- ``learned``: the same, with the content-value predictor learning online from
  ``engine.feedback(used=<the turn's true needs>)`` after every turn.

Per method and budget: needs-in-window recall (the share of the turn's true needs whose
item is in the window), tokens per turn, and the request path's p99 (``handle``, ms).
``learned_adaptive`` (the adaptive budget) and facts kept are not measured yet.

    python -m simulations.learning_bench [--corpora sgd,star] [--limit 150] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from preload import (
    BudgetConfig,
    EngineConfig,
    EngineForecaster,
    JsonlKnowledgeSource,
    PreloadEngine,
    RetrievalConfig,
    read_sessions,
)
from preload.learning import NullForecaster

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BUDGETS = (1000, 2000, 4000)
METHODS = ("retriever", "fixed", "learned")


def config_for(total: int, *, value_model: bool) -> EngineConfig:
    """
    The default configuration at ``total`` tokens, its categories scaled alike.
    """
    base = BudgetConfig()
    factor = total / base.total_tokens
    categories = {
        name: replace(c, min=int(c.min * factor), max=int(c.max * factor) if c.max else c.max)
        for name, c in base.categories.items()
    }
    return EngineConfig(
        budget=replace(base, total_tokens=total, categories=categories),
        retrieval=RetrievalConfig(value_model=value_model, min_feedback=200),
    )


async def serve(
    method: str, total: int, sessions: list[Any], knowledge: Path, model: Path
) -> dict[str, float]:
    """
    Serve every turn of ``sessions`` with one method at one budget.
    """
    config = config_for(total, value_model=method == "learned")
    forecaster = NullForecaster() if method == "retriever" else EngineForecaster.load(model)
    found = needed = tokens = 0
    waits: list[float] = []
    async with PreloadEngine(
        config, sources={"kb": JsonlKnowledgeSource(knowledge)}, forecaster=forecaster
    ) as engine:
        for session in sessions:
            for turn in session.turns:
                start = time.perf_counter()
                ctx = await engine.handle(
                    session_id=session.session_id,
                    text=turn.text,
                    state=turn.state,
                    user=session.user,
                )
                waits.append(time.perf_counter() - start)
                shown = {item.key for item in ctx.items}
                found += sum(key in shown for key in turn.needs)
                needed += len(turn.needs)
                tokens += ctx.tokens
                if method == "learned":
                    engine.feedback(session.session_id, used=list(turn.needs))
                if turn.system:
                    engine.reply(session.session_id, turn.system)
                await engine.wait_idle()
            engine.end_session(session.session_id)
    turns = len(waits)
    return {
        "recall": found / needed if needed else float("nan"),
        "tokens_per_turn": tokens / turns,
        "p99_ms": float(np.percentile(np.array(waits) * 1000, 99)),
    }


async def corpus(name: str, limit: int, folder: Path) -> dict[str, Any]:
    data = DATA / name
    sessions, _ = read_sessions(data / "sessions-dev.jsonl", limit=limit)
    train, _ = read_sessions(data / "sessions-train.jsonl")
    model = folder / f"{name}.json"
    forecaster = EngineForecaster.from_config(EngineConfig())
    forecaster.fit(train)
    forecaster.save(model)
    print(f"data: {data} (dev: {len(sessions)} sessions; forecaster fitted on train)")
    out: dict[str, Any] = {}
    for total in BUDGETS:
        out[str(total)] = {}
        for method in METHODS:
            out[str(total)][method] = await serve(
                method, total, sessions, data / "knowledge.jsonl", model
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", default="sgd,star")
    parser.add_argument("--limit", type=int, default=150, help="dev sessions a corpus")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.corpora.split(","):
            results[name] = asyncio.run(corpus(name, args.limit, Path(tmp)))
            print(f"{name}: needs-in-window recall / tokens per turn / request p99 ms")
            print(f"  {'budget':>7}  " + "  ".join(f"{m:>24}" for m in METHODS))
            for total, row in results[name].items():
                cells = [
                    f"{row[m]['recall']:.3f} / {row[m]['tokens_per_turn']:6.0f} / "
                    f"{row[m]['p99_ms']:5.1f}"
                    for m in METHODS
                ]
                print(f"  {total:>7}  " + "  ".join(f"{c:>24}" for c in cells))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
