"""
``preload train`` and ``preload predict``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.markup import escape

from graph import InvalidStateError

from .._errors import PreloadError
from .._sessions import read_sessions
from ..learning import EngineCallPredictor, EngineForecaster
from ..replay._table import plural
from ._common import (
    ArgumentError,
    at_least,
    check_output_file,
    check_states,
    command,
    engine_config,
    err_console,
    report_skipped,
)


def learn_parsers(sub: Any) -> None:
    """
    The parsers of ``train`` and ``predict``.
    """
    train = command(
        sub,
        "train",
        help="fit the forecast model on sessions and save it",
    )
    train.add_argument("--sessions", type=Path, required=True, help="session log (JSONL)")
    train.add_argument("--out", type=Path, required=True, help="model file to write (JSON)")
    train.add_argument(
        "--calls-out",
        type=Path,
        help="also fit the call forecaster on the sessions' tool_calls and write it (JSON)",
    )
    train.add_argument("--config", type=Path, help="TOML configuration")
    train.add_argument("--skip-bad-lines", action="store_true", help="report and skip bad lines")
    train.set_defaults(run=run_train)

    predict = command(
        sub,
        "predict",
        help="print the next states and needs after a history",
        description="Print the likeliest next states and needs, as JSON, after the "
        "session's states so far, or after the state the model names from a request text "
        "(--text), or both.",
    )
    predict.add_argument("--model", type=Path, required=True, help="model file from 'train'")
    predict.add_argument("states", nargs="*", metavar="STATE", help="the session's states so far")
    predict.add_argument(
        "--text", help="a request; the model names its state (models trained without states)"
    )
    predict.add_argument(
        "-k", type=at_least(1), default=3, help="how many states and needs to print (1 or more)"
    )
    predict.add_argument("--user", help="the user, for per-user blending")
    predict.set_defaults(run=run_predict)


def run_train(args: argparse.Namespace) -> int:
    console = err_console()
    check_output_file("--out", args.out)
    if args.calls_out is not None:
        check_output_file("--calls-out", args.calls_out)
    config = engine_config(args.config)
    sessions, errors = read_sessions(args.sessions, skip_bad_lines=args.skip_bad_lines)
    report_skipped(console, errors)
    check_states("--sessions", args.sessions, sessions)
    calls = sum(len(t.tool_calls) for s in sessions for t in s.turns)
    if args.calls_out is not None and not calls:
        raise ArgumentError("--calls-out", f"{args.sessions}: no turn has tool_calls to learn from")
    model = EngineForecaster.from_config(config)
    try:
        model.fit(sessions)
    except PreloadError:
        raise
    except InvalidStateError as exc:  # a state name graph cannot take
        raise ArgumentError("--sessions", f"{args.sessions}: {exc}") from None
    except ValueError as exc:  # the state encoder cannot learn from these texts
        if not any(t.state is None for s in sessions for t in s.turns):
            raise
        raise ArgumentError(
            "--sessions",
            f"{args.sessions}: cannot learn to name states from the texts of the turns "
            f"without a 'state' ({exc}); give those turns a 'state'",
        ) from None
    model.save(args.out)
    console.print(
        f"trained on {plural(len(sessions), 'session')} ({plural(model.n_states, 'state')}); "
        f"wrote {escape(str(args.out))}"
    )
    if args.calls_out is not None:
        EngineCallPredictor().fit(sessions).save(args.calls_out)
        console.print(
            f"fitted the call forecaster on {plural(calls, 'call')}; "
            f"wrote {escape(str(args.calls_out))}"
        )
    return 0


def run_predict(args: argparse.Namespace) -> int:
    console = err_console()
    if not args.states and args.text is None:
        raise ArgumentError(
            "STATE", "give the session's states so far, or a request with --text, or both"
        )
    model = EngineForecaster.load(args.model)
    states: list[str] = list(args.states)
    out: dict[str, Any] = {}
    if args.text is not None:
        if model.encoder is None:
            raise ArgumentError(
                "--text",
                f"the model {args.model} has no state encoder, so it cannot name a state "
                "from text; give the session's states instead",
            )
        state = model.encode(args.text)
        if state is None:
            raise ArgumentError("--text", "is empty; give the request's text")
        states.append(state)
        out["text_state"] = state
    known = set(model.model.needs_.state_turns_)
    unknown = [s for s in dict.fromkeys(states) if s not in known]
    if unknown:
        shown = ", ".join(repr(s) for s in unknown)
        consequence = (
            "the forecast is the prior (what follows any state)"
            if states[-1] in unknown
            else "the forecast rests on the states it knows"
        )
        console.print(
            f"[yellow]warning:[/] {escape(plural(len(unknown), 'state'))} unknown to the "
            f"model ({escape(shown)}): {consequence}"
        )
    next_states, needs = model.predict(states, k=args.k, user=args.user)
    out["states"] = [{"state": s, "p": round(p, 6)} for s, p in next_states]
    out["needs"] = [{"need": n, "p": round(p, 6)} for n, p in needs]
    sys.stdout.write(json.dumps(out, indent=2) + "\n")
    return 0
