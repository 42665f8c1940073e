"""
SeqCounts: the transition counts behind the sequence forecast, with backoff from the
longest context to the unigram, time decay and pruning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from ._bounded import remember
from ._graph import PatternGraph
from ._keys import BOS, CTX, SEP
from ._seq_mixture import N_BUCKETS_PER_LEVEL, bucket
from ._seq_windows import Windows

__all__ = ["SeqCounts", "context_keys"]

_Level: TypeAlias = "tuple[tuple[tuple[str, float], ...], float]"
_RESCALE_AT = 1e12


def context_keys(padded: Sequence[str], i: int, order: int) -> list[str]:
    """
    Return the node ids of the contexts before ``padded[i]``, shortest first.

    Args:
        padded: ``[BOS, s1, s2, ...]``.
        i: Index of the target in ``padded`` (at least 1).
        order: The longest context.

    Returns:
        ``[key(()), key((padded[i-1],)), ...]`` up to ``min(order, i)`` states.
    """
    return [CTX + SEP.join(padded[i - n : i]) for n in range(min(order, i) + 1)]


class SeqCounts:
    """
    Transition counts of orders 0..order with interpolated backoff and caches.

    ``method`` is ``"kn"`` (interpolated Kneser-Ney: lower orders use continuation
    counts), ``"ad"`` (interpolated absolute discounting on raw counts), ``"ppm"``
    (PPM-C escapes, blended) or ``"mix"`` (relative frequencies mixed with weights
    ``mixture`` that depend on each context's evidence, see :mod:`graph._seq_mixture`).
    Counts are stored multiplied by ``weight``, which grows by 2 every ``half_life``
    observed transitions: that is time decay without touching old counts.
    """

    def __init__(
        self,
        *,
        order: int,
        method: str,
        discount: float,
        half_life: float | None,
        max_edges: int | None,
        mixture: tuple[float, ...] | None = None,
    ) -> None:
        self.order = order
        self.method = method
        self.discount = discount
        self.half_life = half_life
        self.max_edges = max_edges
        self.mixture = mixture
        self._mix_levels = len(mixture) // N_BUCKETS_PER_LEVEL if mixture else 0
        self.graph = PatternGraph()
        self.cont = PatternGraph()
        self.weight = 1.0
        self.n_transitions = 0
        self._growth = 2.0 ** (1.0 / half_life) if half_life else 1.0
        self._levels: dict[tuple[str, bool], _Level | None] = {}
        self._results: dict[tuple[str, int | None], list[tuple[str, float]]] = {}
        # The unigram: probabilities by state, and the states most probable first (names
        # only: rebuilt after every observation, a list of pairs was most of what a
        # serving forecaster left for the garbage collector)
        self._uni: tuple[dict[str, float], tuple[str, ...]] | None = None

    # -- learning -------------------------------------------------------------------------

    def add_batch(self, sequences: Iterable[Sequence[str]]) -> None:
        """
        Add every transition of every sequence, aggregated before touching the graph.

        Args:
            sequences: State sequences (already validated).
        """
        self.add_windows(Windows(sequences, self.order))

    def add_windows(self, windows: Windows) -> None:
        """
        Add every transition of ``windows`` from contexts of at most ``order`` states
        (under time decay, weighed as :meth:`add_one` would weigh them one by one).

        Args:
            windows: Sessions laid out by :class:`Windows`, with contexts of at least
                ``min(order, windows.order)`` states.
        """
        n_new = int(windows.targets.sum())
        weights = None
        if self.half_life is not None and n_new:
            # The newest transition weighs 1 and the stored counts age by the batch.
            weights = windows.decay_weights(windows.targets, self.half_life)
            if self.n_transitions:
                self.graph.scale(2.0 ** (-n_new / self.half_life) / self.weight)
                self._invalidate_all()
            self.weight = 1.0
        agg: dict[tuple[str, str], float] = {}
        for n in range(min(self.order, windows.order) + 1):
            for key, nxt, count in windows.edges(n, windows.count(n, weights=weights)):
                agg[(key, nxt)] = count
        self.n_transitions += n_new
        self._apply(agg)

    def add_one(self, padded: Sequence[str]) -> None:
        """
        Add the transitions ending at the last item of ``padded``.

        Args:
            padded: ``[BOS, s1, ..., sn]`` with ``n >= 1``.
        """
        i = len(padded) - 1
        w = self._next_weight() if self.half_life is not None else 1.0
        nxt = padded[i]
        self._apply({(key, nxt): w for key in context_keys(padded, i, self.order)})
        self.n_transitions += 1

    def _next_weight(self) -> float:
        self.weight *= self._growth
        if self.weight > _RESCALE_AT:
            # Continuation counts are distinct contexts, not weighted: they stay.
            self.graph.scale(1.0 / self.weight)
            self.weight = 1.0
            self._invalidate_all()
        return self.weight

    def _apply(self, agg: Mapping[tuple[str, str], float]) -> None:
        graph = self.graph
        succ = graph._succ
        kn = self.method == "kn"
        levels = self._levels
        for (key, nxt), w in agg.items():
            if kn and len(key) > 1:
                edges = succ.get(key)
                if edges is None or nxt not in edges:
                    parent = _parent_key(key)
                    self.cont.add_key(parent, nxt, 1.0)
                    levels.pop((parent, True), None)
            graph.add_key(key, nxt, w)
            levels.pop((key, False), None)
        self._results.clear()
        self._uni = None
        if self.max_edges is not None and graph.n_edges > self.max_edges * 1.25:
            self.prune(self.max_edges)

    def prune(self, max_edges: int) -> None:
        """
        Drop the rarest transitions of contexts of order 2 and more until at most
        ``max_edges`` remain (orders 0 and 1 are kept: they are the backoff floor).

        Args:
            max_edges: The cap.
        """
        excess = self.graph.n_edges - max_edges
        if excess <= 0:
            return
        candidates: list[tuple[float, int, str, str]] = []
        for key, succ in self.graph._succ.items():
            if key.startswith(CTX) and SEP in key:
                n = key.count(SEP) + 1
                candidates.extend((d["count"], -n, key, nxt) for nxt, d in succ.items())
        candidates.sort()
        drop = [(key, nxt) for _, _, key, nxt in candidates[:excess]]
        self.graph.remove_edges(drop)
        self._invalidate_all()

    def merge(self, other: SeqCounts) -> None:
        """
        Add the counts of ``other`` (same order and method) to these.

        Args:
            other: Another store; its counts are rescaled to this one's weight.
        """
        factor = self.weight / other.weight
        for ctx, nxt, count in other.graph.edges():
            key = CTX + SEP.join(ctx)
            if self.method == "kn" and len(key) > 1:
                edges = self.graph._succ.get(key)
                if edges is None or nxt not in edges:
                    self.cont.add_key(_parent_key(key), nxt, 1.0)
            self.graph.add_key(key, nxt, count * factor)
        self.n_transitions += other.n_transitions
        self._invalidate_all()

    def _invalidate_all(self) -> None:
        self._levels.clear()
        self._results.clear()
        self._uni = None

    # -- inference ------------------------------------------------------------------------

    def _level(self, key: str, use_cont: bool) -> _Level | None:
        ck = (key, use_cont)
        try:
            return self._levels[ck]
        except KeyError:
            pass
        succ = (self.cont if use_cont else self.graph)._succ.get(key)
        level: _Level | None = None
        if succ:
            counts = [(n, float(d["count"])) for n, d in succ.items()]
            total = sum(c for _, c in counts)
            if total > 0:
                if self.method == "ppm":
                    u = len(counts) * (1.0 if use_cont else self.weight)
                    denom = total + u
                    level = (tuple((n, c / denom) for n, c in counts), u / denom)
                elif self.method == "mix":
                    lam = self._mix_weight(key, total / self.weight, len(counts))
                    level = (tuple((n, lam * c / total) for n, c in counts), 1.0 - lam)
                else:
                    d = self.discount * (1.0 if use_cont else self.weight)
                    alphas = tuple((n, (c - d) / total) for n, c in counts if c > d)
                    level = (alphas, max(0.0, 1.0 - sum(a for _, a in alphas)))
        return remember(self._levels, ck, level)

    def _mix_weight(self, key: str, total: float, distinct: int) -> float:
        """
        The weight of a context's own counts in ``"mix"`` (1 - its escape).
        """
        if not self.mixture:
            return total / (total + distinct)  # no weights learned: PPM-C's escape
        n = key.count(SEP) + 1
        return self.mixture[bucket(n, key[1:2] == BOS, total, distinct, self._mix_levels)]

    def _unigram(self) -> tuple[dict[str, float], tuple[str, ...]]:
        if self._uni is None:
            src = self.cont if self.method == "kn" else self.graph
            counts = src.counts_key(CTX)
            if self.method == "kn":
                # States seen only at session start have no continuation count yet.
                for n in self.graph.counts_key(CTX):
                    counts.setdefault(n, 0.0)
            total = sum(counts.values())
            probs = {n: (c / total if total > 0 else 1.0 / len(counts)) for n, c in counts.items()}
            self._uni = (probs, tuple(s for s, _ in sorted(probs.items(), key=_by_prob)))
        return self._uni

    def predict(self, padded: Sequence[str], k: int | None) -> list[tuple[str, float]]:
        """
        Return the top-``k`` next states after ``padded`` (``[BOS, s1, ...]``).

        Args:
            padded: The history with the start marker in front.
            k: How many to return; None for the full distribution.

        Returns:
            ``(state, probability)`` pairs, most probable first.
        """
        i = len(padded)
        top_n = min(self.order, i)
        ck = (CTX + SEP.join(padded[i - top_n :]), k)
        hit = self._results.get(ck)
        if hit is not None:
            return hit
        keys = context_keys(padded, i, self.order)
        acc: dict[str, float] = {}
        wt = 1.0
        kn = self.method == "kn"
        top = len(keys) - 1
        for n in range(top, 0, -1):
            key = keys[n]
            use_cont = kn and n < self.order and key[1:2] != BOS
            level = self._level(key, use_cont)
            if level is None:
                continue
            alphas, gamma = level
            for s, a in alphas:
                acc[s] = acc.get(s, 0.0) + wt * a
            wt *= gamma
        uni, uni_order = self._unigram()
        if wt > 0.0:
            for s in acc:
                acc[s] += wt * uni.get(s, 0.0)
        items = list(acc.items())
        added = 0
        for s in uni_order:
            if k is not None and added >= k:
                break
            if s not in acc:
                items.append((s, wt * uni[s]))
                added += 1
        items.sort(key=_by_prob)
        return remember(self._results, ck, items if k is None else items[:k])

    # -- persistence ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """
        Return the counts as a JSON-ready dict: both graphs, the weight and the number
        of transitions (the parameters are the owner's to save).
        """
        return {
            "weight": self.weight,
            "n_transitions": self.n_transitions,
            "graph": self.graph.to_json(),
            "cont": self.cont.to_json(),
        }

    def load_json(self, blob: Mapping[str, Any], *, source: str | Path = "<json>") -> None:
        """
        Replace the counts with those of :meth:`to_json` output.

        Args:
            blob: The decoded JSON.
            source: Names the origin in error messages.

        Raises:
            ModelFileError: If a graph in it is corrupt or of an unknown version.
            KeyError: If a part is missing (``TypeError``, ``ValueError`` when one is
                malformed).
        """
        self.graph = PatternGraph.from_json(blob["graph"], source=source)
        self.cont = PatternGraph.from_json(blob["cont"], source=source)
        self.weight = float(blob["weight"])
        self.n_transitions = int(blob["n_transitions"])
        self._invalidate_all()

    def memory_edges(self) -> int:
        """
        Return the number of stored transitions (continuation counts included).
        """
        return self.graph.n_edges + self.cont.n_edges


def _parent_key(key: str) -> str:
    """
    Return the key of the context one state shorter (dropping the oldest state).
    """
    cut = key.find(SEP)
    return CTX if cut < 0 else CTX + key[cut + 1 :]


def _by_prob(item: tuple[str, float]) -> tuple[float, str]:
    return (-item[1], item[0])
