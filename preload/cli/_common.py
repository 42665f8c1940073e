"""
What the commands share: the errors they raise for bad arguments, their consoles, and
the checks of their inputs and outputs before the work starts.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from graph import StateEncoder

from .._config import EngineConfig
from .._errors import ConfigError, PreloadError
from .._files import replacing
from ..replay._table import plural

if TYPE_CHECKING:
    from .._sessions import Session

EXIT_CODES = """\
exit codes:
  0    done
  2    bad input: a one-line 'error: ...' names the file, line, key or argument
  130  stopped by SIGINT (Ctrl-C); 143  stopped by SIGTERM; 129  stopped by SIGHUP
       (worker processes too)"""


class ArgumentError(PreloadError):
    """
    A command-line argument is invalid (also what argparse itself refuses).
    """

    def __init__(self, argument: str | None, problem: str) -> None:
        super().__init__(f"argument {argument}: {problem}" if argument else problem)


def command(
    sub: Any, name: str, help: str, description: str | None = None, epilog: str = EXIT_CODES
) -> argparse.ArgumentParser:
    """
    The parser of one command under ``sub``: its ``--help`` ends with ``epilog`` (the
    exit codes), laid out as written.
    """
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def err_console() -> Console:
    return Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)


def out_console() -> Console:
    out = Console(emoji=False, highlight=False)
    if not out.is_terminal:
        out = Console(width=180, emoji=False, highlight=False)
    return out


def at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value

    return parse


def engine_config(path: Path | None) -> EngineConfig:
    if path is None:
        return EngineConfig()
    try:
        return EngineConfig.from_toml(path)
    except ConfigError as exc:
        if exc.key != "-":
            raise
        if not path.exists():
            raise ArgumentError(
                "--config", f"config file {path} not found; give a TOML file"
            ) from None
        raise ArgumentError("--config", f"config file {path}: {exc.problem}") from None


def check_writable_folder(argument: str, folder: Path, *, create: bool) -> None:
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
            raise ArgumentError(
                argument, f"folder {folder} does not exist; create it or choose another path"
            )
        with tempfile.TemporaryFile(dir=folder, prefix=".preload-check-"):
            pass
    except OSError as exc:
        raise ArgumentError(
            argument, f"{what} ({exc.strerror or exc}); choose another path"
        ) from None


def check_output_file(argument: str, path: Path) -> None:
    if path.is_dir():
        raise ArgumentError(argument, f"{path} is a folder; give a file name")
    check_writable_folder(argument, path.parent, create=False)


def write_text(argument: str, path: Path, text: str) -> None:
    """
    Write ``text`` to ``path`` atomically: a stopped run leaves no half-written file.
    """
    try:
        with replacing(path) as out:
            out.write(text)
    except OSError as exc:
        raise ArgumentError(argument, f"cannot write {path}: {exc.strerror or exc}") from None


def report_skipped(console: Console, errors: Sequence[PreloadError]) -> int:
    for error in errors[:10]:
        console.print(f"[yellow]skipped:[/] {escape(str(error))}")
    if len(errors) > 10:
        console.print(f"[yellow]... and {plural(len(errors) - 10, 'more bad line')}")
    return len(errors)


def check_states(argument: str, path: Path, sessions: Sequence[Session]) -> None:
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
        raise ArgumentError(
            argument,
            f"{path}: {plural(unlabelled, 'turn')} without a 'state', and only "
            f"{plural(len(turns), 'turn')} in all: naming states from text needs at least "
            f"{clusters} turns (it clusters them into {clusters} states) or turns of two "
            "named states or more; give the turns a 'state', or train on more sessions",
        )
