"""
Forecasters: what the engine expects the next request to need.

A forecaster learns from each turn (``observe``) and forecasts the next state and the
next turn's needs (``forecast``); the engine calls both in the background, never on
the request path. The strategies a replay compares are forecasters too.
"""

from __future__ import annotations

import json
import os
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from graph import FollowUpPredictor, ModelFileError, NeedsForecaster, NeedsModel, StateEncoder

from .._errors import EngineStateError, InputError

if TYPE_CHECKING:
    from .._config import EngineConfig
    from .._sessions import Session

__all__ = [
    "EngineForecaster",
    "Forecast",
    "Forecaster",
    "MarkovForecaster",
    "NullForecaster",
    "OracleForecaster",
    "PopularForecaster",
]

TurnMapping = Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Forecast:
    """
    The next request as a forecaster sees it: states and needs with probabilities,
    most likely first.

    .. versionadded:: 0.1
    """

    states: tuple[tuple[str, float], ...] = ()
    needs: tuple[tuple[str, float], ...] = ()


class Forecaster(Protocol):
    """
    Learns from turns and forecasts the next one.

    .. versionadded:: 0.1
    """

    #: Whether :meth:`forecast` gives states (and next-state accuracy applies).
    predicts_states: bool
    #: Whether the agent's reply changes the forecast (then it is made again on reply).
    uses_reply: bool

    def fit(self, sessions: Sequence[Session]) -> None:
        """
        Learn from recorded sessions before serving.
        """
        ...

    def observe(self, turns: Sequence[TurnMapping], user: str | None) -> None:
        """
        Learn from the session's last turn.
        """
        ...

    def forecast(self, turns: Sequence[TurnMapping], user: str | None, session_id: str) -> Forecast:
        """
        The forecast for the turn after ``turns``.
        """
        ...


class NullForecaster:
    """
    Forecasts nothing: the reactive strategies (``cold``, ``lru``).
    """

    predicts_states = False
    uses_reply = False

    def fit(self, sessions: Sequence[Session]) -> None:
        """
        Nothing to learn.
        """

    def observe(self, turns: Sequence[TurnMapping], user: str | None) -> None:
        """
        Nothing to learn.
        """

    def forecast(self, turns: Sequence[TurnMapping], user: str | None, session_id: str) -> Forecast:
        """
        An empty forecast.
        """
        return Forecast()


class PopularForecaster:
    """
    The globally most used needs, whatever the session does.

    Args:
        top: How many needs to forecast.
    """

    predicts_states = False
    uses_reply = False

    def __init__(self, top: int = 8) -> None:
        self.top = top
        self._counts: Counter[str] = Counter()
        self._turns = 0
        self._cached: Forecast | None = None

    def fit(self, sessions: Sequence[Session]) -> None:
        """
        Count every need of every turn.
        """
        for session in sessions:
            for turn in session.turns:
                self._counts.update(turn.needs)
            self._turns += len(session.turns)
        self._cached = None

    def observe(self, turns: Sequence[TurnMapping], user: str | None) -> None:
        """
        Count the last turn's needs.
        """
        self._counts.update(turns[-1].get("needs") or ())
        self._turns += 1
        self._cached = None

    def forecast(self, turns: Sequence[TurnMapping], user: str | None, session_id: str) -> Forecast:
        """
        The most used needs, valued by their use relative to the most used one.
        """
        if self._cached is None:
            top = self._counts.most_common(self.top)
            peak = top[0][1] if top else 1
            self._cached = Forecast(needs=tuple((k, c / peak) for k, c in top))
        return self._cached


class _UserNeeds:
    """
    P(need | state) per user, blended into a forecast by how much the user was seen:
    a user's own profile, their usual choices.
    """

    def __init__(self, max_users: int = 10_000) -> None:
        self.max_users = max_users
        self.users: OrderedDict[str, tuple[NeedsModel, list[int]]] = OrderedDict()

    def fit(self, sessions: Sequence[Session]) -> None:
        self.users.clear()
        for session in sessions:
            if session.user is not None:
                for turn in session.turns:
                    if turn.state is not None:
                        self.observe(session.user, turn.state, turn.needs)

    def observe(self, user: str, state: str, needs: Sequence[str]) -> None:
        entry = self.users.get(user)
        if entry is None:
            entry = self.users[user] = (NeedsModel().fit([]), [0])
            while len(self.users) > self.max_users:
                self.users.popitem(last=False)
        else:
            self.users.move_to_end(user)
        entry[0].observe(state, list(needs))
        entry[1][0] += 1

    def blend(
        self, needs: dict[str, float], user: str | None, states: Sequence[tuple[str, float]]
    ) -> None:
        entry = self.users.get(user) if user is not None else None
        if entry is None:
            return
        weight = entry[1][0] / (entry[1][0] + 3.0)
        for need, p in entry[0].predict_proba(states):
            needs[need] = 1.0 - (1.0 - needs.get(need, 0.0)) * (1.0 - weight * p)


