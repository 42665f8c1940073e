"""
The ``preload`` command: ``simulate``, ``report``, ``train`` and ``predict``.

Bad input ends with a one-line ``error: ...`` naming the file, line, key or argument,
and exit code 2, never a traceback; every argument and output path is checked before
the work starts. SIGINT (Ctrl-C) and SIGTERM stop a run at once, worker processes
included, with one line saying so and exit code 130 or 143 (128 + the signal).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from graph import InvalidStateError, StateEncoder

from ._config import EngineConfig
from ._errors import ConfigError, PreloadError
from ._sessions import Session, read_sessions
from ._sources import DictSource, JsonlKnowledgeSource
from .experiments import experiment_table, read_outcome_files, summarize, write_outcomes
from .learning import EngineCallPredictor, EngineForecaster
from .replay import (
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
from .replay._table import plural

__all__ = ["main"]

EXIT_BAD_INPUT = 2
#: A run stopped by a signal exits with 128 + its number, as a shell reports it.
EXIT_SIGINT = 128 + signal.SIGINT  # 130
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143

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

_EXIT_CODES = """\
exit codes:
  0    done
  2    bad input: a one-line 'error: ...' names the file, line, key or argument
  130  stopped by SIGINT (Ctrl-C); 143  stopped by SIGTERM (worker processes too)"""


class _ArgumentError(PreloadError):
    """
    A command-line argument is invalid (also what argparse itself refuses).
    """

    def __init__(self, argument: str | None, problem: str) -> None:
        super().__init__(f"argument {argument}: {problem}" if argument else problem)


class _Stopped(KeyboardInterrupt):
    """
    SIGINT or SIGTERM arrived. A KeyboardInterrupt, so that asyncio lets it through
    its tasks at once and the replay kills its workers on the way out.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _ArgumentError(None, f"{message} (see '{self.prog} --help')")


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the command line; returns the exit code.
    """
    console = _err_console()
    with _stop_on_signals():
        try:
            args = _parser().parse_args(argv)
            return int(args.run(args))
        except PreloadError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}")
            return EXIT_BAD_INPUT
        except KeyboardInterrupt as exc:
            signum = exc.signum if isinstance(exc, _Stopped) else signal.SIGINT
            name = signal.Signals(signum).name
            console.print(f"[yellow]stopped by {name}[/]: the run did not finish")
            return 128 + signum


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """
    Turn the first SIGINT or SIGTERM into :class:`_Stopped` and ignore the ones after
    it, so that the cleanup on the way out is not interrupted in turn.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise _Stopped(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _err_console() -> Console:
    return Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="preload",
        description="Predictive context preloading for LLM agents: replay, train, predict, serve.",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"preload {version('preload')}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    _simulate_parser(sub)
    _report_parser(sub)

    train = sub.add_parser(
        "train",
        help="fit the forecast model on sessions and save it",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    train.set_defaults(run=_train)

    predict = sub.add_parser(
        "predict",
        help="print the next states and needs after a history",
        description="Print the likeliest next states and needs, as JSON, after the "
        "session's states so far, or after the state the model names from a request text "
        "(--text), or both.",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument("--model", type=Path, required=True, help="model file from 'train'")
    predict.add_argument("states", nargs="*", metavar="STATE", help="the session's states so far")
    predict.add_argument(
        "--text", help="a request; the model names its state (models trained without states)"
    )
    predict.add_argument(
        "-k", type=_at_least(1), default=3, help="how many states and needs to print (1 or more)"
    )
    predict.add_argument("--user", help="the user, for per-user blending")
    predict.set_defaults(run=_predict)
    _serve_parsers(sub)
    return parser


def _serve_parsers(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="serve the HTTP API (the server extra)",
        description="Serve the HTTP API under /v1 (interactive page at /docs). Each tenant of "
        'the keys has its own engine; with cache.backend = "redis" sessions live in Redis '
        "and any replica serves any turn. See docs/server.md.",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--config", type=Path, help="TOML configuration (configs/server.toml)")
    serve.add_argument("--model", type=Path, help="model file from 'train', loaded at start")
    serve.add_argument("--knowledge", type=Path, help="knowledge file (JSONL) for every tenant")
    serve.add_argument(
        "--keys", type=Path, help="keys file from 'keys new' (else PRELOAD_API_KEYS)"
    )
    serve.add_argument("--sources", help="module:callable giving a tenant's extra sources")
    serve.add_argument("--tools", help="module:callable giving a tenant's call sources")
    serve.add_argument(
        "--calls-model", type=Path, help="call forecaster from 'train --calls-out', loaded at start"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=_at_least(0), default=8000, help="port (0: any free one)")
    serve.add_argument("--workers", type=_at_least(1), default=1, help="worker processes")
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.set_defaults(run=_serve)

    keys = sub.add_parser("keys", help="manage the server's API keys")
    keys_sub = keys.add_subparsers(required=True, metavar="ACTION")
    new = keys_sub.add_parser(
        "new",
        help="make a key for a tenant: print it once, store its digest",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    new.add_argument("--tenant", required=True, help="the tenant the key belongs to")
    new.add_argument("--keys", type=Path, required=True, help="keys file to append to")
    new.set_defaults(run=_new_key)


def _serve(args: argparse.Namespace) -> int:
    try:
        from .server import ServerSettings
        from .server._serve import serve
    except ImportError as exc:
        raise _ArgumentError(
            None, f"the server needs its extra: pip install 'preload[server]' ({exc.name})"
        ) from None
    for name in ("config", "model", "knowledge", "keys", "calls_model"):
        path = getattr(args, name)
        if path is not None and not path.is_file():
            raise _ArgumentError(f"--{name.replace('_', '-')}", f"{path}: no such file")
    settings = ServerSettings(
        config=_text(args.config),
        model=_text(args.model),
        knowledge=_text(args.knowledge),
        keys=_text(args.keys),
        sources=args.sources,
        tools=args.tools,
        calls_model=_text(args.calls_model),
    )
    return serve(
        settings, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level
    )


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path.resolve())


def _new_key(args: argparse.Namespace) -> int:
    from .server._serve import new_key_command

    print(new_key_command(args.tenant, args.keys))  # noqa: T201 (the key, once)
    return 0


def _simulate_parser(sub: Any) -> None:
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
            _EXIT_CODES,
        ]
    )
    sim = sub.add_parser(
        "simulate",
        help="replay sessions through every strategy and print a table",
        description="Replay sessions (the generated demo when --sessions is absent) through "
        "the strategies on a virtual clock and compare them.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        "--limit", type=_at_least(1), help="replay only the first N sessions (1 or more)"
    )
    sim.add_argument(
        "--processes",
        type=_at_least(0),
        help="worker processes (default, or 0: the config's, else one per core; "
        "1 replays in this process)",
    )
    sim.add_argument(
        "--tenants",
        type=_at_least(1),
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
    sim.set_defaults(run=_simulate)


def _report_parser(sub: Any) -> None:
    report = sub.add_parser(
        "report",
        help="print an A/B test's outcomes per arm with 95 %% confidence intervals",
        description="Read outcomes files (from 'simulate --experiment-out' or "
        "engine.experiment_outcomes(), one per replica) and print, for each experiment, arm "
        "and metric, the mean over sessions with its t confidence interval, and each arm minus "
        "the control with Welch's interval and p-value. A session that several replicas "
        "served is merged from their files. See docs/experiments.md.",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument(
        "outcomes",
        type=Path,
        nargs="+",
        metavar="OUTCOMES",
        help="outcomes file (JSONL); several: one per replica, a session's partial outcomes merged",
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
    report.set_defaults(run=_report)


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.5 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be within [0.5, 1), e.g. 0.95, got {text}")
    return value


def _report(args: argparse.Namespace) -> int:
    outcomes = read_outcome_files(args.outcomes)
    try:
        summaries = summarize(outcomes, control=args.control, confidence=args.confidence)
    except ConfigError as exc:
        files = ", ".join(str(path) for path in args.outcomes)
        raise _ArgumentError(None, f"{files}: {exc.problem}") from None
    if args.json:
        sys.stdout.write(json.dumps([s.to_json() for s in summaries], indent=2) + "\n")
        return 0
    out = _out_console()
    for summary in summaries:
        out.print(experiment_table(summary))
    return 0


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value

    return parse


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


def _config(path: Path | None) -> EngineConfig:
    if path is None:
        return EngineConfig()
    try:
        return EngineConfig.from_toml(path)
    except ConfigError as exc:
        if exc.key != "-":
            raise
        if not path.exists():
            raise _ArgumentError(
                "--config", f"config file {path} not found; give a TOML file"
            ) from None
        raise _ArgumentError("--config", f"config file {path}: {exc.problem}") from None


def _check_writable_folder(argument: str, folder: Path, *, create: bool) -> None:
    """
    Make sure files can be written in ``folder`` (created first when ``create``), by
    writing and removing one: permissions alone do not tell (root, read-only mounts,
    /proc).
    """
    what = f"cannot write into {folder}"
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        elif not folder.is_dir():
            raise _ArgumentError(
                argument, f"folder {folder} does not exist; create it or choose another path"
            )
        with tempfile.TemporaryFile(dir=folder, prefix=".preload-check-"):
            pass
    except OSError as exc:
        raise _ArgumentError(
            argument, f"{what} ({exc.strerror or exc}); choose another path"
        ) from None


def _check_output_file(argument: str, path: Path) -> None:
    if path.is_dir():
        raise _ArgumentError(argument, f"{path} is a folder; give a file name")
    _check_writable_folder(argument, path.parent, create=False)


def _write_text(argument: str, path: Path, text: str) -> None:
    """
    Write ``text`` to ``path`` atomically: a stopped run leaves no half-written file.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _ArgumentError(argument, f"cannot write {path}: {exc.strerror or exc}") from None


def _simulate(args: argparse.Namespace) -> int:
    console = _err_console()
    if args.json is not None:
        _check_output_file("--json", args.json)
    if args.experiment_out is not None:
        _check_output_file("--experiment-out", args.experiment_out)
    if args.plot is not None:
        if importlib.util.find_spec("matplotlib") is None:
            raise _ArgumentError(
                "--plot", "drawing charts needs matplotlib: pip install 'preload[plot]'"
            )
        _check_writable_folder("--plot", args.plot, create=True)
    config = _config(args.config)
    strategies: list[str] = args.strategies
    if args.experiment_out is not None and not config.experiments.enabled:
        raise _ArgumentError(
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
        skipped += _report_skipped(console, errors)
        if "engine" in strategies:
            _check_states("--train", args.train, train)
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


def _out_console() -> Console:
    out = Console(emoji=False, highlight=False)
    if not out.is_terminal:
        out = Console(width=180, emoji=False, highlight=False)
    return out


def _print_report(report: ReplayReport, skipped: int, console: Console) -> None:
    """
    The table on stdout (and the experiment's, per arm); what was missing or skipped,
    and the times, on stderr.
    """
    out = _out_console()
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
            lambda r: r.used_at_request or r.used_after_reply,
            lambda r: (
                f"{r.used_at_request} as the request arrived, {r.used_after_reply} after the reply"
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
        _write_text("--json", args.json, json.dumps(report.to_json(), indent=2) + "\n")
    engine = report.strategies.get("engine")
    if args.experiment_out is not None and engine is not None:
        try:
            n = write_outcomes(args.experiment_out, engine.outcomes)
        except OSError as exc:
            raise _ArgumentError(
                "--experiment-out", f"cannot write {args.experiment_out}: {exc.strerror or exc}"
            ) from None
        console.print(f"wrote {plural(n, 'session outcome')} to {escape(str(args.experiment_out))}")
    if args.plot is not None:
        try:
            paths = plot_report(report, args.plot)
        except ImportError as exc:
            raise _ArgumentError("--plot", str(exc)) from None
        except OSError as exc:
            raise _ArgumentError("--plot", f"cannot write charts: {exc}") from None
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
    skipped = _report_skipped(console, errors)
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
    skipped += _report_skipped(console, knowledge.bad_lines)
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


def _report_skipped(console: Console, errors: Sequence[PreloadError]) -> int:
    for error in errors[:10]:
        console.print(f"[yellow]skipped:[/] {escape(str(error))}")
    if len(errors) > 10:
        console.print(f"[yellow]... and {plural(len(errors) - 10, 'more bad line')}")
    return len(errors)


def _train(args: argparse.Namespace) -> int:
    console = _err_console()
    _check_output_file("--out", args.out)
    if args.calls_out is not None:
        _check_output_file("--calls-out", args.calls_out)
    config = _config(args.config)
    sessions, errors = read_sessions(args.sessions, skip_bad_lines=args.skip_bad_lines)
    _report_skipped(console, errors)
    _check_states("--sessions", args.sessions, sessions)
    calls = sum(len(t.tool_calls) for s in sessions for t in s.turns)
    if args.calls_out is not None and not calls:
        raise _ArgumentError(
            "--calls-out", f"{args.sessions}: no turn has tool_calls to learn from"
        )
    model = EngineForecaster.from_config(config)
    try:
        model.fit(sessions)
    except PreloadError:
        raise
    except InvalidStateError as exc:  # a state name graph cannot take
        raise _ArgumentError("--sessions", f"{args.sessions}: {exc}") from None
    except ValueError as exc:  # the state encoder cannot learn from these texts
        if not any(t.state is None for s in sessions for t in s.turns):
            raise
        raise _ArgumentError(
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


def _check_states(argument: str, path: Path, sessions: Sequence[Session]) -> None:
    """
    Turns without a ``state`` get one from their text: the nearest of the states of
    other turns when at least two are named, else one of ``n_states`` clusters of all
    the texts, which needs at least that many turns.
    """
    turns = [t for s in sessions for t in s.turns]
    unlabelled = sum(t.state is None and bool(t.text) for t in turns)
    named = {t.state for t in turns if t.state is not None}
    clusters = StateEncoder().n_states
    if unlabelled and len(named) < 2 and len(turns) < clusters:
        raise _ArgumentError(
            argument,
            f"{path}: {plural(unlabelled, 'turn')} without a 'state', and only "
            f"{plural(len(turns), 'turn')} in all: naming states from text needs at least "
            f"{clusters} turns (it clusters them into {clusters} states) or turns of two "
            "named states or more; give the turns a 'state', or train on more sessions",
        )


def _predict(args: argparse.Namespace) -> int:
    console = _err_console()
    if not args.states and args.text is None:
        raise _ArgumentError(
            "STATE", "give the session's states so far, or a request with --text, or both"
        )
    model = EngineForecaster.load(args.model)
    states: list[str] = list(args.states)
    out: dict[str, Any] = {}
    if args.text is not None:
        if model.encoder is None:
            raise _ArgumentError(
                "--text",
                f"the model {args.model} has no state encoder, so it cannot name a state "
                "from text; give the session's states instead",
            )
        state = model.encode(args.text)
        if state is None:
            raise _ArgumentError("--text", "is empty; give the request's text")
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
