"""
StateEncoder: names the state of a request from its text, for logs whose turns carry
no state label (nearest labelled centroid, or clusters).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import MiniBatchKMeans
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.neighbors import NearestCentroid
from sklearn.utils.validation import check_is_fitted

__all__ = ["StateEncoder"]


class StateEncoder(TransformerMixin, BaseEstimator):
    """
    Text to state: a TF-IDF vectorizer, then nearest centroid when labels are given
    (``fit(texts, states)``) or k-means clusters named ``cluster:<i>`` when not.

    Args:
        n_states: Clusters to form when fitting without labels.
        max_features: Vocabulary cap of the vectorizer.
        ngram_range: Word n-grams of the vectorizer.
        random_state: Seed of the clustering.

    Attributes:
        vectorizer_: The fitted :class:`~sklearn.feature_extraction.text.TfidfVectorizer`.
        model_: The fitted :class:`~sklearn.neighbors.NearestCentroid` or
            :class:`~sklearn.cluster.MiniBatchKMeans`.
        states_: The state names, in the model's class order.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        *,
        n_states: int = 50,
        max_features: int = 20000,
        ngram_range: tuple[int, int] = (1, 2),
        random_state: int = 0,
    ) -> None:
        self.n_states = n_states
        self.max_features = max_features
        self.ngram_range = ngram_range
        self.random_state = random_state

    def fit(self, X: Iterable[str], y: Sequence[str | None] | None = None) -> StateEncoder:
        """
        Learn the mapping.

        Args:
            X: Request texts.
            y: Their states; None (or all None) to cluster instead. Texts whose label
                is None are used for the vocabulary only.

        Returns:
            ``self``.

        Raises:
            ValueError: If there are fewer texts than ``n_states`` when clustering.
        """
        texts = list(X)
        self.vectorizer_ = TfidfVectorizer(
            max_features=self.max_features, ngram_range=self.ngram_range, sublinear_tf=True
        )
        matrix = self.vectorizer_.fit_transform(texts)
        labels = list(y) if y is not None else []
        known = [i for i, label in enumerate(labels) if label is not None]
        if len({labels[i] for i in known}) >= 2:
            self.model_: Any = NearestCentroid()
            self.model_.fit(matrix[known], [str(labels[i]) for i in known])
            self.states_ = [str(c) for c in self.model_.classes_]
        else:
            if len(texts) < self.n_states:
                raise ValueError(
                    f"StateEncoder needs at least n_states={self.n_states} texts to cluster, "
                    f"got {len(texts)}; lower n_states or pass labels"
                )
            self.model_ = MiniBatchKMeans(
                n_clusters=self.n_states, random_state=self.random_state, n_init=3
            )
            self.model_.fit(matrix)
            self.states_ = [f"cluster:{i}" for i in range(self.n_states)]
        return self

    def transform(self, X: Iterable[str]) -> list[str]:
        """
        Map texts to states.

        Args:
            X: Request texts.

        Returns:
            One state name per text.
        """
        check_is_fitted(self)
        matrix = self.vectorizer_.transform(list(X))
        pred = np.asarray(self.model_.predict(matrix))
        if isinstance(self.model_, NearestCentroid):
            return [str(s) for s in pred]
        return [self.states_[int(i)] for i in pred]

    def predict(self, X: Iterable[str]) -> list[str]:
        """
        Alias of :meth:`transform`.
        """
        return self.transform(X)
