"""
FollowUpPredictor: forecasts the next state of a session from its states so far (a
variable-order Markov model over the pattern graph), blended with the text forecast
when the turns carry words.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ._keys import BOS, check_name
from ._persistence import JsonModel, check_document, map_corrupt_data
from ._seq_counts import SeqCounts
from ._seq_mixture import N_BUCKETS_PER_LEVEL
from ._seq_tuning import (
    DEFAULT_DISCOUNT,
    DEFAULT_METHOD,
    DEFAULT_ORDER,
    DISCOUNTS,
    MAX_ORDER,
    METHODS,
    MIN_SESSIONS,
    Choice,
    search,
)
from ._seq_windows import Windows
from ._sessions import (
    Item,
    has_text,
    latest,
    session_parts,
    state_of,
    states_of,
    validate_states,
)
from ._text_blend import N_RERANK, WIDEN, combine, learn_combination
from ._text_states import TextForecaster

if TYPE_CHECKING:
    from ._graph import PatternGraph

__all__ = ["FollowUpPredictor"]

_FORMAT = "graph.FollowUpPredictor"
_VERSION = 3  # 2: the learned order_, method_, discount_, mixture_ and the search's summary
# 3: the summary says why time decay was or was not taken
_AUTO = "auto"


class FollowUpPredictor(JsonModel, BaseEstimator):
    """
    Forecast the next state of a session from the states so far.

    A variable-order Markov model over a :class:`PatternGraph`: contexts of the last
    1..``order`` states (and the session-start context) blend down to the unigram with
    interpolated Kneser-Ney (``method="kn"``), absolute discounting (``"ad"``), PPM-C
    escapes (``"ppm"``) or a mixture whose weights depend on each context's evidence
    (``"mix"``: its length, total count and count per distinct follower; see
    :mod:`graph._seq_mixture`). When a session names its ``user``, the user's own
    transitions are blended with the global ones.

    With ``order``, ``method`` or ``discount`` left at ``"auto"`` (the default),
    :meth:`fit` chooses them: it counts the transitions once, up to order
    :data:`~graph._seq_tuning.MAX_ORDER`, on all but a held-out part of the sessions
    (the last ones and every 13th earlier one, or 5 folds when those hold fewer than
    3,000 turns), scores every candidate order, blending and discount on the held-out
    turns from those counts (top-3 hits first, then log-loss; the simplest candidate
    within one standard error of the best wins), tries time decay for it when the log
    drifts (see ``half_life``; never with folds), then counts all the sessions. With
    2,000 held-out turns or more the candidates are raced: every one is scored on an
    evenly spread sample of about 1,000 of them, and only the few that lead (the
    best, and of those within two standard errors of it, the best top-3 and the lowest
    log-loss of each order up to the best's) on the rest as well. An
    explicit value is kept and only the others are searched (``half_life=None`` as
    well, for a fit that searches nothing). With fewer than 20
    sessions there is nothing to validate on: the defaults ``order=2``, ``"kn"``,
    ``discount=0.75`` are used, with a warning when the order was to be chosen
    (silently when only the smoothing was, and for ``fit([])``, which starts an empty
    model). :meth:`explain` says what was chosen and why.

    Args:
        order: The longest context, in states, or ``"auto"``.
        method: ``"kn"``, ``"ad"``, ``"ppm"``, ``"mix"`` or ``"auto"``. ``"mix"`` learns
            its weights on held-out turns (and falls back to PPM-C's escapes without
            them).
        discount: The absolute discount of ``"kn"`` and ``"ad"`` (0 < discount < 1),
            or ``"auto"``.
        half_life: Time decay: counts halve every ``half_life`` observed turns.
            None keeps every count forever. ``"auto"`` (the default) lets the search
            decide, when the log drifts (the newest of 8 equal parts of the training
            transitions forecasts the last sessions better than every older part: a
            log sorted by task rather than time does not pass), by trying half-lives
            of 1/64, 1/16 and 1/4 of the training transitions on the last sessions
            for the chosen candidate; one is kept only if it wins by more than a
            standard error.
        max_edges: Cap on stored transitions; the rarest long-context ones are pruned
            beyond it. None (the default) for no cap.
        user_weight: Pseudo-count of the global model against a user's own: a user with
            ``n`` observed turns gets weight ``n / (n + user_weight)``. 0 disables
            per-user blending.
        user_order: The context length of the per-user models.
        text: Learn a :class:`TextForecaster` when the training turns carry ``text`` or
            ``system`` and blend it in when the history's last turn does.
        text_alpha: Regularisation of the text model.
        text_epochs: Passes of the text model over the data in the first fit.
        holdout: Fraction of the first fit's sessions held out to learn the blend weight
            of the text forecast (the held-out sessions are learned afterwards).

    Attributes:
        order_: The longest context used (chosen, given or the default).
        method_: The blending used.
        discount_: The discount used (by ``"kn"`` and ``"ad"``).
        mixture_: The learned weights of ``"mix"``, else None.
        tuning_: What the search chose and on what evidence (a
            :class:`~graph._seq_tuning.Choice`), or None when nothing was searched.
        counts_: The global count store (its ``graph`` is the :class:`PatternGraph`).
        user_counts_: Per-user count stores.
        n_sessions_: Sessions learned from.
        text_: The text forecast, or None.
        rerank_: Coefficients of the learned reranking of the union of both forecasts'
            top states (see :mod:`graph._text_blend`), or None: then ``blend_`` mixes them.
        blend_: ``(kind, weight)`` of the text forecast: ``"linear"`` mixes the
            probabilities, ``"loglinear"`` their logarithms; learned on held-out turns.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``order``, ``method``, ``discount`` and ``half_life`` default to ``"auto"``;
       ``"mix"``.
    """

    #: Fewer sessions with states than this are too few to choose the parameters on.
    MIN_SESSIONS: ClassVar[int] = MIN_SESSIONS
    #: The order used when there are too few sessions to choose one.
    DEFAULT_ORDER: ClassVar[int] = DEFAULT_ORDER

    def __init__(
        self,
        *,
        order: int | str = _AUTO,
        method: str = _AUTO,
        discount: float | str = _AUTO,
        half_life: float | str | None = _AUTO,
        max_edges: int | None = None,
        user_weight: float = 20.0,
        user_order: int = 1,
        text: bool = True,
        text_alpha: float = 1e-5,
        text_epochs: int = 5,
        holdout: float = 0.15,
    ) -> None:
        self.order = order
        self.method = method
        self.discount = discount
        self.half_life = half_life
        self.max_edges = max_edges
        self.user_weight = user_weight
        self.user_order = user_order
        self.text = text
        self.text_alpha = text_alpha
        self.text_epochs = text_epochs
        self.holdout = holdout

    # -- learning -------------------------------------------------------------------------

    def _validate(self) -> None:
        if self.order != _AUTO and (
            not isinstance(self.order, int) or isinstance(self.order, bool) or self.order < 0
        ):
            raise ValueError(f"order must be an int >= 0 or 'auto', got {self.order!r}")
        if self.method != _AUTO and self.method not in METHODS:
            raise ValueError(f"method must be 'auto' or one of {METHODS}, got {self.method!r}")
        if self.discount != _AUTO and (
            not isinstance(self.discount, (int, float)) or not 0.0 < self.discount < 1.0
        ):
            raise ValueError(f"discount must be in (0, 1) or 'auto', got {self.discount!r}")
        if self.half_life not in (None, _AUTO) and (
            not isinstance(self.half_life, (int, float)) or self.half_life <= 0
        ):
            raise ValueError(f"half_life must be > 0, None or 'auto', got {self.half_life!r}")
        if self.max_edges is not None and self.max_edges < 1:
            raise ValueError(f"max_edges must be >= 1 or None, got {self.max_edges!r}")
        if self.user_weight < 0:
            raise ValueError(f"user_weight must be >= 0, got {self.user_weight!r}")
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout!r}")

    def _searching(self) -> bool:
        """
        Whether :meth:`fit` searches: a parameter that matters is ``"auto"`` (the
        discount matters to ``"kn"`` and ``"ad"``), or ``"mix"`` needs its weights.
        """
        discounted = self.method in (_AUTO, "kn", "ad")
        return (
            _AUTO in (self.order, self.method, self.half_life)
            or self.method == "mix"
            or (discounted and self.discount == _AUTO)
        )

    def _new_counts(self, order: int) -> SeqCounts:
        return SeqCounts(
            order=order,
            method=self.method_,
            discount=self.discount_,
            half_life=self.half_life_,
            max_edges=self.max_edges,
            mixture=self.mixture_,
        )

    def _reset(self) -> None:
        self._validate()
        self.order_: int = DEFAULT_ORDER if self.order == _AUTO else int(self.order)
        self.method_: str = DEFAULT_METHOD if self.method == _AUTO else str(self.method)
        self.discount_: float = DEFAULT_DISCOUNT if self.discount == _AUTO else float(self.discount)
        self.mixture_: tuple[float, ...] | None = None
        self.half_life_: float | None = (
            None if self.half_life in (None, _AUTO) else float(self.half_life)
        )
        self.tuning_: Choice | None = None
        self.counts_ = self._new_counts(self.order_)
        self.user_counts_: dict[str, SeqCounts] = {}
        self.n_sessions_ = 0
        self.text_: TextForecaster | None = None
        self.blend_: tuple[str, float] = ("linear", 0.0)
        self.rerank_: tuple[float, ...] | None = None

    def fit(self, X: Iterable[Any], y: object = None) -> FollowUpPredictor:
        """
        Forget everything, then learn from ``X``, choosing the ``"auto"`` parameters on
        a held-out part of it first.

        Args:
            X: Sessions: sequences of states or turn mappings, or session mappings
                ``{"user", "turns"}``. Turns without a ``state`` are skipped.
            y: Ignored.

        Returns:
            ``self``.

        Warns:
            UserWarning: ``order`` is ``"auto"`` but ``X`` holds fewer than 20 sessions
                with states: the defaults are used.
        """
        self._reset()
        return self._learn(list(X), first=True)

    def partial_fit(self, X: Iterable[Any], y: object = None) -> FollowUpPredictor:
        """
        Add the transitions of ``X`` to what was learned (on an unfitted predictor,
        like :meth:`fit`).

        With explicit parameters, ``fit(A + B)`` equals ``partial_fit(A)`` then
        ``partial_fit(B)``; with ``"auto"`` ones the first call chooses them from ``A``.

        Args:
            X: Sessions, as for :meth:`fit`.
            y: Ignored.

        Returns:
            ``self``.
        """
        if not hasattr(self, "counts_"):
            self._reset()
            return self._learn(list(X), first=True)
        return self._learn(list(X), first=False)

    def _learn(self, sessions: list[Any], *, first: bool) -> FollowUpPredictor:
        batch: list[list[str]] = []
        by_user: dict[str, list[list[str]]] = {}
        with_text = False
        names: set[str] = set()
        for seq in sessions:
            if type(seq) is list and set(map(type, seq)) <= {str}:
                states, user = seq, None  # a plain sequence of states: the fast path
            else:
                items, user = session_parts(seq)
                with_text = with_text or any(has_text(item) for item in items[:2])
                states = states_of(items)
            names.update(states)
            self.n_sessions_ += 1
            if not states:
                continue
            batch.append(states)
            if user is not None and self.user_weight > 0:
                by_user.setdefault(user, []).append(states)
        for name in names:
            check_name(name)
        windows = self._tune(batch) if first and batch and self._searching() else None
        if windows is not None:
            self.counts_.add_windows(windows)
        else:
            self.counts_.add_batch(batch)
        for user, seqs in by_user.items():
            self._user_counts(user).add_batch(seqs)
        if self.text and with_text:
            if self.text_ is None:
                self._fit_text(sessions)
            else:
                self.text_.partial_fit(sessions)
        return self

    def _tune(self, batch: list[list[str]]) -> Windows | None:
        """
        Choose the ``"auto"`` parameters on ``batch`` (see the class docstring); return
        the counted windows for the final fit to reuse, or None with the defaults.
        """
        if len(batch) < MIN_SESSIONS:
            if self.order != _AUTO:  # only the smoothing was to be chosen: no fuss
                return None
            warnings.warn(
                f"FollowUpPredictor: {len(batch)} sessions with states are too few to "
                f"choose order, method and discount on (at least {MIN_SESSIONS}); using "
                f"order={self.order_}, method={self.method_!r}, discount={self.discount_}",
                UserWarning,
                stacklevel=4,
            )
            return None
        orders = range(1, MAX_ORDER + 1) if self.order == _AUTO else (self.order_,)
        methods = METHODS if self.method == _AUTO else (self.method_,)
        discounts = DISCOUNTS if self.discount == _AUTO else (self.discount_,)
        windows = Windows(batch, max(orders))
        choice = search(
            windows,
            orders=orders,
            methods=methods,
            discounts=discounts,
            decay=self.half_life == _AUTO,
        )
        if choice is None:
            return windows
        self.order_, self.method_ = choice.order, choice.method
        if choice.method in ("kn", "ad"):
            self.discount_ = choice.discount
        self.mixture_ = choice.mixture
        self.half_life_ = choice.half_life if self.half_life == _AUTO else self.half_life_
        self.tuning_ = choice
        self.counts_ = self._new_counts(self.order_)
        return windows

    def _fit_text(self, sessions: list[Any]) -> None:
        """
        Fit the text forecast, learning its blend weight on held-out sessions first.
        """
        every = round(1.0 / self.holdout) if self.holdout > 0 else 0
        held = [s for i, s in enumerate(sessions) if every and i % every == every // 2]
        train = [s for i, s in enumerate(sessions) if not (every and i % every == every // 2)]
        if len(held) < 5:
            train, held = sessions, []
        text = TextForecaster(alpha=self.text_alpha, epochs=self.text_epochs)
        try:
            text.fit(train)
        except ValueError:
            return
        if held:
            seq = self._new_counts(self.order_)
            seq.add_batch([states_of(session_parts(s)[0]) for s in train])
            self.blend_, self.rerank_ = learn_combination(seq, text, held)
            text.partial_fit(held)
        else:
            self.blend_ = ("linear", 0.5)
        self.text_ = text

    def _user_counts(self, user: str) -> SeqCounts:
        counts = self.user_counts_.get(user)
        if counts is None:
            counts = self.user_counts_[user] = SeqCounts(
                order=self.user_order,
                method=self.method_ if self.method_ != "mix" else "kn",
                discount=self.discount_,
                half_life=self.half_life_,
                max_edges=self.max_edges,
            )
        return counts

    def observe(self, history: Sequence[Item], user: str | None = None) -> FollowUpPredictor:
        """
        Learn online from one new turn: add the transitions ending at ``history[-1]``.

        ``partial_fit([seq])`` is equivalent to ``observe(seq[:1]); observe(seq[:2]); ...``.

        Args:
            history: The session so far, the new turn last (its latest
                :data:`~graph._sessions.READ_TURNS` turns are read).
            user: The session's user, if known.

        Returns:
            ``self``.
        """
        if not hasattr(self, "counts_"):
            self._reset()
        if not history:
            return self
        history = latest(history)
        if len(history) == 1:
            self.n_sessions_ += 1
        if state_of(history[-1]) is None:
            return self
        padded = [BOS, *validate_states(states_of(history))]
        self.counts_.add_one(padded)
        if user is not None and self.user_weight > 0:
            self._user_counts(user).add_one(padded)
        if self.text_ is not None and len(history) >= 2 and has_text(history[-2]):
            self.text_.observe(history)
        return self

    # -- inference ------------------------------------------------------------------------

    def predict_proba(
        self, history: Sequence[Item], k: int | None = 3, user: str | None = None
    ) -> list[tuple[str, float]]:
        """
        Forecast the state after ``history``.

        Args:
            history: The session so far (states or turn mappings); empty for the first
                turn of a session. Unseen states fall back to shorter contexts. Its
                latest :data:`~graph._sessions.READ_TURNS` turns are read.
            k: How many states to return; None for every state with a probability.
            user: The session's user, to blend in their own habits.

        Returns:
            ``(state, probability)`` pairs, most probable first.
        """
        if "counts_" not in self.__dict__:  # fast path of check_is_fitted (hot loop)
            check_is_fitted(self)
        history = latest(history)
        text = self.text_
        if text is not None and history and self.blend_[1] > 0 and has_text(history[-1]):
            wide = None if k is None else k + WIDEN
            seq_dist = self._predict_seq(history, wide, user)
            text_dist = text.predict_proba(history, wide)
            return combine(seq_dist, text_dist, history, self.blend_, self.rerank_, k)
        return self._predict_seq(history, k, user)

    def sequence_forecast(
        self, history: Sequence[Item], k: int | None = 3, user: str | None = None
    ) -> list[tuple[str, float]] | None:
        """
        Return the forecast of the states alone when :meth:`predict_proba` would blend
        in the text forecast for ``history``, else None (the two are the same).

        Args:
            history: The session so far.
            k: How many states to return; None for all.
            user: The session's user, if known.

        Returns:
            ``(state, probability)`` pairs, most probable first, or None.
        """
        text = self.text_
        if text is not None and history and self.blend_[1] > 0 and has_text(history[-1]):
            return self._predict_seq(latest(history), k, user)
        return None

    def _predict_seq(
        self, history: Sequence[Item], k: int | None, user: str | None
    ) -> list[tuple[str, float]]:
        padded = [BOS, *states_of(history)]
        dist = self.counts_.predict(padded, k)
        if user is None or self.user_weight <= 0:
            return dist
        ucounts = self.user_counts_.get(user)
        if ucounts is None or ucounts.n_transitions == 0:
            return dist
        n = ucounts.n_transitions
        beta = n / (n + self.user_weight)
        # Blend over the union of both top lists (full distributions when k is None).
        wide = None if k is None else max(k * 4, 16)
        g = dict(self.counts_.predict(padded, wide))
        u = dict(ucounts.predict(padded, wide))
        mixed = {s: (1 - beta) * g.get(s, 0.0) + beta * u.get(s, 0.0) for s in g.keys() | u.keys()}
        out = sorted(mixed.items(), key=lambda it: (-it[1], it[0]))
        return out if k is None else out[:k]

    def predict(self, X: Iterable[Sequence[Item]]) -> list[str | None]:
        """
        Return the most probable next state after each history.

        Args:
            X: Histories.

        Returns:
            One state per history (None when nothing has been learned).
        """
        check_is_fitted(self)
        out: list[str | None] = []
        for history in X:
            top = self.predict_proba(history, k=1)
            out.append(top[0][0] if top else None)
        return out

    def score(self, X: Iterable[Any], y: object = None, k: int = 3) -> float:
        """
        Return the top-``k`` hit rate of the next state over every turn after the first.

        Args:
            X: Sessions, as for :meth:`fit`.
            y: Ignored.
            k: How many guesses count.

        Returns:
            The fraction of turns whose state was among the ``k`` forecast (0.0 if none).
        """
        check_is_fitted(self)
        hits = total = 0
        for seq in X:
            items, user = session_parts(seq)
            states = states_of(items)
            for i in range(1, len(states)):
                guess = self.predict_proba(states[:i], k=k, user=user)
                total += 1
                hits += any(s == states[i] for s, _ in guess)
        return hits / total if total else 0.0

    # -- pooling and persistence ----------------------------------------------------------

    @property
    def graph_(self) -> PatternGraph:
        """
        The global pattern graph.
        """
        return self.counts_.graph

    def merge(self, other: FollowUpPredictor) -> FollowUpPredictor:
        """
        Add what ``other`` learned to this predictor (same ``order_`` and ``method_``).

        An unfitted predictor takes ``other``'s learned order, method, discount and
        mixture.

        Args:
            other: A fitted predictor; left unchanged.

        Returns:
            ``self``.

        Raises:
            ValueError: If the two differ in ``order_`` or ``method_``.
        """
        check_is_fitted(other)
        if not hasattr(self, "counts_"):
            self._reset()
            self._adopt(other)
        if (self.order_, self.method_) != (other.order_, other.method_):
            raise ValueError(
                "cannot merge predictors of different order/method: "
                f"{(self.order_, self.method_)} vs {(other.order_, other.method_)}"
            )
        self.counts_.merge(other.counts_)
        for user, counts in other.user_counts_.items():
            self._user_counts(user).merge(counts)
        self.n_sessions_ += other.n_sessions_
        return self

    def _adopt(self, other: FollowUpPredictor) -> None:
        """
        Take the learned order, method, discount and mixture of ``other`` (empty counts).
        """
        self.order_, self.method_ = other.order_, other.method_
        self.discount_, self.mixture_ = other.discount_, other.mixture_
        self.half_life_ = other.half_life_
        self.tuning_ = other.tuning_
        self.counts_ = self._new_counts(self.order_)

    def explain(self) -> str:
        """
        Say which order, blending and discount the sequence forecast uses, and why.

        Returns:
            A few lines of text.
        """
        check_is_fitted(self)
        method = {
            "kn": "interpolated Kneser-Ney",
            "ad": "interpolated absolute discounting",
            "ppm": "PPM-C blending",
            "mix": "a mixture weighted by each context's evidence",
        }[self.method_]
        uses = f"order {self.order_}, {method}"
        if self.method_ in ("kn", "ad"):
            uses += f", discount {self.discount_:g}"
        given = [
            f"{name}={value!r}"
            for name, value in (
                ("order", self.order),
                ("method", self.method),
                ("discount", self.discount),
            )
            if value != _AUTO
        ]
        if self.half_life_ is not None:
            uses += f", counts halving every {self.half_life_:g} turns"
        lines = [f"Sequence forecast: {uses}."]
        choice = self.tuning_
        if choice is None:
            if self._searching():
                lines.append(
                    f"These are the defaults: too few sessions to choose on "
                    f"(fewer than {MIN_SESSIONS})."
                )
            else:
                lines.append("Every parameter was given; nothing was searched.")
        else:
            lines.append(
                f"Chosen on {choice.n_turns} held-out turns ({choice.validation}): "
                f"top-3 {_pct(choice.top3)}, log-loss {choice.log_loss:.3f}; the simplest "
                "candidate within one standard error of the best top-3."
            )
            if given:
                lines.append("Given, not searched: " + ", ".join(given) + ".")
            if choice.race:
                lines.append(f"Raced: {choice.race}.")
                lines.append(
                    "Best of each order and blending in the race's first round (top-3, log-loss):"
                )
            else:
                lines.append("Best of each order and blending (top-3, log-loss):")
            for o, m, d, t3, ll in choice.board:
                disc = f" D={d:g}" if m in ("kn", "ad") else ""
                lines.append(f"  order {o} {m}{disc}: {_pct(t3)}, {ll:.3f}")
            if choice.decay:
                lines.append(f"Time decay: {choice.decay}.")
        if self.text_ is not None:
            lines.append(f"Text forecast blended in ({self.blend_[0]}, learned on held-out turns).")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """
        Return the fitted model as a JSON-ready dict.

        Returns:
            ``{"format", "version", "params", ...}``.
        """
        check_is_fitted(self)
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "params": self.get_params(),
            "learned": {
                "order": self.order_,
                "method": self.method_,
                "discount": self.discount_,
                "mixture": None if self.mixture_ is None else list(self.mixture_),
                "half_life": self.half_life_,
                "tuning": None if self.tuning_ is None else _choice_json(self.tuning_),
            },
            "n_sessions": self.n_sessions_,
            "global": self.counts_.to_json(),
            "users": {u: c.to_json() for u, c in self.user_counts_.items()},
            "text": None if self.text_ is None else self.text_.to_json(),
            "blend": list(self.blend_),
            "rerank": None if self.rerank_ is None else list(self.rerank_),
        }

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], *, source: str | Path = "<json>"
    ) -> FollowUpPredictor:
        """
        Rebuild a predictor from :meth:`to_json` output.

        Args:
            data: The decoded JSON.
            source: Names the origin in error messages.

        Returns:
            A fitted predictor.

        Version 1 documents (before the search) are read too: their parameters are what
        they learned with; so are version 2 documents (their search's summary does not
        say why time decay was or was not taken).

        Raises:
            ModelFileError: If the data is corrupt or of an unknown version.
        """
        check_document(data, _FORMAT, _VERSION, source, older=(1, 2))
        with map_corrupt_data(source, "predictor data"):
            model = cls(**data["params"])
            model._reset()
            learned = data.get("learned") if data["version"] >= 2 else None
            if learned is not None:
                model.order_ = int(learned["order"])
                model.method_ = str(learned["method"])
                model.discount_ = float(learned["discount"])
                mixture = learned["mixture"]
                model.mixture_ = None if mixture is None else tuple(float(w) for w in mixture)
                half_life = learned.get("half_life")
                model.half_life_ = None if half_life is None else float(half_life)
                tuning = learned["tuning"]
                model.tuning_ = None if tuning is None else _choice_from(tuning, model.mixture_)
                model._validate_learned()
                model.counts_ = model._new_counts(model.order_)
            model.n_sessions_ = int(data["n_sessions"])
            model.counts_.load_json(data["global"], source=source)
            for user, blob in data["users"].items():
                model._user_counts(str(user)).load_json(blob, source=source)
            if data["text"] is not None:
                model.text_ = TextForecaster.from_json(data["text"])
            kind, weight = data["blend"]
            model.blend_ = (str(kind), float(weight))
            rerank = data.get("rerank")
            model.rerank_ = None if rerank is None else tuple(float(c) for c in rerank)
            if model.rerank_ is not None and len(model.rerank_) != N_RERANK:
                raise ValueError(f"rerank needs {N_RERANK} coefficients")
        return model

    def _validate_learned(self) -> None:
        if self.half_life_ is not None and not self.half_life_ > 0:
            raise ValueError(f"learned half_life must be > 0, got {self.half_life_!r}")
        if self.order_ < 0 or self.method_ not in METHODS or not 0.0 < self.discount_ < 1.0:
            raise ValueError(
                f"learned parameters out of range: {(self.order_, self.method_, self.discount_)}"
            )
        if self.mixture_ is not None and (
            len(self.mixture_) % N_BUCKETS_PER_LEVEL or not all(0 <= w <= 1 for w in self.mixture_)
        ):
            raise ValueError("the mixture's weights must be in [0, 1], a whole table of them")


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f} %"


def _choice_json(choice: Choice) -> dict[str, Any]:
    """
    The search's summary as JSON (the mixture is saved with the learned parameters).
    """
    return {
        "order": choice.order,
        "method": choice.method,
        "discount": choice.discount,
        "half_life": choice.half_life,
        "validation": choice.validation,
        "n_turns": choice.n_turns,
        "top3": choice.top3,
        "log_loss": choice.log_loss,
        "board": [list(row) for row in choice.board],
        "decay": choice.decay,
        "race": choice.race,
    }


def _choice_from(blob: Mapping[str, Any], mixture: tuple[float, ...] | None) -> Choice:
    """
    Invert :func:`_choice_json`.
    """
    board = tuple(
        (int(o), str(m), float(d), float(t3), float(ll)) for o, m, d, t3, ll in blob["board"]
    )
    top3 = blob["top3"]
    loss = blob["log_loss"]
    return Choice(
        order=int(blob["order"]),
        method=str(blob["method"]),
        discount=float(blob["discount"]),
        mixture=mixture,
        half_life=None if blob.get("half_life") is None else float(blob["half_life"]),
        validation=str(blob["validation"]),
        n_turns=int(blob["n_turns"]),
        top3=None if top3 is None else float(top3),
        log_loss=None if loss is None else float(loss),
        board=board,
        decay=str(blob.get("decay", "")),
        race=str(blob.get("race", "")),
    )
