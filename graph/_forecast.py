"""
NeedsForecaster: P(need is used next turn), learned from the state forecast, the
state-to-need model and persistence.
"""

from __future__ import annotations

import functools
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
    "persist",
    "persist_prev",
    "same_state",
    "top_state",
    "prior",
    "bias_forecast_zero",
    "text_assoc",
    "after_forecast",
    "after_top",
    "after_seq",
    "persist_earlier",
    "direct",
    "after_flat",
    "need_assoc",
    "since_used",
    "dwell",
    "cooc",
    "assoc_lift",
    "assoc_relative",
    "after_stay",
)
_CURRENT, _PREVIOUS, _EARLIER = (
    _FEATURES.index(name) for name in ("persist", "persist_prev", "persist_earlier")
)
#: The features that are probabilities or rates: the mixer also sees their logs.
_LOGGED = [
    i
    for i, name in enumerate(_FEATURES)
    if not name.startswith(("persist", "bias_", "dwell", "assoc_lift"))
]
#: Width of :func:`_design`: the features and the logs of :data:`_LOGGED`, in all and
#: in three regimes.
_N_DESIGN = (len(_FEATURES) + len(_LOGGED)) * 4
_FORMAT = "graph.needs-forecaster"
_VERSION = 4
#: Share of the negative rows (needs the next turn did not use) that train the mixer;
#: they are weighted back up, so the fit is that of all rows at a fraction of the cost
#: (there are about 50 negatives to a positive; on SGD 0.1 and 0.3 fit equally well).
_NEGATIVE_SHARE = 0.1
_ASSOC_PRIOR = 10.0
_ASSOC_TOP = 8
#: Needs an association may add to the candidates (see :func:`_strongest`).
_CANDIDATES = 20


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
    out.update("n:" + need for need in _needs_of(item))
    return out


def _stay(history: Sequence[Item]) -> tuple[int, str]:
    """
    How many turns the session has stayed in the state of its last turn, and the
    :meth:`NeedsAfter.needs_key` of the needs it used in them.
    """
    state = state_of(history[-1])
    turns = 0
    used: set[str] = set()
    for item in reversed(history):
        if state_of(item) != state:
            break
        turns += 1
        used.update(_needs_of(item))
    return turns, NeedsAfter.needs_key(used)


def _design(feats: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """
    The mixer's inputs for candidate rows of :data:`_FEATURES`: each feature and the
    log of each probability among them (:data:`_LOGGED`), once for every candidate and
    again for each regime it is in (used this turn; used the turn before but not this
    one; used earlier in the session only), so persisting, returning and new needs
    each weigh the evidence their own way.
    """
    base = np.hstack([feats, np.log(feats[:, _LOGGED] + 1e-4)])
    current = feats[:, _CURRENT] > 0
    previous = (feats[:, _PREVIOUS] > 0) & ~current
    earlier = (feats[:, _EARLIER] > 0) & ~current & ~previous
    return np.hstack(
        [base, base * current[:, None], base * previous[:, None], base * earlier[:, None]]
    )


def _fit_mixer(
    rows: np.ndarray[Any, np.dtype[np.float64]], labels: list[int], C: float
) -> tuple[tuple[float, ...], float]:
    """
    Fit the logistic mixer on standardized :func:`_design` inputs (a share of the
    negatives, weighted back) and return its coefficients on the raw inputs.
    """
    y = np.asarray(labels)
    keep = (y == 1) | (np.random.default_rng(0).random(len(y)) < _NEGATIVE_SHARE)
    x = _design(rows[keep])
    y = y[keep]
    weight = np.where(y == 1, 1.0, 1.0 / _NEGATIVE_SHARE)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0.0] = 1.0
    lr = LogisticRegression(C=C, max_iter=2000)
    lr.fit((x - mean) / scale, y, sample_weight=weight)
    coef = lr.coef_[0] / scale
    intercept = float(lr.intercept_[0] - coef @ mean)
    return tuple(float(c) for c in coef), intercept


def _relative(need: str, parts: Sequence[str]) -> str:
    """
    ``need`` with every ``:``-separated segment that names a part of the current state
    replaced by ``@i`` (``db:Hotels_1:SearchHotel`` in ``Hotels_1:SearchHotel`` is
    ``db:@0:@1``): what a word says about the next need ("confirm": the current task's
    booking) carries over from one task to the next.
    """
    return ":".join(f"@{parts.index(seg)}" if seg in parts else seg for seg in need.split(":"))


