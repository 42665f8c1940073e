"""
Which names a turn calls, read from its words: a naive Bayes model over the words of the
request, the last words of the reply it answers and the names the turn before called. The
call forecast asks it when a request comes without a state (most real logs and clients
have none); the counts by state answer otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["NameWords", "name_tokens"]

#: Pseudo-count of every (word, name) pair: Laplace smoothing.
_ALPHA = 0.5


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

    def add(self, tokens: set[str], names: Iterable[str]) -> None:
        """
        Count one turn: its features and the names it called.
        """
        for name in set(names) or {""}:
            self.turns[name] = self.turns.get(name, 0.0) + 1.0
            self.tokens[name] = self.tokens.get(name, 0.0) + len(tokens)
            for token in tokens:
                per = self.words.setdefault(token, {})
                per[name] = per.get(name, 0.0) + 1.0

    def posterior(self, tokens: set[str]) -> dict[str, float]:
        """
        Return P(the turn calls the name | its features) for every name counted ("" for
        none); features never counted are left out. Work grows with the features and
        the names.
        """
        if not self.turns:
            return {}
        known = [t for t in tokens if t in self.words]
        vocab = max(len(self.words), 1)  # (turns without a word: none counted)
        total = sum(self.turns.values())
        k = len(known)
        scores = {
            name: math.log(n / total) - k * math.log((self.tokens[name] + _ALPHA * vocab) / _ALPHA)
            for name, n in self.turns.items()
        }
        for token in known:
            for name, n in self.words[token].items():
                scores[name] += math.log((n + _ALPHA) / _ALPHA)
        top = max(scores.values())
        weights = {name: math.exp(s - top) for name, s in scores.items()}
        norm = sum(weights.values())
        return {name: w / norm for name, w in weights.items()}

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
        out.turns = {str(n): float(c) for n, c in data["turns"].items()}
        out.tokens = {str(n): float(c) for n, c in data["tokens"].items()}
        out.words = {
            str(t): {str(n): float(c) for n, c in per.items()} for t, per in data["words"].items()
        }
        return out
