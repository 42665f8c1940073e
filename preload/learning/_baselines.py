"""
The strategies a replay compares the engine with: nothing (:class:`NullForecaster`),
the globally popular needs, a first-order Markov chain, and the oracle that knows the
recorded future.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from graph import FollowUpPredictor, NeedsModel

from ._forecasting import Forecast, TurnMapping, ranked

if TYPE_CHECKING:
    from .._sessions import Session

__all__ = [
    "MarkovForecaster",
    "NullForecaster",
    "OracleForecaster",
    "PopularForecaster",
    "UserNeeds",
]


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


class UserNeeds:
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
        # Fixed: Kneser-Ney at 0.75, no decay; nothing searched (a baseline must not tune).
        self.predictor = FollowUpPredictor(
            order=order, text=False, method="kn", discount=0.75, half_life=None
        )
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
        return Forecast(states=tuple(states), needs=ranked(needs))


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