def _ranked(needs: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(needs.items(), key=lambda kv: (-kv[1], kv[0])))


class MarkovForecaster:
    """
    The plain baseline: a Markov model of states (no text) and P(need | state); the
    next state's distribution pushed through the needs model.

    Args:
        order: The Markov order of the state model.
        top_states: How many next states feed the needs forecast.
        persistence: Weight of "the next turn needs what this one did"; 0 turns it off.
    """

    predicts_states = True
    uses_reply = False

    def __init__(self, order: int = 1, *, top_states: int = 5, persistence: float = 0.0) -> None:
        self.order = order
        self.top_states = top_states
        self.persistence = persistence
        self.predictor = FollowUpPredictor(order=order, text=False)
        self.needs_model = NeedsModel()
        self._fitted = False

    def fit(self, sessions: Sequence[Session]) -> None:
        """
        Fit the state and needs models on recorded sessions.
        """
        data = [s.as_mapping() for s in sessions]
        self.predictor.fit(data)
        self.needs_model.fit([d["turns"] for d in data])
        self._fitted = True

    def observe(self, turns: Sequence[TurnMapping], user: str | None) -> None:
        """
        Add the last turn's transition and needs.
        """
        last = turns[-1]
        state = last.get("state")
        if state is None:
            return
        if not self._fitted:
            self.fit([])
        self.predictor.observe(list(turns), user=user)
        self.needs_model.observe(state, list(last.get("needs") or ()))

    def forecast(self, turns: Sequence[TurnMapping], user: str | None, session_id: str) -> Forecast:
        """
        The next states, and P(need) = Σ P(state) P(need | state), blended with the
        current turn's needs when ``persistence`` is on.
        """
        if not self._fitted:
            return Forecast()
        states = self.predictor.predict_proba(list(turns), k=self.top_states, user=user)
        needs = dict(self.needs_model.predict_proba(states))
        if self.persistence and turns:
            for need in turns[-1].get("needs") or ():
                p = needs.get(need, 0.0)
                needs[need] = 1.0 - (1.0 - p) * (1.0 - self.persistence)
        return Forecast(states=tuple(states), needs=_ranked(needs))


