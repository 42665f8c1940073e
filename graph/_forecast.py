"""
NeedsForecaster: P(need is used next turn), learned from the state forecast, the
state-to-need model and persistence.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from ._after import NeedsAfter
from ._errors import ModelFileError
from ._graph import check_document
from ._needs import NeedsModel
from ._predictor import FollowUpPredictor
from ._seq import Item, session_parts, state_of
from ._text import _words

__all__ = ["NeedsForecaster"]

_FEATURES = (
    "forecast",
    "log_forecast",
    "persist",
    "persist_prev",
    "same_state",
    "top_state",
    "prior",
    "bias_forecast_zero",
    "text_assoc",
    "after_forecast",
    "log_after_forecast",
    "after_top",
    "after_seq",
    "persist_earlier",
    "direct",
    "after_flat",
)
_FORMAT = "graph.needs-forecaster"
_VERSION = 2
_ASSOC_PRIOR = 10.0
_ASSOC_TOP = 8


def _turn_tokens(item: Item) -> set[str]:
    """Words of a turn's request (``u:``) and reply (``a:``), and its state."""
    out: set[str] = set()
    if isinstance(item, Mapping):
        text = item.get("text")
        if isinstance(text, str):
            out.update("u:" + w for w in _words(text))
        reply = item.get("system")
        if isinstance(reply, str):
            out.update("a:" + w for w in _words(reply))
    state = state_of(item)
    if state is not None:
        out.add("s:" + state)
    return out


def _rank_key(item: tuple[str, float]) -> tuple[float, str]:
    return (-item[1], item[0])


def _needs_of(item: Item) -> tuple[str, ...]:
    if isinstance(item, Mapping):
        needs = item.get("needs")
        if isinstance(needs, (list, tuple)):
            return tuple(str(n) for n in needs)
    return ()


