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
import logging
import os
import re
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from ..experiments import write_outcomes

if TYPE_CHECKING:
    from ..engine import PreloadEngine
    from ..experiments import SessionOutcome
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
    async for chunk in _chunks(engine):
        yield "".join(outcome.to_line() for outcome in chunk)


async def _chunks(engine: PreloadEngine) -> AsyncIterator[list[SessionOutcome]]:
    """
    The engine's experiment outcomes, worked out ``CHUNK`` at a time, the loop taking
    a turn after each.
    """
    outcomes = engine.iter_experiment_outcomes()
    while chunk := list(itertools.islice(outcomes, CHUNK)):
        yield chunk
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
        self._closed: Counter[str] = Counter()  # tenant -> its engines closed here
        self._saving = anyio.Lock()  # one save at a time: a retired file is final

    def path_of(self, tenant: str) -> Path:
        """
        The file of ``tenant``'s outcomes from this replica's engine of the tenant: a
        file a replica and run, and one more each time the tenant's engine opens again
        (``server.max_open_tenants``), ``<replica>-2.jsonl`` and on.
        """
        again = self._closed[tenant]
        return self.folder / tenant / f"{self.replica}{f'-{again + 1}' if again else ''}.jsonl"

    async def retire(self, tenant: str, gate: SessionGate) -> None:
        """
        Save the outcomes of a tenant whose engine closes (a failure logged), so that
        the tenant's next engine saves to a file of its own.
        """
        async with self._saving:
            try:
                await self._save_tenant(tenant, gate)
            except OSError:
                logger.exception("saving tenant %s's experiment outcomes failed", tenant)
            finally:
                self._closed[tenant] += 1

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
        that served one of its sessions; the number of outcomes saved. They are worked
        out on the loop ``CHUNK`` at a time (they read the live sessions), and written
        by :func:`~preload.experiments.write_outcomes` in a worker thread.

        Raises:
            OSError: A file cannot be written (the others are written still).
        """
        saved = 0
        failed: OSError | None = None
        for tenant, gate in list(self.gates.items()):  # engines may open and close meanwhile
            async with self._saving:
                if self.gates.get(tenant) is not gate:
                    continue  # closed since: saved as it closed
                try:
                    saved += await self._save_tenant(tenant, gate)
                except OSError as exc:
                    failed = exc
        if failed is not None:
            raise failed
        return saved

    async def _save_tenant(self, tenant: str, gate: SessionGate) -> int:
        """
        Save one tenant's outcomes, if its engine runs an experiment and has any; the
        number saved.
        """
        if not gate.engine.config.experiments.enabled:
            return 0
        outcomes = [o async for chunk in _chunks(gate.engine) for o in chunk]
        if not outcomes:
            return 0
        path = self.path_of(tenant)
        await anyio.to_thread.run_sync(partial(path.parent.mkdir, parents=True, exist_ok=True))
        return await anyio.to_thread.run_sync(write_outcomes, path, outcomes)