class EngineForecaster:
    """
    The engine's own forecaster: a variable-order model of states with backoff, and
    :class:`graph.NeedsForecaster`, which learns from held-out sessions how to mix the
    state forecast, P(need | state), persistence and the words of the request and the
    reply into P(need used next turn); plus each user's own needs. ``save`` and
    ``load`` keep it as versioned JSON.

    Args:
        order: The longest state context.
        top_states: How many next states a forecast reports.
        user_needs: Blend in each user's own P(need | state).
        mixer_turns: At most this many held-out turns train the needs forecast's
            mixing model (None: all). On SGD dev, replaying with 8,000 of SGD train's
            16,700 took the engine 78 s, with all of them 89 s.
    """

    FORMAT = "preload.forecaster"
    VERSION = 4  # 4: the needs forecaster of graph format version 4

    predicts_states = True
    uses_reply = True

    def __init__(
        self,
        order: int = 3,
        *,
        top_states: int = 5,
        user_needs: bool = True,
        mixer_turns: int | None = 8000,
    ) -> None:
        self.order = order
        self.top_states = top_states
        self.user_needs = user_needs
        self.model = NeedsForecaster(
            predictor=FollowUpPredictor(order=order, text=False), max_mixer_turns=mixer_turns
        )
        self.encoder: StateEncoder | None = None
        self._users = _UserNeeds()
        self._fitted = False

    @classmethod
    def from_config(cls, config: EngineConfig) -> EngineForecaster:
        """
        The forecaster ``config`` describes.
        """
        p = config.prediction
        return cls(
            p.order, top_states=p.top_states, user_needs=p.user_needs, mixer_turns=p.mixer_turns
        )

    def fit(self, sessions: Sequence[Session]) -> None:
        """
        Learn from recorded sessions (the mixing of signals on a held-out part).

        When some turns carry no ``state`` but have text, a :class:`graph.StateEncoder`
        learns to name states from the text (nearest centroid of the labelled turns,
        or clusters when no turn is labelled); unlabelled turns get its states, and
        :meth:`encode` names the state of new requests.
        """
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
        self.model.fit(data)
        if self.user_needs:
            self._users.fit(sessions)
        self._fitted = True

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
        Learn from the session's last turn.
        """
        if not self._fitted:
            self.fit([])
        self.model.observe(list(turns), user=user)
        state = turns[-1].get("state")
        if self.user_needs and user is not None and state is not None:
            self._users.observe(user, state, list(turns[-1].get("needs") or ()))

    def forecast(self, turns: Sequence[TurnMapping], user: str | None, session_id: str) -> Forecast:
        """
        The next states and P(need used next turn) for every candidate need.
        """
        if not self._fitted:
            return Forecast()
        history = list(turns)
        states = self.model.predictor_.predict_proba(history, k=self.top_states, user=user)
        needs = dict(self.model.predict_proba(history, k=None, user=user))
        if self.user_needs:
            self._users.blend(needs, user, states)
        return Forecast(states=tuple(states), needs=_ranked(needs))

    def save(self, path: str | Path) -> None:
        """
        Write the fitted forecaster as versioned JSON (atomically).

        Raises:
            EngineStateError: It was never fitted.
            InputError: The file cannot be written.
        """
        if not self._fitted:
            raise EngineStateError("the forecaster is not fitted yet; call 'fit' first")
        data = {
            "format": self.FORMAT,
            "version": self.VERSION,
            "order": self.order,
            "top_states": self.top_states,
            "user_needs": self.user_needs,
            "model": self.model.to_json(),
            "users": {u: m.to_json() for u, (m, _) in self._users.users.items()},
            "user_turns": {u: n[0] for u, (_, n) in self._users.users.items()},
        }
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise InputError(path, 0, f"cannot write: {exc.strerror or exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> EngineForecaster:
        """
        Read a forecaster written by :meth:`save`.

        Raises:
            InputError: The file is missing, corrupt or of an unknown version.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(path, 0, f"cannot read: {exc.strerror or exc}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(path, 0, f"not a JSON model file: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            raise InputError(path, 0, f"not a {cls.FORMAT} file; write one with 'preload train'")
        if data.get("version") != cls.VERSION:
            raise InputError(
                path,
                0,
                f"unknown version {data.get('version')!r}; this preload reads version "
                f"{cls.VERSION}",
            )
        try:
            self = cls(
                int(data["order"]),
                top_states=int(data["top_states"]),
                user_needs=bool(data["user_needs"]),
            )
            self.model = NeedsForecaster.from_json(data["model"], source=path)
            for user, blob in data["users"].items():
                model = NeedsModel.from_json(blob, source=path)
                self._users.users[str(user)] = (model, [int(data["user_turns"][user])])
        except ModelFileError as exc:
            raise InputError(path, 0, str(exc)) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(path, 0, f"corrupt model file: {exc!r}") from None
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


class OracleForecaster:
    """
    Knows the recorded future: forecasts exactly the next turn's needs. The ceiling
    of a replay.

    Args:
        sessions: The sessions being replayed, by id.
    """

    predicts_states = False
    uses_reply = False

    def __init__(self, sessions: Mapping[str, Session]) -> None:
        self._sessions = sessions

    def fit(self, sessions: Sequence[Session]) -> None:
        """
        Nothing to learn.
        """

    def observe(self, turns: Sequence[TurnMapping], user: str | None) -> None:
        """
        Nothing to learn.
        """

    def forecast(self, turns: Sequence[TurnMapping], user: str | None, session_id: str) -> Forecast:
        """
        The recorded next turn's needs, each with probability 1.
        """
        session = self._sessions.get(session_id)
        if session is None or len(turns) >= len(session.turns):
            return Forecast()
        return Forecast(needs=tuple((need, 1.0) for need in session.turns[len(turns)].needs))
