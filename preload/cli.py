"""
The ``preload`` command: ``simulate``, ``train`` and ``predict``.

Bad input ends with a one-line message naming the file, line or key, and exit code 2;
never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ._config import EngineConfig
from ._errors import PreloadError
from ._sessions import Session, read_sessions
from ._sources import DictSource, JsonlKnowledgeSource
from .learning import EngineForecaster
from .replay import STRATEGIES, ReplayReport, generate_demo, replay, report_table

__all__ = ["main"]

EXIT_BAD_INPUT = 2


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the command line; returns the exit code.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    console = _err_console()
    try:
        return int(args.run(args))
    except PreloadError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


def _err_console() -> Console:
    return Console(stderr=True, emoji=False, highlight=False)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="preload",
        description="Predictive context preloading for LLM agents: replay, train, predict.",
    )
    parser.add_argument("--version", action="version", version=f"preload {version('preload')}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    sim = sub.add_parser(
        "simulate",
        help="replay sessions through every strategy and print a table",
        description="Replay sessions (the generated demo when --sessions is absent) through "
        "the strategies on a virtual clock and compare them.",
    )
    sim.add_argument("--sessions", type=Path, help="session log (JSONL); default: the demo")
    sim.add_argument("--knowledge", type=Path, help="knowledge file (JSONL) the needs refer to")
    sim.add_argument("--train", type=Path, help="pre-fit learning strategies on these sessions")
    sim.add_argument("--config", type=Path, help="TOML configuration (default: the embedded one)")
    sim.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help=f"comma-separated subset of {','.join(STRATEGIES)}",
    )
    sim.add_argument("--seed", type=int, help="fixes arrivals and latencies")
    sim.add_argument("--skip-bad-lines", action="store_true", help="report and skip bad lines")
    sim.add_argument("--json", type=Path, help="write the report as JSON here")
    sim.add_argument("--plot", type=Path, help="write SVG charts of the report into this folder")
    sim.add_argument("--limit", type=int, help="replay only the first N sessions")
    sim.add_argument("--processes", type=int, help="worker processes (default: one per core)")
    sim.set_defaults(run=_simulate)

    train = sub.add_parser("train", help="fit the forecast model on sessions and save it")
    train.add_argument("--sessions", type=Path, required=True, help="session log (JSONL)")
    train.add_argument("--out", type=Path, required=True, help="model file to write (JSON)")
    train.add_argument("--config", type=Path, help="TOML configuration")
    train.add_argument("--skip-bad-lines", action="store_true", help="report and skip bad lines")
    train.set_defaults(run=_train)

    predict = sub.add_parser("predict", help="print the next states and needs after a history")
    predict.add_argument("--model", type=Path, required=True, help="model file from 'train'")
    predict.add_argument("states", nargs="+", metavar="STATE", help="the session's states so far")
    predict.add_argument("-k", type=int, default=3, help="how many states and needs to print")
    predict.add_argument("--user", help="the user, for per-user blending")
    predict.set_defaults(run=_predict)
    return parser


def _config(path: Path | None) -> EngineConfig:
    return EngineConfig.from_toml(path) if path is not None else EngineConfig()


def _simulate(args: argparse.Namespace) -> int:
    console = _err_console()
    config = _config(args.config)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    seed = config.replay.seed if args.seed is None else args.seed
    skipped = 0
    if args.sessions is None:
        demo = generate_demo(config.replay.demo_sessions, seed=seed)
        sessions, name = demo.sessions, "demo"
        knowledge = DictSource(demo.knowledge, name="kb")
        console.print(f"demo data: {len(sessions)} generated sessions (seed {seed})")
    else:
        sessions, errors = read_sessions(
            args.sessions, skip_bad_lines=args.skip_bad_lines, limit=args.limit
        )
        skipped += _report_skipped(console, errors)
        name = (
            args.sessions.stem
            if args.sessions.parent.name in ("", ".")
            else (f"{args.sessions.parent.name}/{args.sessions.stem}")
        )
        if args.knowledge is not None:
            knowledge = JsonlKnowledgeSource(args.knowledge, skip_bad_lines=args.skip_bad_lines)
            skipped += _report_skipped(console, knowledge.bad_lines)
        else:
            knowledge = DictSource({}, name="kb")
            console.print("[yellow]no --knowledge given: every need will be reported missing")
    train: list[Session] = []
    if args.train is not None:
        train, errors = read_sessions(args.train, skip_bad_lines=args.skip_bad_lines)
        skipped += _report_skipped(console, errors)
        console.print(f"pre-fitting on {len(train)} sessions from {escape(str(args.train))}")
    total = sum(len(s.turns) for s in sessions) * len(strategies)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"replaying {len(strategies)} strategies", total=total)
        report = replay(
            sessions,
            knowledge,
            config,
            strategies=strategies,
            train=train,
            seed=seed,
            name=name,
            processes=args.processes,
            on_progress=lambda _name, n: progress.advance(task, n),
        )
    out = Console(emoji=False, highlight=False)
    if not out.is_terminal:
        out = Console(width=140, emoji=False, highlight=False)
    out.print(report_table(report))
    if report.missing_keys:
        shown = escape(", ".join(report.missing_keys[:5]))
        more = f" and {len(report.missing_keys) - 5} more" if len(report.missing_keys) > 5 else ""
        console.print(
            f"[yellow]{len(report.missing_keys)} needs have no knowledge entry "
            f"({shown}{more}); their turns were served without them"
        )
    if skipped:
        console.print(f"[yellow]{skipped} bad lines skipped")
    console.print(
        f"wall {report.wall_s:.1f} s, virtual {report.virtual_s:.0f} s, "
        f"{report.turns} turns x {len(strategies)} strategies; per strategy: "
        + ", ".join(f"{n} {r.wall_s:.0f} s" for n, r in report.strategies.items())
    )
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    if args.plot is not None:
        for path in _plot(report, args.plot):
            console.print(f"wrote {escape(str(path))}")
    return 0


def _report_skipped(console: Console, errors: Sequence[PreloadError]) -> int:
    for error in errors[:10]:
        console.print(f"[yellow]skipped:[/] {escape(str(error))}")
    if len(errors) > 10:
        console.print(f"[yellow]... and {len(errors) - 10} more bad lines")
    return len(errors)


def _plot(report: ReplayReport, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    charts: dict[str, tuple[str, float | None]] = {
        "hit_rate": ("hit rate", 1.0),
        "p95_ms": ("p95 wait (ms)", None),
        "wasted_ratio": ("wasted preloads", 1.0),
    }
    paths = []
    for key, (title, top) in charts.items():
        values = {name: float(getattr(r, key)) for name, r in report.strategies.items()}
        path = folder / f"{key}.svg"
        path.write_text(_bar_svg(f"{report.name}: {title}", values, top), encoding="utf-8")
        paths.append(path)
    return paths


def _bar_svg(title: str, values: dict[str, float], top: float | None) -> str:
    width, bar, gap, left = 560, 22, 10, 90
    height = 50 + len(values) * (bar + gap)
    peak = top or max([*values.values(), 1e-9])
    rows = []
    for i, (name, value) in enumerate(values.items()):
        y = 40 + i * (bar + gap)
        w = (width - left - 80) * (value / peak if peak else 0)
        rows.append(
            f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{name}</text>'
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="#4c78a8"/>'
            f'<text x="{left + w + 6:.1f}" y="{y + 16}">{value:.3g}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="13"><text x="10" y="22" font-weight="bold">'
        f"{title}</text>{''.join(rows)}</svg>\n"
    )


def _train(args: argparse.Namespace) -> int:
    console = _err_console()
    config = _config(args.config)
    sessions, errors = read_sessions(args.sessions, skip_bad_lines=args.skip_bad_lines)
    _report_skipped(console, errors)
    model = EngineForecaster.from_config(config)
    model.fit(sessions)
    model.save(args.out)
    console.print(
        f"trained on {len(sessions)} sessions ({model.n_states} states); "
        f"wrote {escape(str(args.out))}"
    )
    return 0


def _predict(args: argparse.Namespace) -> int:
    model = EngineForecaster.load(args.model)
    states, needs = model.predict(args.states, k=args.k, user=args.user)
    out: dict[str, Any] = {
        "states": [{"state": s, "p": round(p, 6)} for s, p in states],
        "needs": [{"need": n, "p": round(p, 6)} for n, p in needs],
    }
    sys.stdout.write(json.dumps(out, indent=2) + "\n")
    return 0
