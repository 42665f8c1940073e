"""
Sources with simulated latency for replays: documents (:class:`SimulatedSource`) and
tool calls (:class:`SimulatedCallSource`), each drawing its latencies from the
replay's distributions with its own seeded generator. A tool call's latency is drawn
for the call itself (its name and arguments, under the replay's seed), so that what a
strategy speculates does not change the latencies of the calls the agent makes.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import anyio

from ..calls import call_key

if TYPE_CHECKING:
    from .._config import LatencyConfig
    from .._sessions import Session
    from .._sources import DictSource

__all__ = ["SimulatedCallSource", "SimulatedSource"]


def draw(dist: LatencyConfig, rng: random.Random) -> float:
    """
    One latency from ``dist``, in seconds.
    """
    if dist.distribution == "constant":
        return dist.median_ms / 1000
    return rng.lognormvariate(math.log(dist.median_ms / 1000), dist.sigma)


class SimulatedSource:
    """
    A source whose loads take a random time, drawn per item kind (the key's text
    before its first ``:``) or else from the default distribution.

    Args:
        inner: Where the texts come from.
        latency: Distributions by kind; ``default`` applies to the rest.
        rng: The random generator (seeded by the replay).

    .. versionadded:: 0.1
    """

    def __init__(
        self, inner: DictSource, latency: Mapping[str, LatencyConfig], rng: random.Random
    ) -> None:
        self.name = inner.name
        self.inner = inner
        self.latency = latency
        self.rng = rng
        self.calls = 0

    def __contains__(self, key: object) -> bool:
        return key in self.inner

    def category(self, key: str) -> str:
        """
        The inner source's category of ``key``.
        """
        return self.inner.category(key)

    def delay(self, key: str) -> float:
        """
        Draw one load latency for ``key`` in seconds.
        """
        kind = key.split(":", 1)[0]
        return draw(self.latency.get(kind) or self.latency["default"], self.rng)

    async def fetch(self, key: str) -> str:
        """
        The inner text, after the drawn latency.
        """
        self.calls += 1
        await anyio.sleep(self.delay(key))
        return await self.inner.fetch(key)


class SimulatedCallSource:
    """
    The backend of the sessions' tool calls: it knows each tool the sessions call, and
    whether it only reads (as most of its recorded calls say), and answers a call after
    a latency drawn from ``latency`` (the ``db`` distribution in a replay) with the
    result the sessions recorded for the call (name and arguments; the last one, if
    they recorded several), or for a call they recorded none for, ``"(answered)"``
    (naming none of the call's arguments, nor anything a forecast could take for a
    value, as if a real result had given it). The latency is the call's own: drawn from
    a generator seeded by ``rng``'s first draw and the call (name and arguments), so the same call takes
    the same time whoever makes it and however many calls other strategies ran.

    With ``capacity``, the backend serves at most that many calls at once, and the
    others wait their turn, first come first served: a call then takes its latency plus
    its wait, so that calls run ahead slow the agent's own, as a busy backend's do.

    Args:
        sessions: The sessions whose calls define the tools.
        latency: The distribution of a call's latency.
        rng: The random generator (seeded by the replay).
        capacity: Calls served at once (0: no bound).

    .. versionadded:: 0.3
    .. versionchanged:: 0.25
       ``capacity``.
    """

    def __init__(
        self,
        sessions: Iterable[Session],
        latency: LatencyConfig,
        rng: random.Random,
        *,
        capacity: int = 0,
    ) -> None:
        self.name = "backend"
        self.latency = latency
        self.salt = rng.getrandbits(64)
        self.calls = 0
        self.capacity = capacity
        self._slots: AbstractAsyncContextManager[object] = (
            anyio.Semaphore(capacity) if capacity else nullcontext()
        )
        votes: dict[str, list[int]] = {}
        self.results: dict[str, str] = {}  # by call key
        for session in sessions:
            for turn in session.turns:
                for call in turn.tool_calls:
                    vote = votes.setdefault(call.name, [0, 0])
                    vote[0] += 1
                    vote[1] += call.read_only
                    if call.result is not None:
                        self.results[call.key] = call.result
        self.tools = {name: 2 * ro > n for name, (n, ro) in votes.items()}

    def read_only(self, name: str) -> bool | None:
        """
        Whether the tool only reads; None for a tool no session calls.
        """
        return self.tools.get(name)

    def delay(self, name: str, shown: str) -> float:
        """
        The latency of the call of ``name`` with the arguments ``shown`` (their JSON
        with sorted keys), in seconds: the same for the same call.
        """
        return draw(self.latency, random.Random(f"{self.salt}:{name}:{shown}"))

    def latency_of(self, name: str, args: Mapping[str, Any]) -> float:
        """
        The latency of the call of ``name`` with ``args``, in seconds.
        """
        return self.delay(name, _shown(args))

    async def call(self, name: str, args: Mapping[str, Any]) -> str:
        """
        The recorded result of the call (or ``"(answered)"``), after the drawn latency.
        """
        self.calls += 1
        shown = _shown(args)
        async with self._slots:
            await anyio.sleep(self.delay(name, shown))
        recorded = self.results.get(call_key(name, args)) if self.results else None
        return recorded if recorded is not None else "(answered)"


def _shown(args: Mapping[str, Any]) -> str:
    return json.dumps(dict(args), sort_keys=True, ensure_ascii=False)
