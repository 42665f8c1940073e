"""
The engine's own forecaster: the follow-up predictor and the needs forecast of
:mod:`graph`, with per-user needs, saved and loaded as versioned JSON.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from graph import (
    READ_TURNS,
    FollowUpPredictor,
    ModelFileError,
    NeedsForecaster,
    NeedsModel,
    StateEncoder,
)

from .._errors import EngineStateError, InputError
from .._files import replacing
from ._baselines import UserNeeds
from ._files import read_model_json
from ._forecasting import Forecast, TurnMapping, ranked
from ._value import ValuePredictor

if TYPE_CHECKING:
    from .._config import EngineConfig
    from .._sessions import Session

__all__ = ["EngineForecaster"]

logger = logging.getLogger(__name__)


class EngineForecaster:
    """
    The engine's own forecaster: a variable-order model of states with backoff, and
    :class:`graph.NeedsForecaster`, which learns from held-out sessions how to mix the
    state forecast, P(need | state), persistence and the words of the request and the
    reply into P(need used next turn); plus each user's own needs. ``save`` and
    ``load`` keep it as versioned JSON, with the content-value predictor learned
    from feedback when :attr:`values` holds one (``PreloadEngine.save_model``).

    The state forecast chooses its own order, blending and discount on held-out
    training sessions when they are ``"auto"`` (see :class:`graph.FollowUpPredictor`);
    with too few sessions to choose on it uses order 2 and logs why.

    Args:
        order: The longest state context, or ``"auto"``.
        method: The blending of the orders (``"kn"``, ``"ad"``, ``"ppm"``, ``"mix"``),
            or ``"auto"``.
        discount: The discount of ``"kn"`` and ``"ad"``, or ``"auto"``.
        top_states: How many next states a forecast reports.
        user_needs: Blend in each user's own P(need | state).
        mixer_turns: At most this many held-out turns train the needs forecast's
            mixing model (None: all). On SGD dev, replaying with 8,000 of SGD train's
            16,700 took the engine 78 s, with all of them 89 s.
        observe_every: Online observations are learned this many at a time (the
            turns kept as they were observed): each learning clears the model's cached
            predictions, which every session's forecasts share, so forecasting costs
            less when it happens less often. Each user's needs are learned at once.
    """

    FORMAT = "preload.forecaster"
    VERSION = 5  # 5: order, method and discount may be "auto" (4 is still read)
    _OLDER = (4,)

    predicts_states = True
    uses_reply = True

    def __init__(
        self,
        order: int | str = "auto",
        *,
        method: str = "auto",
        discount: float | str = "auto",
        top_states: int = 5,
        user_needs: bool = True,
        mixer_turns: int | None = 8000,
        observe_every: int = 1,
    ) -> None:
        self.order = order
        self.method = method
        self.discount = discount
        self.top_states = top_states
        self.user_needs = user_needs
        self.model = NeedsForecaster(
            predictor=FollowUpPredictor(order=order, method=method, discount=discount, text=False),
            max_mixer_turns=mixer_turns,
        )
        self.encoder: StateEncoder | None = None
        #: The content-value predictor saved and loaded with it (the engine's, when it
        #: learns from feedback); None when there is none.
        self.values: ValuePredictor | None = None
        self._users = UserNeeds()
        self._fitted = False
        self.observe_every = observe_every
        self._waiting: list[tuple[list[TurnMapping], str | None]] = []

    @classmethod
    def from_config(cls, config: EngineConfig) -> EngineForecaster:
        """
        The forecaster ``config`` describes.
        """
        p = config.prediction
        return cls(
            p.order,
            method=p.method,
            discount=p.discount,
            top_states=p.top_states,
            user_needs=p.user_needs,
            mixer_turns=p.mixer_turns,
            observe_every=p.observe_every,
        )

    def fit(self, sessions: Sequence[Session]) -> None:
        """
        Learn from recorded sessions (the mixing of signals on a held-out part).

        When some turns carry no ``state`` but have text, a :class:`graph.StateEncoder`
        learns to name states from the text (nearest centroid of the labelled turns,
        or clusters when no turn is labelled); unlabelled turns get its states, and
        :meth:`encode` names the state of new requests.
        """
        self._waiting.clear()
        data = [s.as_mapping() for s in sessions]
        turns = [t for d in data for t in d["turns"]]
        self.encoder = None
        if any(t["state"] is None and t["text"] for t in turns):
            texts = [t["text"] or "" for t in turns]
            labels = [t["state"] for t in turns]
            self.encoder = StateEncoder().fit(texts, labels)
            unlabelled = [t for t in turns if t["state"] is None]
            for turn, state in zip(
                unlabelled,
                self.encoder.predict([t["text"] or "" for t in unlabelled]),
                strict=True,
            ):
                turn["state"] = state
        self._settle_order(sum(1 for d in data if any(t["state"] for t in d["turns"])))
        self.model.fit(data)
        if self.user_needs:
            self._users.fit(sessions)
        self._fitted = True

    def _settle_order(self, n_sessions: int) -> None:
        """
        Give the state forecast a fixed order when the sessions it learns from (all but
        the needs forecast's held-out part) are too few to choose one on, and log it.
        """
        order: int | str = self.order
        enough = math.ceil(FollowUpPredictor.MIN_SESSIONS / (1.0 - self.model.holdout)) + 1
        if order == "auto" and 0 < n_sessions < enough:
            order = FollowUpPredictor.DEFAULT_ORDER
            logger.warning(
                "%d training sessions are too few to choose the forecast's order on "
                "(at least %d); using order %d",
                n_sessions,
                enough,
                order,
            )
        self.model.predictor = FollowUpPredictor(
            order=order, method=self.method, discount=self.discount, text=False
        )

    def explain(self) -> str:
        """
        What the state forecast uses and why (:meth:`graph.FollowUpPredictor.explain`).

        Raises:
            EngineStateError: It was never fitted.
        """
        if not self._fitted:
            raise EngineStateError("the forecaster is not fitted yet; call 'fit' first")
        return self.model.predictor_.explain()

    def encode(self, text: str) -> str | None:
        """
        The state of a request that came without one, when a state encoder was
        learned; else None.
        """
        if self.encoder is None or not text:
            return None
        return self.encoder.predict([text])[0]

    def observe(self, turns: Sequence[TurnMapping], user: str | None) -> None:
        """
        Learn from the session's last turn (with the turns observed before it, once
        ``observe_every`` are waiting).
        """
        if not self._fitted:
            self.fit([])
        recent = turns[-READ_TURNS:]  # all the model reads
        if self.observe_every > 1:
            self._waiting.append(([*recent[:-1], dict(recent[-1])], user))
            if len(self._waiting) >= self.observe_every:
                self._learn_waiting()
        else:
            self.model.observe(list(recent), user=user)
        state = turns[-1].get("state")
        if self.user_needs and user is not None and state is not None:
            self._users.observe(user, state, list(turns[-1].get("needs") or ()))

    def _learn_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        for turns, user in waiting:
            self.model.observe(turns, user=user)

    def forecast(self, turns: Sequence[TurnMapping], user: str | None, session_id: str) -> Forecast:
        """
        The next states and P(need used next turn) for every candidate need.
        """
        if not self._fitted:
            return Forecast()
        history = list(turns[-READ_TURNS:])  # all the model reads
        states = self.model.predictor_.predict_proba(history, k=self.top_states, user=user)
        needs = dict(self.model.predict_proba(history, k=None, user=user))
        if self.user_needs:
            self._users.blend(needs, user, states)
        return Forecast(states=tuple(states), needs=ranked(needs))

    def save(self, path: str | Path) -> None:
        """
        Write the fitted forecaster as versioned JSON (atomically).

        Raises:
            EngineStateError: It was never fitted.
            InputError: The file cannot be written.
        """
        if not self._fitted:
            raise EngineStateError("the forecaster is not fitted yet; call 'fit' first")
        self._learn_waiting()  # what it observed is in the file
        data = {
            "format": self.FORMAT,
            "version": self.VERSION,
            "order": self.order,
            "method": self.method,
            "discount": self.discount,
            "top_states": self.top_states,
            "user_needs": self.user_needs,
            "model": self.model.to_json(),
            "users": {u: m.to_json() for u, (m, _) in self._users.users.items()},
            "user_turns": {u: n[0] for u, (_, n) in self._users.users.items()},
        }
        if self.values is not None:
            data["values"] = self.values.to_json()
        if self.encoder is not None:  # names the states of requests that come without
            data["encoder"] = self.encoder.to_json()
        path = Path(path)
        try:
            with replacing(path) as out:
                out.write(json.dumps(data, separators=(",", ":")))
        except OSError as exc:
            raise InputError(path, None, f"cannot write: {exc.strerror or exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> EngineForecaster:
        """
        Read a forecaster written by :meth:`save`.

        Raises:
            InputError: The file is missing, corrupt or of an unknown version.
        """
        path = Path(path)
        data = read_model_json(path)
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            raise InputError(path, None, f"not a {cls.FORMAT} file; write one with 'preload train'")
        if data.get("version") != cls.VERSION and data.get("version") not in cls._OLDER:
            raise InputError(
                path,
                None,
                f"unknown version {data.get('version')!r}; this preload reads version "
                f"{cls.VERSION}",
            )
        try:
            order = data["order"]
            self = cls(
                order if order == "auto" else int(order),
                method=str(data.get("method", "auto")),
                discount=_discount(data.get("discount", "auto")),
                top_states=int(data["top_states"]),
                user_needs=bool(data["user_needs"]),
            )
            self.model = NeedsForecaster.from_json(data["model"], source=path)
            for user, blob in data["users"].items():
                model = NeedsModel.from_json(blob, source=path)
                self._users.users[str(user)] = (model, [int(data["user_turns"][user])])
            values = data.get("values")
            if "encoder" in data:  # absent when every training turn had a state
                self.encoder = StateEncoder.from_json(data["encoder"], source=path)
        except ModelFileError as exc:
            raise InputError(path, None, exc.problem) from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(path, None, f"corrupt model file: {exc!r}") from None
        if values is not None:
            try:
                self.values = ValuePredictor.from_json(values)
            except ValueError as exc:
                raise InputError(path, None, f"values: {exc}") from None
        self._fitted = True
        return self

    @property
    def n_states(self) -> int:
        """
        Distinct states the needs model has seen.
        """
        return len(getattr(self.model.needs_, "state_turns_", {})) if self._fitted else 0

    def predict(
        self, states: Sequence[str], *, k: int = 3, user: str | None = None
    ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """
        The ``k`` likeliest next states and next-turn needs after ``states``, taking the
        last state's usual needs as the current turn's.
        """
        turns = [{"state": s, "needs": []} for s in states]
        if turns and self._fitted:
            usual = self.model.needs_.needs_given(states[-1])
            turns[-1]["needs"] = [n for n, p in usual if p >= 0.5]
        forecast = self.forecast(turns, user, "")
        return list(forecast.states[:k]), list(forecast.needs[:k])


def _discount(value: object) -> float | str:
    """
    A saved discount: ``"auto"`` or a number.
    """
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"discount must be 'auto' or a number, got {value!r}")
    return float(value)