class NeedsForecaster(BaseEstimator):
    """
    Forecast which information needs the next turn will use.

    Every candidate need (from the state forecast, the current and previous turns, and
    the current state) gets features: the expected use under the state forecast
    (``sum_s P(s) P(need|s)``), whether this turn and the previous one used it,
    P(need | current state), P(need | most likely next state), its base rate, and its
    association with the words of this turn's request and reply (counts of "turn had
    word w, next turn used need n", smoothed; the strongest word counts). The
    strongest features come from :class:`NeedsAfter`: the expected use under the
    forecast of P(need | this state, this turn's needs, next state) (as forecast, under
    a flattened forecast, under the sequence forecast alone when text was blended in,
    and for the top state), and P(need next | this state, this turn's needs) without
    any forecast. Whether an earlier turn of the session used the need is one more. A
    logistic regression, fit on held-out sessions, turns them into P(need used next).

    Args:
        predictor: The state forecast (cloned; default ``FollowUpPredictor(order=3)``).
        n_states: How many forecast states feed the expected use.
        holdout: Fraction of sessions held out to fit the mixing model.
        C: Inverse regularisation of the mixing model.
        max_mixer_turns: At most this many held-out turns train the mixing model (all
            of them are learned by the other parts).

    Attributes:
        predictor_: The fitted state forecast.
        needs_: The fitted :class:`NeedsModel`.
        after_: The fitted :class:`NeedsAfter`.
        mixer_: ``(coefficients, intercept)`` of the mixing model, or None before there
            was enough data (then the raw features are averaged).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        *,
        predictor: FollowUpPredictor | None = None,
        n_states: int = 10,
        holdout: float = 0.15,
        C: float = 1.0,
        max_mixer_turns: int = 5000,
    ) -> None:
        self.predictor = predictor
        self.n_states = n_states
        self.holdout = holdout
        self.C = C
        self.max_mixer_turns = max_mixer_turns

    def _new_predictor(self) -> FollowUpPredictor:
        base = self.predictor if self.predictor is not None else FollowUpPredictor(order=3)
        model: FollowUpPredictor = clone(base)
        return model

    def fit(self, X: Iterable[Any], y: object = None) -> NeedsForecaster:
        """
        Learn the state forecast, P(need | state) and the mixing from sessions.

        Args:
            X: Sessions of turn mappings (``state``, ``needs``, optionally ``text`` and
                ``system``), or session mappings.
            y: Ignored.

        Returns:
            ``self``.
        """
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout!r}")
        sessions = list(X)
        every = round(1.0 / self.holdout) if self.holdout > 0 else 0
        is_held = [bool(every) and i % every == every // 2 for i in range(len(sessions))]
        train = [s for s, h in zip(sessions, is_held, strict=True) if not h]
        held = [s for s, h in zip(sessions, is_held, strict=True) if h]
        self.predictor_ = self._new_predictor().fit(train)
        self.needs_ = NeedsModel().fit(train)
        self._count_prior(train, reset=True)
        self._count_assoc(train, reset=True)
        self.mixer_: tuple[tuple[float, ...], float] | None = None
        if held:
            rows: list[list[float]] = []
            labels: list[int] = []
            mixer_turns = 0
            for session in held:
                if mixer_turns >= self.max_mixer_turns:
                    break  # enough rows for a handful of coefficients
                items, user = session_parts(session)
                mixer_turns += len(items)
                for i in range(1, len(items)):
                    target = set(_needs_of(items[i]))
                    for need, feats in self._candidates(items[:i], user):
                        rows.append(feats)
                        labels.append(int(need in target))
            if len(set(labels)) == 2:
                lr = LogisticRegression(C=self.C, max_iter=1000)
                lr.fit(np.asarray(rows), np.asarray(labels))
                self.mixer_ = (
                    tuple(float(c) for c in lr.coef_[0]),
                    float(lr.intercept_[0]),
                )
            self.predictor_.partial_fit(held)
            self.needs_.partial_fit(held)
            self._count_prior(held, reset=False)
            self._count_assoc(held, reset=False)
        return self

    def _count_assoc(self, sessions: Iterable[Any], *, reset: bool) -> None:
        if reset:
            self.token_turns_: dict[str, float] = {}
            self.assoc_: dict[str, dict[str, float]] = {}
            self._assoc_top: dict[str, tuple[tuple[str, float], ...]] = {}
            self.after_ = NeedsAfter()
        for session in sessions:
            items, _ = session_parts(session)
            for i in range(1, len(items)):
                self._assoc_turn(items[i - 1], items[i])

    def _assoc_turn(self, prev: Item, nxt: Item) -> None:
        needs = _needs_of(nxt)
        nxt_state = state_of(nxt)
        if nxt_state is not None:
            key = NeedsAfter.needs_key(_needs_of(prev))
            self.after_.observe(state_of(prev), key, nxt_state, needs)
        turns, assoc, top = self.token_turns_, self.assoc_, self._assoc_top
        for token in _turn_tokens(prev):
            seen = turns.get(token, 0.0) + 1.0
            turns[token] = seen
            row = assoc.setdefault(token, {})
            for need in needs:
                row[need] = row.get(need, 0.0) + 1.0
            # A token's top needs change slowly once it is common: refresh them on
            # powers of two of its count and every 64 turns after that, not every turn.
            n = int(seen)
            if n < 64 and n & (n - 1) == 0 or n % 64 == 0:
                top.pop(token, None)

    def _assoc_of(self, token: str) -> tuple[tuple[str, float], ...]:
        hit = self._assoc_top.get(token)
        if hit is None:
            row = self.assoc_.get(token, {})
            denom = self.token_turns_.get(token, 0.0) + _ASSOC_PRIOR
            best = heapq.nlargest(_ASSOC_TOP, row.items(), key=itemgetter(1))
            hit = tuple((need, c / denom) for need, c in best)
            self._assoc_top[token] = hit
        return hit

    def _count_prior(self, sessions: Iterable[Any], *, reset: bool) -> None:
        if reset:
            self.need_turns_: dict[str, float] = {}
            self.n_turns_ = 0.0
        for session in sessions:
            items, _ = session_parts(session)
            for item in items:
                self._count_turn(item)

    def _count_turn(self, item: Item) -> None:
        self.n_turns_ += 1.0
        for need in dict.fromkeys(_needs_of(item)):
            self.need_turns_[need] = self.need_turns_.get(need, 0.0) + 1.0

    def observe(self, history_turns: Sequence[Item], user: str | None = None) -> NeedsForecaster:
        """
        Learn online from the turn just appended to ``history_turns``.

        Args:
            history_turns: The session's turns so far, the new one last.
            user: The session's user, if known.

        Returns:
            ``self``.
        """
        if "predictor_" not in self.__dict__:  # fast path of check_is_fitted (hot loop)
            check_is_fitted(self)
        if not history_turns:
            return self
        self.predictor_.observe(history_turns, user=user)
        last = history_turns[-1]
        state = state_of(last)
        if state is not None:
            self.needs_.observe(state, _needs_of(last))
        self._count_turn(last)
        if len(history_turns) >= 2:
            self._assoc_turn(history_turns[-2], last)
        return self

    def _candidates(
        self, history: Sequence[Item], user: str | None
    ) -> list[tuple[str, list[float]]]:
        forecast = self.predictor_.predict_proba(history, k=self.n_states, user=user)
        expected = dict(self.needs_.predict_proba(forecast))
        current = set(_needs_of(history[-1])) if history else set()
        previous = set(_needs_of(history[-2])) if len(history) >= 2 else set()
        state = state_of(history[-1]) if history else None
        same = dict(self.needs_.needs_given(state)) if state is not None else {}
        top = dict(self.needs_.needs_given(forecast[0][0])) if forecast else {}
        n = max(self.n_turns_, 1.0)
        assoc: dict[str, float] = {}
        if history:
            for token in _turn_tokens(history[-1]):
                for need, a in self._assoc_of(token):
                    if a > assoc.get(need, 0.0):
                        assoc[need] = a
        after: dict[str, float] = {}
        after_top: dict[str, float] = {}
        after_seq: dict[str, float] = {}
        after_flat: dict[str, float] = {}
        earlier: set[str] = set()
        direct: dict[str, float] = {}
        if history:
            needs_key = NeedsAfter.needs_key(current)
            given = self.after_.given
            # The same under a flattened forecast (square roots of its probabilities):
            # the forecast is often surer than it should be when the session moves on.
            flat_total = sum(math.sqrt(p) for _, p in forecast) or 1.0
            for i, (nxt, p) in enumerate(forecast):
                dist = given(state, needs_key, nxt)
                if i == 0:
                    after_top = dict(dist)
                w = math.sqrt(p) / flat_total
                for need, q in dist:
                    after[need] = after.get(need, 0.0) + p * q
                    after_flat[need] = after_flat.get(need, 0.0) + w * q
            # The sequence forecast alone, when the text one was blended in: the two
            # err on different turns, and the mixer learns how far to trust each.
            seq = self.predictor_.sequence_forecast(history, self.n_states, user)
            if seq is None:
                after_seq = after
            else:
                for nxt, p in seq:
                    for need, q in given(state, needs_key, nxt):
                        after_seq[need] = after_seq.get(need, 0.0) + p * q
            for item in history[:-2]:
                earlier.update(_needs_of(item))
            if state is not None:
                direct = dict(self.after_.direct(state, needs_key))
        out: list[tuple[str, list[float]]] = []
        for need in (
            expected.keys()
            | current
            | previous
            | same.keys()
            | assoc.keys()
            | after.keys()
            | direct.keys()
        ):
            f = expected.get(need, 0.0)
            g = after.get(need, 0.0)
            out.append(
                (
                    need,
                    [
                        f,
                        math.log(f + 1e-4),
                        float(need in current),
                        float(need in previous),
                        same.get(need, 0.0),
                        top.get(need, 0.0),
                        self.need_turns_.get(need, 0.0) / n,
                        float(f == 0.0),
                        assoc.get(need, 0.0),
                        g,
                        math.log(g + 1e-4),
                        after_top.get(need, 0.0),
                        after_seq.get(need, 0.0),
                        float(need in earlier),
                        direct.get(need, 0.0),
                        after_flat.get(need, 0.0),
                    ],
                )
            )
        return out

    def predict_proba(
        self, history_turns: Sequence[Item], k: int | None = 5, user: str | None = None
    ) -> list[tuple[str, float]]:
        """
        Return P(need is used next turn) for the likeliest needs.

        Args:
            history_turns: The session's turns so far, including the current one.
            k: How many needs to return; None for every candidate.
            user: The session's user, if known.

        Returns:
            ``(need, probability)`` pairs, most probable first.
        """
        if "predictor_" not in self.__dict__:  # fast path of check_is_fitted (hot loop)
            check_is_fitted(self)
        candidates = self._candidates(history_turns, user)
        if not candidates:
            return []
        names = [need for need, _ in candidates]
        feats = np.array([f for _, f in candidates], dtype=np.float64)
        mixer = self.mixer_
        if mixer is None:
            p = 0.5 * feats[:, 0] + 0.5 * feats[:, 2]
        else:
            z = feats @ np.asarray(mixer[0], dtype=np.float64) + mixer[1]
            p = 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))
        scored = list(zip(names, p.tolist(), strict=True))
        if k is not None and k < len(scored):
            return heapq.nsmallest(k, scored, key=_rank_key)
        scored.sort(key=_rank_key)
        return scored

    def to_json(self) -> dict[str, Any]:
        """
        Return the fitted forecaster as a JSON-ready dict (no pickle).
        """
        check_is_fitted(self)
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "params": {
                "n_states": self.n_states,
                "holdout": self.holdout,
                "C": self.C,
                "max_mixer_turns": self.max_mixer_turns,
            },
            "predictor": self.predictor_.to_json(),
            "needs": self.needs_.to_json(),
            "mixer": None if self.mixer_ is None else [list(self.mixer_[0]), self.mixer_[1]],
            "n_turns": self.n_turns_,
            "need_turns": self.need_turns_,
            "token_turns": self.token_turns_,
            "assoc": self.assoc_,
            "after": self.after_.to_json(),
        }

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], *, source: str | Path = "<json>"
    ) -> NeedsForecaster:
        """
        Rebuild a forecaster from :meth:`to_json` output.

        Raises:
            ModelFileError: The data is corrupt or of an unknown version.
        """
        check_document(data, _FORMAT, _VERSION, source)
        try:
            predictor = FollowUpPredictor.from_json(data["predictor"], source=source)
            model = cls(predictor=clone(predictor), **data["params"])
            model.predictor_ = predictor
            model.needs_ = NeedsModel.from_json(data["needs"], source=source)
            mixer = data["mixer"]
            model.mixer_ = (
                None if mixer is None else (tuple(float(c) for c in mixer[0]), float(mixer[1]))
            )
            model.n_turns_ = float(data["n_turns"])
            model.need_turns_ = {str(k): float(v) for k, v in data["need_turns"].items()}
            model.token_turns_ = {str(k): float(v) for k, v in data["token_turns"].items()}
            model.assoc_ = {
                str(t): {str(n): float(c) for n, c in row.items()}
                for t, row in data["assoc"].items()
            }
            model._assoc_top = {}
            model.after_ = NeedsAfter.from_json(data["after"])
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ModelFileError(source, f"corrupt needs-forecaster data ({exc})") from exc
        return model
