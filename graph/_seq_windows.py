"""
Windows: the sessions as one integer array, with the id of every context of 1..order
states before each position, so that counting transitions is a handful of numpy sorts
instead of a dictionary update per transition and context length.

Both the plain fit of :class:`SeqCounts` and the search of :mod:`graph._seq_tuning`
count from it: the search counts part of the positions, evaluates, and the final fit
counts all of them from the same context ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

import numpy as np

from ._keys import BOS, CTX, SEP

__all__ = ["Level", "Windows"]

_Ints: TypeAlias = "np.ndarray[Any, np.dtype[np.int64]]"
_Floats: TypeAlias = "np.ndarray[Any, np.dtype[np.float64]]"
_Bools: TypeAlias = "np.ndarray[Any, np.dtype[np.bool_]]"

#: A lookup indexes a dense table when it has at most this many slots per key involved.
_DENSE = 8
#: Distinct keys are counted in a table of every key when it has at most this many
#: slots per key counted (a pass over the table costs far less than sorting the keys).
_SPARSE_COUNT = 32
#: ... and at most this many slots in all.
_TABLE_MAX = 1 << 24


class Level:
    """
    The counts of one context length ``n`` over a subset of the positions.

    Attributes:
        keys: Sorted unique ``context id * n_names + next id`` of the counted windows.
        counts: Their counts.
        totals: Per context id, the sum of its counts (0 for a context never counted).
        distinct: Per context id, how many different states followed it.
    """

    __slots__ = ("_dense", "counts", "distinct", "keys", "n_names", "size", "totals")

    def __init__(self, keys: _Ints, counts: _Floats, n_contexts: int, n_names: int) -> None:
        self.keys = keys
        self.counts = counts
        self.n_names = n_names
        self.size = n_contexts * n_names
        self._dense: _Floats | None = None
        ctx = keys // n_names
        self.totals: _Floats = np.asarray(
            np.bincount(ctx, weights=counts, minlength=n_contexts), dtype=np.float64
        )
        self.distinct: _Floats = np.asarray(
            np.bincount(ctx, minlength=n_contexts), dtype=np.float64
        )

    def lookup(self, queries: _Ints) -> _Floats:
        """
        Return the count of each ``context id * n_names + next id`` (0 where unseen).
        """
        if len(self.keys) == 0:
            return np.zeros(queries.shape, dtype=np.float64)
        dense = self._table(len(queries))
        if dense is not None:
            return dense[queries]
        at = np.searchsorted(self.keys, queries)
        at = np.minimum(at, len(self.keys) - 1)
        found = self.keys[at] == queries
        return np.where(found, self.counts[at], 0.0)

    def pairs(self, ctx: _Ints, nxt: _Ints) -> _Floats:
        """
        Return the count of each (context id, next id) pair, 0 where unseen or where
        the context id is -1 (no context that long).
        """
        if len(self.keys) == 0:
            return np.zeros(ctx.shape, dtype=np.float64)
        dense = self._table(len(ctx))
        if dense is not None:
            # A context id of -1 lands on the zeros past the table (negative index).
            at: _Floats = dense[ctx * self.n_names + nxt]
            return at
        found = self.lookup(np.maximum(ctx, 0) * self.n_names + nxt)
        counts: _Floats = np.where(ctx >= 0, found, 0.0)
        return counts

    def _table(self, n_queries: int) -> _Floats | None:
        """
        The counts as a table of every key (and ``n_names`` zeros past it), kept for
        the next lookups, when it costs no more than searching: else None.
        """
        if self._dense is None and self.size <= _DENSE * (n_queries + len(self.keys)):
            self._dense = np.zeros(self.size + self.n_names, dtype=np.float64)
            self._dense[self.keys] = self.counts
        return self._dense


class Windows:
    """
    The sessions ``[BOS, s1, s2, ...]`` laid end to end as integer ids (``BOS`` is 0),
    with, for every position ``i`` and every length ``n`` in 1..order, the id of the
    context ``padded[i - n : i]`` (-1 where the session is shorter than that).

    A context of length ``n`` is its oldest state followed by a context of length
    ``n - 1``: ``first[n][j]`` and ``parent[n][j]`` spell out context ``j``.

    Args:
        sequences: State sequences (names already checked).
        order: The longest context.
    """

    def __init__(self, sequences: Iterable[Sequence[str]], order: int) -> None:
        names: list[str] = []
        lengths: list[int] = []
        for seq in sequences:
            names.append(BOS)
            names.extend(seq)
            lengths.append(len(seq) + 1)
        # Ids in order of first appearance, the start marker first (0): C-speed passes.
        index = {name: i for i, name in enumerate(dict.fromkeys([BOS, *names]))}
        n_sessions = len(lengths)
        self.order = order
        self.index = index
        self.names = list(index)
        self.n_sessions = n_sessions
        self.ids: _Ints = np.fromiter(
            map(index.__getitem__, names), dtype=np.int64, count=len(names)
        )
        self.session: _Ints = np.repeat(np.arange(n_sessions, dtype=np.int64), lengths)
        n = len(self.ids)
        starts = np.flatnonzero(self.ids == 0)
        #: How many states precede each position in its session, the start marker included.
        self.depth: _Ints = np.arange(n, dtype=np.int64) - starts[self.session] if n else self.ids
        self.targets: _Bools = self.ids != 0
        #: The targets after at least one state: the turns a forecast is scored on.
        self.scored: _Bools = self.depth >= 2
        self.context: list[_Ints] = [np.zeros(n, dtype=np.int64)]
        self.first: list[_Ints] = [np.zeros(1, dtype=np.int64)]
        self.parent: list[_Ints] = [np.zeros(1, dtype=np.int64)]
        for length in range(1, order + 1):
            self._add_level(length)

    def _add_level(self, n: int) -> None:
        prev = self.context[n - 1]
        n_prev = len(self.first[n - 1])
        valid = self.depth >= n
        oldest = np.zeros_like(self.ids)
        oldest[n:] = self.ids[:-n] if n < len(self.ids) else oldest[n:]
        pair = (oldest * n_prev + prev)[valid]
        size = self.n_names * n_prev
        if size <= min(_DENSE * len(pair), _TABLE_MAX):  # a table of every pair: no sort
            seen = np.zeros(size, dtype=bool)
            seen[pair] = True
            uniq: _Ints = np.flatnonzero(seen)
            inv = (np.cumsum(seen, dtype=np.int32) - 1)[pair].astype(np.int64)
        else:
            uniq, inv = np.unique(pair, return_inverse=True)
        ctx = np.full(len(self.ids), -1, dtype=np.int64)
        ctx[valid] = inv
        self.context.append(ctx)
        self.first.append(uniq // n_prev)
        self.parent.append(uniq % n_prev)

    @property
    def n_names(self) -> int:
        """
        Distinct ids, the start marker included.
        """
        return len(self.names)

    def n_contexts(self, n: int) -> int:
        """
        Distinct contexts of length ``n``.
        """
        return len(self.first[n])

    def count(self, n: int, where: _Bools | None = None, weights: _Floats | None = None) -> Level:
        """
        Count the transitions from contexts of length ``n`` at the positions ``where``
        (every position when None), each weighing ``weights[position]`` (1 when None).
        """
        mask = self.targets & (self.context[n] >= 0)
        if where is not None:
            mask &= where
        keys = self.context[n][mask] * self.n_names + self.ids[mask]
        return self._level(n, keys, None if weights is None else weights[mask])

    def count_at(self, n: int, positions: _Ints) -> Level:
        """
        Count the transitions from contexts of length ``n`` at ``positions`` (indices;
        those without a state or a context that long are skipped).
        """
        ctx = self.context[n][positions]
        keep = (ctx >= 0) & self.targets[positions]
        return self._level(n, ctx[keep] * self.n_names + self.ids[positions[keep]], None)

    def _level(self, n: int, keys: _Ints, weights: _Floats | None) -> Level:
        size = self.n_contexts(n) * self.n_names
        counts: _Floats
        if size <= _DENSE * len(keys):  # a table of every key is no bigger: no sort
            seen = np.bincount(keys, minlength=size)
            uniq: _Ints = np.flatnonzero(seen)
            if weights is None:
                counts = seen[uniq].astype(np.float64)
            else:
                summed = np.bincount(keys, weights=weights, minlength=size)
                counts = np.asarray(summed[uniq], dtype=np.float64)
        elif weights is None:
            uniq, found = np.unique(keys, return_counts=True)
            counts = found.astype(np.float64)
        else:
            uniq, inverse = np.unique(keys, return_inverse=True)
            summed = np.bincount(inverse, weights=weights, minlength=len(uniq))
            counts = np.asarray(summed, dtype=np.float64)
        # Distinct followers are counted once each, weighed or not (as SeqCounts counts).
        return Level(uniq, np.asarray(counts, dtype=np.float64), self.n_contexts(n), self.n_names)

    def decay_weights(self, where: _Bools, half_life: float) -> _Floats:
        """
        The weight of every position under time decay: the newest transition of
        ``where`` weighs 1 and the weight halves every ``half_life`` transitions before
        it (as :class:`SeqCounts` weighs them, rescaled).
        """
        counted = self.targets & where
        index = np.cumsum(counted) - 1
        last = int(index[-1]) if len(index) else 0
        return np.asarray(np.exp2((index - last) / half_life), dtype=np.float64)

    def continuation(self, upper: Level, n: int) -> Level:
        """
        The Kneser-Ney continuation counts of contexts of length ``n``: how many
        different contexts of length ``n + 1`` (one state older) saw each next state,
        from the counts ``upper`` of length ``n + 1``.
        """
        b = self.n_names
        parents = self.parent[n + 1][upper.keys // b]
        keys = parents * b + upper.keys % b
        size = self.n_contexts(n) * b
        if size <= min(_SPARSE_COUNT * len(keys), _TABLE_MAX):  # a table beats a sort
            seen = np.bincount(keys, minlength=size)
            uniq: _Ints = np.flatnonzero(seen)
            counts = seen[uniq]
        else:
            uniq, counts = np.unique(keys, return_counts=True)
        return Level(uniq, counts.astype(np.float64), self.n_contexts(n), b)

    def context_keys(self, n: int) -> list[str]:
        """
        The :class:`PatternGraph` node id of every context of length ``n``.
        """
        if n == 0:
            return [CTX]
        names = self.names
        first = self.first[n].tolist()
        if n == 1:
            return [CTX + names[f] for f in first]
        below = self.context_keys(n - 1)
        return [
            CTX + names[f] + SEP + below[p][1:]
            for f, p in zip(first, self.parent[n].tolist(), strict=True)
        ]

    def edges(self, n: int, level: Level) -> list[tuple[str, str, float]]:
        """
        The transitions of ``level`` (contexts of length ``n``) as
        ``(context node id, next state, count)``.
        """
        keys = self.context_keys(n)
        names = self.names
        b = self.n_names
        ctx = (level.keys // b).tolist()
        nxt = (level.keys % b).tolist()
        return [
            (keys[c], names[s], w) for c, s, w in zip(ctx, nxt, level.counts.tolist(), strict=True)
        ]
