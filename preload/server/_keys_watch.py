"""
The keys file, followed while serving: :class:`KeysWatcher` looks at the file every
``server.keys_reload_s`` and reads it again when it changed (its size, time or inode),
so that a key made with ``preload keys new`` is accepted and a key taken out with
``preload keys revoke`` refused without a restart. A file that does not read (a line
half written, a bad entry, no key left) changes nothing: the keys already accepted stay,
the problem is logged once with the file and the line, and the next change is read
again. The file is looked at and read in a worker thread, never on the event loop.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.to_thread

from ._keys import KeyRing

__all__ = ["KeysWatcher"]

logger = logging.getLogger(__name__)

#: What tells one version of the file from another: its inode, size and change time.
Signature = tuple[int, int, int]


class KeysWatcher:
    """
    Follows a keys file: :meth:`check` reads it again when it changed and hands the new
    keys to ``changed``; :meth:`run` checks every ``every_s`` seconds.

    Args:
        path: The keys file the server started with.
        keys: The keys read from it at start.
        every_s: Seconds between two looks at the file.
        changed: Awaited with the keys before and after each change that reads.

    Attributes:
        keys: The keys accepted now.
        reloads: Changes read and taken.
        failures: Changes that did not read (the keys stayed).
    """

    def __init__(
        self,
        path: Path,
        keys: KeyRing,
        every_s: float,
        changed: Callable[[KeyRing, KeyRing], Awaitable[None]],
    ) -> None:
        self.path = path
        self.keys = keys
        self.every_s = every_s
        self.changed = changed
        self.reloads = 0
        self.failures = 0
        self._seen: Signature | None = _signature(path)  # the file read at start
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
                logger.exception("checking the keys file %s failed", self.path)
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
        Read the file again if it changed since it was last looked at; whether keys
        changed. A file gone or unreadable, or one that does not read as keys, is
        logged once (until it changes again) and leaves the keys as they were.
        """
        signature = await anyio.to_thread.run_sync(_signature, self.path)
        if signature == self._seen:
            return False
        self._seen = signature
        if signature is None:
            self.failures += 1
            logger.error("keys file %s: gone; the keys read before stay", self.path)
            return False
        try:
            keys = await anyio.to_thread.run_sync(KeyRing.from_file, self.path)
        except ValueError as exc:  # InputError: it names the file and the line
            self.failures += 1
            logger.error("keys file changed but does not read: %s; the keys read before stay", exc)
            return False
        before, self.keys = self.keys, keys
        self.reloads += 1
        added = sorted(set(keys.tenants) - set(before.tenants))
        removed = sorted(set(before.tenants) - set(keys.tenants))
        logger.info(
            "keys file %s read again: %d keys; tenants added %s, removed %s",
            self.path,
            len(keys),
            added,
            removed,
        )
        await self.changed(before, keys)
        return True


def _signature(path: Path) -> Signature | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_ino, found.st_size, found.st_mtime_ns)
