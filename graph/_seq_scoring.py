"""
Scoring the candidates of the order search on held-out turns
(:class:`~graph._seq_heldout.HeldTurns`): each blending's forecast at every (turn,
candidate) pair from the counts gathered there, one pass up the context lengths per
method and discount (:func:`score_plan`), the mixture's weights cross-fitted on the
turns; and one candidate's hits per turn (:func:`score_one`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from ._seq_heldout import PairCounts
from ._seq_mixture import buckets, fit_mixture

if TYPE_CHECKING:
    from ._seq_heldout import Bools, Floats, HeldTurns, Ints

__all__ = [
    "DEFAULT_DISCOUNT",
    "Plan",
    "Row",
    "join_rows",
    "make_plan",
    "score_all",
    "score_one",
    "score_plan",
]

#: The discount of the predictor's default, and the one a mixture (which has none) is
#: listed with.
DEFAULT_DISCOUNT = 0.75
_FLOOR = 1e-9

#: ``(order, method, discount, top3, log_loss, mixture, hits per held-out turn)``.
Row: TypeAlias = "tuple[int, str, float, float, float, tuple[float, ...] | None, Bools]"


def _metrics(turns: HeldTurns, p: Floats) -> tuple[float, float, Bools]:
    """
    The top-3 hit rate, the log-loss and the hits per turn of the pair probabilities.
    """
    n = turns.n
    target = p[:n]
    at = target[turns.rival_turn]
    diff = p[n:] - at
    slack = at * 1e-9 + 1e-15
    ahead = (diff > slack) | (turns.earlier & (diff >= -slack))
    hits = np.bincount(turns.rival_turn[ahead], minlength=n) < 3
    loss = float(-np.mean(np.log(np.maximum(target, _FLOOR))))
    return float(np.mean(hits)), loss, hits


def _unigram(c: PairCounts) -> Floats:
    return c.count / c.total


def _step(below: Floats, c: PairCounts, method: str, d: float) -> Floats:
    """
    One context length more: the interpolated forecast at every pair.
    """
    if method == "ppm":
        denom = c.total + c.distinct
        p = (c.count + c.distinct * below) / denom
    else:
        p = (np.maximum(c.count - d, 0.0) + d * c.distinct * below) / c.total
    return np.where(c.present, p, below)


def _kn_lower(raw: PairCounts, cont: PairCounts) -> PairCounts:
    """
    The counts Kneser-Ney uses below the top order: continuation counts, except for
    contexts at the session start (nothing precedes them).
    """
    s = raw.start
    ts = raw.turn_start
    return PairCounts(
        count=np.where(s, raw.count, cont.count),
        total=np.where(s, raw.total, cont.total),
        distinct=np.where(s, raw.distinct, cont.distinct),
        present=np.where(s, raw.present, cont.present),
        start=s,
        turn_total=np.where(ts, raw.turn_total, cont.turn_total),
        turn_distinct=np.where(ts, raw.turn_distinct, cont.turn_distinct),
        turn_present=np.where(ts, raw.turn_present, cont.turn_present),
        turn_start=ts,
    )


#: Which candidates to score: per ``(method, discount)``, the orders.
Plan: TypeAlias = "dict[tuple[str, float], set[int]]"


def make_plan(orders: Sequence[int], methods: Sequence[str], discounts: Sequence[float]) -> Plan:
    """
    Every candidate: each discount for ``"kn"`` and ``"ad"``, one for ``"ppm"`` (which has
    none) and ``"mix"`` (which learns its weights instead).
    """
    plan: Plan = {}
    for method in methods:
        if method in ("kn", "ad"):
            chosen = discounts
        elif method == "mix":
            chosen = (DEFAULT_DISCOUNT,)
        else:
            chosen = discounts[:1]
        for d in chosen:
            plan[(method, d)] = set(orders)
    return plan


def score_all(
    turns: HeldTurns, orders: Sequence[int], methods: Sequence[str], discounts: Sequence[float]
) -> list[Row]:
    """
    Every candidate's ``(order, method, discount, top3, log_loss, mixture, hits)``.
    """
    return score_plan([turns], make_plan(orders, methods, discounts))


def score_plan(parts: list[HeldTurns], plan: Plan) -> list[Row]:
    """
    The candidates of ``plan`` scored on the turns of every part (as one set of turns:
    the mixture's weights are fit on all of them).
    """
    rows: list[Row] = []
    lower: list[list[PairCounts]] = []
    for (method, d), orders in plan.items():
        if method == "mix":
            rows.extend(_score_mix(parts, sorted(orders)))
            continue
        if method == "kn" and not lower:  # the same for every discount
            lower = [[_kn_lower(t.raw[n], t.cont[n]) for n in range(len(t.cont))] for t in parts]
        per_part = [
            _score_pass(t, method, d, orders, lower[i] if method == "kn" else [])
            for i, t in enumerate(parts)
        ]
        rows.extend(
            join_rows(list(same), [t.n for t in parts]) for same in zip(*per_part, strict=True)
        )
    return rows


def join_rows(rows: list[Row], sizes: list[int]) -> Row:
    """
    One candidate's rows on disjoint sets of turns as its row on all of them.
    """
    if len(rows) == 1:
        return rows[0]
    n = max(sum(sizes), 1)
    hits = np.concatenate([r[6] for r in rows])
    loss = sum(r[4] * size for r, size in zip(rows, sizes, strict=True)) / n
    o, m, d, _, _, mixture, _ = rows[0]
    return (o, m, d, float(hits.mean()) if len(hits) else 0.0, loss, mixture, hits)


def _score_pass(
    turns: HeldTurns, method: str, d: float, orders: set[int], lower: list[PairCounts]
) -> list[Row]:
    """
    The rows of ``method`` with discount ``d`` at ``orders``, from one pass up the
    context lengths (``lower``: what Kneser-Ney counts below the top order, per length).
    """
    rows: list[Row] = []
    top = max(orders)
    if method == "kn":
        p = _unigram(turns.cont[0])
        for n in range(1, top + 1):
            if n in orders:
                top3, loss, hits = _metrics(turns, _step(p, turns.raw[n], "kn", d))
                rows.append((n, method, d, top3, loss, None, hits))
            if n < top:
                p = _step(p, lower[n], "kn", d)
        return rows
    p = _unigram(turns.raw[0])
    for n in range(1, top + 1):
        p = _step(p, turns.raw[n], method, d)
        if n in orders:
            top3, loss, hits = _metrics(turns, p)
            rows.append((n, method, d, top3, loss, None, hits))
    return rows


def _score_mix(parts: list[HeldTurns], orders: Sequence[int]) -> list[Row]:
    """
    The mixture of every order, scored by cross-fitting on the turns of every part
    (weights fit on every other turn, in the order of their positions, score the
    others and the other way round: the same halves however the turns are split into
    parts); it keeps the average of the two fits' weights.
    """
    rows: list[Row] = []
    pos = np.concatenate([t.pos for t in parts])
    half = np.empty(len(pos), dtype=np.int64)
    half[np.argsort(pos, kind="stable")] = np.arange(len(pos)) % 2
    levels = [_MixLevels(t) for t in parts]
    for order in orders:
        inputs = [lv.inputs(order) for lv in levels]
        unigram = np.concatenate([i[0] for i in inputs])
        probs, present, index = (
            [np.concatenate([i[k][n] for i in inputs]) for n in range(order)] for k in (1, 2, 3)
        )
        on_even, on_odd = map(
            np.asarray, fit_mixture(unigram, probs, present, index, group=half, n_groups=2)
        )
        table = tuple(np.round((on_even + on_odd) / 2.0, 6).tolist())
        # An even turn takes the weights fit on the odd ones: the second half.
        both = np.concatenate([on_even, on_odd])
        scored: list[Row] = []
        offset = 0
        for turns, lv in zip(parts, levels, strict=True):
            shift = np.where(half[offset : offset + turns.n] == 0, len(on_even), 0)
            offset += turns.n
            lam = [both[i + shift] for i in lv.turn_index(order)]
            top3, loss, hits = _metrics(turns, lv.forecast(lam))
            scored.append((order, "mix", DEFAULT_DISCOUNT, top3, loss, table, hits))
        rows.append(join_rows(scored, [t.n for t in parts]))
    return rows


class _MixLevels:
    """
    What the mixture needs of held-out turns, per context length, computed once for
    every order (a context's bucket does not depend on the order: see :func:`buckets`).
    A bucket and its weight belong to a turn's context, the same at each of its pairs:
    they are found per turn and spread over its pairs last.
    """

    def __init__(self, turns: HeldTurns) -> None:
        self.turns = turns
        self._turn: dict[int, Ints] = {}

    def turn_index(self, order: int) -> list[Ints]:
        """
        Per length 1..``order``, each turn's context's bucket.
        """
        raw = self.turns.raw
        for n in range(1, order + 1):
            if n not in self._turn:
                c = raw[n]
                self._turn[n] = buckets(n, c.turn_start, c.turn_total, c.turn_distinct, n)
        return [self._turn[n] for n in range(1, order + 1)]

    def forecast(self, lam: list[Floats]) -> Floats:
        """
        The probability at every pair under the weights ``lam`` (per length, per turn).
        """
        raw = self.turns.raw
        turn = self.turns.turn
        p = _unigram(raw[0])
        for n, weight in enumerate(lam, start=1):
            c = raw[n]
            w = weight[turn]
            p = np.where(c.present, w * c.count / c.total + (1.0 - w) * p, p)
        return p

    def inputs(self, order: int) -> _MixInputs:
        """
        Per held-out turn, the target's unigram probability and, per context length,
        its relative frequency, whether the context was counted and the context's
        bucket.
        """
        turns = self.turns
        n_turns = turns.n
        raw = turns.raw
        unigram = raw[0].count[:n_turns] / raw[0].turn_total
        probs, present = [], []
        for n in range(1, order + 1):
            c = raw[n]
            probs.append(c.count[:n_turns] / c.turn_total)
            present.append(c.turn_present)
        return unigram, probs, present, self.turn_index(order)


_MixInputs: TypeAlias = "tuple[Floats, list[Floats], list[Bools], list[Ints]]"


def score_one(
    turns: HeldTurns, order: int, method: str, discount: float, mixture: tuple[float, ...] | None
) -> Bools:
    """
    The hits per held-out turn of one candidate.
    """
    if method == "mix":
        weights = np.asarray(mixture)
        p = _unigram(turns.raw[0])
        for n in range(1, order + 1):
            c = turns.raw[n]
            lam = weights[buckets(n, c.turn_start, c.turn_total, c.turn_distinct, order)][
                turns.turn
            ]
            p = np.where(c.present, lam * c.count / c.total + (1.0 - lam) * p, p)
        return _metrics(turns, p)[2]
    if method == "kn":
        p = _unigram(turns.cont[0])
        for n in range(1, order):
            p = _step(p, _kn_lower(turns.raw[n], turns.cont[n]), "kn", discount)
        return _metrics(turns, _step(p, turns.raw[order], "kn", discount))[2]
    p = _unigram(turns.raw[0])
    for n in range(1, order + 1):
        p = _step(p, turns.raw[n], method, discount)
    return _metrics(turns, p)[2]
