"""
StateEncoder: names the state of a request from its text, for logs whose turns carry
no state label (nearest labelled centroid, or clusters).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import MiniBatchKMeans
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.neighbors import NearestCentroid
from sklearn.utils.validation import check_is_fitted

from ._persistence import check_document, decode_floats, encode_floats, map_corrupt_data

__all__ = ["StateEncoder"]

_FORMAT = "graph.StateEncoder"
_VERSION = 1


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
        centroids_: One row per state: the labelled states' centroids
            (:class:`~sklearn.neighbors.NearestCentroid`) or the clusters' centres
            (:class:`~sklearn.cluster.MiniBatchKMeans`); a text gets the nearest one's.
        states_: The state names, in the order of ``centroids_``.

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
            nearest = NearestCentroid().fit(matrix[known], [str(labels[i]) for i in known])
            self.centroids_ = np.asarray(nearest.centroids_, dtype=np.float64)
            self.states_ = [str(c) for c in nearest.classes_]
        else:
            if len(texts) < self.n_states:
                raise ValueError(
                    f"StateEncoder needs at least n_states={self.n_states} texts to cluster, "
                    f"got {len(texts)}; lower n_states or pass labels"
                )
            kmeans = MiniBatchKMeans(
                n_clusters=self.n_states, random_state=self.random_state, n_init=3
            ).fit(matrix)
            self.centroids_ = np.asarray(kmeans.cluster_centers_, dtype=np.float64)
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
        # the nearest centroid: |x - c|^2 = |x|^2 - 2 x.c + |c|^2, |x|^2 the same for all
        far = (self.centroids_**2).sum(axis=1) - 2.0 * np.asarray(matrix @ self.centroids_.T)
        return [self.states_[int(i)] for i in far.argmin(axis=1)]

    def predict(self, X: Iterable[str]) -> list[str]:
        """
        Alias of :meth:`transform`.
        """
        return self.transform(X)

    def to_json(self) -> dict[str, Any]:
        """
        The fitted encoder as JSON-ready data: its parameters, the vectorizer's
        vocabulary and IDF weights, the states and their centroids.

        .. versionadded:: 0.7
        """
        check_is_fitted(self)
        vec = self.vectorizer_
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "params": {**self.get_params(), "ngram_range": list(self.ngram_range)},
            "vocabulary": {str(t): int(i) for t, i in vec.vocabulary_.items()},
            "idf": encode_floats(vec.idf_),
            "states": self.states_,
            "centroids": encode_floats(self.centroids_),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str | Path = "<json>") -> StateEncoder:
        """
        Rebuild an encoder from :meth:`to_json` output; it names texts as the one saved.

        Raises:
            ModelFileError: The data is not such an encoder, or is corrupt.

        .. versionadded:: 0.7
        """
        check_document(data, _FORMAT, _VERSION, source)
        with map_corrupt_data(source, "state encoder"):
            params = dict(data["params"])
            params["ngram_range"] = tuple(int(n) for n in params["ngram_range"])
            self = cls(**params)
            vocabulary = {str(t): int(i) for t, i in data["vocabulary"].items()}
            states = [str(s) for s in data["states"]]
            self.vectorizer_ = TfidfVectorizer(
                ngram_range=self.ngram_range, sublinear_tf=True, vocabulary=vocabulary
            ).fit([""])  # the vocabulary is given; the weights are set below
            self.vectorizer_.idf_ = decode_floats(data["idf"], (len(vocabulary),))
            self.centroids_ = decode_floats(data["centroids"], (len(states), len(vocabulary)))
            self.states_ = states
        return self
