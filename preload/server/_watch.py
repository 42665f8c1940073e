"""
Files followed while serving: :class:`FileWatcher` looks at its files every so often
(``server.keys_reload_s`` for the keys file, ``server.models_reload_s`` for the model
files) and reads them again when one changed (its size, time or inode), so that a key
made with ``preload keys new`` is accepted, a key taken out with ``preload keys
revoke`` refused, and a model retrained with ``preload train`` forecast from, without a
restart. What does not read (a line half written, a bad entry, no key left, a file
gone) changes nothing: what was read before stays, the problem is logged once with the
file and the line, and the next change is read again. The files are looked at and read
in a worker thread, never on the event loop.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

import anyio
import anyio.to_thread

__all__ = ["FileWatcher"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: What tells one version of a file from another: its inode, size and change time
#: (None for a file that is not there).
Signature = tuple[tuple[int, int, int] | None, ...]


class FileWatcher(Generic[T]):
    """
    Follows ``paths``: :meth:`check` reads them again (``read``, in a worker thread)
    when one changed, and hands what it read to ``changed``; :meth:`run` checks every
    ``every_s`` seconds.

    Args:
        what: What the files hold, for the log ("keys file", "model files").
        paths: The files, as read at start.
        value: What was read from them at start.
        every_s: Seconds between two looks at the files.
        read: Reads the files (in a worker thread); raises ``ValueError`` (as the
            ``InputError`` that names the file and line) or ``OSError`` for what does
            not read.
        changed: Awaited with what was read before and what is read now, for each
            change that reads.
        settle: Read a change only once the files have stayed as they are for one look
            more (a large file copied in place is then not read half-written).

    Attributes:
        value: What was read last.
        reloads: Changes read and taken.
        failures: Changes that did not read (what was read before stayed).
    """

    def __init__(
        self,
        what: str,
        paths: Sequence[Path],
        value: T,
        every_s: float,
        read: Callable[[], T],
        changed: Callable[[T, T], Awaitable[None]],
        *,
        settle: bool = False,
    ) -> None:
        self.what = what
        self.paths = tuple(paths)
        self.value = value
        self.every_s = every_s
        self.read = read
        self.changed = changed
        self.settle = settle
        self.reloads = 0
        self.failures = 0
        self._seen = _signature(self.paths)  # the files read at start
        self._pending: Signature | None = None  # a change seen, waiting to settle
        self._checked = anyio.Event()  # set when a check of run's ends, then replaced

    async def run(self) -> None:
        """
        Check every ``every_s`` seconds until cancelled; a check that fails
        unexpectedly is logged, and the next one tries again.
        """
        while True:
            await anyio.sleep(self.every_s)
            try:
                await self.check()
            except Exception:
                logger.exception("checking the %s %s failed", self.what, _names(self.paths))
            finally:
                self._checked.set()
                self._checked = anyio.Event()

    async def next_check(self) -> None:
        """
        Wait until the next check of :meth:`run` ends (for tests and tools).
        """
        await self._checked.wait()

    async def check(self) -> bool:
        """
        Read the files again if they changed since they were last read (and, with
        ``settle``, have not changed since the last look); whether what was read
        changed. A change that does not read is logged once (until the files change
        again) and leaves what was read before.
        """
        signature = await anyio.to_thread.run_sync(_signature, self.paths)
        if signature == self._seen:
            self._pending = None
            return False
        if self.settle and signature != self._pending:
            self._pending = signature  # read at the next look, if it stays so
            return False
        self._seen, self._pending = signature, None
        try:
            value = await anyio.to_thread.run_sync(self.read)
        except (ValueError, OSError) as exc:  # an InputError names the file and line
            self.failures += 1
            logger.error(
                "%s: a change does not read: %s; what was read before stays", self.what, exc
            )
            return False
        before, self.value = self.value, value
        self.reloads += 1
        logger.info("%s %s read again", self.what, _names(self.paths))
        await self.changed(before, value)
        return True


def _signature(paths: Sequence[Path]) -> Signature:
    found: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            found.append(None)
        else:
            found.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def _names(paths: Sequence[Path]) -> str:
    return ", ".join(str(p) for p in paths)
