"""
The ``preload`` command line: its parser, and ``main``, which runs a command and turns
bad input and signals into exit codes.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence
from importlib.metadata import version
from types import FrameType
from typing import NoReturn

from rich.markup import escape

from .._errors import PreloadError
from ._common import EXIT_CODES, ArgumentError, err_console
from ._learn import learn_parsers
from ._report import report_parser
from ._serve import serve_parsers
from ._simulate import simulate_parser

EXIT_BAD_INPUT = 2
#: A run stopped by a signal exits with 128 + its number, as a shell reports it.
EXIT_SIGINT = 128 + signal.SIGINT  # 130
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143


class _Stopped(KeyboardInterrupt):
    """
    SIGINT, SIGTERM or SIGHUP arrived. A KeyboardInterrupt, so that asyncio lets it through
    its tasks at once and the replay kills its workers on the way out.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ArgumentError(None, f"{message} (see '{self.prog} --help')")


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the command line; returns the exit code.
    """
    console = err_console()
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
    it, so that the cleanup on the way out is not interrupted in turn. A SIGHUP (a
    closed terminal) stops as SIGTERM does, through whatever handles SIGTERM then (this
    one, or the server's, which stops gracefully), and the run says SIGHUP stopped it;
    left at its default, it would end the process at once, its workers orphaned.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = False
    hung_up = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise _Stopped(signal.SIGHUP if hung_up else signum)

    def hang_up(signum: int, frame: FrameType | None) -> None:
        nonlocal hung_up
        hung_up = True
        signal.raise_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, hang_up)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="preload",
        description="Predictive context preloading for LLM agents: replay, train, predict, serve.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"preload {version('preload')}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    simulate_parser(sub)
    report_parser(sub)

    learn_parsers(sub)
    serve_parsers(sub)
    return parser
