"""
How many calls run ahead every replica together may have running at once against one
call source of a tenant: ``[calls] fleet_max_in_flight_per_source``, counted in slots
of the cache that the replicas share (Redis).

``max_in_flight_per_source`` bounds a process: replicas that call one backend each run
that many ahead, and a deployment that scales out multiplies what its backend gets. A
fleet-wide bound holds however many replicas run. Each call run ahead takes a slot
before it is queued and gives it back when it returns (or, when it failed, was shed or
another replica's result came first, at the engine's next speculation, or when the
slot's time is up: a slot whose replica died frees itself).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import anyio

from ..caches import length_prefixed

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from ._limit import Runs

__all__ = ["FleetSlots", "SlotStore", "slot_name"]


def slot_name(tenant: str, source: str, backend: str | None = None) -> str:
    """
    The name of the slots of a tenant's call source (each part length-prefixed, as a
    cache key's, so that no tenant's name makes another's), or, given the ``backend``
    the sources of several tenants share, of that backend's (``backend:`` and its name,
    which no tenant's length-prefixed name begins with).
    """
    if backend is not None:
        return f"backend:{backend}"
    return length_prefixed(tenant, source)


class SlotStore(Protocol):
    """
    Where the slots are counted: a cache shared by the replicas
    (:meth:`~preload.caches.CacheBackend.take_slot`).
    """

    async def take_slot(
        self, name: str, token: str, *, most: int, ttl: float, returned: Sequence[str] = ()
    ) -> bool: ...

    async def return_slots(self, name: str, tokens: Sequence[str]) -> None: ...


class FleetSlots:
    """
    The slots of one engine's calls run ahead, per call source, among the ``most`` of
    the tenant's source that every replica sharing ``store`` counts together.

    Args:
        store: The shared cache; None: no fleet-wide bound (every call may run).
        tenant: The tenant whose sources' slots these are.
        backends: The backend each source names as shared with other tenants'
            (:func:`~preload.calls.backend_of`), by source name: its slots are that
            backend's, counted over every tenant's calls to it.
        most: The slots of a source (0: no fleet-wide bound).
        ttl: How long a slot is held at most (seconds): as long as a call run ahead
            may take, its retries included.

    .. versionadded:: 0.28
    """

    def __init__(
        self,
        store: SlotStore | None,
        tenant: str,
        most: int,
        *,
        ttl: float,
        backends: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store if most > 0 else None
        self.tenant = tenant
        self.backends = dict(backends or {})
        self.most = most
        self.ttl = ttl
        self._token = secrets.token_hex(8)  # this engine's
        self._tasks: TaskGroup | None = None  # where slots are given back
        self._returning = 0  # slots being given back now
        self._all_returned = anyio.Event()
        self._held: dict[str, set[str]] = {}  # source -> keys of the calls holding one

    @property
    def bounds(self) -> bool:
        """
        Whether calls run ahead take slots.
        """
        return self.store is not None

    def held(self, source: str) -> int:
        """
        The slots this engine holds of ``source``, as it counts them.
        """
        return len(self._held.get(source, ()))

    async def take(self, source: str, key: str, runs: Runs) -> bool:
        """
        Take a slot of ``source`` for the call ``key`` before it is queued (always
        granted without a bound), giving back first those of the calls ``runs`` no
        longer runs.
        """
        if self.store is None:
            return True
        held = self._held.setdefault(source, set())
        ended = [k for k in held if not runs.is_pending(k)]
        held.difference_update(ended)
        got = await self.store.take_slot(
            self._name(source),
            self._token_of(key),
            most=self.most,
            ttl=self.ttl,
            returned=[self._token_of(k) for k in ended],
        )
        if got:
            held.add(key)
        return got

    def start(self, tasks: TaskGroup | None) -> None:
        """
        Give back slots in ``tasks`` (the engine's call side, while it runs); None:
        no more (those a call frees are then given back with the next take, or at
        :meth:`give_back_all`).
        """
        self._tasks = tasks

    def give_back(self, source: str, key: str) -> None:
        """
        The call ``key`` of ``source`` returned (or was never queued): its slot, if
        it holds one, is given back in the background, so that neither the call's
        result nor anyone waiting for it waits for the store.
        """
        held = self._held.get(source)
        if self.store is None or self._tasks is None or held is None or key not in held:
            return
        held.discard(key)
        self._returning += 1
        self._tasks.start_soon(self._return, self._name(source), [self._token_of(key)])

    @property
    def returning(self) -> bool:
        """
        Whether slots are being given back now.
        """
        return self._returning > 0

    async def returned(self) -> None:
        """
        Wait until the slots being given back are.
        """
        while self._returning:
            if self._all_returned.is_set():
                self._all_returned = anyio.Event()
            await self._all_returned.wait()

    async def _return(self, name: str, tokens: list[str]) -> None:
        assert self.store is not None
        try:
            await self.store.return_slots(name, tokens)
        finally:
            self._returning -= 1
            if not self._returning:
                self._all_returned.set()

    async def give_back_all(self) -> None:
        """
        Give back every slot held (the engine closes).
        """
        if self.store is None:
            return
        for source, held in self._held.items():
            tokens = [self._token_of(k) for k in held]
            held.clear()
            await self.store.return_slots(self._name(source), tokens)

    def _name(self, source: str) -> str:
        return slot_name(self.tenant, source, self.backends.get(source))

    def _token_of(self, key: str) -> str:
        return f"{self._token}:{key}"
