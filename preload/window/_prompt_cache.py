"""
The model provider's prompt cache, as the swap controller prices a window.

Providers charge a fraction of the input price for the beginning of a prompt that is
identical to one they saw within a few minutes, from any request of the same
organisation, and a premium for writing it; one changed token invalidates everything
after it. :class:`PromptCache` holds one tenant's cached prefixes (every session of
the tenant reads and writes it) as a tree of segments (the system prompt, each item,
the history, the request), each node stamped with its last use: the segments a prompt
shares, from the first on, with a prefix used within ``cache_ttl_s`` are read from
the cache when they reach ``min_prefix_tokens``; the prompt up to its breakpoint is
written. :class:`SessionPrefix` remembers what one session's last prompt left in the
cache, for the swap cost. Work is linear in a prompt's segments; expired prefixes are
swept when the tree has doubled since the last sweep, and past :data:`MAX_NODES` live
nodes the tree starts over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._config import PricingConfig

__all__ = ["MAX_NODES", "Charge", "PromptCache", "Segment", "SessionPrefix"]

#: A segment of a prompt: what identifies its text, and its tokens.
Segment = tuple[object, int]

#: The most cached segments one tenant's tree keeps (a prompt of 20 segments each
#: minute for five minutes, from 2,000 sessions at once).
MAX_NODES = 200_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Charge:
    """
    What one prompt costs: tokens read from the cache, written to it, and sent
    uncached, and their price (currency per prompt).

    .. versionadded:: 0.5
    """

    reused: int = 0
    written: int = 0
    uncached: int = 0
    cost: float = 0.0


@dataclass(slots=True)
class SessionPrefix:
    """
    What one session's last prompt left in the provider's cache: its segments up to
    the breakpoint, and when.
    """

    ids: tuple[object, ...] = ()
    ends: tuple[int, ...] = ()  # cumulative tokens at the end of each cached segment
    at: float = float("-inf")

    def cached_after(self, index: int, now: float, pricing: PricingConfig) -> int:
        """
        The cached tokens after segment ``index`` of the prefix (0 when it has
        expired): what a change there invalidates.
        """
        if index >= len(self.ids) or now - self.at > pricing.cache_ttl_s or not self.ends:
            return 0
        before = self.ends[index - 1] if index else 0
        return self.ends[-1] - before


@dataclass(slots=True)
class _Node:
    at: float
    children: dict[object, _Node] = field(default_factory=dict)


class PromptCache:
    """
    One tenant's prompt prefixes in the provider's cache, shared by its sessions.

    .. versionadded:: 0.5
    .. versionchanged:: 0.6
       Shared by a tenant's sessions (a tree of prefixes), not one session's last.
    """

    def __init__(self, *, max_nodes: int = MAX_NODES) -> None:
        self._root = _Node(at=float("inf"))
        self._nodes = 0
        self._sweep_at = 1024
        self._max_nodes = max_nodes

    def __len__(self) -> int:
        """
        The segments held (expired ones too, until the next sweep).
        """
        return self._nodes

    def charge(
        self,
        segments: Sequence[Segment],
        *,
        volatile: int,
        now: float,
        pricing: PricingConfig,
        session: SessionPrefix | None = None,
    ) -> Charge:
        """
        Price a prompt of ``segments`` and write it to the cache up to its breakpoint:
        every segment but the last ``volatile`` ones, when they reach
        ``min_prefix_tokens``. A prefix read keeps its segments alive; ``session``
        (when given) records what this prompt left cached.
        """
        ttl = pricing.cache_ttl_s
        path: list[_Node] = []
        node, reused = self._root, 0
        for ident, tokens in segments:
            child = node.children.get(ident)
            if child is None or now - child.at > ttl:
                break
            path.append(child)
            reused += tokens
            node = child
        if reused < pricing.min_prefix_tokens:
            reused, path = 0, []
        stable = segments[: max(0, len(segments) - volatile)]
        total = sum(tokens for _, tokens in stable)
        written = 0
        if total >= pricing.min_prefix_tokens:
            written = max(0, total - reused)
            self._write(stable, now, ttl)
            if session is not None:
                ends, run = [], 0
                for _, tokens in stable:
                    run += tokens
                    ends.append(run)
                session.ids = tuple(ident for ident, _ in stable)
                session.ends = tuple(ends)
                session.at = now
        else:
            for read in path:  # a read keeps the prefix alive
                read.at = now
        every = sum(tokens for _, tokens in segments)
        uncached = every - reused - written
        cost = (
            reused * pricing.cached_input + written * pricing.cache_write + uncached * pricing.input
        ) / 1_000_000
        return Charge(reused=reused, written=written, uncached=uncached, cost=cost)

    def _write(self, stable: Sequence[Segment], now: float, ttl: float) -> None:
        node = self._root
        for ident, _ in stable:
            child = node.children.get(ident)
            if child is None:
                child = node.children[ident] = _Node(at=now)
                self._nodes += 1
            child.at = now
            node = child
        if self._nodes > self._sweep_at:
            self._sweep(now, ttl)

    def _sweep(self, now: float, ttl: float) -> None:
        """
        Drop the expired prefixes (a node is never used later than its parent, so an
        expired node's subtree has expired too); past ``max_nodes`` start over.
        """
        self._nodes = _prune(self._root, now, ttl)
        if self._nodes > self._max_nodes:
            self._root = _Node(at=float("inf"))
            self._nodes = 0
        self._sweep_at = max(1024, 2 * self._nodes)


def _prune(node: _Node, now: float, horizon: float) -> int:
    """
    Remove the children of ``node`` used before ``now - horizon``; the nodes left
    under it.
    """
    kept = 0
    stack = [node]
    while stack:
        parent = stack.pop()
        for ident, child in list(parent.children.items()):
            if now - child.at > horizon:
                del parent.children[ident]
            else:
                kept += 1
                stack.append(child)
    return kept
