"""
The content-value predictor: P(an item is used | the request, the session, the item),
learned online from feedback on what answers used.

Each candidate of a window is described by a few features (its relevance to the
request, the forecast's probability, how useful it and its user's items have been, its
density, how recently and how often the session saw it, how recently an answer of
the session used it, and its source and kind, hashed). A scikit-learn ``SGDClassifier(loss="log_loss")`` learns from them with
``partial_fit``; until it has seen ``min_feedback`` judged items of both outcomes it
answers None and the fixed values serve. Saved as versioned JSON, never pickle.
"""

from __future__ import annotations

import json
import math
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import InputError
from ._files import read_model_json

__all__ = ["Candidate", "ValuePredictor"]

_FORMAT = "preload.value-predictor"
_VERSION = 2

#: Buckets of the hashed source and kind features.
HASHED = 16

#: Items whose usefulness is remembered; the least recent go first.
MAX_ITEMS = 100_000

_EPS = 1e-3
_LOG_ODDS_MAX = math.log((1 - _EPS) / _EPS)

#: The named features, before the hashed ones.
FEATURES = (
    "relevance",
    "forecast",
    "item_useful",
    "user_useful",
    "density",
    "recency",
    "engagement",
    "used_recently",
    "useful_here",
    "log_odds_relevance",
    "log_odds_forecast",
    "log_odds_item_useful",
    "log_odds_useful_here",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """
    What is known of one candidate item when its window is assembled.

    ``relevance``: its similarity to the request (0..1); ``forecast``: the forecast's
    probability that the turn needs it; ``density``: distinct words per token;
    ``turns_since``: turns since the session last had it in a window (None: never);
    ``shown``: windows of the session it was in; ``used_since``: turns since an answer
    of the session last used it, as feedback said (None: never); ``context``: the
    request's state, when known (its usefulness is also learned per state);
    ``category``: the window category it takes (not a feature: the adaptive budget's).

    .. versionadded:: 0.4
    """

    key: str
    source: str = ""
    kind: str = ""
    relevance: float = 0.0
    forecast: float = 0.0
    density: float = 0.0
    turns_since: int | None = None
    shown: int = 0
    used_since: int | None = None
    context: str = ""
    category: str = ""


class ValuePredictor:
    """
    P(used) of window candidates, learned online.

    Args:
        min_feedback: Judged items (of both outcomes) before it answers.
        alpha: The classifier's regularization.

    .. versionadded:: 0.4
    """

    def __init__(self, *, min_feedback: int = 200, alpha: float = 1e-4) -> None:
        from sklearn.linear_model import SGDClassifier

        self.min_feedback = min_feedback
        self.alpha = alpha
        self.model: Any = SGDClassifier(loss="log_loss", alpha=alpha, random_state=0)
        self.seen = 0
        self.outcomes: Counter[bool] = Counter()
        self.item_shown: Counter[str] = Counter()
        self.item_used: Counter[str] = Counter()
        self.user_shown: Counter[str] = Counter()
        self.user_used: Counter[str] = Counter()
        self.here_shown: Counter[str] = Counter()
        self.here_used: Counter[str] = Counter()
        self._weights: tuple[Any, float] | None = None

    def _publish(self) -> None:
        """
        A copy of the model's weights for :meth:`predict`, rebound whole: the request
        path reads them while the learner's thread fits the model, never a model
        half-updated.
        """
        self._weights = (self.model.coef_[0].copy(), float(self.model.intercept_[0]))

    @property
    def ready(self) -> bool:
        """
        Whether it has seen enough feedback, of both outcomes, to answer.
        """
        return self.seen >= self.min_feedback and len(self.outcomes) == 2

    def row(self, candidate: Candidate, user: str | None) -> list[float]:
        """
        The features of a candidate, for :meth:`predict` and :meth:`learn`.
        """
        key = candidate.key
        item = (self.item_used[key] + 1) / (self.item_shown[key] + 2)
        who = user or ""
        mine = (self.user_used[who] + 1) / (self.user_shown[who] + 2)
        recency = 0.0 if candidate.turns_since is None else 1 / (1 + candidate.turns_since)
        used = 0.0 if candidate.used_since is None else 1 / (1 + candidate.used_since)
        pair = _pair(candidate.context, key)  # smoothed towards the item's own usefulness
        here = (self.here_used[pair] + 2 * item) / (self.here_shown[pair] + 2)
        named = [
            candidate.relevance,
            candidate.forecast,
            item,
            mine,
            min(candidate.density, 1.0),
            recency,
            math.log1p(candidate.shown),
            used,
            here,
            _log_odds(candidate.relevance),
            _log_odds(candidate.forecast),
            _log_odds(item),
            _log_odds(here),
        ]
        hashed = [0.0] * HASHED
        for part in (f"source={candidate.source}", f"kind={candidate.kind}"):
            hashed[zlib.crc32(part.encode()) % HASHED] = 1.0
        return named + hashed

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float] | None:
        """
        P(used) of each row, or None until :attr:`ready`.
        """
        weights = self._weights
        if not self.ready or not rows or weights is None:
            return None
        coef, intercept = weights
        margins = np.asarray(rows, dtype=float) @ coef + intercept
        return [float(p) for p in 1.0 / (1.0 + np.exp(-np.clip(margins, -30.0, 30.0)))]

    def learn(
        self,
        rows: Sequence[Sequence[float]],
        keys: Sequence[str],
        used: Sequence[bool],
        user: str | None,
        contexts: Sequence[str] = (),
    ) -> None:
        """
        Learn from one window's candidates and whether the answer used each (CPU work:
        the engine calls it from its learner's worker thread). ``contexts``: the
        request's state of each (none known when empty).
        """
        if not rows:
            return
        self.model.partial_fit(np.asarray(rows), np.asarray(used, dtype=int), classes=[0, 1])
        self._publish()
        self.seen += len(rows)
        who = user or ""
        for i, (key, was) in enumerate(zip(keys, used, strict=True)):
            pair = _pair(contexts[i] if contexts else "", key)
            self.here_shown[pair] += 1
            self.here_used[pair] += bool(was)
            self.outcomes[bool(was)] += 1
            self.item_shown[key] += 1
            self.item_used[key] += bool(was)
            self.user_shown[who] += 1
            self.user_used[who] += bool(was)
        if len(self.item_shown) > MAX_ITEMS:  # forget the rarest
            for key, _ in self.item_shown.most_common()[MAX_ITEMS // 2 :]:
                del self.item_shown[key]
                self.item_used.pop(key, None)
        if len(self.here_shown) > MAX_ITEMS:
            for pair, _ in self.here_shown.most_common()[MAX_ITEMS // 2 :]:
                del self.here_shown[pair]
                self.here_used.pop(pair, None)

    def to_json(self) -> dict[str, Any]:
        """
        What it has learned, as a JSON-ready mapping with its format and version (what
        :meth:`save` writes, and what a forecaster's model file holds under ``values``).

        .. versionadded:: 0.6
        """
        fitted = hasattr(self.model, "coef_")
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "min_feedback": self.min_feedback,
            "alpha": self.alpha,
            "seen": self.seen,
            "outcomes": {"used": self.outcomes[True], "unused": self.outcomes[False]},
            "coef": self.model.coef_.tolist() if fitted else None,
            "intercept": self.model.intercept_.tolist() if fitted else None,
            "items": {k: [self.item_shown[k], self.item_used[k]] for k in self.item_shown},
            "users": {u: [self.user_shown[u], self.user_used[u]] for u in self.user_shown},
            "in_context": {p: [self.here_shown[p], self.here_used[p]] for p in self.here_shown},
        }

    @classmethod
    def from_json(cls, data: object) -> ValuePredictor:
        """
        Rebuild what :meth:`to_json` gave.

        Raises:
            ValueError: ``data`` is not this format and version, or is corrupt.

        .. versionadded:: 0.6
        """
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"not a {_FORMAT} file")
        if data.get("version") != _VERSION:
            raise ValueError(f"version {data.get('version')!r}; this preload reads {_VERSION}")
        try:
            out = cls(min_feedback=int(data["min_feedback"]), alpha=float(data["alpha"]))
            out.seen = int(data["seen"])
            used, unused = int(data["outcomes"]["used"]), int(data["outcomes"]["unused"])
            out.outcomes = Counter({True: used, False: unused}) + Counter()  # no zero counts
            if data["coef"] is not None:
                out.model.coef_ = np.asarray(data["coef"], dtype=float).reshape(1, -1)
                out.model.intercept_ = np.asarray(data["intercept"], dtype=float).reshape(1)
                out.model.classes_ = np.asarray([0, 1])
                out.model.t_ = 1.0 + out.seen
                out._publish()
            for key, (shown, was_used) in data["items"].items():
                out.item_shown[str(key)], out.item_used[str(key)] = int(shown), int(was_used)
            for user, (shown, was_used) in data["users"].items():
                out.user_shown[str(user)], out.user_used[str(user)] = int(shown), int(was_used)
            for pair, (shown, was_used) in data["in_context"].items():
                out.here_shown[str(pair)], out.here_used[str(pair)] = int(shown), int(was_used)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"corrupt value predictor: {exc!r}") from None
        return out

    def save(self, path: str | Path) -> None:
        """
        Write it as versioned JSON.
        """
        Path(path).write_text(json.dumps(self.to_json()), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ValuePredictor:
        """
        Read what :meth:`save` wrote.

        Raises:
            InputError: The file is missing, not JSON, or not this format and version.
        """
        data = read_model_json(Path(path))
        try:
            return cls.from_json(data)
        except ValueError as exc:
            raise InputError(path, None, str(exc)) from None


def _pair(context: str, key: str) -> str:
    """
    The counters' key of an item in a context (a unit separator between them).
    """
    return f"{context}\x1f{key}"


def _log_odds(p: float) -> float:
    """
    ``p``'s log-odds scaled to [-1, 1] (``p`` clipped to [0.001, 0.999]): the form in
    which a logistic model adds up probabilities, so that a forecast of 0.1 differs
    from none as much as 0.5 from 0.9.
    """
    q = min(max(p, _EPS), 1 - _EPS)
    return math.log(q / (1 - q)) / _LOG_ODDS_MAX
