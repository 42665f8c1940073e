"""
TextForecaster: forecasts the next *state* of a session from the words of its last
request and of the agent's reply (and its last states), with a linear model over TF-IDF
features that keeps learning online.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import SGDClassifier
from sklearn.utils.validation import check_is_fitted

from ._persistence import decode_floats, encode_floats
from ._sessions import Item, session_parts, state_of

__all__ = ["TextForecaster", "text_words", "turn_features"]


def text_words(text: str) -> list[str]:
    """
    Return the lower-cased words of ``text``, stripped of surrounding punctuation.
    """
    out: list[str] = []
    for raw in text.lower().split():
        word = raw.strip(".,!?;:\"'()[]")
        if word:
            out.append(word)
    return out


def turn_features(history: Sequence[Item], n_states: int) -> list[str]:
    """
    Return the tokens describing the end of ``history``: words and word pairs of the
    last request (``u:``) and of the agent's reply (``a:``), each word again paired with
    the current state (the same words mean different things in different states: "yes"
    after a search is not "yes" after a confirmation), the last ``n_states`` states and
    their pair.

    Args:
        history: The session so far (the last item is the current turn).
        n_states: How many trailing states become features.

    Returns:
        The tokens (possibly repeated).
    """
    out: list[str] = []
    if not history:
        return ["<start>"]
    last = history[-1]
    current = state_of(last)
    if isinstance(last, Mapping):
        text = last.get("text")
        if isinstance(text, str):
            words = text_words(text)
            out.extend("u:" + w for w in words)
            out.extend(f"u:{a}_{b}" for a, b in itertools.pairwise(words))
            if current is not None:
                out.extend(f"u|{current}:{w}" for w in dict.fromkeys(words))
        reply = last.get("system")
        if isinstance(reply, str):
            words = text_words(reply)
            out.extend("a:" + w for w in words)
            out.extend(f"a:{a}_{b}" for a, b in itertools.pairwise(words))
            if current is not None:
                out.extend(f"a|{current}:{w}" for w in dict.fromkeys(words))
    states: list[str] = []
    for item in reversed(history):
        state = state_of(item)
        if state is not None:
            states.append(state)
            if len(states) >= n_states:
                break
    out.extend(f"s{i}={s}" for i, s in enumerate(states))
    if len(states) >= 2:
        out.append(f"s01={states[0]}|{states[1]}")
    return out


def _identity(doc: list[str]) -> list[str]:
    return doc


class TextForecaster(BaseEstimator):
    """
    P(next state | words of the last request and reply, last states).

    TF-IDF features (a vocabulary fit once, by :meth:`fit`) feed an online linear model,
    ``SGDClassifier(loss="log_loss")``; :meth:`partial_fit` and :meth:`observe` keep
    learning (buffered: ``observe`` trains every ``batch_size`` turns). States first seen
    after :meth:`fit` are left to the sequence forecast.

    Args:
        n_states: Trailing states used as features.
        alpha: L2 regularisation of the linear model.
        epochs: Passes over the data in :meth:`fit`.
        min_df: Tokens seen in fewer training turns are dropped.
        max_features: Vocabulary cap.
        batch_size: Turns buffered by :meth:`observe` before a ``partial_fit``.
        random_state: Seed of the linear model.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        *,
        n_states: int = 2,
        alpha: float = 1e-5,
        epochs: int = 5,
        min_df: int = 2,
        max_features: int = 100000,
        batch_size: int = 256,
        random_state: int = 0,
    ) -> None:
        self.n_states = n_states
        self.alpha = alpha
        self.epochs = epochs
        self.min_df = min_df
        self.max_features = max_features
        self.batch_size = batch_size
        self.random_state = random_state

    # -- learning -------------------------------------------------------------------------

    def _samples(self, X: Iterable[Any]) -> tuple[list[list[str]], list[str]]:
        docs: list[list[str]] = []
        labels: list[str] = []
        for seq in X:
            items, _ = session_parts(seq)
            for i in range(1, len(items)):
                target = state_of(items[i])
                if target is None:
                    continue
                docs.append(turn_features(items[:i], self.n_states))
                labels.append(target)
        return docs, labels

    def fit(self, X: Iterable[Any], y: object = None) -> TextForecaster:
        """
        Fit the vocabulary and the linear model on every turn after the first.

        Args:
            X: Sessions of turn mappings (or session mappings).
            y: Ignored.

        Returns:
            ``self``.

        Raises:
            ValueError: If ``X`` holds fewer than two distinct next states.
        """
        docs, labels = self._samples(X)
        if len(set(labels)) < 2:
            raise ValueError("TextForecaster needs at least two distinct next states to fit")
        self.vectorizer_ = TfidfVectorizer(
            analyzer=_identity,
            min_df=self.min_df,
            max_features=self.max_features,
            sublinear_tf=True,
            dtype=np.float32,
        )
        matrix = self.vectorizer_.fit_transform(docs)
        self.model_ = SGDClassifier(
            loss="log_loss",
            alpha=self.alpha,
            max_iter=self.epochs,
            tol=None,
            random_state=self.random_state,
        )
        self.model_.fit(matrix, labels)
        self._pending: list[tuple[list[str], str]] = []
        self._compile()
        return self

    def _compile(self) -> None:
        vocab = self.vectorizer_.vocabulary_
        self.vocabulary_: dict[str, int] = {str(t): int(i) for t, i in vocab.items()}
        self.idf_ = np.asarray(self.vectorizer_.idf_, dtype=np.float64)
        self._idf32 = self.idf_.astype(np.float32)
        self.classes_: list[str] = [str(c) for c in self.model_.classes_]
        self._class_set = set(self.classes_)
        coef = np.asarray(self.model_.coef_, dtype=np.float64)
        self._coef_t = np.ascontiguousarray(coef.T, dtype=np.float32)
        self._intercept = np.asarray(self.model_.intercept_, dtype=np.float64)
        if len(self.classes_) == 2:
            self._coef_t = np.hstack([-self._coef_t, self._coef_t]).astype(np.float32)
            self._intercept = np.array([-self._intercept[0], self._intercept[0]])

    def partial_fit(self, X: Iterable[Any], y: object = None) -> TextForecaster:
        """
        Learn online from more sessions (fits from scratch when not fitted yet).

        Args:
            X: Sessions of turn mappings.
            y: Ignored.

        Returns:
            ``self``.
        """
        if not hasattr(self, "model_"):
            return self.fit(X)
        docs, labels = self._samples(X)
        self._train(docs, labels)
        return self

    def _train(self, docs: list[list[str]], labels: list[str]) -> None:
        keep = [i for i, label in enumerate(labels) if label in self._class_set]
        if not keep:
            return
        matrix = self.vectorizer_.transform([docs[i] for i in keep])
        self.model_.partial_fit(matrix, [labels[i] for i in keep])
        self._compile()

    def observe(self, history: Sequence[Item]) -> TextForecaster:
        """
        Buffer the turn ending ``history`` as a training example.

        Args:
            history: The session so far, the new turn last.

        Returns:
            ``self``.
        """
        check_is_fitted(self)
        target = state_of(history[-1]) if history else None
        if target is None or len(history) < 2:
            return self
        self._pending.append((turn_features(history[:-1], self.n_states), target))
        if len(self._pending) >= self.batch_size:
            self.flush()
        return self

    def flush(self) -> None:
        """
        Train on the turns buffered by :meth:`observe`.
        """
        if self._pending:
            docs, labels = zip(*self._pending, strict=True)
            self._pending = []
            self._train(list(docs), list(labels))

    # -- inference ------------------------------------------------------------------------

    def scores(self, history: Sequence[Item]) -> np.ndarray[Any, np.dtype[np.float64]]:
        """
        Return P(state) for every class in ``classes_``.

        Args:
            history: The session so far.

        Returns:
            A probability vector aligned with ``classes_``.
        """
        get = self.vocabulary_.get
        tf: dict[int, int] = {}
        n_tokens = 0
        for token in turn_features(history, self.n_states):
            col = get(token)
            if col is not None:
                tf[col] = tf.get(col, 0) + 1
                n_tokens += 1
        if tf:
            cols = list(tf)
            vals: np.ndarray[Any, Any] = self._idf32[cols]
            if len(tf) < n_tokens:  # repeated tokens: sublinear tf
                vals = vals * (1.0 + np.log(np.array(list(tf.values()), dtype=np.float32)))
            d: np.ndarray[Any, Any] = vals @ self._coef_t[cols]
            d *= 1.0 / math.sqrt(float(vals @ vals))
            d = d + self._intercept
        else:
            d = self._intercept.copy()
        p: np.ndarray[Any, np.dtype[np.float64]] = expit(d)
        total = float(p.sum())
        return p / total if total > 0 else np.full_like(p, 1.0 / len(p))

    def predict_proba(self, history: Sequence[Item], k: int | None = 3) -> list[tuple[str, float]]:
        """
        Forecast the state after ``history`` from its last turn's words and states.

        Args:
            history: The session so far.
            k: How many states to return; None for all.

        Returns:
            ``(state, probability)`` pairs, most probable first.
        """
        if "model_" not in self.__dict__:  # fast path of check_is_fitted (hot loop)
            check_is_fitted(self)
        p = self.scores(history)
        if k is None or k >= len(p):
            top = np.argsort(-p, kind="stable")
        else:  # partition first: a full sort of hundreds of states costs more
            part = np.argpartition(-p, k)[:k]
            top = part[np.argsort(-p[part], kind="stable")]
        classes = self.classes_
        return [(classes[i], q) for i, q in zip(top.tolist(), p[top].tolist(), strict=True)]

    # -- persistence ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """
        Return the fitted model as JSON-ready data (arrays as base64 float32).
        """
        check_is_fitted(self)
        self.flush()
        return {
            "params": self.get_params(),
            "vocabulary": self.vocabulary_,
            "idf": encode_floats(self.idf_),
            "classes": self.classes_,
            "coef": encode_floats(np.asarray(self.model_.coef_)),
            "intercept": encode_floats(np.asarray(self.model_.intercept_)),
            "coef_shape": list(np.asarray(self.model_.coef_).shape),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TextForecaster:
        """
        Rebuild a fitted model from :meth:`to_json` output.

        Args:
            data: The decoded JSON.

        Returns:
            The model; it predicts and keeps learning online.
        """
        model = cls(**data["params"])
        vocab = {str(t): int(i) for t, i in data["vocabulary"].items()}
        idf = decode_floats(data["idf"], (len(vocab),))
        shape = tuple(int(n) for n in data["coef_shape"])
        classes = [str(c) for c in data["classes"]]
        vec = TfidfVectorizer(analyzer=_identity, sublinear_tf=True, dtype=np.float32)
        vec.vocabulary_ = vocab
        vec.idf_ = idf
        sgd = SGDClassifier(
            loss="log_loss", alpha=model.alpha, max_iter=model.epochs, tol=None,
            random_state=model.random_state,
        )  # fmt: skip
        sgd.classes_ = np.array(classes, dtype=object)
        sgd.coef_ = decode_floats(data["coef"], shape)
        sgd.intercept_ = decode_floats(data["intercept"], (shape[0],))
        sgd.t_ = 1.0 + 1e4
        sgd.n_features_in_ = len(vocab)
        sgd._expanded_class_weight = np.ones(len(classes))
        sgd.n_iter_ = model.epochs
        model.vectorizer_ = vec
        model.model_ = sgd
        model._pending = []
        model._compile()
        return model
