"""
Cue words: the words seen around the values a text said, beside an argument's right
value or a wrong one (:class:`CueCounts`), and how much each says a mention is the
argument's value (:class:`CueWeights`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping

from ._aging import halve

__all__ = ["CueCounts", "CueWeights"]


class CueCounts(Mapping[str, list[float]]):
    """
    The cue words of one argument (or of the arguments whose names have a word): how
    often each was seen beside a right value and how often beside a wrong one, read as
    a mapping of word -> ``[right, wrong]`` (a new list at each read).

    The counts are held in two dicts, of the words seen beside right values and of
    those seen beside wrong ones, not in a ``[right, wrong]`` list a word: most words
    are seen beside only one kind (in a fit on SGD's train, 52 in a hundred beside
    right values alone, 21 beside wrong ones alone), and each list cost 72 bytes.
    Whole counts stay ints (CPython shares those up to 256), and each word is interned.
    """

    __slots__ = ("_words", "right", "wrong")

    def __init__(self) -> None:
        self.right: dict[str, float] = {}
        self.wrong: dict[str, float] = {}
        self._words = 0

    def add(self, word: str, right: float, wrong: float) -> None:
        """
        Count ``word`` beside right values ``right`` times and beside wrong ones
        ``wrong`` times (the numbers given, shared: ints, or a model file's floats).
        """
        if not right and not wrong:
            return
        had_right, had_wrong = self.right.get(word), self.wrong.get(word)
        if had_right is None and had_wrong is None:
            word = sys.intern(word)
            self._words += 1
        if right:
            self.right[word] = right if had_right is None else had_right + right
        if wrong:
            self.wrong[word] = wrong if had_wrong is None else had_wrong + wrong

    def prune(self, floor: float) -> None:
        """
        Drop the words counted fewer than ``floor`` times in all.
        """
        right, wrong = self.right, self.wrong
        low = [w for w in self if right.get(w, 0) + wrong.get(w, 0) < floor]
        for word in low:
            right.pop(word, None)
            wrong.pop(word, None)
        self._words -= len(low)

    def halve(self) -> None:
        """
        Halve every count, in place.
        """
        halve(self.right)
        halve(self.wrong)

    def __getitem__(self, word: str) -> list[float]:
        right, wrong = self.right.get(word), self.wrong.get(word)
        if right is None and wrong is None:
            raise KeyError(word)
        return [right or 0, wrong or 0]

    def __iter__(self) -> Iterator[str]:
        yield from self.right
        yield from (w for w in self.wrong if w not in self.right)

    def __len__(self) -> int:
        return self._words


class CueWeights:
    """
    How much each word around a mention says it is one argument's value: the log-odds
    of the word beside the argument's right values against its wrong ones. The
    argument's own counts, with a prior worth ``POOL`` of its own (once ``POOL_MIN``
    counts stand behind it) from the arguments whose names share a word with its name
    (``origin`` in ``origin_city`` and ``origin_airport``; "from" before a city is an
    origin's in every tool), so that a tool seen little, or new, is not left with only
    its own few texts. It reads the counts as they are (learning goes on).
    """

    POOL = 4.0
    POOL_MIN = 5.0

    __slots__ = ("own", "pooled")

    def __init__(self, own: CueCounts, pooled: list[CueCounts]) -> None:
        self.own = own
        self.pooled = pooled

    def add(self, word: str, right: float, wrong: float) -> None:
        """
        Count ``word`` beside the argument's right values ``right`` times and beside
        wrong ones ``wrong`` times, for the argument and for the words of its name.
        """
        self.own.add(word, right, wrong)
        for counts in self.pooled:
            counts.add(word, right, wrong)

    def get(self, word: str, default: float = 0.0) -> float:
        """
        Return the word's weight, ``default`` for a word never counted.
        """
        own_right, own_wrong = self.own.right.get(word), self.own.wrong.get(word)
        right, wrong = own_right or 0.0, own_wrong or 0.0
        pooled_right = pooled_wrong = 0.0
        for counts in self.pooled:
            pooled_right += counts.right.get(word, 0.0)
            pooled_wrong += counts.wrong.get(word, 0.0)
        pooled = pooled_right + pooled_wrong
        if pooled >= self.POOL_MIN:
            right += self.POOL * pooled_right / pooled
            wrong += self.POOL * pooled_wrong / pooled
        elif own_right is None and own_wrong is None:
            return default
        return math.log((right + 0.5) / (wrong + 0.5))

    def __bool__(self) -> bool:
        return bool(self.own) or any(self.pooled)
