"""
NeedsForecaster: forecasts which information needs the next turn of a session will
use, P(need used next turn), by mixing the state forecast, the state-to-need model, the
transition-to-need model, persistence and the words of the request and the reply.

The candidate needs and their features are in :mod:`graph._needs_features`, the
mixing model in :mod:`graph._needs_mixer`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from ._errors import ModelFileError
from ._needs_features import (
    Column,
    candidate_names,
    cooc_columns,
    feature_rows,
    relative_columns,
    relative_needs,
    session_columns,
    state_columns,
    stay,
    transition_columns,
    turn_tokens,
    word_columns,
)
from ._needs_mixer import N_DESIGN, Mixer, fit_mixer, mix
from ._persistence import check_document, map_corrupt_data, number
from ._predictor import FollowUpPredictor
from ._sessions import READ_TURNS, Item, latest, needs_of, session_parts, state_of
from ._state_needs import NeedsModel
from ._transition_needs import NeedsAfter

__all__ = ["NeedsForecaster"]

_FORMAT = "graph.needs-forecaster"
_VERSION = 4
_ASSOC_PRIOR = 10.0
_ASSOC_TOP = 8
_FeatureMatrix: TypeAlias = "np.ndarray[Any, np.dtype[np.float64]]"


def _rank_key(item: tuple[str, float]) -> tuple[float, str]:
    return (-item[1], item[0])


class NeedsForecaster(BaseEstimator):
    """
    Forecast which information needs the next turn will use.

    Every candidate need (from the state forecast, the current and previous turns, and
    the current state) gets features: the expected use under the state forecast
    (``sum_s P(s) P(need|s)``), whether this turn and the previous one used it,
    P(need | current state), P(need | most likely next state), its base rate, and its
    association with the words of this turn's request and reply (counts of "turn had
    word w, next turn used need n", smoothed; the strongest word counts, and the sum of
    the words' log-lifts). The words are also associated with the need *relative to the
    current state* (``db:@0:@1``: "the current task's booking"), which carries what a
    word means from one task to the next. The strongest features come from
    :class:`NeedsAfter`: the expected use under the forecast of P(need | this state,
    this turn's needs, next state) (as forecast, under a flattened forecast, under the
    sequence forecast alone when text was blended in, and for the top state), and
    P(need next | this state, this turn's needs) without any forecast, and the same given
    every need used since the session entered this state (which slots a task asked for
    already says which it asks for next). Then: whether and how recently the session
    used the need, its association with this turn's needs, how long the session has
    stayed in this state, and how often sessions that used the needs used so far went
    on to use it. A logistic regression on the features and their logs, with its own
    weights for needs used this turn, the turn before and earlier (see
    :mod:`graph._needs_mixer`), fit on held-out sessions, turns them into P(need used
    next).

    Args:
        predictor: The state forecast (cloned; default ``FollowUpPredictor(order=3)``).
        n_states: How many forecast states feed the expected use.
        holdout: Fraction of sessions held out to fit the mixing model.
        C: Inverse regularisation of the mixing model.
        max_mixer_turns: At most this many held-out turns train the mixing model (None:
            all of them; the other parts learn from all of them in any case). The
            mixer weighs about 150 inputs, and on SGD it kept improving up to 20,000
            turns; a cap bounds the fit's time.

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
        max_mixer_turns: int | None = None,
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
        self.mixer_: Mixer | None = None
        if held:
            rows, labels = self._mixer_rows(held)
            if len(set(labels)) == 2:
                self.mixer_ = fit_mixer(np.vstack(rows), labels, self.C)
            self.predictor_.partial_fit(held)
            self.needs_.partial_fit(held)
            self._count_prior(held, reset=False)
            self._count_assoc(held, reset=False)
        self._assoc_top.clear()  # cached while fitting the mixer: recompute on the counts
        return self

    def _mixer_rows(self, held: list[Any]) -> tuple[list[_FeatureMatrix], list[int]]:
        """
        The feature rows of every turn after the first of the held-out sessions (up to
        ``max_mixer_turns`` turns), and whether the next turn used each candidate.
        """
        rows: list[_FeatureMatrix] = []
        labels: list[int] = []
        mixer_turns = 0
        for session in held:
            if self.max_mixer_turns is not None and mixer_turns >= self.max_mixer_turns:
                break  # enough rows for a handful of coefficients
            items, user = session_parts(session)
            mixer_turns += len(items)
            for i in range(1, len(items)):
                target = set(needs_of(items[i]))
                names, feats = self._candidates(items[max(0, i - READ_TURNS) : i], user)
                rows.append(feats)
                labels.extend(int(need in target) for need in names)
        return rows, labels

    def _count_assoc(self, sessions: Iterable[Any], *, reset: bool) -> None:
        if reset:
            self.token_turns_: dict[str, float] = {}
            self.assoc_: dict[str, dict[str, float]] = {}
            self._assoc_top: dict[str, tuple[tuple[str, float], ...]] = {}
            self.after_ = NeedsAfter()
        for session in sessions:
            items, _ = session_parts(session)
            so_far: set[str] = set()
            for i in range(1, len(items)):
                window = items[max(0, i - READ_TURNS) : i]  # as observe reads it
                if i <= READ_TURNS:
                    so_far.update(needs_of(items[i - 1]))
                else:
                    so_far = {need for item in window for need in needs_of(item)}
                self._assoc_turn(window, items[i], so_far)

    def _assoc_turn(self, history: Sequence[Item], nxt: Item, so_far: set[str]) -> None:
        """
        Count one transition from the last turn of ``history`` to ``nxt``: the next
        turn's needs against the words, state and needs of the last turn (tokens
        ``u:``, ``a:``, ``s:``, ``n:``), and the needs it uses for the first time in the
        session against every need used so far (``c:``).
        """
        prev = history[-1]
        needs = needs_of(nxt)
        nxt_state = state_of(nxt)
        if nxt_state is not None:
            key = NeedsAfter.needs_key(needs_of(prev))
            self.after_.observe(state_of(prev), key, nxt_state, needs, stay_key=stay(history)[1])
        fresh = tuple(need for need in needs if need not in so_far)
        tokens = turn_tokens(prev)
        self._count_tokens(tokens, needs)
        self._count_tokens(("c:" + need for need in so_far), fresh)
        state = state_of(prev)
        if state is not None:
            words = ("r" + t for t in tokens if t.startswith(("u:", "a:")))
            self._count_tokens(words, relative_needs(needs, state))

    def _count_tokens(self, tokens: Iterable[str], needs: Sequence[str]) -> None:
        turns, assoc, top = self.token_turns_, self.assoc_, self._assoc_top
        for token in tokens:
            seen = turns.get(token, 0) + 1
            turns[token] = seen
            row = assoc.setdefault(token, {})
            for need in needs:
                row[need] = row.get(need, 0) + 1
            # A token's top needs change slowly once it is common: refresh them on
            # powers of two of its count and every 64 turns after that, not every turn.
            n = int(seen)
            if n < 64 and n & (n - 1) == 0 or n % 64 == 0:
                top.pop(token, None)

    def _assoc_of(self, token: str) -> tuple[tuple[str, float], ...]:
        hit = self._assoc_top.get(token)
        if hit is None:
            row = self.assoc_.get(token)
            if not row:  # a word never counted: remembered, every new word would stay
                return ()
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
        for need in dict.fromkeys(needs_of(item)):
            self.need_turns_[need] = self.need_turns_.get(need, 0) + 1

    def observe(self, history_turns: Sequence[Item], user: str | None = None) -> NeedsForecaster:
        """
        Learn online from the turn just appended to ``history_turns``.

        Args:
            history_turns: The session's turns so far, the new one last (the latest
                :data:`~graph._sessions.READ_TURNS` are read, as in :meth:`fit`).
            user: The session's user, if known.

        Returns:
            ``self``.
        """
        if "predictor_" not in self.__dict__:  # fast path of check_is_fitted (hot loop)
            check_is_fitted(self)
        if not history_turns:
            return self
        history_turns = latest(history_turns)
        self.predictor_.observe(history_turns, user=user)
        last = history_turns[-1]
        state = state_of(last)
        if state is not None:
            self.needs_.observe(state, needs_of(last))
        self._count_turn(last)
        if len(history_turns) >= 2:
            so_far = {need for item in history_turns[:-1] for need in needs_of(item)}
            self._assoc_turn(history_turns[:-1], last, so_far)
        return self

    def _candidates(
        self, history: Sequence[Item], user: str | None
    ) -> tuple[list[str], _FeatureMatrix]:
        """
        The candidate needs for the turn after ``history`` and their feature rows (see
        :mod:`graph._needs_features`).
        """
        forecast = self.predictor_.predict_proba(history, k=self.n_states, user=user)
        columns: dict[str, Column] = state_columns(self.needs_, forecast, history)
        tokens = sorted(turn_tokens(history[-1])) if history else []  # a fixed sum order
        n = max(self.n_turns_, 1.0)
        columns.update(word_columns(self._assoc_of, tokens, self.need_turns_, n))
        dwell = 0
        if history:
            state = state_of(history[-1])
            needs_key = NeedsAfter.needs_key(columns["persist"])  # this turn's needs
            seq = self.predictor_.sequence_forecast(history, self.n_states, user)
            columns.update(transition_columns(self.after_, state, needs_key, forecast, seq))
            session, dwell = session_columns(self.after_, history, state, needs_key)
            columns.update(session)
            if state is not None:
                columns.update(relative_columns(self._assoc_of, tokens, state))
        columns.update(cooc_columns(self._assoc_of, history))
        names = candidate_names(columns)
        feats = feature_rows(names, columns, prior=self.need_turns_, n_turns=n, dwell=dwell)
        return names, feats

    def predict_proba(
        self, history_turns: Sequence[Item], k: int | None = 5, user: str | None = None
    ) -> list[tuple[str, float]]:
        """
        Return P(need is used next turn) for the likeliest needs.

        Args:
            history_turns: The session's turns so far, including the current one (the
                latest :data:`~graph._sessions.READ_TURNS` are read).
            k: How many needs to return; None for every candidate.
            user: The session's user, if known.

        Returns:
            ``(need, probability)`` pairs, most probable first.
        """
        if "predictor_" not in self.__dict__:  # fast path of check_is_fitted (hot loop)
            check_is_fitted(self)
        names, feats = self._candidates(latest(history_turns), user)
        if not names:
            return []
        p = mix(feats, self.mixer_)
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
        with map_corrupt_data(source, "needs-forecaster data"):
            predictor = FollowUpPredictor.from_json(data["predictor"], source=source)
            model = cls(predictor=clone(predictor), **data["params"])
            model.predictor_ = predictor
            model.needs_ = NeedsModel.from_json(data["needs"], source=source)
            mixer = data["mixer"]
            model.mixer_ = (
                None if mixer is None else (tuple(float(c) for c in mixer[0]), float(mixer[1]))
            )
            if model.mixer_ is not None and len(model.mixer_[0]) != N_DESIGN:
                raise ModelFileError(
                    source, f"mixer has {len(model.mixer_[0])} coefficients, not {N_DESIGN}"
                )
            model.n_turns_ = number(data["n_turns"])
            model.need_turns_ = {str(k): number(v) for k, v in data["need_turns"].items()}
            model.token_turns_ = {str(k): number(v) for k, v in data["token_turns"].items()}
            model.assoc_ = {
                str(t): {str(n): number(c) for n, c in row.items()}
                for t, row in data["assoc"].items()
            }
            model._assoc_top = {}
            model.after_ = NeedsAfter.from_json(data["after"])
        return model
