"""
NeedsModel: P(need | state), which information needs the turns of each state used,
and the expected use of each need under a forecast of the next state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ._bounded import remember
from ._graph import PatternGraph
from ._keys import check_name
from ._persistence import JsonModel, check_document, map_corrupt_data, number
from ._sessions import session_parts

__all__ = ["NeedsModel"]

_FORMAT = "graph.NeedsModel"
_VERSION = 1


class NeedsModel(JsonModel, BaseEstimator):
    """
    P(need | state): the fraction of a state's turns that used each need.

    The counts live in the bipartite part of a :class:`PatternGraph`: an edge from the
    context ``(state,)`` to each need, plus ``state_turns_``, the number of turns seen
    in each state.

    Args:
        min_turns: A state needs at least this many observed turns before it predicts.

    Attributes:
        graph_: State-to-need counts.
        state_turns_: Turns seen per state.

    .. versionadded:: 0.1
    """

    def __init__(self, *, min_turns: int = 1) -> None:
        self.min_turns = min_turns

    def _reset(self) -> None:
        if self.min_turns < 1:
            raise ValueError(f"min_turns must be >= 1, got {self.min_turns!r}")
        self.graph_ = PatternGraph()
        self.state_turns_: dict[str, float] = {}
        self._cache: dict[str, tuple[tuple[str, float], ...]] = {}

    def fit(self, X: Iterable[Any], y: object = None) -> NeedsModel:
        """
        Forget everything, then learn from the turns of ``X``.

        Args:
            X: Sessions: sequences of turn mappings with ``state`` and ``needs``, or
                session mappings ``{"turns": [...]}``. Turns without a state are skipped.
            y: Ignored.

        Returns:
            ``self``.
        """
        self._reset()
        return self.partial_fit(X)

    def partial_fit(self, X: Iterable[Any], y: object = None) -> NeedsModel:
        """
        Add the turns of ``X`` to what was learned.

        Args:
            X: Sessions, as for :meth:`fit`.
            y: Ignored.

        Returns:
            ``self``.
        """
        for seq in X:
            items, _ = session_parts(seq)
            for turn in items:
                if isinstance(turn, Mapping):
                    state = turn.get("state")
                    if isinstance(state, str):
                        self.observe(state, turn.get("needs") or ())
        if not hasattr(self, "graph_"):
            self._reset()
        return self

    def observe(self, state: str, needs: Iterable[str]) -> NeedsModel:
        """
        Learn from one turn: ``state`` used ``needs``.

        Args:
            state: The turn's state.
            needs: The needs it used (duplicates count once).

        Returns:
            ``self``.
        """
        if not hasattr(self, "graph_"):
            self._reset()
        check_name(state)
        self.state_turns_[state] = self.state_turns_.get(state, 0) + 1
        for need in dict.fromkeys(needs):
            self.graph_.add((state,), need)
        self._cache.pop(state, None)
        return self

    def needs_given(self, state: str) -> tuple[tuple[str, float], ...]:
        """
        Return P(need | state) for every need the state used.

        Args:
            state: A state.

        Returns:
            ``(need, probability)`` pairs (empty for an unseen or too rare state).
        """
        if "graph_" not in self.__dict__:  # fast path of check_is_fitted (hot loop)
            check_is_fitted(self)
        hit = self._cache.get(state)
        if hit is not None:
            return hit
        n = self.state_turns_.get(state, 0.0)
        if n < self.min_turns:
            out: tuple[tuple[str, float], ...] = ()
        else:
            out = tuple((need, c / n) for need, c in self.graph_.counts((state,)).items())
        return remember(self._cache, state, out)

    def predict_proba(
        self, state_dist: Sequence[tuple[str, float]], k: int | None = None
    ) -> list[tuple[str, float]]:
        """
        Return the expected use of each need: ``sum_s P(s) * P(need | s)``.

        Args:
            state_dist: ``(state, probability)`` pairs, e.g. a state forecast.
            k: How many needs to return; None for all.

        Returns:
            ``(need, probability)`` pairs, most probable first. Unseen states add nothing.
        """
        if "graph_" not in self.__dict__:  # fast path of check_is_fitted (hot loop)
            check_is_fitted(self)
        acc: dict[str, float] = {}
        for state, p in state_dist:
            if p <= 0.0:
                continue
            for need, q in self.needs_given(state):
                acc[need] = acc.get(need, 0.0) + p * q
        out = sorted(acc.items(), key=lambda it: (-it[1], it[0]))
        return out if k is None else out[:k]

    def merge(self, other: NeedsModel) -> NeedsModel:
        """
        Add what ``other`` learned.

        Args:
            other: A fitted model; left unchanged.

        Returns:
            ``self``.
        """
        check_is_fitted(other)
        if not hasattr(self, "graph_"):
            self._reset()
        self.graph_.merge(other.graph_)
        for state, n in other.state_turns_.items():
            self.state_turns_[state] = self.state_turns_.get(state, 0.0) + n
        self._cache.clear()
        return self

    def to_json(self) -> dict[str, Any]:
        """
        Return the fitted model as a JSON-ready dict.
        """
        check_is_fitted(self)
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "params": self.get_params(),
            "state_turns": self.state_turns_,
            "graph": self.graph_.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str | Path = "<json>") -> NeedsModel:
        """
        Rebuild a model from :meth:`to_json` output.

        Args:
            data: The decoded JSON.
            source: Names the origin in error messages.

        Returns:
            The fitted model.

        Raises:
            ModelFileError: If the data is corrupt or of an unknown version.
        """
        check_document(data, _FORMAT, _VERSION, source)
        with map_corrupt_data(source, "needs data"):
            model = cls(**data["params"])
            model._reset()
            model.state_turns_ = {str(s): number(n) for s, n in data["state_turns"].items()}
            model.graph_ = PatternGraph.from_json(data["graph"], source=source)
        return model
