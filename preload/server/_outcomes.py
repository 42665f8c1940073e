"""
A replica's experiment outcomes, sent or saved: worked out and written a few hundred at
a time, with a turn of the event loop between, so that requests are served meanwhile.
``GET /v1/experiment/outcomes`` sends them; with ``server.outcomes_dir``, the
:class:`OutcomesWriter` saves them to a file of the replica's own, every
``server.outcomes_every_s`` and when the server stops, so that a deploy or a restart
loses none of them: ``preload report`` merges the files of every replica and every
run.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    from ..engine import PreloadEngine
    from ._gate import SessionGate

__all__ = ["OutcomesWriter", "outcome_chunks"]

logger = logging.getLogger(__name__)

#: Outcomes worked out and written between two turns of the loop (about 20 µs each).
CHUNK = 200


async def outcome_chunks(engine: PreloadEngine) -> AsyncIterator[str]:
    """
    The engine's experiment outcomes as lines of an outcomes file, ``CHUNK`` at a
    time, the loop taking a turn after each.
    """
    outcomes = engine.iter_experiment_outcomes()
    while chunk := list(itertools.islice(outcomes, CHUNK)):
        yield "".join(json.dumps(o.to_json(), separators=(",", ":")) + "\n" for o in chunk)
        await anyio.lowlevel.checkpoint()


class OutcomesWriter:
    """
    Saves each tenant's experiment outcomes to ``folder/<tenant>/<replica>.jsonl``
    (atomically: a reader never sees half a file), every ``every_s`` seconds while
    :meth:`run` runs, and on :meth:`save`. ``<replica>`` is the host, the process and
    the moment it started, so that every replica and every run has a file of its own.

    Args:
        folder: Where the files go (created if need be).
        gates: Each tenant's gate, whose engine has the outcomes.
        every_s: Seconds between two saves.
    """

    def __init__(self, folder: Path, gates: Mapping[str, SessionGate], every_s: float) -> None:
        self.folder = folder
        self.gates = gates
        self.every_s = every_s
        started = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = f"{socket.gethostname()}-{os.getpid()}-{started}"
        self.replica = re.sub(r"[^A-Za-z0-9._-]", "_", name)
        self._saved = anyio.Event()  # set when a save of run's ends, then replaced

    def path_of(self, tenant: str) -> Path:
        """
        The file of ``tenant``'s outcomes from this replica.
        """
        return self.folder / tenant / f"{self.replica}.jsonl"

    async def run(self) -> None:
        """
        Save every ``every_s`` seconds, until cancelled; a save that fails is logged,
        and the next one tries again (a failure never stops the serving).
        """
        while True:
            await anyio.sleep(self.every_s)
            try:
                await self.save_logged()
            finally:
                self._saved.set()
                self._saved = anyio.Event()

    async def save_logged(self) -> None:
        """
        :meth:`save`, a failure logged rather than raised (the last save, as the server
        stops, too).
        """
        try:
            await self.save()
        except Exception:
            logger.exception("saving the experiment outcomes to %s failed", self.folder)

    async def next_save(self) -> None:
        """
        Wait until the next save of :meth:`run` ends (for tests and tools).
        """
        await self._saved.wait()

    async def save(self) -> int:
        """
        Save the outcomes of every tenant whose configuration runs an experiment and
        that served one of its sessions; the number of outcomes saved.

        Raises:
            OSError: A file cannot be written (the others are written still).
        """
        saved = 0
        failed: OSError | None = None
        for tenant, gate in self.gates.items():
            if not gate.engine.config.experiments.enabled:
                continue
            text = "".join([chunk async for chunk in outcome_chunks(gate.engine)])
            if not text:
                continue
            try:
                await anyio.to_thread.run_sync(_write, self.path_of(tenant), text)
            except OSError as exc:
                failed = exc
                continue
            saved += text.count("\n")
        if failed is not None:
            raise failed
        return saved


def _write(path: Path, text: str) -> None:
    """
    Write ``text`` to ``path`` through a temporary file beside it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
