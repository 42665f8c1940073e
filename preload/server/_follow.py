"""
Following the other replicas: the writes they make to the sessions this replica holds
join its copies as they happen, so that a session's next request here does not first
record, on the request path, the exchanges another replica served.

The store announces every accepted write (:meth:`SessionStore.changes`: Redis pub/sub);
:class:`Follower` hands each to its tenant's :class:`SessionGate`, which takes it only
when it is the next write after the copy it holds. Following is an optimization: a
change missed (Redis restarting, a replica starting) costs only what it cost without
following, the catch-up at the session's next request here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import anyio

from ._store import StoreUnavailable

if TYPE_CHECKING:
    from ._gate import SessionGate
    from ._store import Changed, SessionStore

__all__ = ["Follower"]

logger = logging.getLogger(__name__)


class Follower:
    """
    Listens to the store's changes and hands each to its tenant's gate, until
    cancelled; while the store cannot be reached, it tries again, at most every
    ``retry_max_s``.

    Args:
        store: The session store the replicas share.
        gates: Each tenant's gate.
        retry_max_s: The longest wait between two tries to listen again.
    """

    def __init__(
        self,
        store: SessionStore,
        gates: Mapping[str, SessionGate],
        *,
        retry_max_s: float = 2.0,
    ) -> None:
        self.store = store
        self.gates = gates
        self.retry_max_s = retry_max_s
        #: Changes received (this replica's own writes included), and those taken.
        self.received = 0
        self.followed = 0
        #: Whether it listens now, and how many times it began to.
        self.listening = False
        self.subscriptions = 0
        self._progress = anyio.Event()

    async def run(self) -> None:
        """
        Follow the store's changes until cancelled.
        """
        pause = 0.05
        down = False
        while True:
            try:
                async with self.store.changes() as changes:
                    self.listening = True
                    self.subscriptions += 1
                    self._moved()
                    if down:
                        logger.info("following the other replicas' writes again")
                    down, pause = False, 0.05
                    async for changed in changes:
                        self.received += 1
                        self._follow(changed)
                        self._moved()
            except StoreUnavailable as exc:
                if not down:  # once an outage
                    logger.warning("not following the other replicas' writes: %s", exc)
                down = True
            except Exception:  # it ends this listening, never the serving
                logger.exception("following the other replicas' writes failed")
            finally:
                self.listening = False
            self._moved()
            await anyio.sleep(pause)  # before trying again
            pause = min(pause * 2, self.retry_max_s)

    def _follow(self, changed: Changed) -> None:
        gate = self.gates.get(changed.tenant)
        try:
            if gate is not None and gate.follow(changed):
                self.followed += 1
        except Exception:  # the session's next change here syncs it from the store
            logger.exception("following a write to session %s failed", changed.session_id)

    async def wait_until(self, done: Callable[[], bool]) -> None:
        """
        Return once ``done()`` is true, testing it again whenever the follower began
        or stopped listening or handed on a change.
        """
        while not done():
            await self._progress.wait()

    def _moved(self) -> None:
        self._progress.set()
        self._progress = anyio.Event()
