"""
The search behind ``FollowUpPredictor(order="auto", method="auto", discount="auto",
half_life="auto")``: which longest context, which blending of the orders, which
discount and which time decay forecast the next state best on turns the counts did not
see.

The transitions are counted once, at the longest order searched, on the training part
(:class:`Windows` keeps every context's id, so counting a subset is a sort). The
held-out turns are then scored under every candidate from those same counts: each
turn keeps the counts of its target and of the few likeliest followers of each of its
contexts, so a candidate costs a few array operations per context length, never a
refit. The validation part is the last sessions (at most :data:`MAX_TURNS` turns), or
:data:`FOLDS` folds of the sessions when the last ones hold too few turns.

A candidate wins by its top-3 hit rate; candidates within :data:`TOLERANCE` of the
best are told apart by their log-loss.

With ``half_life="auto"`` the chosen candidate is then tried with its counts decayed,
on the last sessions only, when the log drifts (:func:`_drifts`: the newest part of the
training transitions forecasts the last sessions better than every older part).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from ._seq_mixture import buckets, fit_mixture

if TYPE_CHECKING:
    from ._seq_windows import Level, Windows

__all__ = [
    "DEFAULT_DISCOUNT",
    "DEFAULT_METHOD",
    "DEFAULT_ORDER",
    "DISCOUNTS",
    "FOLDS",
    "MAX_ORDER",
    "MAX_TURNS",
    "METHODS",
    "MIN_SESSIONS",
    "TOLERANCE",
    "Choice",
    "search",
]

_Ints: TypeAlias = "np.ndarray[Any, np.dtype[np.int64]]"
_Floats: TypeAlias = "np.ndarray[Any, np.dtype[np.float64]]"
_Bools: TypeAlias = "np.ndarray[Any, np.dtype[np.bool_]]"

#: What the predictor uses when there are too few sessions to validate on.
DEFAULT_ORDER = 2
DEFAULT_METHOD = "kn"
DEFAULT_DISCOUNT = 0.75
#: Fewer sessions than this fall back to the defaults (with a warning).
MIN_SESSIONS = 20
#: The longest context the search tries.
MAX_ORDER = 5
METHODS = ("kn", "ad", "ppm", "mix")
DISCOUNTS = (0.5, 0.7, 0.85, 0.95)
#: At most this many held-out turns (the last sessions) are scored.
MAX_TURNS = 20_000
#: Below this many held-out turns in the last sessions, validate on folds instead.
_MIN_HOLDOUT_TURNS = 3_000
_HOLDOUT = 0.15
_SPREAD = 13
#: Half-lives tried for time decay, as shares of the training transitions.
_DECAY = (1 / 64, 1 / 16, 1 / 4)
#: Equal parts of the training transitions whose forecasts of the last sessions tell
#: drift (the newest part forecasts best) from a log sorted some other way.
_SEGMENTS = 8
#: The last sessions must hold this many turns to judge decay.
_MIN_DECAY_TURNS = 1_000
FOLDS = 5
#: Top-3 rates this close to the best count as ties, broken by log-loss.
TOLERANCE = 0.0005
#: Followers of each context that are candidates for the top 3.
_TOP = 3
_FLOOR = 1e-9


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    """
    What the search chose, and on what evidence.

    Attributes:
        order: The longest context.
        method: ``"kn"``, ``"ad"``, ``"ppm"`` or ``"mix"``.
        discount: The discount (used by ``"kn"`` and ``"ad"``).
        mixture: The weights of ``"mix"``, else None.
        half_life: The time decay chosen (transitions), or None for none.
        validation: How the held-out turns were chosen (or why there was no search).
        n_turns: Held-out turns scored.
        top3: The chosen candidate's held-out top-3 hit rate (None without a search).
        log_loss: Its held-out log-loss in nats.
        board: The best candidate of every order and method,
            ``(order, method, discount, top3, log_loss)``, best first.
        decay: Why time decay was or was not taken ("" when it was not searched).
    """

    order: int
    method: str
    discount: float
    mixture: tuple[float, ...] | None = None
    half_life: float | None = None
    validation: str = ""
    n_turns: int = 0
    top3: float | None = None
    log_loss: float | None = None
    board: tuple[tuple[int, str, float, float, float], ...] = ()
    decay: str = ""


@dataclass(frozen=True, slots=True)
class _Counts:
    """
    What the forecast of one context length needs at each candidate pair and turn.
    """

    count: _Floats  # per (turn, candidate) pair
    total: _Floats  # per pair: the context's total (1 where absent)
    distinct: _Floats  # per pair
    present: _Bools  # per pair: the turn has a counted context of this length
    start: _Bools  # per pair: the context begins at the session start
    turn_total: _Floats  # per turn
    turn_distinct: _Floats
    turn_present: _Bools
    turn_start: _Bools


@dataclass(frozen=True, slots=True)
class _Turns:
    """
    The held-out turns: their candidate states as (turn, candidate) pairs, the target's
    pair first for every turn, and the counts of every context length at every pair.
    """

    n: int
    turn: _Ints  # per pair: which turn
    rank: _Ints  # per pair: the candidate's place in name order (the forecast's ties)
    raw: list[_Counts]  # per length 0..max: plain counts
    cont: list[_Counts]  # per length 0..max-1: continuation counts
    #: Per pair after the targets: the candidate comes before its turn's target in
    #: name order (it wins a tie), and which turn it belongs to.
    earlier: _Bools = field(default_factory=lambda: np.zeros(0, dtype=bool))
    rival_turn: _Ints = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _with_ties(turns: _Turns) -> _Turns:
    """
    ``turns`` with what every candidate's comparison with its target needs.
    """
    rival = turns.turn[turns.n :]
    earlier = turns.rank[turns.n :] < turns.rank[rival]
    return _Turns(turns.n, turns.turn, turns.rank, turns.raw, turns.cont, earlier, rival)


def search(
    win: Windows,
    *,
    orders: Sequence[int],
    methods: Sequence[str],
    discounts: Sequence[float],
    decay: bool = False,
) -> Choice | None:
    """
    Choose the order, method and discount for the sessions of ``win``.

    Args:
        win: The sessions, with contexts up to ``max(orders)``.
        orders: The orders to try.
        methods: The blendings to try.
        discounts: The discounts to try (for ``"kn"`` and ``"ad"``).
        decay: Also try time decay (see :func:`_choose_decay`) for the chosen candidate.

    Returns:
        The choice, or None when there are fewer than :data:`MIN_SESSIONS` sessions or
        no held-out turn has a context.
    """
    if win.n_sessions < MIN_SESSIONS:
        return None
    folds, how = _folds(win)
    top = max(orders)
    parts = [_turns(win, train, held, top) for train, held in folds]
    turns = _concat([p for p in parts if p.n])
    if turns is None:
        return None
    rows = _score_all(turns, orders, methods, discounts)
    if not rows:  # order 0 only: nothing to choose
        return None
    order, method, discount, top3, loss, mixture, _ = _select(rows, turns.n)
    half_life, why = None, ""
    if decay and len(folds) == 1:
        half_life, why = _choose_decay(win, folds[0], (order, method, discount, mixture))
    elif decay:
        why = "not judged: validated on folds (too few held-out turns)"
    board: dict[tuple[int, str], tuple[int, str, float, float, float]] = {}
    for o, m, d, t3, ll, _, _ in rows:
        held = board.get((o, m))
        if held is None or (t3, -ll) > (held[3], -held[4]):
            board[(o, m)] = (o, m, d, t3, ll)
    return Choice(
        order=order,
        method=method,
        discount=discount,
        mixture=mixture,
        half_life=half_life,
        decay=why,
        validation=how,
        n_turns=turns.n,
        top3=top3,
        log_loss=loss,
        board=tuple(sorted(board.values(), key=lambda r: (-r[3], r[4]))),
    )


def _select(rows: list[_Row], n: int) -> _Row:
    """
    The simplest candidate as good as the best: the best top-3 rate (ties broken by
    log-loss) and every candidate within one standard error of the paired difference
    from it (or :data:`TOLERANCE`) count as equal; of those, the lowest order wins,
    then the lowest log-loss.
    """
    best = max(rows, key=lambda r: (r[3], -r[4]))
    equal = []
    for row in rows:
        diff = best[6].astype(np.float64) - row[6]
        se = float(diff.std()) / math.sqrt(max(n, 1))
        if row[3] >= best[3] - max(se, TOLERANCE):
            equal.append(row)
    return min(equal, key=lambda r: (r[0], r[4]))


def _choose_decay(
    win: Windows,
    fold: tuple[_Bools, _Bools],
    config: tuple[int, str, float, tuple[float, ...] | None],
) -> tuple[float | None, str]:
    """
    Whether the chosen candidate forecasts the last sessions better with its counts
    decayed (half-lives of :data:`_DECAY` of the training transitions), and why.

    Decay weighs each count by its age, which is right only when the newer the counts,
    the better they forecast what comes next: it is tried only when :func:`_drifts`
    finds that on the log. Only the last sessions' turns are scored (decay weighs the
    past against the present, so earlier held-out sessions cannot judge it), from
    counts up to the chosen order. A half-life must win by more than one standard error
    of the paired difference to be taken.
    """
    train, held = fold
    last = held & (win.session >= win.n_sessions - _last_sessions(win))
    order, method, discount, mixture = config
    if int((last & win.scored).sum()) < _MIN_DECAY_TURNS:
        return None, f"not judged: fewer than {_MIN_DECAY_TURNS} turns in the last sessions"
    if not _drifts(win, train, last, order):
        return None, (
            "not tried: the log does not drift (an older part of it forecasts its last "
            "sessions as well as the newest part)"
        )
    n_train = int((train & win.targets).sum())
    plain = _turns(win, train, last, order)
    base = _score_one(plain, order, method, discount, mixture)
    best: tuple[float, float | None] = (float(base.mean()), None)
    for share in _DECAY:
        half_life = max(1.0, round(n_train * share))
        weights = win.decay_weights(train, half_life)
        turns = _turns(win, train, last, order, weights)
        hits = _score_one(turns, order, method, discount, mixture)
        diff = hits.astype(np.float64) - base
        se = float(diff.std()) / math.sqrt(len(diff))
        if float(diff.mean()) > max(se, TOLERANCE) and float(hits.mean()) > best[0]:
            best = (float(hits.mean()), half_life)
    rates = f"top-3 on the last sessions {best[0] * 100:.1f} % against {base.mean() * 100:.1f} %"
    if best[1] is None:
        return None, "the log drifts, but no half-life won by a standard error"
    return best[1], f"the log drifts; {rates} without"


def _drifts(win: Windows, train: _Bools, last: _Bools, order: int) -> bool:
    """
    Whether the log drifts: of :data:`_SEGMENTS` equal parts of the training
    transitions, the newest forecasts the last sessions better than every older part
    (by more than one standard error of their paired difference).

    Each part forecasts with its own counts, the top 3 followers of the longest context
    (up to ``order`` states) it has seen. That is what weighing counts by their age
    assumes, whether the log drifts steadily or switches at some point. On a log
    sorted by task or domain an older part that holds the last sessions' tasks
    forecasts them as well as the newest or better, and decay would only fit the
    log's last tasks; on a log that does not change, no part does better.
    """
    positions = np.flatnonzero(train & win.targets)
    query = np.flatnonzero(last & win.scored)
    if len(positions) < _SEGMENTS or len(query) == 0:
        return False
    rates = [
        _backoff_hits(win, part, query, order).astype(np.float64)
        for part in np.array_split(positions, _SEGMENTS)
    ]
    newest = rates[-1]
    for older in rates[:-1]:
        diff = newest - older
        se = float(diff.std()) / math.sqrt(len(diff))
        if float(diff.mean()) <= max(se, TOLERANCE):
            return False
    return True


def _backoff_hits(win: Windows, part: _Ints, query: _Ints, order: int) -> _Bools:
    """
    Per position of ``query``, whether its state is among the top 3 followers of its
    longest context (up to ``order`` states) counted at the positions ``part``.
    """
    target = win.ids[query]
    hits = np.zeros(len(query), dtype=bool)
    done = np.zeros(len(query), dtype=bool)
    for n in range(order, -1, -1):
        level = win.count_at(n, part)
        ctx = win.context[n][query]
        seen = ~done & (ctx >= 0)
        if n > 0:
            seen &= _take(level.totals, ctx) > 0
        table = _top_followers(level, win.n_contexts(n), win.n_names)
        at = np.flatnonzero(seen)
        hits[at] = (table[ctx[at]] == target[at, None]).any(axis=1)
        done |= seen
    return hits


def _last_sessions(win: Windows) -> int:
    return max(1, math.ceil(win.n_sessions * _HOLDOUT / 2))


def _score_one(
    turns: _Turns, order: int, method: str, discount: float, mixture: tuple[float, ...] | None
) -> _Bools:
    """
    The hits per held-out turn of one candidate.
    """
    if method == "mix":
        weights = np.asarray(mixture)
        p = _unigram(turns.raw[0])
        for n in range(1, order + 1):
            c = turns.raw[n]
            lam = weights[buckets(n, c.start, c.total, c.distinct, order)]
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


# -- the held-out turns --------------------------------------------------------------------


def _folds(win: Windows) -> tuple[list[tuple[_Bools, _Bools]], str]:
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
    n_last = _last_sessions(win)
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


def _top_followers(level: Level, n_contexts: int, n_names: int) -> _Ints:
    """
    The :data:`_TOP` most counted followers of every context (-1 where fewer).
    """
    table = np.full((n_contexts, _TOP), -1, dtype=np.int64)
    ctx = level.keys // n_names
    order = np.lexsort((-level.counts, ctx))
    ctx_sorted = ctx[order]
    rank = np.arange(len(order)) - np.searchsorted(ctx_sorted, ctx_sorted, "left")
    keep = rank < _TOP
    table[ctx_sorted[keep], rank[keep]] = (level.keys % n_names)[order][keep]
    return table


def _turns(
    win: Windows, train: _Bools, held: _Bools, top: int, weights: _Floats | None = None
) -> _Turns:
    """
    Count on ``train`` (weighted by ``weights`` when given) and gather the held-out
    turns ``held`` with their candidates.
    """
    b = win.n_names
    raw = [win.count(n, train, weights) for n in range(top + 1)]
    cont = [win.continuation(raw[n + 1], n) for n in range(top)]
    pos = np.flatnonzero(held & win.scored)
    target = win.ids[pos]
    ctx = [win.context[n][pos] for n in range(top + 1)]
    columns = []
    for n in range(top + 1):
        for level in (raw[n], cont[n]) if n < top else (raw[n],):
            table = _top_followers(level, win.n_contexts(n), b)
            if len(table) == 0:  # no session is that long
                columns.append(np.full((len(pos), _TOP), -1, dtype=np.int64))
                continue
            columns.append(np.where(ctx[n][:, None] >= 0, table[np.maximum(ctx[n], 0)], -1))
    cands = np.sort(np.hstack(columns), axis=1)
    dup = np.zeros_like(cands, dtype=bool)
    dup[:, 1:] = cands[:, 1:] == cands[:, :-1]
    keep = (cands >= 0) & ~dup & (cands != target[:, None])
    rows, _ = np.nonzero(keep)
    turn = np.concatenate([np.arange(len(pos)), rows])
    cand = np.concatenate([target, cands[keep]])
    by_name = np.argsort(np.argsort(np.asarray(win.names, dtype=object)))
    return _with_ties(
        _Turns(
            n=len(pos),
            turn=turn,
            rank=by_name[cand].astype(np.int64),
            raw=[_at(win, raw[n], n, ctx[n], turn, cand) for n in range(top + 1)],
            cont=[_at(win, cont[n], n, ctx[n], turn, cand) for n in range(top)],
        )
    )


def _take(values: np.ndarray[Any, Any], ctx: _Ints) -> np.ndarray[Any, Any]:
    """
    ``values[ctx]``, 0 where ``ctx`` is -1 (no context of that length).
    """
    if len(values) == 0:
        return np.zeros(len(ctx), dtype=values.dtype)
    return np.where(ctx >= 0, values[np.maximum(ctx, 0)], 0)


def _at(win: Windows, level: Level, n: int, ctx: _Ints, turn: _Ints, cand: _Ints) -> _Counts:
    """
    The counts of ``level`` (contexts of length ``n``) at every (turn, candidate) pair.
    """
    total = _take(level.totals, ctx)
    distinct = _take(level.distinct, ctx)
    present = total > 0
    start = (ctx >= 0) & (_take(win.first[n], ctx) == 0) if n > 0 else np.zeros_like(present)
    pair_ctx = ctx[turn]
    count = np.where(pair_ctx >= 0, level.lookup(np.maximum(pair_ctx, 0) * win.n_names + cand), 0.0)
    return _Counts(
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


def _concat(parts: list[_Turns]) -> _Turns | None:
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

    def join(levels: list[list[_Counts]]) -> list[_Counts]:
        out = []
        for per_fold in zip(*levels, strict=True):
            fields = {}
            for name in _Counts.__slots__:
                arrays = [getattr(c, name) for c in per_fold]
                if name.startswith("turn_"):
                    fields[name] = np.concatenate(arrays)
                else:
                    fields[name] = np.concatenate(
                        [a[: p.n] for a, p in zip(arrays, parts, strict=True)]
                        + [a[p.n :] for a, p in zip(arrays, parts, strict=True)]
                    )
            out.append(_Counts(**fields))
        return out

    return _with_ties(
        _Turns(
            n=int(offsets[-1]),
            turn=np.concatenate([order_t, order_r]),
            rank=np.concatenate([p.rank[: p.n] for p in parts] + [p.rank[p.n :] for p in parts]),
            raw=join([p.raw for p in parts]),
            cont=join([p.cont for p in parts]),
        )
    )


# -- scoring the candidates ----------------------------------------------------------------

#: ``(order, method, discount, top3, log_loss, mixture, hits per held-out turn)``.
_Row: TypeAlias = "tuple[int, str, float, float, float, tuple[float, ...] | None, _Bools]"


def _metrics(turns: _Turns, p: _Floats) -> tuple[float, float, _Bools]:
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


def _unigram(c: _Counts) -> _Floats:
    return c.count / c.total


def _step(below: _Floats, c: _Counts, method: str, d: float) -> _Floats:
    """
    One context length more: the interpolated forecast at every pair.
    """
    if method == "ppm":
        denom = c.total + c.distinct
        p = (c.count + c.distinct * below) / denom
    else:
        p = (np.maximum(c.count - d, 0.0) + d * c.distinct * below) / c.total
    return np.where(c.present, p, below)


def _kn_lower(raw: _Counts, cont: _Counts) -> _Counts:
    """
    The counts Kneser-Ney uses below the top order: continuation counts, except for
    contexts at the session start (nothing precedes them).
    """
    s = raw.start
    ts = raw.turn_start
    return _Counts(
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


def _score_all(
    turns: _Turns, orders: Sequence[int], methods: Sequence[str], discounts: Sequence[float]
) -> list[_Row]:
    """
    Every candidate's ``(order, method, discount, top3, log_loss, mixture)``.
    """
    rows: list[_Row] = []
    top = max(orders)
    lower = [_kn_lower(turns.raw[n], turns.cont[n]) for n in range(top)] if "kn" in methods else []
    for method in methods:
        if method == "mix":
            rows.extend(_score_mix(turns, orders))
            continue
        for d in discounts if method in ("kn", "ad") else discounts[:1]:
            if method == "kn":
                p = _unigram(turns.cont[0])
                for n in range(1, top + 1):
                    if n in orders:
                        top3, loss, hits = _metrics(turns, _step(p, turns.raw[n], "kn", d))
                        rows.append((n, method, d, top3, loss, None, hits))
                    if n < top:
                        p = _step(p, lower[n], "kn", d)
            else:
                p = _unigram(turns.raw[0])
                for n in range(1, top + 1):
                    p = _step(p, turns.raw[n], method, d)
                    if n in orders:
                        top3, loss, hits = _metrics(turns, p)
                        rows.append((n, method, d, top3, loss, None, hits))
    return rows


def _score_mix(turns: _Turns, orders: Sequence[int]) -> list[_Row]:
    """
    The mixture of every order, scored by cross-fitting (weights fit on the even
    held-out turns score the odd ones and the other way round); it keeps the average
    of the two fits' weights.
    """
    rows: list[_Row] = []
    n_turns = turns.n
    raw = turns.raw
    even = np.arange(n_turns) % 2 == 0
    pair_even = even[turns.turn]
    half = (~even).astype(np.int64)
    for order in orders:
        unigram, probs, present, index = _mix_inputs(turns, order)
        on_even, on_odd = map(
            np.asarray, fit_mixture(unigram, probs, present, index, group=half, n_groups=2)
        )
        p = _unigram(raw[0])
        for n in range(1, order + 1):
            c = raw[n]
            idx = buckets(n, c.start, c.total, c.distinct, order)
            lam = np.where(pair_even, on_odd[idx], on_even[idx])
            p = np.where(c.present, lam * c.count / c.total + (1.0 - lam) * p, p)
        top3, loss, hits = _metrics(turns, p)
        table = tuple(round(float(w), 6) for w in (on_even + on_odd) / 2.0)
        rows.append((order, "mix", DEFAULT_DISCOUNT, top3, loss, table, hits))
    return rows


_MixInputs: TypeAlias = "tuple[_Floats, list[_Floats], list[_Bools], list[_Ints]]"


def _mix_inputs(turns: _Turns, order: int) -> _MixInputs:
    """
    Per held-out turn, the target's unigram probability and, per context length, its
    relative frequency, whether the context was counted and the context's bucket.
    """
    n_turns = turns.n
    raw = turns.raw
    unigram = raw[0].count[:n_turns] / raw[0].turn_total
    probs, present, index = [], [], []
    for n in range(1, order + 1):
        c = raw[n]
        probs.append(c.count[:n_turns] / c.turn_total)
        present.append(c.turn_present)
        index.append(buckets(n, c.turn_start, c.turn_total, c.turn_distinct, order))
    return unigram, probs, present, index
