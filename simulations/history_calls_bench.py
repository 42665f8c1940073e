"""
Tool calls in the history: what a later request's window still holds of the values an
agent's earlier tool calls gave and returned.

    python -m simulations.history_calls_bench [--data ../shared/data]
        [--corpora sgd,star,retail] [--limit N] [--history-tokens N] [--json out.json]

Each dev session of each corpus (``<data>/<corpus>/sessions-dev.jsonl``; ``retail`` is
generated in a temporary folder by :mod:`simulations.retail_corpus`, with the results
of its calls) is played through a real :class:`preload.PreloadEngine` with the default
configuration, twice:

- ``calls``: each turn's request (``engine.handle``), its tool calls through
  ``engine.call`` (a call source that returns the log's result, or "(answered)" where
  the log has none), then its reply;
- ``text alone``: the request and the reply only, as the engine's history was before it
  recorded calls (and as it is for an agent whose tools do not go through the engine).

At every turn that makes calls, before them, each argument value of those calls that
appeared in an earlier turn is looked for in the history the request's window holds
(whole words, case and punctuation ignored). A value is ``said`` when an earlier
request or reply holds it, else ``from calls`` (only an earlier call's arguments or
result held it: a user id a lookup returned, a tracking number an order gave).
Printed per corpus and variant: the share of each kind the window's history holds, and
the history's mean tokens per request. ``--history-tokens`` caps the history's category
of the window (``user_history``, 1,500 tokens by default), to see what a tight budget
keeps when the calls take their share of it. Speculation is off (``calls.moments`` empty), so
both variants run the same calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from preload import CategoryConfig, EngineConfig, PreloadEngine, read_sessions
from preload.calls import call_key
from simulations._data import add_data_arguments, dev_logs
from simulations.budget_bench import norm

VARIANTS = ("text alone", "calls")


class LoggedResults:
    """
    A call source that answers each call with its result in the log (a call that
    recurs, such as a generated order number in another session, with its last).
    """

    name = "log"

    def __init__(self, sessions: Sequence[Any]) -> None:
        self.results: dict[str, str] = {}
        self.tools: dict[str, bool] = {}
        for session in sessions:
            for turn in session.turns:
                for call in turn.tool_calls:
                    self.tools[call.name] = call.read_only
                    if call.result is not None:
                        self.results[call.key] = call.result

    def read_only(self, name: str) -> bool | None:
        return self.tools.get(name)

    async def call(self, name: str, args: Mapping[str, Any]) -> str:
        return self.results.get(call_key(name, args), "(answered)")


async def play(
    sessions: Sequence[Any], *, with_calls: bool, history_tokens: int | None
) -> dict[str, float]:
    """
    The sessions through one engine; the shares of values kept, by kind, and the
    history's mean tokens.
    """
    config = EngineConfig()
    config = config.replace(calls=replace(config.calls, moments=()))
    if history_tokens is not None:
        categories = dict(config.budget.categories)
        cap = CategoryConfig(
            min=0, max=history_tokens, priority=categories["user_history"].priority
        )
        categories["user_history"] = cap
        config = config.replace(budget=replace(config.budget, categories=categories))
    kept = {"said": [0, 0], "from calls": [0, 0]}
    tokens: list[int] = []
    source = LoggedResults(sessions)
    async with PreloadEngine(config, sources={}, call_sources=[source]) as engine:
        for session in sessions:
            said, given = " ", " "
            for turn in session.turns:
                context = await engine.handle(session_id=session.session_id, text=turn.text)
                history = next((i for i in context.items if i.key == "history"), None)
                tokens.append(history.tokens if history is not None else 0)
                shown = norm(history.text if history is not None else "")
                for call in turn.tool_calls:
                    for value in call.args.values():
                        word = norm(str(value))
                        if not word.strip():
                            continue
                        kind = "said" if word in said else "from calls" if word in given else None
                        if kind is not None:
                            kept[kind][0] += word in shown
                            kept[kind][1] += 1
                for call in turn.tool_calls:
                    result = await source.call(call.name, call.args)  # what the engine gets
                    given += norm(json.dumps(call.args)) + norm(result)
                    if with_calls:
                        await engine.call(session.session_id, call.name, call.args)
                said += norm(turn.text) + norm(turn.system or "")
                engine.reply(session.session_id, turn.system or "")
            engine.end_session(session.session_id)
            await engine.wait_idle()
    out = {f"{kind} kept": k / n if n else float("nan") for kind, (k, n) in kept.items()}
    out |= {f"{kind} values": float(n) for kind, (_, n) in kept.items()}
    out["history tokens"] = sum(tokens) / max(1, len(tokens))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_data_arguments(parser, corpora="sgd,star,retail")
    parser.add_argument("--limit", type=int, default=400, help="sessions a corpus (400)")
    parser.add_argument(
        "--history-tokens",
        type=int,
        help="the history's cap in tokens (default: the configuration's, 1,500)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    report: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for corpus, path, where in dev_logs(args.data, args.corpora, Path(tmp)):
            sessions, _ = read_sessions(path, limit=args.limit)
            print(f"{corpus}: {len(sessions)} dev sessions ({where})")
            report[corpus] = {}
            for variant in VARIANTS:
                start = time.perf_counter()
                row = asyncio.run(
                    play(
                        sessions,
                        with_calls=variant == "calls",
                        history_tokens=args.history_tokens,
                    )
                )
                report[corpus][variant] = row
                print(
                    f"  {variant:>10}: said kept {row['said kept']:.3f} of "
                    f"{row['said values']:.0f}, from calls kept {row['from calls kept']:.3f} of "
                    f"{row['from calls values']:.0f}; history {row['history tokens']:.0f} "
                    f"tokens a request ({time.perf_counter() - start:.0f} s)"
                )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
