"""
``preload report``: an A/B test's outcomes files, per arm with confidence intervals.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ..experiments import experiment_table, read_outcome_files, summarize
from ._common import ArgumentError, command, out_console


def report_parser(sub: Any) -> None:
    report = command(
        sub,
        "report",
        help="print an A/B test's outcomes per arm with 95 %% confidence intervals",
        description="Read outcomes files (from 'simulate --experiment-out' or "
        "engine.experiment_outcomes(), one per replica) and print, for each experiment, arm "
        "and metric, the mean over sessions with its t confidence interval, and each arm minus "
        "the control with Welch's interval and p-value. A session that several replicas "
        "served is merged from their files. See docs/experiments.md.",
    )
    report.add_argument(
        "outcomes",
        type=Path,
        nargs="+",
        metavar="OUTCOMES",
        help="outcomes file (JSONL), or a folder of them (*.jsonl, as server.outcomes_dir "
        "keeps a tenant's); several: one per replica, a session's partial outcomes merged",
    )
    report.add_argument(
        "--control",
        help="the arm the others are compared with (default: 'control', else the first)",
    )
    report.add_argument(
        "--confidence",
        type=_confidence,
        default=0.95,
        help="confidence level of the intervals (default 0.95)",
    )
    report.add_argument("--json", action="store_true", help="print JSON instead of tables")
    report.set_defaults(run=run_report)


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.5 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be within [0.5, 1), e.g. 0.95, got {text}")
    return value


def run_report(args: argparse.Namespace) -> int:
    outcomes = read_outcome_files(args.outcomes)
    try:
        summaries = summarize(outcomes, control=args.control, confidence=args.confidence)
    except ConfigError as exc:
        files = ", ".join(str(path) for path in args.outcomes)
        raise ArgumentError(None, f"{files}: {exc.problem}") from None
    if args.json:
        sys.stdout.write(json.dumps([s.to_json() for s in summaries], indent=2) + "\n")
        return 0
    out = out_console()
    for summary in summaries:
        out.print(experiment_table(summary))
    return 0
