"""
Search over a source's texts: a TF-IDF index (scikit-learn) that sources which can
search (:class:`~preload.SearchingSource`) answer ``search(query, limit)`` with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["MAX_QUERY_CHARS", "MAX_SEARCH_LIMIT", "TfidfIndex"]

#: The longest query searched, in characters; a longer one is cut.
MAX_QUERY_CHARS = 10_000

#: The most results one search returns.
MAX_SEARCH_LIMIT = 1_000


class TfidfIndex:
    """
    Items ranked by the cosine of their TF-IDF vectors (sublinear term frequency, words
    and word pairs) with the query's. Building it is linear in the texts; a query costs
    one sparse product with the items' matrix.

    Args:
        texts: The items' texts by key.
    """

    def __init__(self, texts: Mapping[str, str]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.keys = list(texts)
        self._vectorizer: Any = TfidfVectorizer(
            sublinear_tf=True, ngram_range=(1, 2), min_df=1, strip_accents="unicode"
        )
        self._matrix: Any = None
        if self.keys:
            try:
                self._matrix = self._vectorizer.fit_transform([texts[k] for k in self.keys])
            except ValueError:  # no words at all (empty or stop-words-only texts)
                self._matrix = None

    def search(self, query: str, limit: int) -> list[tuple[str, float]]:
        """
        The ``limit`` keys most similar to ``query``, most similar first, with their
        cosine (above 0 only).

        Raises:
            ValueError: ``limit`` is below 1 or above :data:`MAX_SEARCH_LIMIT`.
        """
        if not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise ValueError(f"limit must be 1 to {MAX_SEARCH_LIMIT}, not {limit}")
        if self._matrix is None or not query.strip():
            return []
        vector = self._vectorizer.transform([query[:MAX_QUERY_CHARS]])
        scores = np.asarray((self._matrix @ vector.T).todense()).ravel()
        top = np.argsort(-scores, kind="stable")[:limit]
        return [(self.keys[i], float(scores[i])) for i in top if scores[i] > 0]
