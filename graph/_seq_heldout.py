"""
The held-out turns of the order search (:mod:`graph._seq_tuning`): which turns are held
out (:func:`split_folds`), the counts of the training part, made once per fold up to
the longest context searched (:func:`count_fold`), and every held-out turn with its
candidate states (its target and the likeliest followers of each of its contexts) and
their counts at every context length (:func:`gather`), so that a candidate is scored
in a few array operations per context length, never a refit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

if TYPE_CHECKING:
    from ._seq_windows import Level, Windows

__all__ = [
    "FOLDS",
    "MAX_TURNS",
    "Bools",
    "Counted",
    "Floats",
    "HeldTurns",
    "Ints",
    "PairCounts",
    "concat",
    "count_fold",
    "gather",
    "held_turns",
    "last_sessions",
    "reweigh",
    "split_folds",
    "top_followers",
]

Ints: TypeAlias = "np.ndarray[Any, np.dtype[np.int64]]"
Floats: TypeAlias = "np.ndarray[Any, np.dtype[np.float64]]"
Bools: TypeAlias = "np.ndarray[Any, np.dtype[np.bool_]]"

#: At most this many held-out turns (the last sessions) are scored.
MAX_TURNS = 20_000
#: Below this many held-out turns in the last sessions, validate on folds instead.
_MIN_HOLDOUT_TURNS = 3_000
_HOLDOUT = 0.15
_SPREAD = 13
FOLDS = 5
#: Followers of each context that are candidates for the top 3.
_TOP = 3


@dataclass(frozen=True, slots=True)
class PairCounts:
    """
    What the forecast of one context length needs at each candidate pair and turn.
    """

    count: Floats  # per (turn, candidate) pair
    total: Floats  # per pair: the context's total (1 where absent)
    distinct: Floats  # per pair
    present: Bools  # per pair: the turn has a counted context of this length
    start: Bools  # per pair: the context begins at the session start
    turn_total: Floats  # per turn
    turn_distinct: Floats
    turn_present: Bools
    turn_start: Bools


@dataclass(frozen=True, slots=True)
class HeldTurns:
    """
    The held-out turns: their candidate states as (turn, candidate) pairs, the target's
    pair first for every turn, and the counts of every context length at every pair.
    """

    n: int
    pos: Ints  # per turn: its position in the windows
    turn: Ints  # per pair: which turn
    cand: Ints  # per pair: the candidate state's id
    rank: Ints  # per pair: the candidate's place in name order (the forecast's ties)
    raw: list[PairCounts]  # per length 0..max: plain counts
    cont: list[PairCounts]  # per length 0..max-1: continuation counts
    #: Per pair after the targets: the candidate comes before its turn's target in
    #: name order (it wins a tie), and which turn it belongs to.
    earlier: Bools = field(default_factory=lambda: np.zeros(0, dtype=bool))
    rival_turn: Ints = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _with_ties(turns: HeldTurns) -> HeldTurns:
    """
    ``turns`` with what every candidate's comparison with its target needs.
    """
    rival = turns.turn[turns.n :]
    earlier = turns.rank[turns.n :] < turns.rank[rival]
    return replace(turns, earlier=earlier, rival_turn=rival)


def last_sessions(win: Windows) -> int:
    return max(1, math.ceil(win.n_sessions * _HOLDOUT / 2))


def split_folds(win: Windows) -> tuple[list[tuple[Bools, Bools]], str]:
    """
    The (training positions, held-out positions) of each fold, and how they were chosen.

    The held-out part is the last sessions (recent behaviour, drift) and every
    :data:`_SPREAD`-th earlier session (a log sorted by task or domain, as SGD's and
    STAR's are, would otherwise be validated on its last domain only), about
    :data:`_HOLDOUT` of the sessions and at most :data:`MAX_TURNS` turns. When that
    holds fewer than :data:`_MIN_HOLDOUT_TURNS` turns, every session is held out once,
    in :data:`FOLDS` interleaved folds.
    """
    n = win.n_sessions
    session = win.session
    per_session = np.bincount(session[win.scored], minlength=n)
    n_last = last_sessions(win)
    held_sessions = (np.arange(n) >= n - n_last) | (np.arange(n) % _SPREAD == _SPREAD // 2)
    n_turns = int(per_session[held_sessions].sum())
    if n_turns >= _MIN_HOLDOUT_TURNS:
        held = held_sessions[session]
        if n_turns > MAX_TURNS:  # score a sample of their turns, train without all of them
            every = math.ceil(n_turns / MAX_TURNS)
            chosen = np.zeros(n, dtype=bool)
            chosen[np.flatnonzero(held_sessions)[::every]] = True
            sample = chosen[session]
            return [(~held, sample)], (
                f"the last {n_last} and every {_SPREAD}th earlier of {n} sessions "
                f"(1 in {every} scored)"
            )
        return [(~held, held)], f"the last {n_last} and every {_SPREAD}th earlier of {n} sessions"
    fold = session % FOLDS
    return [(fold != f, fold == f) for f in range(FOLDS)], f"{FOLDS} folds of {n} sessions"


def top_followers(level: Level, n_contexts: int, n_names: int) -> Ints:
    """
    The :data:`_TOP` most counted followers of every context, ``n_names`` where fewer,
    and a last row of ``n_names`` only: the row of context id -1 (no context).
    """
    table = np.full((n_contexts + 1, _TOP), n_names, dtype=np.int64)
    ctx = level.keys // n_names
    counts = level.counts
    most = float(counts.max()) if len(counts) else 0.0
    if most * (n_contexts + 1) < 2**53 and np.array_equal(counts, np.floor(counts)):
        # Whole counts: one sort of ``ctx``, then the count downwards, then the key.
        order = np.argsort(ctx * (int(most) + 1) + (most - counts).astype(np.int64), kind="stable")
    else:
        order = np.lexsort((-counts, ctx))
    ctx_sorted = ctx[order]
    at = np.arange(len(order))
    first = np.ones(len(order), dtype=bool)
    first[1:] = ctx_sorted[1:] != ctx_sorted[:-1]
    rank = at - np.maximum.accumulate(np.where(first, at, 0))
    keep = rank < _TOP
    table[ctx_sorted[keep], rank[keep]] = (level.keys % n_names)[order][keep]
    return table


@dataclass(frozen=True, slots=True)
class Counted:
    """
    The counts of the training positions of a fold, up to the longest context searched,
    and the likeliest followers of every context: what gathering held-out turns needs.
    """

    raw: list[Level]  # per length 0..top
    cont: list[Level]  # per length 0..top-1
    raw_top: list[Ints]  # per length: :func:`top_followers` of ``raw``
    cont_top: list[Ints]
    by_name: Ints  # per id: its place in name order


def count_fold(
    win: Windows,
    train: Bools,
    top: int,
    weights: Floats | None = None,
    *,
    continuation: bool = True,
) -> Counted:
    """
    Count on ``train`` (weighted by ``weights`` when given), contexts up to ``top``; the
    continuation counts too unless ``continuation`` is False.
    """
    b = win.n_names
    raw = [win.count(n, train, weights) for n in range(top + 1)]
    cont = [win.continuation(raw[n + 1], n) for n in range(top)] if continuation else []
    return Counted(
        raw=raw,
        cont=cont,
        raw_top=[top_followers(raw[n], win.n_contexts(n), b) for n in range(top + 1)],
        cont_top=[top_followers(level, win.n_contexts(n), b) for n, level in enumerate(cont)],
        by_name=np.argsort(np.argsort(np.asarray(win.names, dtype=object))),
    )


def held_turns(
    win: Windows, train: Bools, held: Bools, top: int, weights: Floats | None = None
) -> HeldTurns:
    """
    Count on ``train`` (weighted by ``weights`` when given) and gather the held-out
    turns ``held`` with their candidates.
    """
    return gather(win, count_fold(win, train, top, weights), held, top)


def gather(
    win: Windows,
    counted: Counted,
    held: Bools,
    top: int,
    *,
    continuation: bool = True,
    more: Sequence[Counted] = (),
) -> HeldTurns:
    """
    The held-out turns ``held`` with their candidates (the likeliest followers of each
    of their contexts up to ``top`` states, in ``counted`` and in ``more``) and their
    counts in ``counted`` (without the continuation counts, nor their followers as
    candidates, unless ``continuation``).
    """
    raw, cont = counted.raw, counted.cont
    pos = np.flatnonzero(held & win.scored)
    target = win.ids[pos]
    ctx = [win.context[n][pos] for n in range(top + 1)]
    tables: list[tuple[int, Ints]] = []
    for n in range(top + 1):
        tables.extend((n, t) for t in (counted.raw_top[n], *(c.raw_top[n] for c in more)))
        if n < top and continuation:
            tables.append((n, counted.cont_top[n]))
    turn, cand = _candidates(win.n_names, target, [table[ctx[n]] for n, table in tables])
    return _with_ties(
        HeldTurns(
            n=len(pos),
            pos=pos,
            turn=turn,
            cand=cand,
            rank=counted.by_name[cand].astype(np.int64),
            raw=[_at(win, raw[n], n, ctx[n], turn, cand) for n in range(top + 1)],
            cont=[_at(win, cont[n], n, ctx[n], turn, cand) for n in range(top)]
            if continuation
            else [],
        )
    )


def _candidates(b: int, target: Ints, columns: list[Ints]) -> tuple[Ints, Ints]:
    """
    The (turn, candidate) pairs of the turns whose targets are ``target``: each turn's
    target first, then the other states in ``columns`` (per table, each turn's
    followers; ``b``, the number of states, for none) in id order.
    """
    n = len(target)
    if b + 1 <= 2 * _TOP * len(columns):  # few states: mark them in a turn x state table
        marked = np.zeros((n, b + 1), dtype=bool)
        rows = np.arange(n)[:, None]
        for column in columns:
            marked[rows, column] = True
        marked[np.arange(n), target] = False
        turns, others = np.nonzero(marked[:, :b])
    else:
        cands = np.sort(np.hstack(columns), axis=1)
        dup = np.zeros_like(cands, dtype=bool)
        dup[:, 1:] = cands[:, 1:] == cands[:, :-1]
        keep = (cands < b) & ~dup & (cands != target[:, None])
        turns, _ = np.nonzero(keep)
        others = cands[keep]
    return np.concatenate([np.arange(n), turns]), np.concatenate([target, others])


def reweigh(win: Windows, turns: HeldTurns, counted: Counted) -> HeldTurns:
    """
    ``turns`` with the plain counts of ``counted``, counted on the same positions with
    other weights (which change counts and totals, not which contexts and followers
    were seen, nor the continuation counts).
    """
    raw = []
    for n, c in enumerate(turns.raw):
        level = counted.raw[n]
        ctx = win.context[n][turns.pos]
        total = np.where(c.turn_present, _take(level.totals, ctx), 1.0)
        pair_ctx = ctx[turns.turn]
        count = level.pairs(pair_ctx, turns.cand)
        raw.append(replace(c, count=count, total=total[turns.turn], turn_total=total))
    return replace(turns, raw=raw)


def _take(values: np.ndarray[Any, Any], ctx: Ints) -> np.ndarray[Any, Any]:
    """
    ``values[ctx]``, 0 where ``ctx`` is -1 (no context of that length).
    """
    if len(values) == 0:
        return np.zeros(len(ctx), dtype=values.dtype)
    return np.where(ctx >= 0, values[np.maximum(ctx, 0)], 0)


def _at(win: Windows, level: Level, n: int, ctx: Ints, turn: Ints, cand: Ints) -> PairCounts:
    """
    The counts of ``level`` (contexts of length ``n``) at every (turn, candidate) pair.
    """
    total = _take(level.totals, ctx)
    distinct = _take(level.distinct, ctx)
    present = total > 0
    start = (ctx >= 0) & (_take(win.first[n], ctx) == 0) if n > 0 else np.zeros_like(present)
    count = level.pairs(ctx[turn], cand)
    return PairCounts(
        count=count,
        total=np.where(present, total, 1.0)[turn],
        distinct=distinct[turn],
        present=present[turn],
        start=start[turn],
        turn_total=np.where(present, total, 1.0),
        turn_distinct=distinct,
        turn_present=present,
        turn_start=start,
    )


def concat(parts: list[HeldTurns]) -> HeldTurns | None:
    """
    The turns of every fold as one set (pairs renumbered, targets first).
    """
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    offsets = np.cumsum([0, *(p.n for p in parts)])
    firsts = [np.arange(p.n) for p in parts]
    order_t = np.concatenate([f + o for f, o in zip(firsts, offsets, strict=False)])
    order_r = np.concatenate([p.turn[p.n :] + o for p, o in zip(parts, offsets, strict=False)])

    def join(levels: list[list[PairCounts]]) -> list[PairCounts]:
        out = []
        for per_fold in zip(*levels, strict=True):
            fields = {}
            for name in PairCounts.__slots__:
                arrays = [getattr(c, name) for c in per_fold]
                if name.startswith("turn_"):
                    fields[name] = np.concatenate(arrays)
                else:
                    fields[name] = np.concatenate(
                        [a[: p.n] for a, p in zip(arrays, parts, strict=True)]
                        + [a[p.n :] for a, p in zip(arrays, parts, strict=True)]
                    )
            out.append(PairCounts(**fields))
        return out

    return _with_ties(
        HeldTurns(
            n=int(offsets[-1]),
            pos=np.concatenate([p.pos for p in parts]),
            turn=np.concatenate([order_t, order_r]),
            cand=np.concatenate([p.cand[: p.n] for p in parts] + [p.cand[p.n :] for p in parts]),
            rank=np.concatenate([p.rank[: p.n] for p in parts] + [p.rank[p.n :] for p in parts]),
            raw=join([p.raw for p in parts]),
            cont=join([p.cont for p in parts]),
        )
    )
