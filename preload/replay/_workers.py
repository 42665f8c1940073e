"""
Strategies replayed in worker processes or in this one, and stopped with them.

Each strategy runs in a forked process of its own, at most ``workers`` at a time, and
reports its progress and its result through a pipe. The parent waits on the pipes.
Whatever ends the wait early (a Ctrl-C, a signal the caller turns into an exception, a
strategy that fails) kills every worker and reaps it before the exception leaves, so
no process outlives the replay and none is left blocked on a pipe. Workers ignore
SIGINT (a Ctrl-C reaches the terminal's whole process group; the parent decides) and
die on SIGTERM.

A replay in this process (:func:`run_here`) cannot be stopped by raising from a signal
handler: the exception would land inside whichever task runs at that moment. While it
runs, SIGINT and SIGTERM instead cancel the loop's main task (the job registers it with
:func:`cancel_on_signal`); once the loop has unwound, the signal goes to the handler
that was installed before (the CLI's raises, Python's SIGINT handler raises
KeyboardInterrupt, the default action of SIGTERM ends the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import multiprocessing
import signal
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from types import FrameType
from typing import Any

__all__ = ["cancel_on_signal", "run_here", "run_in_processes"]

#: Signals blocked while a worker is forked, so that none reaches it before it has
#: set its own handlers.
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}

Job = Callable[[str, Callable[[int], None]], Any]


class _RemoteTraceback(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)

    def __str__(self) -> str:
        return f"\n\nin the worker process:\n{self.args[0]}"


#: The packages whose exceptions a worker's failure is rebuilt as; others arrive as
#: RuntimeError with their text.
_REVIVABLE = ("preload.", "graph.", "builtins")


def _portable(exc: BaseException) -> dict[str, Any]:
    """
    An exception as JSON: its type, its arguments and its attributes. preload's
    errors build their message in ``__init__`` from other arguments, so they are
    rebuilt without calling it (:func:`_revive`).
    """
    cls = type(exc)
    data = {
        "module": cls.__module__,
        "type": cls.__qualname__,
        "args": list(exc.args),
        "state": dict(getattr(exc, "__dict__", {})),
        "text": f"{cls.__qualname__}: {exc}",
    }
    try:
        json.dumps(data)
    except (TypeError, ValueError):  # not JSON: send its text instead
        data.update(args=[], state={})
        data["module"], data["type"] = "builtins", "RuntimeError"
        data["args"] = [data["text"]]
    return data


def _revive(data: dict[str, Any]) -> BaseException:
    """
    The exception :func:`_portable` described, as itself where its type is preload's,
    graph's or a built-in one; else a RuntimeError with its text.
    """
    module, name = str(data.get("module")), str(data.get("type"))
    cls: Any = None
    if module.startswith(_REVIVABLE):
        cls = getattr(importlib.import_module(module), name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        return RuntimeError(str(data.get("text")))
    args = tuple(data.get("args") or ())
    exc = cls.__new__(cls, *args)
    exc.args = args
    if hasattr(exc, "__dict__"):
        exc.__dict__.update(data.get("state") or {})
    return exc


def _send(conn: Connection, message: Any) -> None:
    conn.send_bytes(json.dumps(message).encode("utf-8"))


def _worker(name: str, job: Job, conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    try:
        result = job(name, lambda n: _send(conn, ["progress", n]))
        _send(conn, ["done", result])
    except BaseException as exc:  # noqa: BLE001  the parent raises it
        _send(conn, ["failed", _portable(exc), traceback.format_exc()])
    finally:
        conn.close()


def run_in_processes(
    names: Sequence[str],
    job: Job,
    workers: int,
    on_progress: Callable[[str, int], None] | None = None,
) -> dict[str, Any]:
    """
    Run ``job(name, progress)`` for every name in forked processes, ``workers`` at a
    time, in the order given; return each name's result.

    ``job`` and what it reads are inherited by the fork, never pickled; its result and
    its exceptions come back as JSON (never pickle).

    Raises:
        BaseException: The first exception of a job (as itself), or whatever
            interrupted the wait; every worker is gone by then.
        RuntimeError: A worker died without a result.
    """
    ctx = multiprocessing.get_context("fork")
    pending = deque(names)
    running: dict[Connection, tuple[str, multiprocessing.process.BaseProcess]] = {}
    results: dict[str, Any] = {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                name = pending.popleft()
                receiver, sender = ctx.Pipe(duplex=False)
                process = ctx.Process(target=_worker, args=(name, job, sender), daemon=True)
                old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
                try:
                    process.start()
                finally:
                    signal.pthread_sigmask(signal.SIG_SETMASK, old)
                sender.close()  # the worker holds the only writing end: EOF when it ends
                running[receiver] = (name, process)
            for conn in wait(list(running)):
                assert isinstance(conn, Connection)
                name, ended = running[conn]
                if _receive(conn, name, results, on_progress):
                    continue
                del running[conn]
                conn.close()
                ended.join()
                if name not in results:
                    raise RuntimeError(
                        f"the worker replaying {name!r} died (exit code {ended.exitcode})"
                    )
    finally:
        for conn, (_, left) in running.items():
            left.kill()
            left.join()
            conn.close()
    return results


def _receive(
    conn: Connection,
    name: str,
    results: dict[str, Any],
    on_progress: Callable[[str, int], None] | None,
) -> bool:
    """
    Handle one message from a worker; False once its pipe is closed.
    """
    try:
        kind, *payload = json.loads(conn.recv_bytes())
    except EOFError:
        return False
    if kind == "progress":
        if on_progress is not None:
            on_progress(name, payload[0])
    elif kind == "done":
        results[name] = payload[0]
    else:
        exc = _revive(payload[0])
        raise exc from _RemoteTraceback(payload[1])
    return True


class _Here:
    """
    The signal that arrived while strategies replay in this process, and the task it
    cancels.
    """

    signum: int | None = None
    task: asyncio.Task[Any] | None = None


def cancel_on_signal(task: asyncio.Task[Any] | None) -> None:
    """
    Let a signal that arrives during :func:`run_here` cancel ``task`` (the main task of
    the loop a job runs); None when the loop is done. A signal that came first cancels
    it at once.
    """
    _Here.task = task
    if task is not None and _Here.signum is not None:
        task.cancel()


def run_here(
    names: Sequence[str], job: Job, on_progress: Callable[[str, int], None] | None = None
) -> dict[str, Any]:
    """
    Run ``job(name, progress)`` for every name in this process, one after the other;
    SIGINT and SIGTERM cancel it (see the module's docstring).
    """

    def reporter(name: str) -> Callable[[int], None]:
        return lambda n: on_progress(name, n) if on_progress is not None else None

    with _deferred_signals():
        return {name: job(name, reporter(name)) for name in names}


@contextlib.contextmanager
def _deferred_signals() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def defer(signum: int, frame: FrameType | None) -> None:
        if _Here.signum is None:
            _Here.signum = signum
            if _Here.task is not None:
                _Here.task.cancel()

    previous = {
        s: signal.signal(s, defer)
        for s in _STOP_SIGNALS
        if signal.getsignal(s) not in (signal.SIG_IGN, None)
    }
    try:
        yield
    finally:
        signum, _Here.signum, _Here.task = _Here.signum, None, None
        for s, handler in previous.items():
            signal.signal(s, handler)
        if signum is not None:
            _deliver(signum, previous[signal.Signals(signum)])


def _deliver(signum: int, handler: Any) -> None:
    """
    Hand a deferred signal to the handler it would have reached.
    """
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signum)  # its default action, usually the end of the process
