"""
The tenants' engines of a replica: each tenant's open from start to stop, or, with
``server.max_open_tenants``, each opened at its tenant's first request and closed, the
least recently used first, when another must open.

An engine opens and closes in a task of its own (its *keeper*), since the task groups
it holds must be left by the task that entered them. A request holds its tenant's
engine open (:meth:`OpenTenants.using`); only an engine no request holds is closed.
Closing one loses what it learned online and what it preloaded for the sessions it
holds, as a restart does; the sessions themselves live in the store, and their next
request, here or on another replica, finds them as they were left.

The tenants may change while serving (the keys file changed,
:meth:`OpenTenants.set_tenants`): the engine of a tenant gone closes once no request
holds it, and a new tenant's opens at once when every tenant's engine is kept open.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup, TaskStatus

if TYPE_CHECKING:
    from ._gate import SessionGate

__all__ = ["OpenTenants"]

logger = logging.getLogger(__name__)


class OpenTenants:
    """
    The tenants' gates (each over its engine) that are open in this replica.

    Args:
        tenants: Every tenant of the keys.
        open_gate: Opens a tenant's engine and gate; leaving it closes them.
        max_open: At most this many open at once (0: no bound, and :meth:`open_all`
            opens them at start): before another opens, the least recently used ones
            that no request holds close until it fits. When too few can, it opens
            still, and the count comes back down at the next opening (never as a
            request ends: an engine is not closed and opened again request by request).
        before_close: Awaited with a tenant and its gate before its engine closes (the
            outcomes writer saves them); a failure is logged, and the engine closes.
    """

    def __init__(
        self,
        tenants: Sequence[str],
        open_gate: Callable[[str], AbstractAsyncContextManager[SessionGate]],
        *,
        max_open: int = 0,
        before_close: Callable[[str, SessionGate], Awaitable[None]] | None = None,
    ) -> None:
        self.tenants = tuple(tenants)
        self._known = frozenset(self.tenants)
        self.max_open = max_open
        self.before_close = before_close
        self._open_gate = open_gate
        #: The open gates, the least recently used first.
        self.gates: OrderedDict[str, SessionGate] = OrderedDict()
        #: Engines opened and closed since start.
        self.opened = 0
        self.closed = 0
        self._in_use: Counter[str] = Counter()
        self._opening: dict[str, anyio.Event] = {}  # set once the opening ended
        self._closing: dict[str, anyio.Event] = {}  # set once the engine closed
        self._release: dict[str, anyio.Event] = {}  # set to close an open engine
        self._keepers: TaskGroup | None = None

    def start(self, keepers: TaskGroup) -> None:
        """
        Open engines in ``keepers`` from now on (a task group that outlives them).
        """
        self._keepers = keepers

    async def open_all(self) -> None:
        """
        Open every tenant's engine, one after the other.
        """
        for tenant in self.tenants:
            await self._gate(tenant)

    @asynccontextmanager
    async def using(self, tenant: str) -> AsyncIterator[SessionGate]:
        """
        The tenant's gate, its engine opened first if it is not (room made by closing
        the least recently used engines no request holds), and held open until the
        block ends.
        """
        self._in_use[tenant] += 1  # first: no other opening closes it once it is open
        try:
            gate = await self._gate(tenant)
            self.gates.move_to_end(tenant)
            yield gate
        finally:
            self._in_use[tenant] -= 1
            if not self._in_use[tenant]:
                del self._in_use[tenant]
                self._close_if_gone(tenant)

    def set_tenants(self, tenants: Sequence[str]) -> None:
        """
        The tenants from now on (the keys changed): the engine of a tenant no longer
        among them closes now, or as the last request that holds it ends; without
        ``max_open``, a new tenant's engine opens now, in the background (a failure is
        logged, and its first request tries again).
        """
        before = self._known
        self.tenants = tuple(tenants)
        self._known = frozenset(self.tenants)
        for tenant in sorted(before - self._known):
            self._close_if_gone(tenant)
        if not self.max_open and self._keepers is not None:
            for tenant in sorted(self._known - before):
                self._keepers.start_soon(self._open_new, tenant)

    async def wait_closed(self, tenant: str) -> None:
        """
        Wait until the tenant's engine, if it is closing, has closed.
        """
        closing = self._closing.get(tenant)
        if closing is not None:
            await closing.wait()

    async def _open_new(self, tenant: str) -> None:
        try:
            await self._gate(tenant)
        except Exception:
            logger.exception("opening new tenant %s's engine failed", tenant)
        else:
            self._close_if_gone(tenant)  # gone again while it opened

    def _close_if_gone(self, tenant: str) -> None:
        """
        Close the tenant's engine if the tenant is gone and no request holds it.
        """
        if tenant not in self._known and tenant in self.gates and not self._in_use[tenant]:
            self._close(tenant)

    async def aclose(self) -> None:
        """
        Close every open engine (``before_close`` first) and wait until they are.
        """
        for tenant in list(self.gates):
            self._close(tenant)
        for event in list(self._closing.values()):
            await event.wait()

    async def _gate(self, tenant: str) -> SessionGate:
        while True:
            found = self.gates.get(tenant)
            if found is not None:
                return found
            busy = self._opening.get(tenant) or self._closing.get(tenant)
            if busy is None:
                break
            await busy.wait()  # then look again: it opened, or failed, or closed
        if self._keepers is None:
            raise RuntimeError("the tenants' engines are not started")
        done = self._opening[tenant] = anyio.Event()
        try:
            if self.max_open and len(self.gates) >= self.max_open:
                for closing in self._close_unused(len(self.gates) - self.max_open + 1):
                    await closing.wait()  # its memory back before another copy loads
            gate: SessionGate = await self._keepers.start(self._keep, tenant)
            return gate
        finally:
            del self._opening[tenant]
            done.set()

    def _close_unused(self, n: int) -> list[anyio.Event]:
        """
        Close up to ``n`` engines no request holds, the least recently used first; the
        events set once each closed.
        """
        unused = [t for t in self.gates if not self._in_use[t]][:n]
        return [self._close(tenant) for tenant in unused]

    def _close(self, tenant: str) -> anyio.Event:
        """
        Take the tenant's gate out of use (at once: no request finds it from now on)
        and have its keeper close it.
        """
        del self.gates[tenant]
        closed = self._closing[tenant] = anyio.Event()
        self._release.pop(tenant).set()
        return closed

    async def _keep(self, tenant: str, *, task_status: TaskStatus[SessionGate]) -> None:
        """
        Open the tenant's engine, hand its gate over, and close it when released.
        """
        release = anyio.Event()
        async with self._open_gate(tenant) as gate:
            self._release[tenant] = release
            self.gates[tenant] = gate
            self.opened += 1
            logger.info("opened tenant %s's engine (%d open)", tenant, len(self.gates))
            task_status.started(gate)
            try:
                await release.wait()
                if self.before_close is not None:
                    try:
                        await self.before_close(tenant, gate)
                    except Exception:
                        logger.exception("before closing tenant %s's engine", tenant)
            finally:
                self.gates.pop(tenant, None)
                self._release.pop(tenant, None)
        self.closed += 1
        logger.info("closed tenant %s's engine (%d open)", tenant, len(self.gates))
        self._closing.pop(tenant).set()
