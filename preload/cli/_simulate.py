"""
``preload simulate``: replay sessions through the strategies and print the table.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .._errors import ConfigError
from .._sessions import Session, read_sessions
from .._sources import DictSource, JsonlKnowledgeSource
from ..experiments import experiment_table, summarize, write_outcomes
from ..replay import (
    ALL_STRATEGIES,
    REPORT_COLUMNS,
    STRATEGIES,
    ReplayReport,
    StrategyReport,
    generate_demo,
    plot_report,
    replay,
    report_table,
)
from ..replay._table import plural
from ._common import (
    EXIT_CODES,
    ArgumentError,
    at_least,
    check_output_file,
    check_states,
    check_writable_folder,
    command,
    engine_config,
    err_console,
    out_console,
    report_skipped,
    write_text,
)

if TYPE_CHECKING:
    from .._config import EngineConfig

_STRATEGY_HELP = {
    "cold": "loads every need on demand, no cache",
    "lru": "a reactive cache: keeps what was loaded, preloads nothing",
    "popular": "preloads the needs used most overall",
    "markov1": "preloads the needs of the likeliest next state after this one",
    "engine": "the engine as configured (its forecaster, value threshold, swap)",
    "oracle": "preloads exactly the next turn's needs: the ceiling of one session",
    "global_oracle": "knows every session's future: preloads what will be used, evicts "
    "what is used furthest ahead (Belady); the ceiling of a shared cache (not run by default)",
    "request_oracle": "the oracle, but a turn's calls start only as its request arrives: the "
    "ceiling of forecasting calls from the request (not run by default)",
    "said_oracle": "the oracle, but a call starts before its request only when every argument "
    "value was said (in a text or a result, or given to an earlier call) by then: the "
    "ceiling of forecasting calls "
    "from what was said (not run by default)",
}


def simulate_parser(sub: Any) -> None:
    width = max(map(len, REPORT_COLUMNS))
    epilog = "\n".join(
        [
            "strategies:",
            *(f"  {n:<{width}}  {text}" for n, text in _STRATEGY_HELP.items()),
            "",
            "columns of the table:",
            *(f"  {n:<{width}}  {text}" for n, text in REPORT_COLUMNS.items()),
            "",
            "the 'preloads' line under it, per strategy that has any:",
            "  deferred   started just in time rather than at once (preloader.just_in_time)",
            '  rejected   refused by the value-aware cache (cache.eviction = "value"): worth',
            "             less, times the share of preloads that survive until their use,",
            "             than what they would evict",
            "  lost       needed by their session after they had left the cache (evicted",
            "             by other loads, or expired, before their use)",
            "  left out for their TTL   would expire before their use (preloader.ttl_aware)",
            "",
            "the 'slowest tenth of the read-only calls' line: of the tenth of the tool",
            "calls that waited longest, those that ran only when the agent asked (not run",
            "ahead, or with other arguments: a better forecast helps) and those that joined",
            "a call in flight (run ahead, too late to finish: an earlier start helps)",
            "",
            "--plot writes wait_cdf, p99 and rates charts, each as PNG and SVG (needs the",
            "'plot' extra: pip install 'preload[plot]').",
            "",
            EXIT_CODES,
        ]
    )
    sim = command(
        sub,
        "simulate",
        help="replay sessions through every strategy and print a table",
        description="Replay sessions (the generated demo when --sessions is absent) through "
        "the strategies on a virtual clock and compare them.",
        epilog=epilog,
    )
    sim.add_argument("--sessions", type=Path, help="session log (JSONL); default: the demo")
    sim.add_argument("--knowledge", type=Path, help="knowledge file (JSONL) the needs refer to")
    sim.add_argument("--train", type=Path, help="pre-fit learning strategies on these sessions")
    sim.add_argument("--config", type=Path, help="TOML configuration (default: the embedded one)")
    sim.add_argument(
        "--strategies",
        type=_strategies,
        default=list(STRATEGIES),
        help=f"comma-separated subset of {','.join(ALL_STRATEGIES)}, each once "
        f"(default: {','.join(STRATEGIES)})",
    )
    sim.add_argument("--seed", type=int, help="fixes arrivals and latencies")
    sim.add_argument("--skip-bad-lines", action="store_true", help="report and skip bad lines")
    sim.add_argument("--json", type=Path, help="write the report as JSON here")
    sim.add_argument("--plot", type=Path, help="write charts of the report into this folder")
    sim.add_argument(
        "--limit", type=at_least(1), help="replay only the first N sessions (1 or more)"
    )
    sim.add_argument(
        "--processes",
        type=at_least(0),
        help="worker processes (default, or 0: the config's, else one per core; "
        "1 replays in this process)",
    )
    sim.add_argument(
        "--tenants",
        type=at_least(1),
        help="spread the sessions over N tenants sharing one cache, each with its own copy "
        "of the knowledge (default: the config's replay.tenants, 1)",
    )
    sim.add_argument(
        "--capacity",
        type=_fraction,
        help="size the cache to this fraction of the working set, in entries and bytes "
        "(e.g. 0.05; default: the config's cache.max_entries and max_bytes)",
    )
    sim.add_argument(
        "--experiment-out",
        type=Path,
        help="write each session's outcome in the config's experiment (engine strategy) "
        "to this JSONL file, for 'preload report'",
    )
    sim.set_defaults(run=run_simulate)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(
            f"must be a positive fraction of the working set (e.g. 0.05), got {text}"
        )
    return value


def _strategies(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    choices = ", ".join(ALL_STRATEGIES)
    if not names:
        raise argparse.ArgumentTypeError(f"names no strategy; choose from {choices}")
    for name in names:
        if name not in ALL_STRATEGIES:
            raise argparse.ArgumentTypeError(f"unknown strategy {name!r}; choose from {choices}")
        if names.count(name) > 1:
            raise argparse.ArgumentTypeError(f"names {name!r} twice; give each strategy once")
    return names


def run_simulate(args: argparse.Namespace) -> int:
    console = err_console()
    if args.json is not None:
        check_output_file("--json", args.json)
    if args.experiment_out is not None:
        check_output_file("--experiment-out", args.experiment_out)
    if args.plot is not None:
        if importlib.util.find_spec("matplotlib") is None:
            raise ArgumentError(
                "--plot", "drawing charts needs matplotlib: pip install 'preload[plot]'"
            )
        check_writable_folder("--plot", args.plot, create=True)
    config = engine_config(args.config)
    strategies: list[str] = args.strategies
    if args.experiment_out is not None and not config.experiments.enabled:
        raise ArgumentError(
            "--experiment-out", "the config has no [experiments] with arms to record outcomes of"
        )
    if config.experiments.enabled and "engine" not in strategies:
        console.print(
            "[yellow]the config's experiment runs in the engine strategy only, "
            "which --strategies leaves out"
        )
    seed = config.replay.seed if args.seed is None else args.seed
    sessions, knowledge, name, skipped = _read_inputs(args, config, seed, console)
    train: list[Session] = []
    if args.train is not None:
        train, errors = read_sessions(args.train, skip_bad_lines=args.skip_bad_lines)
        skipped += report_skipped(console, errors)
        if "engine" in strategies:
            check_states("--train", args.train, train)
        console.print(
            f"pre-fitting on {plural(len(train), 'session')} from {escape(str(args.train))}"
        )
    total = sum(len(s.turns) for s in sessions) * len(strategies)
    label = f"replaying {plural(len(strategies), 'strategy', 'strategies')}"
    with _progress(console, label, total) as advance:
        try:
            report = replay(
                sessions,
                knowledge,
                config,
                strategies=strategies,
                train=train,
                seed=seed,
                name=name,
                processes=args.processes,
                on_progress=advance,
                tenants=args.tenants,
                capacity=args.capacity,
            )
        except ConfigError as exc:
            if exc.source is not None or args.config is None:
                raise
            raise ConfigError(exc.key, exc.problem, args.config) from None  # name the file
    _print_report(report, skipped, console)
    _write_outputs(args, report, console)
    return 0


def _print_report(report: ReplayReport, skipped: int, console: Console) -> None:
    """
    The table on stdout (and the experiment's, per arm); what was missing or skipped,
    and the times, on stderr.
    """
    out = out_console()
    out.print(report_table(report))
    engine = report.strategies.get("engine")
    if engine is not None and engine.outcomes:
        try:
            summaries = summarize(engine.outcomes)
        except ConfigError as exc:  # one arm only: nothing to compare
            console.print(f"[yellow]experiment: {escape(exc.problem)}")
            summaries = []
        for summary in summaries:
            out.print(experiment_table(summary))
    if report.missing_keys:
        shown = escape(", ".join(report.missing_keys[:5]))
        more = f" and {len(report.missing_keys) - 5} more" if len(report.missing_keys) > 5 else ""
        console.print(
            f"[yellow]{plural(len(report.missing_keys), 'need has', 'needs have')} no "
            f"knowledge entry ({shown}{more}); their turns were served without them"
        )
    if skipped:
        console.print(f"[yellow]{plural(skipped, 'bad line')} skipped")
    lines: tuple[tuple[str, Callable[[StrategyReport], int], Callable[[StrategyReport], str]], ...]
    lines = (
        (
            "calls run ahead and then made: {}",
            lambda r: r.used_at_request or r.used_after_reply or r.used_after_call,
            lambda r: (
                f"{r.used_at_request} as the request arrived, {r.used_after_reply} after the "
                f"reply" + (f", {r.used_after_call} after a call" if r.used_after_call else "")
            ),
        ),
        (
            "guesses held back from running ahead: {}",
            lambda r: (
                r.speculative_skipped_step
                or r.speculative_skipped_source
                or r.speculative_skipped_allowance
            ),
            lambda r: (
                f"{r.speculative_skipped_step} by calls.max_per_turn, "
                f"{r.speculative_skipped_source} by calls.max_in_flight_per_source"
                + (
                    f" ({r.speculative_skipped_slow} while the backend was slow, "
                    "calls.source_slowdown), "
                    if r.speculative_skipped_slow
                    else ", "
                )
                + f"{r.speculative_skipped_allowance} by calls.max_per_call"
            ),
        ),
        (
            "slowest tenth of the read-only calls: {}",
            lambda r: r.call_tail_ran or r.call_tail_joined,
            lambda r: (
                f"{r.call_tail_ran} ran when asked, {r.call_tail_joined} joined a call in flight"
            ),
        ),
        (
            "preloads {} (see 'preload simulate --help')",
            lambda r: r.deferred or r.rejected or r.preloads_lost or r.ttl_skipped,
            lambda r: (
                f"{r.deferred} deferred, {r.rejected} rejected, {r.preloads_lost} lost, "
                f"{r.ttl_skipped} left out for their TTL"
            ),
        ),
    )
    for template, applies, text in lines:
        parts = [f"{n} {text(r)}" for n, r in report.strategies.items() if applies(r)]
        if parts:
            console.print(template.format("; ".join(parts)))
    strategies = plural(len(report.strategies), "strategy", "strategies")
    console.print(
        f"wall {report.wall_s:.1f} s, virtual {report.virtual_s:.0f} s, "
        f"{plural(report.turns, 'turn')} x {strategies}; per strategy: "
        + ", ".join(f"{n} {r.wall_s:.0f} s" for n, r in report.strategies.items())
    )


def _write_outputs(args: argparse.Namespace, report: ReplayReport, console: Console) -> None:
    """
    The JSON report and the charts, where the arguments ask for them.
    """
    if args.json is not None:
        write_text("--json", args.json, json.dumps(report.to_json(), indent=2) + "\n")
    engine = report.strategies.get("engine")
    if args.experiment_out is not None and engine is not None:
        try:
            n = write_outcomes(args.experiment_out, engine.outcomes)
        except OSError as exc:
            raise ArgumentError(
                "--experiment-out", f"cannot write {args.experiment_out}: {exc.strerror or exc}"
            ) from None
        console.print(f"wrote {plural(n, 'session outcome')} to {escape(str(args.experiment_out))}")
    if args.plot is not None:
        try:
            paths = plot_report(report, args.plot)
        except ImportError as exc:
            raise ArgumentError("--plot", str(exc)) from None
        except OSError as exc:
            raise ArgumentError("--plot", f"cannot write charts: {exc}") from None
        console.print(f"wrote {len(paths)} charts into {escape(str(args.plot))}")


def _read_inputs(
    args: argparse.Namespace, config: EngineConfig, seed: int, console: Console
) -> tuple[list[Session], DictSource, str, int]:
    """
    The sessions, the knowledge, the data set's name and the bad lines skipped.
    """
    if args.sessions is None:
        n = config.replay.demo_sessions
        demo = generate_demo(n if args.limit is None else min(n, args.limit), seed=seed)
        console.print(f"demo data: {plural(len(demo.sessions), 'generated session')} (seed {seed})")
        return demo.sessions, DictSource(demo.knowledge, name="kb"), "demo", 0
    sessions, errors = read_sessions(
        args.sessions, skip_bad_lines=args.skip_bad_lines, limit=args.limit
    )
    skipped = report_skipped(console, errors)
    parent = args.sessions.parent.name
    name = args.sessions.stem if parent in ("", ".") else f"{parent}/{args.sessions.stem}"
    if args.knowledge is None:
        console.print("[yellow]no --knowledge given: every need will be reported missing")
        return sessions, DictSource({}, name="kb"), name, skipped
    knowledge = JsonlKnowledgeSource(
        args.knowledge,
        skip_bad_lines=args.skip_bad_lines,
        max_item_chars=config.preloader.max_item_chars,
    )
    skipped += report_skipped(console, knowledge.bad_lines)
    return sessions, knowledge, name, skipped


@contextlib.contextmanager
def _progress(console: Console, label: str, total: int) -> Iterator[Callable[[str, int], None]]:
    """
    Report progress: a bar on a terminal, else a line at every tenth of the work.
    """
    if console.is_terminal:
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task(label, total=total)
            yield lambda _name, n: bar.advance(task, n)
        return
    done, shown, start = [0], [0], time.perf_counter()

    def advance(_name: str, n: int) -> None:
        done[0] += n
        tenth = 10 * done[0] // max(total, 1)
        if tenth > shown[0] and tenth < 10:
            shown[0] = tenth
            console.print(
                f"{label}: {10 * tenth}% ({done[0]} of {total} turns), "
                f"{time.perf_counter() - start:.1f} s"
            )

    yield advance
