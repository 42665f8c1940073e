"""
The parts a history is shown in: each exchange at its levels, and the ledger of the
facts stated so far.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._matching import KeyIndex, KeyParts, find

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

    from ._facts import Fact
    from ._matching import Occurrences

__all__ = ["INDEXED_FROM", "Exchange", "KeySet", "Ledger", "Levels"]

#: Facts from which a ledger indexes its keys (and a history the words of its
#: exchanges, and the fact model the products it keeps): below, comparing a new key
#: with every known one costs less than the indexes' memory (real sessions state up
#: to about 150 facts).
INDEXED_FROM = 256

#: Fact keys in the order they were added, each mapped to None: a set that the garbage
#: collector does not track (it never tracks a dict of strings; it tracks every set), so
#: that the many a history keeps cost nothing to its passes, which stop every thread.
KeySet = dict[str, None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Levels:
    """
    An exchange's texts at its levels, their tokens and their normalized forms, as
    :func:`._prepared.prepare` builds them from the texts alone.
    """

    full: str  # the whole exchange verbatim
    compact: str  # without filler words
    user: str  # the user's words verbatim, without the reply
    full_tokens: int
    compact_tokens: int
    user_tokens: int
    norm_full: str  # " w1 w2 ... " of full: its words normalized, padded with spaces
    norm_compact: str
    #: Their indexes, for long texts only (:func:`._matching.indexed`): a short one is
    #: searched directly, and keeps no object the garbage collector walks.
    full_index: Occurrences | None
    compact_index: Occurrences | None
    full_words: int  # words of the normalized full level
    compact_words: int  # and of the compact one
    user_chars: int  # characters of the normalized user level (a prefix of norm_full)
    user_words: int  # and its words
    asks: bool  # the reply asks something: a next turn may answer it
    topic: str  # what a bare yes or no to this exchange is about ("" if nothing)

    def holds(self, key: str) -> tuple[bool, bool, bool]:
        """
        Whether ``key`` occurs in the full, the compact and the user level.
        """
        at = self.find_full(key)
        return (
            at >= 0,
            self.find_compact(key) >= 0,
            0 <= at and at + len(key) + 2 <= self.user_chars,
        )

    def find_full(self, key: str) -> int:
        """
        Where ``f" {key} "`` first starts in :attr:`norm_full`, or -1.
        """
        return find(self.norm_full, self.full_index, key)

    def find_compact(self, key: str) -> int:
        """
        Where ``f" {key} "`` first starts in :attr:`norm_compact`, or -1.
        """
        return find(self.norm_compact, self.compact_index, key)

    def distinct_words(self) -> Iterable[str]:
        """
        The distinct words of :attr:`norm_full`.
        """
        index = self.full_index
        return dict.fromkeys(self.norm_full.split()) if index is None else index.words


@dataclass(slots=True)
class Exchange:
    """
    One exchange at its levels: 0 left out, 1 condensed (``compact``), 2 the user's
    words verbatim (``user``), 3 the whole exchange verbatim (``full``); with the keys
    of the facts each level holds.
    """

    index: int
    levels: Levels
    keys_full: KeySet = field(default_factory=dict)  # fact keys each level holds
    keys_compact: KeySet = field(default_factory=dict)
    keys_user: KeySet = field(default_factory=dict)

    @property
    def full(self) -> str:
        """
        The whole exchange verbatim.
        """
        return self.levels.full

    @property
    def full_tokens(self) -> int:
        """
        Tokens of the whole exchange verbatim.
        """
        return self.levels.full_tokens

    def keys(self, level: int) -> KeySet:
        """
        The keys of the facts ``level`` holds.
        """
        return (self.keys_compact, self.keys_user, self.keys_full)[level - 1]

    def cost(self, level: int) -> int:
        """
        Tokens of ``level`` with its line break.
        """
        lv = self.levels
        return (0, lv.compact_tokens, lv.user_tokens, lv.full_tokens)[level] + (level > 0)

    def text(self, level: int) -> str:
        """
        The text of ``level``.
        """
        lv = self.levels
        return ("", lv.compact, lv.user, lv.full)[level]


@dataclass(slots=True)
class Ledger:
    """
    The facts stated so far, by key (their normalized text), and what finds them fast.

    ``facts`` keeps the order facts were last stated in (so their turns never go
    down); ``tokens`` and ``covers`` the order keys were first stated in.
    """

    facts: dict[str, Fact] = field(default_factory=dict)  # by normalized text
    tokens: dict[str, int] = field(default_factory=dict)  # tokens of each fact
    covers: dict[str, KeySet] = field(default_factory=dict)  # keys inside each key
    inside: dict[str, int] = field(default_factory=dict)  # keys each key is inside
    order: dict[str, int] = field(default_factory=dict)  # its place in ``facts``
    #: From INDEXED_FROM facts on: the keys by their words, and when each key was
    #: first stated (the order of ``covers``).
    index: KeyIndex | None = None
    rank: dict[str, int] = field(default_factory=dict)
    #: The standing facts of each kind a correction may supersede, by turn, in the
    #: order they were stated (stale entries are skipped when met).
    recent: dict[int, dict[str, deque[tuple[int, str]]]] = field(default_factory=dict)
    _serial: int = 0

    def enter(self, key: str, fact: Fact, *, correctable: bool) -> None:
        """
        Put ``fact`` last in ``facts`` (stated again, it moves to the end).
        """
        self.facts.pop(key, None)
        self.facts[key] = fact
        self._serial += 1
        self.order[key] = self._serial
        if correctable:
            by_kind = self.recent.setdefault(fact.turn, {})
            by_kind.setdefault(fact.kind, deque()).append((self._serial, key))

    def add_key(self, key: str, tokens: int, parts: KeyParts | None = None) -> list[str]:
        """
        Index the new ``key``: its tokens, the keys inside it (``covers``, itself first,
        the others in the order they were first stated) and the keys it is inside.
        Returns the keys that hold it. ``parts`` are the key's, if built already.
        """
        covers, index = self.covers, self.index
        if index is None and len(covers) >= INDEXED_FROM:
            index = self.index = KeyIndex()
            for known in covers:
                self.rank[known] = len(self.rank)
                index.add(known)
        self.tokens[key] = tokens
        padded = f" {key} "
        if index is not None:
            self.rank[key] = len(self.rank)
            parts = parts if parts is not None else KeyParts.of(key)
            holding = index.holding(key, parts)
            inside = sorted(index.inside(key, parts), key=self.rank.__getitem__)
            index.add(key, parts)
        else:  # compared with every known key, in the order of ``covers``
            holding, inside = [], []
            for other in covers:
                if padded in f" {other} ":
                    holding.append(other)
                elif f" {other} " in padded:
                    inside.append(other)
        for other in holding:
            covers[other][key] = None
        self.inside[key] = len(holding)
        held = {key: None}
        for other in inside:
            held[other] = None
            self.inside[other] += 1
        covers[key] = held
        return holding

    def latest(self, kind: str, turns: range) -> str | None:
        """
        The key of the latest standing fact of ``kind`` stated in ``turns`` (the latest
        turn first, in each turn the first stated), or None.
        """
        facts, order = self.facts, self.order
        for turn in turns:
            queue = self.recent.get(turn, {}).get(kind)
            while queue:
                serial, key = queue[0]
                if order.get(key) == serial and facts[key].superseded_by is None:
                    return key
                queue.popleft()
        return None

    def keep(self, keys: Collection[str]) -> None:
        """
        Forget every fact but ``keys``, in place: what each kept fact holds and how many
        hold it then count the kept facts alone, and the index holds the kept keys.
        """
        self.facts = {k: f for k, f in self.facts.items() if k in keys}
        self.tokens = {k: t for k, t in self.tokens.items() if k in keys}
        self.order = {k: s for k, s in self.order.items() if k in keys}
        covers: dict[str, KeySet] = {}
        for key, held in self.covers.items():
            if key in keys:
                covers[key] = {k: None for k in held if k in keys}
        inside = dict.fromkeys(covers, 0)
        for key, held in covers.items():
            for other in held:
                if other != key:
                    inside[other] += 1
        self.covers, self.inside = covers, inside
        self.index, self.rank = None, {}
        if len(covers) >= INDEXED_FROM:
            index = self.index = KeyIndex()
            for key in covers:
                self.rank[key] = len(self.rank)
                index.add(key)

    def forget_before(self, turn: int) -> None:
        """
        Drop the correction candidates of turns before ``turn``.
        """
        for old in [t for t in self.recent if t < turn]:
            del self.recent[old]
