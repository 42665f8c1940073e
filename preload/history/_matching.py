"""
Finding fact keys in texts and in each other without scanning: the work of recording
an exchange grows with its text, not with its text times its facts.

A fact's key and an exchange's normalized text are lower-cased words separated by single
spaces (:func:`._words.norm`), so "``key`` is in ``text``" means that its words run
contiguously in the text's words (``f" {key} " in f" {text} "``), which an index of the
text's word pairs answers by looking only where the key's rarest pair starts.

- :class:`Occurrences`: where a key first occurs in one long normalized text (an
  exchange's levels), from an index of its word pairs; :func:`indexed` builds one only
  for a long text, a short one is searched directly.
- :class:`KeyIndex`: the keys of a ledger, to find the keys inside a new key (walking
  the word prefixes of the known keys) and the keys a new key is inside (the keys that
  share its rarest word pair).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

__all__ = [
    "PREFIX_WORDS",
    "SCAN_CHARS",
    "KeyIndex",
    "KeyParts",
    "Occurrences",
    "find",
    "indexed",
]

#: Texts shorter than this (characters) are searched directly instead of indexed.
SCAN_CHARS = 2048

#: The longest word prefixes of keys a :class:`KeyIndex` walks; longer keys (rare: a
#: long name or run of content words) are compared one by one.
PREFIX_WORDS = 32


def _pairs(words: list[str]) -> list[str]:
    return [f"{a} {b}" for a, b in pairwise(words)]


class Occurrences:
    """
    Where keys occur in one normalized text ``" w1 w2 ... wn "`` (padded with spaces):
    :meth:`find` is ``text.find(f" {key} ")``, from an index of the text built once (the
    first position of each word, every position of each word pair), at the cost of the
    occurrences of the key's rarest word pair. Worth it for texts of :data:`SCAN_CHARS`
    or more (:func:`indexed`).

    Built from the text alone; never changed afterwards, so it may be built in a worker
    thread and shared.
    """

    __slots__ = ("_firsts", "_pairs", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        firsts: dict[str, int] = {}
        pairs: dict[str, list[int]] = {}
        at, prev, prev_at = 0, "", -1
        for word in text.split():
            if word not in firsts:
                firsts[word] = at
            if prev_at >= 0:
                pair = f"{prev} {word}"
                found = pairs.get(pair)
                if found is None:
                    pairs[pair] = [prev_at]
                else:
                    found.append(prev_at)
            prev, prev_at = word, at
            at += len(word) + 1
        self._firsts, self._pairs = firsts, pairs

    @property
    def words(self) -> Iterable[str]:
        """
        The distinct words of the text.
        """
        return self._firsts.keys()

    def find(self, key: str) -> int:
        """
        Where ``f" {key} "`` first starts in the text, or -1.
        """
        words = key.split(" ")
        if len(words) == 1:
            return self._firsts.get(key, -1)
        pairs = self._pairs
        best: list[int] | None = None
        best_at = 0  # where the best pair starts in the padded key
        at = 0
        for pair in _pairs(words):
            found = pairs.get(pair)
            if found is None:
                return -1
            if best is None or len(found) < len(best):
                best, best_at = found, at
            at += pair.index(" ") + 1
        assert best is not None
        padded, text = f" {key} ", self.text
        for start in best:  # ascending: the first match is the first occurrence
            begin = start - best_at
            if begin >= 0 and text.startswith(padded, begin):
                return begin
        return -1


def find(text: str, index: Occurrences | None, key: str) -> int:
    """
    Where ``f" {key} "`` first starts in the normalized ``text``, or -1: from its
    ``index`` when it has one (:func:`indexed`), else by a plain search.
    """
    return text.find(f" {key} ") if index is None else index.find(key)


def indexed(text: str) -> Occurrences | None:
    """
    The :class:`Occurrences` of the normalized ``text`` if it is of :data:`SCAN_CHARS`
    or more, else None: a short text is searched directly (and an exchange's levels
    keep no object the garbage collector walks for it).
    """
    return Occurrences(text) if len(text) >= SCAN_CHARS else None


@dataclass(frozen=True, slots=True)
class KeyParts:
    """
    What a :class:`KeyIndex` reads of a key: its words, its word prefixes (up to
    :data:`PREFIX_WORDS`), its distinct words and word pairs. Built from the key alone
    (by :func:`._prepared.prepare`, in the worker thread).
    """

    words: list[str]
    prefixes: list[str]
    distinct: list[str]
    pairs: list[str]

    @classmethod
    def of(cls, key: str) -> KeyParts:
        """
        The parts of ``key``.
        """
        words = key.split(" ")
        prefixes: list[str] = []
        prefix = ""
        for word in words[:PREFIX_WORDS]:
            prefix = f"{prefix} {word}" if prefix else word
            prefixes.append(prefix)
        return cls(words, prefixes, list(dict.fromkeys(words)), list(dict.fromkeys(_pairs(words))))


class KeyIndex:
    """
    The keys of a ledger by their words: which known keys a new key holds, and which
    hold it, at a cost that grows with the key and the keys found, not with the ledger.
    """

    __slots__ = ("_by_pair", "_by_word", "_long", "_prefixes", "keys")

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self._prefixes: set[str] = set()  # word prefixes (up to PREFIX_WORDS) of every key
        self._long: list[str] = []  # keys of more than PREFIX_WORDS words
        self._by_word: dict[str, list[str]] = {}  # word -> keys holding it
        self._by_pair: dict[str, list[str]] = {}  # word pair -> keys holding it

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: str, parts: KeyParts | None = None) -> None:
        """
        Index the new ``key`` (whose ``parts`` may be given).
        """
        parts = parts if parts is not None else KeyParts.of(key)
        self.keys.add(key)
        self._prefixes.update(parts.prefixes)
        if len(parts.words) > PREFIX_WORDS:
            self._long.append(key)
        by_word, by_pair = self._by_word, self._by_pair
        for word in parts.distinct:
            found = by_word.get(word)
            if found is None:
                by_word[word] = [key]
            else:
                found.append(key)
        for pair in parts.pairs:
            found = by_pair.get(pair)
            if found is None:
                by_pair[pair] = [key]
            else:
                found.append(key)

    def inside(self, key: str, parts: KeyParts | None = None) -> set[str]:
        """
        The known keys ``key`` holds, other than itself.
        """
        words = parts.words if parts is not None else key.split(" ")
        return self.runs(words, exclude=key)

    def runs(self, words: list[str], *, exclude: str = "", upto: int = -1) -> set[str]:
        """
        The known keys that run contiguously in ``words`` (other than ``exclude``);
        with ``upto`` >= 0, only those ending within the first ``upto`` words.
        """
        prefixes, keys = self._prefixes, self.keys
        limit = len(words) if upto < 0 else min(upto, len(words))
        found: set[str] = set()
        for i in range(limit):
            run = words[i]
            j = i
            while run in prefixes:
                if run in keys and run != exclude:
                    found.add(run)
                j += 1
                if j >= limit or j - i >= PREFIX_WORDS:
                    break
                run = f"{run} {words[j]}"
        if self._long:
            padded = f" {' '.join(words[:limit])} "
            found.update(k for k in self._long if k != exclude and f" {k} " in padded)
        return found

    def holding(self, key: str, parts: KeyParts | None = None) -> list[str]:
        """
        The known keys that hold ``key`` (other than itself).
        """
        parts = parts if parts is not None else KeyParts.of(key)
        if len(parts.words) == 1:
            return [k for k in self._by_word.get(key, ()) if k != key]
        best: list[str] | None = None
        for pair in parts.pairs:
            found = self._by_pair.get(pair)
            if found is None:
                return []
            if best is None or len(found) < len(best):
                best = found
        assert best is not None
        padded = f" {key} "
        return [k for k in best if k != key and padded in f" {k} "]
