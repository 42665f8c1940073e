"""
Importance scoring: how much an item is worth to the request at hand.

One scorer blends five signals, each in [0, 1], with the weights in
:class:`~preload.BudgetConfig` (``importance_*``):

``recency``
    ``0.5 ** (age / half_life)``: the turns since the item was last used or said.
``relevance``
    TF-IDF cosine between the item and the current request (IDF over the request and
    the candidates scored together).
``references``
    Explicit user signals: the request refers back ("earlier", "you said", "that
    one", ...) and names something the item holds, or quotes it.
``density``
    Distinct key terms per token: content over filler.
``utility``
    How often the item was used when it was loaded (Laplace-smoothed), learned with
    :meth:`ImportanceScorer.record`.

Every score carries its signals so that a selection can say why.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .._config import BudgetConfig

__all__ = ["Importance", "ImportanceScorer"]

_WORD = re.compile(r"[A-Za-z0-9_]+")
_NAME = re.compile(r"\b[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)*|\b\d[\d:.,]*\b|\"[^\"]+\"")
_BACK = re.compile(
    r"\b(?:earlier|before|previous(?:ly)?|you (?:said|mentioned|suggested|told)|"
    r"as I (?:said|mentioned)|that one|the (?:first|second|last|other) one|go back|again|"
    r"mentioned|above)\b",
    re.IGNORECASE,
)


def _terms(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text) if len(w) > 2 or w.isdigit()]


@dataclass(frozen=True, slots=True, kw_only=True)
class Importance:
    """
    An item's importance and the signals it came from.

    .. versionadded:: 0.1
    """

    score: float
    recency: float
    relevance: float
    references: float
    density: float
    utility: float

    def explain(self) -> str:
        """
        The score and its signals, on one line.
        """
        return (
            f"importance {self.score:.2f} (recency {self.recency:.2f}, relevance "
            f"{self.relevance:.2f}, references {self.references:.2f}, density "
            f"{self.density:.2f}, utility {self.utility:.2f})"
        )


class ImportanceScorer:
    """
    Scores candidate items for a request.

    Args:
        config: The budget configuration that holds the weights and the half-life.

    .. versionadded:: 0.1
    """

    def __init__(self, config: BudgetConfig | None = None) -> None:
        self.config = config or BudgetConfig()
        weights = self.config.importance_weights
        total = sum(weights.values())
        self.weights = {name: w / total for name, w in weights.items()}
        self._loaded: Counter[str] = Counter()
        self._used: Counter[str] = Counter()

    def record(self, key: str, *, used: bool) -> None:
        """
        Learn from one load of ``key``: whether the request it was loaded for used it.
        """
        self._loaded[key] += 1
        if used:
            self._used[key] += 1

    def utility(self, key: str) -> float:
        """
        The smoothed share of loads of ``key`` that were used.
        """
        return (self._used[key] + 1) / (self._loaded[key] + 2)

    def score(
        self,
        request: str,
        texts: Sequence[str],
        *,
        keys: Sequence[str] | None = None,
        ages: Sequence[float] | None = None,
        tokens: Sequence[int] | None = None,
    ) -> list[Importance]:
        """
        The importance of each of ``texts`` for ``request``.

        Args:
            request: The current request.
            texts: The candidates' texts (their richest level).
            keys: Their keys, for historical utility.
            ages: Turns since each was last used or said (0: this turn).
            tokens: Their token counts (estimated from words when None).
        """
        half_life = self.config.recency_half_life
        request_terms = Counter(_terms(request))
        docs = [Counter(_terms(t)) for t in texts]
        n = len(docs) + 1
        df: Counter[str] = Counter()
        for doc in (request_terms, *docs):
            df.update(doc.keys())
        idf = {t: math.log((n + 1) / (c + 1)) + 1.0 for t, c in df.items()}
        q = {t: c * idf[t] for t, c in request_terms.items()}
        q_norm = math.sqrt(sum(v * v for v in q.values())) or 1.0
        back = _BACK.search(request) is not None
        names = [m.group(0).strip('"').lower() for m in _NAME.finditer(request)]
        w = self.weights
        out: list[Importance] = []
        for i, (text, doc) in enumerate(zip(texts, docs, strict=True)):
            d = {t: c * idf[t] for t, c in doc.items()}
            d_norm = math.sqrt(sum(v * v for v in d.values())) or 1.0
            relevance = sum(q[t] * d[t] for t in q.keys() & d.keys()) / (q_norm * d_norm)
            lowered = text.lower()
            named = sum(1 for name in names if name and name in lowered)
            references = 0.0
            if named:
                references = min(1.0, named / max(1, len(names)) + (0.5 if back else 0.0))
            count = tokens[i] if tokens is not None else max(1, len(text) // 4)
            density = min(1.0, 2.0 * len(doc) / max(1, count))
            age = ages[i] if ages is not None else 0.0
            recency = 0.5 ** (max(0.0, age) / half_life)
            utility = self.utility(keys[i]) if keys is not None else 0.5
            score = (
                w["recency"] * recency
                + w["relevance"] * relevance
                + w["references"] * references
                + w["density"] * density
                + w["utility"] * utility
            )
            out.append(
                Importance(
                    score=score,
                    recency=recency,
                    relevance=relevance,
                    references=references,
                    density=density,
                    utility=utility,
                )
            )
        return out
