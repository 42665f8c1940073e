"""
The content-value predictor: P(an item is used | the request, the session, the item),
learned online from feedback on what answers used.

Each candidate of a window is described by a few features (its relevance to the
request, the forecast's probability, how useful it and its user's items have been, its
density, how recently and how often the session saw it, and its source and kind,
hashed). A scikit-learn ``SGDClassifier(loss="log_loss")`` learns from them with
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

__all__ = ["Candidate", "ValuePredictor"]

_FORMAT = "preload.value-predictor"
_VERSION = 1

#: Buckets of the hashed source and kind features.
HASHED = 16

#: Items whose usefulness is remembered; the least recent go first.
MAX_ITEMS = 100_000

#: The named features, before the hashed ones.
FEATURES = (
    "relevance",
    "forecast",
    "item_useful",
    "user_useful",
    "density",
    "recency",
    "engagement",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """
    What is known of one candidate item when its window is assembled.

    ``relevance``: its similarity to the request (0..1); ``forecast``: the forecast's
    probability that the turn needs it; ``density``: distinct words per token;
    ``turns_since``: turns since the session last had it in a window (None: never);
    ``shown``: windows of the session it was in.

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
        named = [
            candidate.relevance,
            candidate.forecast,
            item,
            mine,
            min(candidate.density, 1.0),
            recency,
            math.log1p(candidate.shown),
        ]
        hashed = [0.0] * HASHED
        for part in (f"source={candidate.source}", f"kind={candidate.kind}"):
            hashed[zlib.crc32(part.encode()) % HASHED] = 1.0
        return named + hashed

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float] | None:
        """
        P(used) of each row, or None until :attr:`ready`.
        """
        if not self.ready or not rows:
            return None
        return [float(p) for p in self.model.predict_proba(np.asarray(rows))[:, 1]]

    def learn(
        self,
        rows: Sequence[Sequence[float]],
        keys: Sequence[str],
        used: Sequence[bool],
        user: str | None,
    ) -> None:
        """
        Learn from one window's candidates and whether the answer used each (CPU work:
        the engine calls it from its learner's worker thread).
        """
        if not rows:
            return
        self.model.partial_fit(np.asarray(rows), np.asarray(used, dtype=int), classes=[0, 1])
        self.seen += len(rows)
        who = user or ""
        for key, was in zip(keys, used, strict=True):
            self.outcomes[bool(was)] += 1
            self.item_shown[key] += 1
            self.item_used[key] += bool(was)
            self.user_shown[who] += 1
            self.user_used[who] += bool(was)
        if len(self.item_shown) > MAX_ITEMS:  # forget the rarest
            for key, _ in self.item_shown.most_common()[MAX_ITEMS // 2 :]:
                del self.item_shown[key]
                self.item_used.pop(key, None)

    def save(self, path: str | Path) -> None:
        """
        Write it as versioned JSON.
        """
        fitted = hasattr(self.model, "coef_")
        document = {
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
        }
        Path(path).write_text(json.dumps(document), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ValuePredictor:
        """
        Read what :meth:`save` wrote.

        Raises:
            InputError: The file is missing, not JSON, or not this format and version.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(path, None, f"cannot read: {exc.strerror or exc}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(path, None, f"not a JSON value predictor ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise InputError(path, None, f"not a {_FORMAT} file")
        if data.get("version") != _VERSION:
            raise InputError(
                path, None, f"version {data.get('version')!r}; this preload reads {_VERSION}"
            )
        out = cls(min_feedback=int(data["min_feedback"]), alpha=float(data["alpha"]))
        out.seen = int(data["seen"])
        out.outcomes = Counter({True: data["outcomes"]["used"], False: data["outcomes"]["unused"]})
        out.outcomes += Counter()  # drop zero counts
        if data["coef"] is not None:
            out.model.coef_ = np.asarray(data["coef"], dtype=float)
            out.model.intercept_ = np.asarray(data["intercept"], dtype=float)
            out.model.classes_ = np.asarray([0, 1])
            out.model.t_ = 1.0 + out.seen
        for key, (shown, used) in data["items"].items():
            out.item_shown[key], out.item_used[key] = shown, used
        for user, (shown, used) in data["users"].items():
            out.user_shown[user], out.user_used[user] = shown, used
        return out
