"""
Which names a turn calls, read from its words: a naive Bayes model over the words of the
request, the last words of the reply it answers and the names the turn before called. The
call forecast asks it when a request comes without a state (most real logs and clients
have none); the counts by state answer otherwise.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ._aging import drop_below, halve
from ._persistence import number

__all__ = ["TEMPERATURES", "NameTemperature", "NameWords", "name_tokens"]

#: Pseudo-count of every (word, name) pair: Laplace smoothing.
_ALPHA = 0.5
#: The temperatures naive Bayes's posterior may be softened by (:class:`NameTemperature`).
TEMPERATURES = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
#: Held-out turns after which the temperature is taken as settled (and no more counted).
_SETTLED_TURNS = 5_000.0


def name_tokens(
    request: Iterable[str], asked: Iterable[str], before: Iterable[str], earlier: Iterable[str]
) -> set[str]:
    """
    The features of a turn: its request's words, the last words of the reply it
    answers (``asked``, as :func:`~graph._calls_text.asked_words` marks them), the names
    the turn before called (``@`` before) and those any earlier turn called (``@@``: a
    session keeps to its tools).
    """
    return {
        *request,
        *asked,
        *(f"@{name}" for name in before),
        *(f"@@{name}" for name in earlier),
    }


class NameWords:
    """
    Counts of the features of turns (:func:`name_tokens`, each once a turn) by the names
    the turn called ("" for a turn that called none), and P(name | features) from them.
    """

    def __init__(self) -> None:
        self.turns: dict[str, float] = {}  # name -> turns that called it
        self.tokens: dict[str, float] = {}  # name -> features of those turns
        self.words: dict[str, dict[str, float]] = {}  # feature -> name -> turns
        #: the turns counted (once per name a turn called) and, per feature, those of
        #: them that had it: the sums of ``turns`` and of ``words``, kept as they grow
        self.total = 0.0
        self.df: dict[str, float] = {}
        #: the counts of a feature by a name (:meth:`pairs`), kept as they grow
        self.n_pairs = 0

    def add(self, tokens: set[str], names: Iterable[str]) -> None:
        """
        Count one turn: its features and the names it called.
        """
        for name in set(names) or {""}:
            self.total += 1
            self.turns[name] = self.turns.get(name, 0) + 1
            self.tokens[name] = self.tokens.get(name, 0) + len(tokens)
            for token in map(sys.intern, tokens):  # one object for each, in every count
                per = self.words.setdefault(token, {})
                n = per.get(name, 0)
                per[name] = n + 1  # ints, shared up to 256 (CallCounts)
                self.n_pairs += not n
                self.df[token] = self.df.get(token, 0) + 1

    def pairs(self) -> int:
        """
        How many counts of a feature by a name these counts hold (kept as they are
        counted: :attr:`graph.CallForecaster.vocabulary_` is read after every part a
        server learns, in the thread its forecasts wait for).
        """
        return self.n_pairs

    def age(self) -> None:
        """
        Halve every count, and drop the counts of a feature by a name that fall below
        one, as the other word counts age (see :meth:`graph.CallForecaster.partial_fit`).
        """
        self.total *= 0.5
        for counts in (self.turns, self.tokens, self.words):
            halve(counts)
        drop_below(self.words, 1.0)
        self.df = {token: sum(per.values()) for token, per in self.words.items()}
        self.n_pairs = sum(len(per) for per in self.words.values())

    def posterior(self, tokens: set[str], temperature: float = 1.0) -> dict[str, float]:
        """
        Return P(the turn calls the name | its features) for every name counted ("" for
        none), softened by ``temperature`` (the log-odds divided by it); features never
        counted are left out. Work grows with the features and the names.
        """
        scores = self.scores(tokens)
        if not scores:
            return {}
        top = max(scores.values())
        weights = {name: math.exp((s - top) / temperature) for name, s in scores.items()}
        norm = sum(weights.values())
        return {name: w / norm for name, w in weights.items()}

    def scores(self, tokens: set[str]) -> dict[str, float]:
        """
        Return log P(name, features) for every name counted, up to a constant.
        """
        if not self.turns:
            return {}
        known = sorted(t for t in tokens if t in self.words)  # summed in one order
        vocab = max(len(self.words), 1)  # (turns without a word: none counted)
        total = self.total
        k = len(known)
        scores = {
            name: math.log(n / total) - k * math.log((self.tokens[name] + _ALPHA * vocab) / _ALPHA)
            for name, n in self.turns.items()
        }
        for token in known:
            for name, n in self.words[token].items():
                scores[name] += math.log((n + _ALPHA) / _ALPHA)
        return scores

    def to_json(self) -> dict[str, Any]:
        """
        The counts as JSON-ready data (features counted once are left out: most of the
        counts, and alone they tell little).
        """
        return {
            "turns": self.turns,
            "tokens": self.tokens,
            "words": {t: per for t, per in self.words.items() if sum(per.values()) >= 2},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NameWords:
        """
        Rebuild the counts from :meth:`to_json` output (errors: TypeError, ValueError,
        AttributeError).
        """
        out = cls()
        out.turns = {str(n): number(c) for n, c in data["turns"].items()}
        out.tokens = {str(n): number(c) for n, c in data["tokens"].items()}
        out.words = {
            str(t): {str(n): number(c) for n, c in per.items()} for t, per in data["words"].items()
        }
        out.total = sum(out.turns.values())
        out.df = {t: sum(per.values()) for t, per in out.words.items()}
        out.n_pairs = sum(len(per) for per in out.words.values())
        return out


class NameTemperature:
    """
    Which of :data:`TEMPERATURES` makes naive Bayes's posterior best calibrated: the
    negative log-likelihood of the names held-out turns called, at each. Naive Bayes
    counts every word of a request as new evidence, so its posterior is far too sure:
    "find me a movie to watch online" gave one of SGD's two movie services 0.999, and
    the other, as likely, nothing.
    """

    def __init__(self) -> None:
        self.nll = [0.0] * len(TEMPERATURES)
        self.turns = 0.0

    def observe(self, scores: Mapping[str, float], names: Iterable[str]) -> None:
        """
        Count one held-out turn: the names' log-scores (:meth:`NameWords.scores`) and
        the names it called ("" for none; names never counted are left out).
        """
        if self.settled:
            return
        called = np.array([scores[name] for name in set(names) or {""} if name in scores])
        if not called.size:
            return
        every = np.fromiter(scores.values(), dtype=float, count=len(scores))
        top = every.max()
        temps = np.array(TEMPERATURES)[:, None]
        log_norm = np.log(np.exp((every - top) / temps).sum(axis=1))
        nll = (log_norm[:, None] - (called - top) / temps).sum(axis=1)
        self.nll = [a + float(b) for a, b in zip(self.nll, nll, strict=True)]
        self.turns += 1.0

    @property
    def settled(self) -> bool:
        """
        Whether enough turns were counted (more would not move the temperature).
        """
        return self.turns >= _SETTLED_TURNS

    @property
    def best(self) -> float:
        """
        The temperature of the least negative log-likelihood (1 before any turn).
        """
        if not self.turns:
            return 1.0
        return TEMPERATURES[min(range(len(TEMPERATURES)), key=self.nll.__getitem__)]

    def to_json(self) -> dict[str, Any]:
        """
        The sums as JSON-ready data.
        """
        return {"temperatures": list(TEMPERATURES), "nll": self.nll, "turns": self.turns}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NameTemperature:
        """
        Rebuild the sums from :meth:`to_json` output (errors: TypeError, ValueError,
        KeyError); sums over other temperatures are dropped.
        """
        out = cls()
        if [float(t) for t in data["temperatures"]] == list(TEMPERATURES):
            nll = [float(x) for x in data["nll"]]
            if len(nll) != len(TEMPERATURES):
                raise ValueError(f"{len(nll)} sums for {len(TEMPERATURES)} temperatures")
            out.nll, out.turns = nll, number(data["turns"])
        return out