@functools.lru_cache(maxsize=1 << 16)
def _absolute(relative: str, parts: tuple[str, ...]) -> str | None:
    """
    The inverse of :func:`_relative` for the current state's ``parts`` (None when it
    names a part the state does not have).
    """
    out: list[str] = []
    for seg in relative.split(":"):
        if seg.startswith("@") and seg[1:].isdigit():
            i = int(seg[1:])
            if i >= len(parts):
                return None
            seg = parts[i]
        out.append(seg)
    return ":".join(out)


def _strongest(scores: dict[str, float]) -> set[str]:
    """
    The :data:`_CANDIDATES` needs of ``scores`` scoring most: the associations name
    many needs weakly, and each candidate costs a row of features.
    """
    if len(scores) <= _CANDIDATES:
        return set(scores)
    return {need for need, _ in heapq.nlargest(_CANDIDATES, scores.items(), key=_score_then_name)}


def _score_then_name(item: tuple[str, float]) -> tuple[float, str]:
    return (item[1], item[0])


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
    word w, next turn used need n", smoothed; the strongest word counts, and the sum of
    the words' log-lifts). The words are also associated with the need *relative to the
    current state* (``db:@0:@1``: "the current task's booking"), which carries what a
    word means from one task to the next. The strongest features come from
    :class:`NeedsAfter`: the expected use under the forecast of P(need | this state,
    this turn's needs, next state) (as forecast, under a flattened forecast, under the
    sequence forecast alone when text was blended in, and for the top state), and
    P(need next | this state, this turn's needs) without any forecast, and the same given
    every need used since the session entered this state (which slots a task asked for
    already says which it asks for next). Then: whether and
    how recently the session used the need, its association with this turn's needs,
    how long the session has stayed in this state, and how often sessions that used
    the needs used so far went on to use it. A logistic regression on the features and
    their logs, with its own weights for needs used this turn, the turn before and
    earlier (see :func:`_design`), fit on held-out sessions, turns them into P(need used
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
        self.mixer_: tuple[tuple[float, ...], float] | None = None
        if held:
            rows: list[np.ndarray[Any, np.dtype[np.float64]]] = []
            labels: list[int] = []
            mixer_turns = 0
            for session in held:
                if self.max_mixer_turns is not None and mixer_turns >= self.max_mixer_turns:
                    break  # enough rows for a handful of coefficients
                items, user = session_parts(session)
                mixer_turns += len(items)
                for i in range(1, len(items)):
                    target = set(_needs_of(items[i]))
                    names, feats = self._candidates(items[:i], user)
                    rows.append(feats)
                    labels.extend(int(need in target) for need in names)
            if len(set(labels)) == 2:
                self.mixer_ = _fit_mixer(np.vstack(rows), labels, self.C)
            self.predictor_.partial_fit(held)
            self.needs_.partial_fit(held)
            self._count_prior(held, reset=False)
            self._count_assoc(held, reset=False)
        self._assoc_top.clear()  # cached while fitting the mixer: recompute on the counts
        return self

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
                so_far.update(_needs_of(items[i - 1]))
                self._assoc_turn(items[:i], items[i], so_far)

    def _assoc_turn(self, history: Sequence[Item], nxt: Item, so_far: set[str]) -> None:
        """
        Count one transition from the last turn of ``history`` to ``nxt``: the next
        turn's needs against the words, state and needs of the last turn (tokens
        ``u:``, ``a:``, ``s:``, ``n:``), and the needs it uses for the first time in the
        session against every need used so far (``c:``).
        """
        prev = history[-1]
        needs = _needs_of(nxt)
        nxt_state = state_of(nxt)
        if nxt_state is not None:
            key = NeedsAfter.needs_key(_needs_of(prev))
            self.after_.observe(state_of(prev), key, nxt_state, needs, stay_key=_stay(history)[1])
        fresh = tuple(need for need in needs if need not in so_far)
        tokens = _turn_tokens(prev)
        self._count_tokens(tokens, needs)
        self._count_tokens(("c:" + need for need in so_far), fresh)
        state = state_of(prev)
        if state is not None:
            parts = state.split(":")
            words = ("r" + t for t in tokens if t.startswith(("u:", "a:")))
            self._count_tokens(words, tuple(_relative(need, parts) for need in needs))

    def _count_tokens(self, tokens: Iterable[str], needs: Sequence[str]) -> None:
        turns, assoc, top = self.token_turns_, self.assoc_, self._assoc_top
        for token in tokens:
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
            so_far = {need for item in history_turns[:-1] for need in _needs_of(item)}
            self._assoc_turn(history_turns[:-1], last, so_far)
        return self

    def _candidates(
        self, history: Sequence[Item], user: str | None
    ) -> tuple[list[str], np.ndarray[Any, np.dtype[np.float64]]]:
        forecast = self.predictor_.predict_proba(history, k=self.n_states, user=user)
        expected = dict(self.needs_.predict_proba(forecast))
        current = set(_needs_of(history[-1])) if history else set()
        previous = set(_needs_of(history[-2])) if len(history) >= 2 else set()
        state = state_of(history[-1]) if history else None
        same = dict(self.needs_.needs_given(state)) if state is not None else {}
        top = dict(self.needs_.needs_given(forecast[0][0])) if forecast else {}
        n = max(self.n_turns_, 1.0)
        assoc: dict[str, float] = {}
        need_assoc: dict[str, float] = {}
        lift: dict[str, float] = {}
        tokens = sorted(_turn_tokens(history[-1])) if history else []  # a fixed sum order
        if history:
            rate = self.need_turns_
            for token in tokens:
                into = need_assoc if token.startswith("n:") else assoc
                for need, a in self._assoc_of(token):
                    if a > into.get(need, 0.0):
                        into[need] = a
                    if into is assoc:
                        base = (rate.get(need, 0.0) + 1.0) / n
                        lift[need] = lift.get(need, 0.0) + math.log(max(a / base, 1.0))
        after: dict[str, float] = {}
        after_top: dict[str, float] = {}
        after_seq: dict[str, float] = {}
        after_flat: dict[str, float] = {}
        earlier: set[str] = set()
        direct: dict[str, float] = {}
        stay: dict[str, float] = {}
        since: dict[str, float] = {}
        dwell = 0
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
            for gap, item in enumerate(reversed(history)):
                for need in _needs_of(item):
                    since.setdefault(need, 1.0 / (1.0 + gap))
            dwell, stay_key = _stay(history)
            if state is not None:
                direct = dict(self.after_.direct(state, needs_key))
                stay = dict(self.after_.after_stay(state, stay_key))
        # The words' associations with needs relative to the state (see _relative).
        relative: dict[str, float] = {}
        if history and state is not None:
            by_relative: dict[str, float] = {}
            for token in tokens:
                if token.startswith(("u:", "a:")):
                    for rel, a in self._assoc_of("r" + token):
                        if a > by_relative.get(rel, 0.0):
                            by_relative[rel] = a
            parts = tuple(state.split(":"))
            for rel, a in by_relative.items():
                need_of = _absolute(rel, parts)  # "task:@0" and "task:X" can meet
                if need_of is not None and a > relative.get(need_of, 0.0):
                    relative[need_of] = a
        # Needs a session tends to reach later, given the needs it has used so far.
        cooc: dict[str, float] = {}
        so_far = {need for item in history for need in _needs_of(item)}
        for used in so_far:
            for need, a in self._assoc_of("c:" + used):
                if need not in so_far and a > cooc.get(need, 0.0):
                    cooc[need] = a
        names = sorted(  # a fixed order: the mixer's fit subsamples rows by position
            expected.keys()
            | current
            | previous
            | same.keys()
            | after.keys()
            | direct.keys()
            | _strongest(assoc)
            | _strongest(need_assoc)
            | _strongest(relative)
        )

        def col(values: Mapping[str, float]) -> list[float]:
            return [values.get(need, 0.0) for need in names]

        def member(needs: set[str]) -> list[float]:
            return [1.0 if need in needs else 0.0 for need in names]

        f = np.array(col(expected))
        g = np.array(col(after))
        feats = np.column_stack(  # in the order of _FEATURES
            [
                f,
                member(current),
                member(previous),
                col(same),
                col(top),
                np.array(col(self.need_turns_)) / n,
                (f == 0.0).astype(np.float64),
                col(assoc),
                g,
                col(after_top),
                col(after_seq),
                member(earlier),
                col(direct),
                col(after_flat),
                col(need_assoc),
                col(since),
                np.full(len(names), math.log1p(dwell)),
                col(cooc),
                col(lift),
                col(relative),
                col(stay),
            ]
        )
        return names, feats

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
        names, feats = self._candidates(history_turns, user)
        if not names:
            return []
        mixer = self.mixer_
        if mixer is None:
            p = 0.5 * feats[:, 0] + 0.5 * feats[:, 2]
        else:
            z = _design(feats) @ np.asarray(mixer[0], dtype=np.float64) + mixer[1]
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
            if model.mixer_ is not None and len(model.mixer_[0]) != _N_DESIGN:
                raise ModelFileError(
                    source, f"mixer has {len(model.mixer_[0])} coefficients, not {_N_DESIGN}"
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
