"""
The tenant-wide layer of the window: items many of a tenant's sessions use, placed
right after the system prompt in a fixed order, so that every session of the tenant
sends the same prompt prefix and the provider's cache serves it.

:class:`TenantLayer` learns from what the tenant's windows held on their own merit
(needed this turn, or predicted and chosen): the share of the tenant's sessions whose
windows held each item. Every ``refresh`` new sessions it chooses again: the items
held by at least ``min_share`` of the sessions, most shared first, within
``max_tokens``; a member keeps ``hysteresis`` (relative) over a newcomer, members that
stay keep their place and newcomers go after them, so the layer changes rarely and a
change invalidates only what follows it. Counts halve every :data:`HALF_LIFE_SESSIONS`
sessions, so the layer follows drift. An item's text is the full level last seen; one
not seen again within its time to live is left out until it is.
Work is linear in a window's items; a refresh sorts the items known
(at most :data:`MAX_KEYS`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["HALF_LIFE_SESSIONS", "MAX_KEYS", "MAX_SESSIONS", "SharedItem", "TenantLayer"]

#: Items a layer keeps counts for; past it the least shared half is forgotten.
MAX_KEYS = 10_000

#: Live sessions a layer remembers (to count an item once a session).
MAX_SESSIONS = 10_000

#: Sessions after which the counts halve.
HALF_LIFE_SESSIONS = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedItem:
    """
    An item of the tenant-wide layer: its full text, and the share of the tenant's
    sessions whose windows held it.

    .. versionadded:: 0.6
    """

    key: str
    category: str
    text: str
    tokens: int
    share: float


@dataclass(slots=True)
class _Seen:
    category: str
    text: str
    tokens: int
    at: float
    sessions: float = 0.0


class TenantLayer:
    """
    Learns and holds one tenant's shared items.

    Args:
        max_tokens: The layer's size at most.
        min_share: The share of sessions an item must be held by.
        refresh: New sessions between two choices of the layer.
        hysteresis: What a member keeps over a newcomer (relative to its share).
        ttl_of: An item's time to live in seconds (None: forever).

    .. versionadded:: 0.6
    """

    def __init__(
        self,
        *,
        max_tokens: int,
        min_share: float,
        refresh: int,
        hysteresis: float,
        ttl_of: Callable[[str], float | None] | None = None,
    ) -> None:
        self.max_tokens = max_tokens
        self.min_share = min_share
        self.refresh = refresh
        self.hysteresis = hysteresis
        self.ttl_of = ttl_of
        self._seen: dict[str, _Seen] = {}
        self._sessions: OrderedDict[str, set[str]] = OrderedDict()
        self._count = 0.0  # sessions seen (decayed)
        self._new = 0  # sessions since the last choice
        self._total = 0  # sessions ever seen
        self._members: list[str] = []
        self.changes = 0

    @property
    def keys(self) -> list[str]:
        """
        The layer's items, in their order.
        """
        return list(self._members)

    def share(self, key: str) -> float:
        """
        The share of the tenant's sessions whose windows held ``key``.
        """
        seen = self._seen.get(key)
        return seen.sessions / self._count if seen is not None and self._count else 0.0

    def observe(self, session: str, held: list[tuple[str, str, str, int]], now: float) -> None:
        """
        A window of ``session`` held ``held`` on their own merit: (key, category,
        full text, full tokens) each.
        """
        mine = self._sessions.get(session)
        if mine is None:
            mine = self._sessions[session] = set()
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
            self._start_session()
        else:
            self._sessions.move_to_end(session)
        for key, category, text, tokens in held:
            seen = self._seen.get(key)
            if seen is None:
                seen = self._seen[key] = _Seen(category=category, text=text, tokens=tokens, at=now)
            elif seen.text != text:
                seen.category, seen.text, seen.tokens = category, text, tokens
            seen.at = now
            if key not in mine:
                mine.add(key)
                seen.sessions += 1
        if len(self._seen) > MAX_KEYS:
            self._forget_half()
        if self._new >= self.refresh:
            self._new = 0
            self._choose()

    def forget(self, session: str) -> None:
        """
        ``session`` ended: its window is no longer followed.
        """
        self._sessions.pop(session, None)

    def items(self, now: float) -> list[SharedItem]:
        """
        The layer's items in their order, those whose text is still within its time
        to live.
        """
        out = []
        for key in self._members:
            seen = self._seen[key]
            ttl = self.ttl_of(key) if self.ttl_of is not None else None
            if ttl is not None and now - seen.at > ttl:
                continue
            out.append(
                SharedItem(
                    key=key,
                    category=seen.category,
                    text=seen.text,
                    tokens=seen.tokens,
                    share=self.share(key),
                )
            )
        return out

    def _start_session(self) -> None:
        self._count += 1
        self._new += 1
        self._total += 1
        if self._total % HALF_LIFE_SESSIONS == 0:
            self._count /= 2
            for seen in self._seen.values():
                seen.sessions /= 2

    def _choose(self) -> None:
        """
        The items held by at least ``min_share`` of the sessions, most shared first
        (a member with its hysteresis), within ``max_tokens``; members keep their
        place, newcomers follow.
        """
        members = set(self._members)

        def weight(key: str) -> float:
            bonus = 1.0 + self.hysteresis if key in members else 1.0
            return self.share(key) * bonus

        ranked = sorted(self._seen, key=lambda k: (-weight(k), k))
        chosen: set[str] = set()
        tokens = 0
        for key in ranked:
            if weight(key) < self.min_share:
                break
            size = self._seen[key].tokens
            if tokens + size > self.max_tokens:
                continue
            chosen.add(key)
            tokens += size
        order = [k for k in self._members if k in chosen]
        order += [k for k in ranked if k in chosen and k not in members]
        if order != self._members:
            self.changes += 1
        self._members = order

    def _forget_half(self) -> None:
        keep = set(self._members)
        ranked = sorted(self._seen, key=lambda k: (-self._seen[k].sessions, k))
        for key in ranked[MAX_KEYS // 2 :]:
            if key not in keep:
                del self._seen[key]
