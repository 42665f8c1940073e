"""
Benchmark of the call forecast (``graph.CallForecaster``): fit on a corpus's train
sessions, forecast every turn of its dev sessions, and count how many of the read-only
calls actually made the engine would have run ahead of time.

Run ``python -m simulations.call_forecast_bench`` (SGD and STAR under ``../shared/data``
from the repository root; ``--data DIR`` for another place, ``--corpus sgd`` for one).

Two moments are measured: ``request`` (the turn's request text and state arrived) and
``after`` (the previous reply was sent; the history alone). At each threshold the engine
speculates the guesses (at most ``k`` = 3 per turn) with ``p >= threshold``:

- ``hit``: the share of the actual read-only calls whose exact name and arguments are
  among the speculated guesses of their turn;
- ``g/call``: speculated guesses over all turns (calls or not) per actual read-only call.

The baseline repeats the latest read-only call of the session (p = 1 on every turn after
one), the row to beat. ``fit s`` is the fit's wall time; ``µs/turn`` the mean wall time
of one ``predict`` on a dev turn (history and request as the engine would pass them) and
``cpu µs`` its CPU time (the thread's; on a shared machine the wall time includes waiting
for a core). ``calibration`` lists, per band of ``p``, the guesses' mean ``p`` against
the share of them that were exactly right (guesses of read-only names on all turns).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from graph import CallForecaster
from simulations._data import CORPORA, add_data_arguments, corpus_folders

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.5)
BANDS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.01)
K = 3

Guesses = list[tuple[str, dict[str, str], float]]
Forecast = Callable[[Sequence[Mapping[str, Any]], Mapping[str, Any] | None], Guesses]


def load_sessions(path: Path) -> list[dict[str, Any]]:
    """
    Read a session log (JSONL).
    """
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def exact(name: str, args: Mapping[str, Any]) -> str:
    """
    One call, name and arguments (any JSON values), as a hashable text.
    """
    return f"{name} {json.dumps(args, sort_keys=True)}"


def read_only_calls(turn: Mapping[str, Any]) -> set[str]:
    """
    The read-only calls a turn made, as hashable ``(name, args)``.
    """
    return {exact(c["name"], c["args"]) for c in turn.get("tool_calls") or () if c.get("read_only")}


def history_turn(turn: Mapping[str, Any]) -> dict[str, Any]:
    """
    What the engine knows of a completed turn.
    """
    return {k: turn[k] for k in ("text", "state", "system", "tool_calls") if k in turn}


def request_turn(turn: Mapping[str, Any]) -> dict[str, Any]:
    """
    What the engine knows of a turn when its request arrives.
    """
    return {k: turn[k] for k in ("text", "state") if k in turn}


def evaluate(sessions: list[dict[str, Any]], forecast: Forecast, moment: str) -> dict[str, Any]:
    """
    Forecast every turn at one moment; hits and guesses per threshold, time per turn.
    """
    hits = [0] * len(THRESHOLDS)
    made = [0] * len(THRESHOLDS)
    bands = [[0, 0.0, 0] for _ in BANDS[1:]]  # guesses, sum of p, right
    n_calls = n_turns = 0
    spent = cpu = 0.0
    for session in sessions:
        history: list[dict[str, Any]] = []
        for turn in session["turns"]:
            truth = read_only_calls(turn)
            request = request_turn(turn) if moment == "request" else None
            start, start_cpu = time.perf_counter(), time.thread_time()
            guesses = forecast(history, request)
            spent += time.perf_counter() - start
            cpu += time.thread_time() - start_cpu
            n_turns += 1
            n_calls += len(truth)
            for i, threshold in enumerate(THRESHOLDS):
                chosen = {exact(n, a) for n, a, p in guesses if p >= threshold}
                made[i] += len(chosen)
                hits[i] += len(chosen & truth)
            for name, args, p in guesses:
                band = bands[next(i for i, top in enumerate(BANDS[1:]) if p < top)]
                band[0] += 1
                band[1] += p
                band[2] += exact(name, args) in truth
            history.append(history_turn(turn))
    return {
        "calls": n_calls,
        "turns": n_turns,
        "hit": [h / max(n_calls, 1) for h in hits],
        "per_call": [g / max(n_calls, 1) for g in made],
        "us_per_turn": 1e6 * spent / max(n_turns, 1),
        "cpu_us_per_turn": 1e6 * cpu / max(n_turns, 1),
        "bands": bands,
    }


def ours(model: CallForecaster) -> Forecast:
    """
    The forecaster's guesses, k = 3, read-only names only.
    """

    def forecast(
        history: Sequence[Mapping[str, Any]], request: Mapping[str, Any] | None
    ) -> Guesses:
        return [(g.name, dict(g.args), g.p) for g in model.predict(history, request, k=K)]

    return forecast


def repeat_last(history: Sequence[Mapping[str, Any]], request: Mapping[str, Any] | None) -> Guesses:
    """
    Baseline: the session's latest read-only call again.
    """
    for turn in reversed(history):
        for call in reversed(turn.get("tool_calls") or ()):
            if call.get("read_only"):
                return [(call["name"], dict(call["args"]), 1.0)]
    return []


def row(label: str, result: Mapping[str, Any], fit_s: float | None) -> str:
    """
    One line of the table.
    """
    cells = " ".join(
        f"{h:5.3f}/{g:4.2f}" for h, g in zip(result["hit"], result["per_call"], strict=True)
    )
    fit = f"{fit_s:6.1f}" if fit_s is not None else "     -"
    times = f"{result['us_per_turn']:8.0f} {result['cpu_us_per_turn']:7.0f}"
    return f"  {label:<22} {cells}  {fit} {times}"


def calibration(label: str, result: Mapping[str, Any]) -> str:
    """
    One line per moment: per band of p, guesses, mean p and the share right.
    """
    cells = []
    for (lo, hi), (n, total, right) in zip(itertools.pairwise(BANDS), result["bands"], strict=True):
        if n:
            cells.append(
                f"[{lo:.2f},{min(hi, 1):.2f}) n={n} p={total / n:.2f} right={right / n:.2f}"
            )
    return f"  calibration, {label}: " + "; ".join(cells)


def bench(data: Path, corpus: str) -> None:
    """
    Fit on a corpus's train split, measure on its dev split, print the table.
    """
    train = load_sessions(data / corpus / "sessions-train.jsonl")
    dev = load_sessions(data / corpus / "sessions-dev.jsonl")
    start = time.perf_counter()
    model = CallForecaster().fit(train)
    fit_s = time.perf_counter() - start
    n_ro = sum(len(read_only_calls(t)) for s in dev for t in s["turns"])
    n_turns = sum(len(s["turns"]) for s in dev)
    print(
        f"\n{corpus}: fit on {len(train)} train sessions, {len(dev)} dev sessions, "
        f"{n_turns} turns, {n_ro} read-only calls"
    )
    head = " ".join(f"   p>={t:<4}  " for t in THRESHOLDS)
    print(f"  {'hit/g per call':<22} {head}  fit s  µs/turn cpu µs")
    calibrations = []
    for moment in ("request", "after"):
        result = evaluate(dev, ours(model), moment)
        print(row(f"ours, {moment}", result, fit_s))
        print(row(f"repeat last, {moment}", evaluate(dev, repeat_last, moment), None))
        calibrations.append(calibration(moment, result))
    print("\n".join(calibrations))


def main(argv: Sequence[str] | None = None) -> None:
    """
    Parse the arguments and run the benchmark.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_data_arguments(parser)
    parser.add_argument("--corpus", choices=("sgd", "star"), action="append")
    args = parser.parse_args(argv)
    print(f"reading session logs from {os.path.relpath(args.data, REPO)}")
    for corpus, _ in corpus_folders(args.data, ",".join(args.corpus or CORPORA)):
        bench(args.data, corpus)


if __name__ == "__main__":
    main()
