"""
Where the call forecast's misses come from: fit ``graph.CallForecaster`` on a corpus's
train sessions, then follow the engine's speculation policy over the dev sessions (the
guesses at its moments, after the previous reply if listed and at the request, of
``p >= threshold``, or ``reply_threshold`` after the reply, at most ``max_per_turn``
started per turn, ``guesses`` asked at each moment) and sort every read-only call the
sessions made into one cause.

Run ``python -m simulations.call_miss_breakdown`` (reads SGD and STAR under
``../shared/data`` from the repository root; ``--data DIR`` for another place,
``--corpus sgd`` for one, ``--limit N`` dev sessions, 400 by default as in the replay
figures; ``--train-sample N`` to fit on N train sessions drawn at random, as a corpus
with little training would be; ``--threshold``, ``--reply-threshold``,
``--max-per-turn``, ``--guesses``, ``--moments`` as ``[calls]``, whose defaults they take; ``--examples N`` prints the first N calls of
each cause: the last reply, the request, the call and the first guesses with their
evidence).

Causes, each call counted once, in this order:

- ``hit``: the exact call was speculated at one of the moments;
- ``budget``: it was a guess with ``p >= threshold`` but the turn's budget was spent;
- ``below threshold``: it was among the guesses, less likely than the threshold;
- ``beyond k``: it was among the first 10 guesses but not the first ``guesses``;
- ``name not forecast``: no guess among the first 10 has the call's name;
- ``wrong args``: a guess has the name but none the arguments; the first wrong
  argument of the likeliest such guess (in the order of the call's arguments) says
  where the right value was, the first place that has it:
  ``request`` (said in the request, verbatim up to case), ``agent last`` (the previous
  reply), ``user past`` / ``agent past`` (earlier requests or replies), ``call arg`` (an
  earlier call's argument), ``same-turn call`` (an earlier call of this turn),
  ``call result`` (said in an earlier turn's call result, where the log has them),
  ``normalize:<format>`` (a date, time, number or boolean value not said verbatim:
  it needed normalizing), ``nowhere`` (in none of them); each with ``:missing`` when the
  guess left the argument out, ``:extra`` when it gave one the call did not have.

The wrong-arguments rows also say whether the right value was ever seen in training
(``unseen``: the value index could not find it in the text however it was said).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from graph import CallForecaster, CallGuess
from preload import CallsConfig
from simulations._data import CORPORA, GENERATED, add_data_arguments, corpus_folders

from .call_forecast_bench import exact, history_turn, load_sessions, request_turn

REPO = Path(__file__).resolve().parents[1]
WIDE = 10
#: A word of a text, lower-cased: a time (``10:30``), a decimal and a contraction are one.
_WORD = re.compile(r"\w+(?:[:'.]\w+)*")


def _words(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def _said(value: str, texts: Sequence[str]) -> bool:
    phrase = _words(value)
    return bool(phrase) and any(f" {phrase} " in f" {_words(t)} " for t in texts)


def value_text(value: Any) -> str:
    """
    A JSON argument value as text: a string itself, anything else its compact JSON.
    """
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def value_kind(value: str) -> str | None:
    """
    The format a value needs normalizing into, or None for a plain one.
    """
    if re.fullmatch(r"\d{4}-\d\d-\d\d", value):
        return "date"
    if re.fullmatch(r"\d\d:\d\d", value):
        return "time"
    if value.isdigit():
        return "int"
    if value in ("True", "False", "dontcare", "true", "false"):
        return "bool"
    return None


def where(
    value: Any,
    history: Sequence[Mapping[str, Any]],
    request: Mapping[str, Any],
    same_turn: Sequence[Mapping[str, Any]],
) -> str:
    """
    The first place that holds ``value`` (a JSON value, said as its text): the
    request, the last reply, earlier texts, earlier calls' arguments, their results,
    or the format it needed normalizing into.
    """
    text = value_text(value)
    if _said(text, [request.get("text") or ""]):
        return "request"
    if history and _said(text, [history[-1].get("system") or ""]):
        return "agent last"
    if _said(text, [t.get("text") or "" for t in history]):
        return "user past"
    if _said(text, [t.get("system") or "" for t in history[:-1]]):
        return "agent past"
    for call in same_turn:
        if value in (call.get("args") or {}).values():
            return "same-turn call"
    for turn in history:
        for call in turn.get("tool_calls") or ():
            if value in (call.get("args") or {}).values():
                return "call arg"
    results = [c.get("result") or "" for t in history for c in t.get("tool_calls") or ()]
    if _said(text, results):
        return "call result"
    kind = value_kind(text)
    return f"normalize:{kind}" if kind else "nowhere"


def classify(
    call: Mapping[str, Any],
    spec: set[str],
    flagged: set[str],
    wide: list[CallGuess],
    k: int,
    threshold: float,
    history: Sequence[Mapping[str, Any]],
    request: Mapping[str, Any],
    same_turn: Sequence[Mapping[str, Any]],
    seen: Mapping[tuple[str, str], set[str]],
) -> str:
    """
    The cause of one read-only call's hit or miss.
    """
    name, args = call["name"], dict(call["args"])
    call_id = exact(name, args)
    if call_id in spec:
        return "hit"
    if call_id in flagged:
        return "budget"
    keys = [exact(g.name, g.args) for g in wide]
    if call_id in keys:
        rank = keys.index(call_id)
        return "below threshold" if rank < k and wide[rank].p < threshold else "beyond k"
    same = [g for g in wide if g.name == name]
    if not same:
        return "name not forecast"
    guess = max(same, key=lambda g: g.p)
    for arg, value in args.items():
        got = guess.args.get(arg)
        if got == value:
            continue
        place = where(value, history, request, same_turn)
        unseen = "" if value_text(value) in seen.get((name, arg), ()) else ", unseen"
        tail = ":missing" if got is None else ""
        return f"wrong args: {place}{tail}{unseen}"
    return "wrong args: :extra"


def breakdown(
    model: CallForecaster,
    sessions: Sequence[Mapping[str, Any]],
    seen: Mapping[tuple[str, str], set[str]],
    *,
    threshold: float,
    max_per_turn: int,
    guesses: int,
    moments: Sequence[str] = ("reply", "request"),
    reply_threshold: float | None = None,
    examples: dict[str, list[str]] | None = None,
    max_examples: int = 0,
) -> tuple[Counter[str], int]:
    """
    Sort every read-only call of ``sessions`` into its cause; also return the number of
    speculated calls (a guess after the reply needs ``reply_threshold``, when given). With ``examples``, the first ``max_examples`` calls of each cause
    are described there (the request, the last reply, the call, the guesses).
    """
    causes: Counter[str] = Counter()
    n_spec = 0
    budget = 0
    for session in sessions:
        history: list[dict[str, Any]] = []
        for turn in session["turns"]:
            request = request_turn(turn)
            spec: set[str] = set()
            flagged: set[str] = set()
            for name, moment in (("reply", None), ("request", request)):
                if moment is not None:
                    budget = 0  # the request resets the turn's count, as in the engine
                if name not in moments:
                    continue
                for g in model.predict(history, moment, k=guesses):
                    key = exact(g.name, g.args)
                    bar = threshold
                    if moment is None and reply_threshold is not None:
                        bar = reply_threshold  # after the reply
                    if g.p < bar or key in spec:
                        continue
                    if budget >= max_per_turn:
                        flagged.add(key)
                        continue
                    spec.add(key)
                    budget += 1
                    n_spec += 1
            wide = model.predict(history, request, k=WIDE)
            done: list[dict[str, Any]] = []
            for call in turn.get("tool_calls") or ():
                if call.get("read_only"):
                    cause = classify(
                        call,
                        spec,
                        flagged,
                        wide,
                        guesses,
                        threshold,
                        history,
                        request,
                        done,
                        seen,
                    )
                    causes[cause] += 1
                    shown = None if examples is None else examples.setdefault(cause, [])
                    if shown is not None and len(shown) < max_examples:
                        shown.append(_example(session, history, request, call, wide))
                done.append(call)
            history.append(history_turn(turn))
    return causes, n_spec


def _example(
    session: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    request: Mapping[str, Any],
    call: Mapping[str, Any],
    wide: Sequence[CallGuess],
) -> str:
    """
    One call described: where it is, the last reply, the request, the call, the guesses.
    """
    lines = [
        f"    [{session.get('session_id')} turn {len(history)}]",
        f"      reply:   {(history[-1].get('system') or '')[:200] if history else ''}",
        f"      request: {(request.get('text') or '')[:300]}",
        f"      call:    {call['name']} {dict(sorted(call['args'].items()))}",
    ]
    lines.extend(
        f"      guess:   {g.p:.3f} {g.name} {dict(sorted(g.args.items()))} {dict(g.evidence)}"
        for g in wide[:4]
    )
    return "\n".join(lines)


def bench(data: Path, corpus: str, options: argparse.Namespace) -> None:
    """
    Fit on the corpus's train split and print the breakdown on its dev split.
    """
    train = load_sessions(data / corpus / "sessions-train.jsonl")
    if 0 < options.train_sample < len(train):
        train = random.Random(0).sample(train, options.train_sample)
    dev = load_sessions(data / corpus / "sessions-dev.jsonl")[: options.limit]
    seen: dict[tuple[str, str], set[str]] = {}
    for session in train:
        for turn in session["turns"]:
            for call in turn.get("tool_calls") or ():
                for arg, value in call["args"].items():
                    seen.setdefault((call["name"], arg), set()).add(value_text(value))
    shown: dict[str, list[str]] = {}
    start = time.perf_counter()
    model = CallForecaster().fit(train)
    fit_s = time.perf_counter() - start
    causes, n_spec = breakdown(
        model,
        dev,
        seen,
        threshold=options.threshold,
        reply_threshold=options.reply_threshold,
        max_per_turn=options.max_per_turn,
        guesses=options.guesses,
        moments=options.moments.split(","),
        examples=shown,
        max_examples=options.examples,
    )
    total = sum(causes.values())
    print(
        f"\n{corpus}: fit on {len(train)} train sessions in {fit_s:.0f} s; {len(dev)} dev "
        f"sessions, {total} read-only calls; threshold {options.threshold} (after the reply "
        f"{options.reply_threshold}), max_per_turn "
        f"{options.max_per_turn}, guesses {options.guesses}, moments {options.moments}; "
        f"{n_spec / max(total, 1):.2f} speculated per read-only call; names read from "
        f"words at temperature {model.name_temperature_.best:g}"
    )
    for cause, n in sorted(causes.items(), key=lambda it: (-it[1], it[0])):
        print(f"  {cause:<44} {n:5d} {n / max(total, 1):6.1%}")
    for cause, lines in sorted(shown.items()):
        if lines and (cause != "hit" or options.examples_hits):
            print(f"\n  examples of {cause}:")
            print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> None:
    """
    Parse the arguments and print the breakdowns.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_data_arguments(parser)
    parser.add_argument(
        "--corpus",
        choices=CORPORA + GENERATED,
        action="append",
        help="sgd, star (default: both), or retail once written (simulations.retail_corpus)",
    )
    parser.add_argument("--limit", type=int, default=400, help="dev sessions (400)")
    parser.add_argument(
        "--train-sample",
        type=int,
        default=0,
        help="fit on this many train sessions drawn at random (seed 0), as a corpus with "
        "little training would be (0: all)",
    )
    calls = CallsConfig()
    parser.add_argument("--threshold", type=float, default=calls.threshold)
    parser.add_argument("--reply-threshold", type=float, default=calls.reply_threshold)
    parser.add_argument("--max-per-turn", type=int, default=calls.max_per_turn)
    parser.add_argument("--guesses", type=int, default=calls.guesses)
    parser.add_argument(
        "--moments",
        default=",".join(m for m in calls.moments if m in ("reply", "request")),
        help="comma-separated: reply, request (default: the configuration's; the forecast "
        "after a call is not followed here)",
    )
    parser.add_argument(
        "--examples", type=int, default=0, help="print this many calls of each cause (0)"
    )
    parser.add_argument("--examples-hits", action="store_true", help="with --examples, hits too")
    options = parser.parse_args(argv)
    print(f"reading session logs from {os.path.relpath(options.data, REPO)}")
    for corpus, _ in corpus_folders(options.data, ",".join(options.corpus or CORPORA)):
        bench(options.data, corpus, options)


if __name__ == "__main__":
    main()
