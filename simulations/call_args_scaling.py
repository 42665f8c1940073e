"""
Call forecast scaling with a tool's arguments: what one forecast costs as the tool it
forecasts has more arguments, and whether it grows linearly with them.

    python -m simulations.call_args_scaling [--args 10,20,40,80,160,320] [--seed 0]

Data: generated, not read from a corpus. A tool's calls take ``A`` arguments (as a
tool with nested arguments does once they are flattened: ``filters.origin_city``), each
valued with two words out of a few hundred. A session has six turns; each request says
five of its call's values, and each call returns a result listing its arguments (cut at
2,000 characters), so the texts and results stay the same size whatever ``A``. For each
``A``, :class:`graph.CallForecaster` is fitted on 60 sessions and forecasts every turn of
10 more at the request (``k`` 5). The table shows the fit (its seconds, and
milliseconds per argument: its training data grows with the arguments too), the
milliseconds a forecast,
and the microseconds a forecast per argument (wall clock, and process CPU time, which
other processes on a shared machine disturb less): flat when the forecast is linear in
the arguments.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from graph import CallForecaster

_WORDS = [f"w{i}" for i in range(400)]
_TURNS = 6


def session(rng: random.Random, n_args: int, sid: str) -> dict[str, Any]:
    """
    One generated session whose every turn calls the tool with ``n_args`` arguments.
    """
    turns = []
    for j in range(_TURNS):
        args = {f"a{k}": f"{rng.choice(_WORDS[:50])} {rng.choice(_WORDS)}" for k in range(n_args)}
        said = " and ".join(list(args.values())[:5])
        result = " ; ".join(f"a{k}: {v}" for k, v in args.items())[:2000]
        call = {"name": "tool", "args": args, "read_only": True, "result": result}
        turns.append(
            {
                "t": float(j),
                "text": f"please use {said}",
                "system": f"done {rng.choice(_WORDS)}",
                "tool_calls": [call],
            }
        )
    return {"session_id": sid, "user": "u", "turns": turns}


def measure(n_args: int, seed: int) -> tuple[float, float, float]:
    """
    Fit on 60 sessions, forecast every turn of 10 more: the fit's seconds, and the
    wall and CPU milliseconds a forecast.
    """
    rng = random.Random(seed)
    train = [session(rng, n_args, f"t{i}") for i in range(60)]
    start = time.perf_counter()
    model = CallForecaster().fit(train)
    fit_s = time.perf_counter() - start
    dev = [session(rng, n_args, f"d{i}") for i in range(10)]
    asks = [
        (s["turns"][:j], {k: v for k, v in s["turns"][j].items() if k != "tool_calls"})
        for s in dev
        for j in range(1, _TURNS)
    ]
    wall, cpu = time.perf_counter(), time.process_time()
    for history, request in asks:
        model.predict(history, request, k=5)
    wall_ms = 1000 * (time.perf_counter() - wall) / len(asks)
    cpu_ms = 1000 * (time.process_time() - cpu) / len(asks)
    return fit_s, wall_ms, cpu_ms


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--args", default="10,20,40,80,160,320", help="arguments a tool takes")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    sizes = [int(a) for a in options.args.split(",")]
    print("data: generated (a tool of A arguments, texts and results of a fixed size)")
    print(
        f"{'args':>6} {'fit s':>7} {'fit ms/arg':>11} {'ms/forecast':>12} {'cpu ms':>8}"
        f" {'us/arg':>8} {'cpu us/arg':>11}"
    )
    for n_args in sizes:
        fit_s, wall_ms, cpu_ms = measure(n_args, options.seed)
        print(
            f"{n_args:>6} {fit_s:>7.2f} {1000 * fit_s / n_args:>11.1f} {wall_ms:>12.2f} {cpu_ms:>8.2f}"
            f" {1000 * wall_ms / n_args:>8.1f} {1000 * cpu_ms / n_args:>11.1f}"
        )


if __name__ == "__main__":
    main()
