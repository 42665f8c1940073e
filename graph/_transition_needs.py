"""
NeedsAfter: P(need at the next turn | the transition that leads to it), i.e. which
needs the next turn uses given this turn's state and needs and the next state; and,
without a state forecast, given this state and the needs used in it so far.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._bounded import remember
from ._keys import FROM, NEEDS_SEP, SEP, STAY
from ._persistence import number

__all__ = ["NeedsAfter"]

#: The answers cached for one state, at most (the states themselves at most
#: ``MAX_CACHED``).
_PER_STATE = 64


class NeedsAfter:
    """
    P(need at the next turn | this turn's state and needs, the next state).

    P(need | next state) alone ignores where the session comes from: entering a state
    asks for its slots, staying in it after a search confirms and books. Conditioning
    on the transition (this state, next state) and on what this turn used is much
    sharper, and it needs no knowledge of what the names mean. Three levels of counts,
    each smoothed towards the coarser one (``prior`` pseudo-turns, as in a Dirichlet
    prior)::

        p1 = c(need | next) / n(next)
        p2 = (c(need | this, next) + prior * p1) / (n(this, next) + prior)
        p3 = (c(need | this, next, needs) + prior * p2) / (n(this, next, needs) + prior)

    :meth:`direct` answers without a state forecast: P(need at the next turn | this
    state, this turn's needs), smoothed towards P(need at the next turn | this state).
    What this turn used says where the session stands (searched, asked, booked), which
    the states alone do not. :meth:`after_stay` does the same for every need used since
    the session entered this state: a task asks for its slots one or two at a time, so
    the ones asked already say which come next.

    Counts are plain dicts keyed by strings, so the model is JSON as it is, merges by
    adding and learns one transition at a time.

    Args:
        prior: Pseudo-turns of each coarser level.

    .. versionadded:: 0.2
    """

    def __init__(self, *, prior: float = 2.0) -> None:
        self.prior = prior
        self.turns: dict[str, float] = {}
        self.rows: dict[str, dict[str, float]] = {}
        self._cache: dict[str, dict[tuple[str | None, str], tuple[tuple[str, float], ...]]] = {}
        #: Answers of :meth:`direct` and :meth:`after_stay`, by state and then key.
        self._from: dict[str, dict[str, tuple[tuple[str, float], ...]]] = {}

    @staticmethod
    def needs_key(needs: Iterable[str]) -> str:
        """
        Return the key of a turn's set of needs (order and duplicates do not matter).
        """
        return NEEDS_SEP.join(sorted(set(needs)))

    def observe(
        self,
        state: str | None,
        needs_key: str,
        nxt: str,
        nxt_needs: Iterable[str],
        *,
        stay_key: str | None = None,
    ) -> None:
        """
        Learn one transition: a turn in ``state`` that used the needs of ``needs_key``
        was followed by a turn in ``nxt`` that used ``nxt_needs``; ``stay_key`` is the
        key of the needs used since the session entered ``state``, if known.
        """
        keys = [nxt]
        if state is not None:
            pair = state + SEP + nxt
            keys += [pair, pair + SEP + needs_key, FROM + state, FROM + state + SEP + needs_key]
            self._from.pop(state, None)
            if stay_key is not None:
                keys.append(STAY + state + SEP + stay_key)
        used = set(nxt_needs)
        turns, rows = self.turns, self.rows
        for key in keys:
            turns[key] = turns.get(key, 0) + 1
            row = rows.get(key)
            if row is None:
                row = rows[key] = {}
            for need in used:
                row[need] = row.get(need, 0) + 1
        self._cache.pop(nxt, None)

    def given(self, state: str | None, needs_key: str, nxt: str) -> tuple[tuple[str, float], ...]:
        """
        Return P(need | state, needs, next state) for every need the next state used.
        """
        per_next = self._cache.get(nxt)
        if per_next is None:
            per_next = remember(self._cache, nxt, {})
        hit = per_next.get((state, needs_key))
        if hit is not None:
            return hit
        n1 = self.turns.get(nxt, 0.0)
        if n1 <= 0.0:
            out: tuple[tuple[str, float], ...] = ()
        else:
            probs = {need: c / n1 for need, c in self.rows[nxt].items()}
            if state is not None:
                pair = state + SEP + nxt
                for key in (pair, pair + SEP + needs_key):
                    n = self.turns.get(key, 0.0)
                    if n <= 0.0:
                        break
                    row = self.rows[key]
                    denom = n + self.prior
                    probs = {
                        need: (row.get(need, 0.0) + self.prior * p) / denom
                        for need, p in probs.items()
                    }
            out = tuple(probs.items())
        return remember(per_next, (state, needs_key), out, _PER_STATE)

    def direct(self, state: str, needs_key: str) -> tuple[tuple[str, float], ...]:
        """
        Return P(need at the next turn | this state, this turn's needs).
        """
        return self._from_state(state, FROM + state + SEP + needs_key)

    def after_stay(self, state: str, stay_key: str) -> tuple[tuple[str, float], ...]:
        """
        Return P(need at the next turn | this state, the needs used since the session
        entered it) (``stay_key``, a :meth:`needs_key`).
        """
        return self._from_state(state, STAY + state + SEP + stay_key)

    def _from_state(self, state: str, key: str) -> tuple[tuple[str, float], ...]:
        """
        P(need at the next turn | the counts of ``key``), smoothed towards P(need at the
        next turn | ``state``); cached per state until it learns more.
        """
        per_state = self._from.get(state)
        if per_state is None:
            per_state = remember(self._from, state, {})
        hit = per_state.get(key)
        if hit is not None:
            return hit
        n1 = self.turns.get(FROM + state, 0.0)
        if n1 <= 0.0:
            out: tuple[tuple[str, float], ...] = ()
        else:
            probs = {need: c / n1 for need, c in self.rows[FROM + state].items()}
            n = self.turns.get(key, 0.0)
            if n > 0.0:
                row = self.rows[key]
                denom = n + self.prior
                probs = {
                    need: (row.get(need, 0.0) + self.prior * p) / denom for need, p in probs.items()
                }
            out = tuple(probs.items())
        return remember(per_state, key, out, _PER_STATE)

    def merge(self, other: NeedsAfter) -> NeedsAfter:
        """
        Add the counts of ``other``.
        """
        for key, n in other.turns.items():
            self.turns[key] = self.turns.get(key, 0.0) + n
        for key, row in other.rows.items():
            mine = self.rows.setdefault(key, {})
            for need, c in row.items():
                mine[need] = mine.get(need, 0.0) + c
        self._cache.clear()
        self._from.clear()
        return self

    def to_json(self) -> dict[str, Any]:
        """
        Return the counts as a JSON-ready dict.
        """
        return {"prior": self.prior, "turns": self.turns, "rows": self.rows}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NeedsAfter:
        """
        Rebuild from :meth:`to_json` output (``KeyError``/``TypeError``/``ValueError``
        when it is corrupt).
        """
        model = cls(prior=float(data["prior"]))
        model.turns = {str(k): number(v) for k, v in data["turns"].items()}
        model.rows = {
            str(k): {str(n): number(c) for n, c in row.items()} for k, row in data["rows"].items()
        }
        if set(model.rows) != set(model.turns):
            raise ValueError("rows and turns name different keys")
        return model
