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

The candidates are raced (:func:`_race`): every one is scored on an evenly spread
sample of about :data:`RACE_TURNS` held-out turns, and only the few that lead
(:func:`_leaders`) on the rest; the mixture's weights of a leader are fit again on all
the held-out turns, with the same halves as without a race.

A candidate wins by its top-3 hit rate; candidates within one standard error of the
best are told apart by their order, then their log-loss (:func:`_select`).

With ``half_life="auto"`` the chosen candidate is then tried with its counts decayed,
on the last sessions only (at most :data:`_MAX_DECAY_TURNS` of their turns), when the
log drifts (:func:`_drifts`: the newest part of the training transitions forecasts the
last sessions better than every older part). The decayed counts are the same
transitions weighed by age, so they are found once for every half-life
(:func:`_decayed`) and scored on the same candidates (:func:`_reweigh`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from ._seq_mixture import buckets, fit_mixture
from ._seq_windows import Level

if TYPE_CHECKING:
    from ._seq_windows import Windows

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
    "RACE_TURNS",
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
#: At most this many of the last sessions' turns (evenly spread) judge decay.
_MAX_DECAY_TURNS = 1_500
FOLDS = 5
#: The race's first round scores every candidate on about this many held-out turns.
RACE_TURNS = 1_000
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
        race: How the candidates were raced on the held-out turns ("" when every
            candidate was scored on all of them); ``board`` holds the first round.
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
    race: str = ""


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
    pos: _Ints  # per turn: its position in the windows
    turn: _Ints  # per pair: which turn
    cand: _Ints  # per pair: the candidate state's id
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
    return replace(turns, earlier=earlier, rival_turn=rival)


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
    race = _race(win, folds, _plan(orders, methods, discounts), max(orders))
    if race is None:
        return None
    n_turns = sum(t.n for t in race.parts)
    order, method, discount, top3, loss, mixture, _ = _select(race.rows, n_turns)
    half_life, why = None, ""
    if decay and len(folds) == 1:
        config = (order, method, discount, mixture)
        half_life, why = _choose_decay(win, folds[0], config, race.counted[0])
    elif decay:
        why = "not judged: validated on folds (too few held-out turns)"
    board: dict[tuple[int, str], tuple[int, str, float, float, float]] = {}
    for o, m, d, t3, ll, _, _ in race.first:
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
        n_turns=n_turns,
        top3=top3,
        log_loss=loss,
        board=tuple(sorted(board.values(), key=lambda r: (-r[3], r[4]))),
        race=race.summary,
    )


@dataclass(frozen=True, slots=True)
class _Race:
    """
    What :func:`_race` found.
    """

    rows: list[_Row]  # the candidates scored on every held-out turn
    first: list[_Row]  # every candidate, on the first round's turns
    parts: list[_Turns]  # the held-out turns of each round
    counted: list[_Counted]  # per fold, the counts of its training part
    summary: str  # what the race did ("" without one)


def _race(win: Windows, folds: list[tuple[_Bools, _Bools]], plan: _Plan, top: int) -> _Race | None:
    """
    Score the candidates of ``plan`` on the held-out turns of ``folds``, racing them:
    every candidate on a sample of about :data:`RACE_TURNS` turns, the few that lead
    (:func:`_leaders`) on the rest as well. With fewer than twice that many held-out
    turns, every candidate on all of them. None when no held-out turn has a context.

    Each fold's training part is counted once, up to ``top``; the second round gathers
    its turns only up to the longest context a leader uses, and with the continuation
    counts (and their likeliest followers as candidates) only when a leader is
    Kneser-Ney, the one blending that uses them.
    """
    held = [np.flatnonzero(h & win.scored) for _, h in folds]
    every = sum(len(h) for h in held) // RACE_TURNS
    counted = [_count(win, train, top) for train, _ in folds]
    first_masks, rest_masks = [], []
    for positions in held:
        first = np.zeros(len(win.ids), dtype=bool)
        first[positions[every // 2 :: every] if every >= 2 else positions] = True
        others = np.zeros(len(win.ids), dtype=bool)
        others[positions] = True
        first_masks.append(first)
        rest_masks.append(others & ~first)
    sample = _concat(
        [
            t
            for t in (_gather(win, c, m, top) for c, m in zip(counted, first_masks, strict=True))
            if t.n
        ]
    )
    if sample is None:
        return None
    first_rows = _score([sample], plan)
    if every < 2:
        return _Race(first_rows, first_rows, [sample], counted, "")
    leaders = _leaders(first_rows, sample.n)
    again: _Plan = {}
    for o, m, d, *_ in leaders:
        again.setdefault((m, d), set()).add(o)
    longest = max(r[0] for r in leaders)
    kn = any(m == "kn" for m, _ in again)
    rest = _concat(
        [
            t
            for t in (
                _gather(win, c, m, longest, continuation=kn)
                for c, m in zip(counted, rest_masks, strict=True)
            )
            if t.n
        ]
    )
    if rest is None:
        return _Race(first_rows, first_rows, [sample], counted, "")
    plain = {key: o for key, o in again.items() if key[0] != "mix"}
    known = {(r[0], r[1], r[2]): r for r in first_rows}
    sizes = [sample.n, rest.n]
    rows = [_join([known[(r[0], r[1], r[2])], r], sizes) for r in _score([rest], plain)]
    mix = {key: o for key, o in again.items() if key[0] == "mix"}
    rows.extend(_score([sample, rest], mix))
    summary = f"every candidate on {sample.n} of them, the {len(leaders)} leading on all"
    return _Race(rows, first_rows, [sample, rest], counted, summary)


def _leaders(rows: list[_Row], n: int) -> list[_Row]:
    """
    The candidates of a race's first round that go on: of those within two standard
    errors of the paired difference from the best top-3, for each order up to the
    best's, the best top-3 (then log-loss) and the lowest log-loss: what
    :func:`_select` keeps among equals (the lowest order, then the lowest log-loss, of
    those within a standard error), and the best itself.

    A runner-up of the best's order with neither is not scored again: it could only
    displace the best, and scoring it on every turn costs as much as the rest of the
    second round (on the drifting set, a Kneser-Ney runner-up would cost the
    continuation counts of every held-out turn).
    """
    best = max(rows, key=lambda r: (r[3], -r[4]))
    top: dict[int, _Row] = {}
    low: dict[int, _Row] = {}
    for row in rows:
        if row[0] > best[0]:
            continue
        diff = best[6].astype(np.float64) - row[6]
        se = float(diff.std()) / math.sqrt(max(n, 1))
        if row[3] >= best[3] - max(2.0 * se, TOLERANCE):
            o = row[0]
            if o not in top or (row[3], -row[4]) > (top[o][3], -top[o][4]):
                top[o] = row
            if o not in low or row[4] < low[o][4]:
                low[o] = row
    keep = {(best[0], best[1], best[2]): best}
    for row in [*top.values(), *low.values()]:
        keep.setdefault((row[0], row[1], row[2]), row)
    return list(keep.values())


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
        if row[0] > best[0]:
            continue
        diff = best[6].astype(np.float64) - row[6]
        se = float(diff.std()) / math.sqrt(max(n, 1))
        if row[3] >= best[3] - max(se, TOLERANCE):
            equal.append(row)
    return min(equal, key=lambda r: (r[0], r[4]))


def _choose_decay(
    win: Windows,
    fold: tuple[_Bools, _Bools],
    config: tuple[int, str, float, tuple[float, ...] | None],
    counted: _Counted,
) -> tuple[float | None, str]:
    """
    Whether the chosen candidate forecasts the last sessions better with its counts
    decayed (half-lives of :data:`_DECAY` of the training transitions), and why.

    Decay weighs each count by its age, which is right only when the newer the counts,
    the better they forecast what comes next: it is tried only when :func:`_drifts`
    finds that on the log. Only the last sessions' turns are scored (decay weighs the
    past against the present, so earlier held-out sessions cannot judge it), from
    counts up to the chosen order. A half-life must win by more than one standard error
    of the paired difference to be taken. ``counted`` holds the training part's
    counts: the decayed ones count the same transitions (the continuation counts do not
    change), so every half-life is scored on the same candidates.
    """
    train, held = fold
    last = held & (win.session >= win.n_sessions - _last_sessions(win))
    order, method, discount, mixture = config
    recent = np.flatnonzero(last & win.scored)
    if len(recent) < _MIN_DECAY_TURNS:
        return None, f"not judged: fewer than {_MIN_DECAY_TURNS} turns in the last sessions"
    judged = np.zeros(len(win.ids), dtype=bool)
    judged[recent[:: math.ceil(len(recent) / _MAX_DECAY_TURNS)]] = True
    if not _drifts(win, train, judged, order):
        return None, (
            "not tried: the log does not drift (an older part of it forecasts its last "
            "sessions as well as the newest part)"
        )
    n_train = int((train & win.targets).sum())
    half_lives = [max(1.0, round(n_train * share)) for share in _DECAY]
    weighted = _decayed(win, counted, train, order, half_lives)
    plain = _gather(win, counted, judged, order, continuation=method == "kn", more=weighted)
    base = _score_one(plain, order, method, discount, mixture)
    best: tuple[float, float | None] = (float(base.mean()), None)
    for half_life, counts in zip(half_lives, weighted, strict=True):
        hits = _score_one(_reweigh(win, plain, counts), order, method, discount, mixture)
        diff = hits.astype(np.float64) - base
        se = float(diff.std()) / math.sqrt(len(diff))
        if float(diff.mean()) > max(se, TOLERANCE) and float(hits.mean()) > best[0]:
            best = (float(hits.mean()), half_life)
    rates = f"top-3 on the last sessions {best[0] * 100:.1f} % against {base.mean() * 100:.1f} %"
    if best[1] is None:
        return None, "the log drifts, but no half-life won by a standard error"
    return best[1], f"the log drifts; {rates} without"


def _decayed(
    win: Windows, counted: _Counted, train: _Bools, order: int, half_lives: Sequence[float]
) -> list[_Counted]:
    """
    The counts of ``counted`` (on ``train``, up to ``order``) under each half-life: the
    same transitions, weighed by their age (see :meth:`Windows.decay_weights`), found
    once for every half-life; without continuation counts (decay does not change them).
    """
    positions = np.flatnonzero(train & win.targets)
    # The newest weighs 1 (as Windows.decay_weights weighs them, at these positions).
    age = np.arange(len(positions), dtype=np.int64) - (len(positions) - 1)
    ages = [np.exp2(age / h) for h in half_lives]
    ids = win.ids[positions]
    levels: list[list[Level]] = [[] for _ in half_lives]
    for n in range(order + 1):
        plain = counted.raw[n]
        ctx = win.context[n][positions]
        mask = ctx >= 0
        keys = ctx[mask] * win.n_names + ids[mask]
        if plain.size <= 8 * len(keys):  # a table of every key is no bigger: no search
            where = np.zeros(plain.size, dtype=np.int64)
            where[plain.keys] = np.arange(len(plain.keys))
            slot = where[keys]
        else:
            slot = np.searchsorted(plain.keys, keys)
        for weights, out in zip(ages, levels, strict=True):
            counts = np.bincount(slot, weights=weights[mask], minlength=len(plain.keys))
            out.append(Level(plain.keys, counts.astype(np.float64), win.n_contexts(n), win.n_names))
    b = win.n_names
    return [
        _Counted(
            raw=raw,
            cont=[],
            raw_top=[_top_followers(level, win.n_contexts(n), b) for n, level in enumerate(raw)],
            cont_top=[],
            by_name=counted.by_name,
        )
        for raw in levels
    ]


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
    rates = list(_backoff_hits(win, np.array_split(positions, _SEGMENTS), query, order))
    newest = rates[-1]
    for older in rates[:-1]:
        diff = newest - older
        se = float(diff.std()) / math.sqrt(len(diff))
        if float(diff.mean()) <= max(se, TOLERANCE):
            return False
    return True


def _backoff_hits(win: Windows, parts: list[_Ints], query: _Ints, order: int) -> _Floats:
    """
    Per part of the positions ``parts`` and per position of ``query``, whether its state
    is among the top 3 followers of its longest context (up to ``order`` states)
    counted at the positions of that part (1.0 or 0.0). Every part is counted in one
    pass: a context of part ``k`` is context ``k * n_contexts + id``.
    """
    b = win.n_names
    n_parts = len(parts)
    part_of = np.repeat(np.arange(n_parts, dtype=np.int64), [len(p) for p in parts])
    positions = np.concatenate(parts)
    ids_at = win.ids[positions]
    target = win.ids[query]
    hits = np.zeros((n_parts, len(query)), dtype=bool)
    done = np.zeros((n_parts, len(query)), dtype=bool)
    for n in range(order, -1, -1):
        n_ctx = win.n_contexts(n)
        ctx_at = win.context[n][positions]
        keep = ctx_at >= 0  # the positions are transitions: their targets are states
        keys = (part_of[keep] * n_ctx + ctx_at[keep]) * b + ids_at[keep]
        size = n_parts * n_ctx * b
        if size <= 8 * len(keys):  # a table of every key is no bigger: no sort
            dense = np.bincount(keys, minlength=size)
            uniq = np.flatnonzero(dense)
            counts = dense[uniq]
        else:
            uniq, counts = np.unique(keys, return_counts=True)
        level = Level(uniq, counts.astype(np.float64), n_parts * n_ctx, b)
        table = _top_followers(level, n_parts * n_ctx, b)
        ctx = win.context[n][query]
        ids = np.arange(n_parts)[:, None] * n_ctx + np.maximum(ctx, 0)[None, :]
        seen = ~done & (ctx >= 0)[None, :]
        if n > 0:
            seen &= level.totals[ids] > 0
        rows, cols = np.nonzero(seen)
        hits[rows, cols] = (table[ids[rows, cols]] == target[cols, None]).any(axis=1)
        done |= seen
    return hits.astype(np.float64)


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
class _Counted:
    """
    The counts of the training positions of a fold, up to the longest context searched,
    and the likeliest followers of every context: what gathering held-out turns needs.
    """

    raw: list[Level]  # per length 0..top
    cont: list[Level]  # per length 0..top-1
    raw_top: list[_Ints]  # per length: :func:`_top_followers` of ``raw``
    cont_top: list[_Ints]
    by_name: _Ints  # per id: its place in name order


def _count(
    win: Windows,
    train: _Bools,
    top: int,
    weights: _Floats | None = None,
    *,
    continuation: bool = True,
) -> _Counted:
    """
    Count on ``train`` (weighted by ``weights`` when given), contexts up to ``top``; the
    continuation counts too unless ``continuation`` is False.
    """
    b = win.n_names
    raw = [win.count(n, train, weights) for n in range(top + 1)]
    cont = [win.continuation(raw[n + 1], n) for n in range(top)] if continuation else []
    return _Counted(
        raw=raw,
        cont=cont,
        raw_top=[_top_followers(raw[n], win.n_contexts(n), b) for n in range(top + 1)],
        cont_top=[_top_followers(level, win.n_contexts(n), b) for n, level in enumerate(cont)],
        by_name=np.argsort(np.argsort(np.asarray(win.names, dtype=object))),
    )


def _turns(
    win: Windows, train: _Bools, held: _Bools, top: int, weights: _Floats | None = None
) -> _Turns:
    """
    Count on ``train`` (weighted by ``weights`` when given) and gather the held-out
    turns ``held`` with their candidates.
    """
    return _gather(win, _count(win, train, top, weights), held, top)


def _gather(
    win: Windows,
    counted: _Counted,
    held: _Bools,
    top: int,
    *,
    continuation: bool = True,
    more: Sequence[_Counted] = (),
) -> _Turns:
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
    tables: list[tuple[int, _Ints]] = []
    for n in range(top + 1):
        tables.extend((n, t) for t in (counted.raw_top[n], *(c.raw_top[n] for c in more)))
        if n < top and continuation:
            tables.append((n, counted.cont_top[n]))
    turn, cand = _candidates(win.n_names, target, [table[ctx[n]] for n, table in tables])
    return _with_ties(
        _Turns(
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


def _candidates(b: int, target: _Ints, columns: list[_Ints]) -> tuple[_Ints, _Ints]:
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


def _reweigh(win: Windows, turns: _Turns, counted: _Counted) -> _Turns:
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
    count = level.pairs(ctx[turn], cand)
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
            pos=np.concatenate([p.pos for p in parts]),
            turn=np.concatenate([order_t, order_r]),
            cand=np.concatenate([p.cand[: p.n] for p in parts] + [p.cand[p.n :] for p in parts]),
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


#: Which candidates to score: per ``(method, discount)``, the orders.
_Plan: TypeAlias = "dict[tuple[str, float], set[int]]"


def _plan(orders: Sequence[int], methods: Sequence[str], discounts: Sequence[float]) -> _Plan:
    """
    Every candidate: each discount for ``"kn"`` and ``"ad"``, one for ``"ppm"`` (which has
    none) and ``"mix"`` (which learns its weights instead).
    """
    plan: _Plan = {}
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


def _score_all(
    turns: _Turns, orders: Sequence[int], methods: Sequence[str], discounts: Sequence[float]
) -> list[_Row]:
    """
    Every candidate's ``(order, method, discount, top3, log_loss, mixture, hits)``.
    """
    return _score([turns], _plan(orders, methods, discounts))


def _score(parts: list[_Turns], plan: _Plan) -> list[_Row]:
    """
    The candidates of ``plan`` scored on the turns of every part (as one set of turns:
    the mixture's weights are fit on all of them).
    """
    rows: list[_Row] = []
    lower: list[list[_Counts]] = []
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
        rows.extend(_join(list(same), [t.n for t in parts]) for same in zip(*per_part, strict=True))
    return rows


def _join(rows: list[_Row], sizes: list[int]) -> _Row:
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
    turns: _Turns, method: str, d: float, orders: set[int], lower: list[_Counts]
) -> list[_Row]:
    """
    The rows of ``method`` with discount ``d`` at ``orders``, from one pass up the
    context lengths (``lower``: what Kneser-Ney counts below the top order, per length).
    """
    rows: list[_Row] = []
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


def _score_mix(parts: list[_Turns], orders: Sequence[int]) -> list[_Row]:
    """
    The mixture of every order, scored by cross-fitting on the turns of every part
    (weights fit on every other turn, in the order of their positions, score the
    others and the other way round: the same halves however the turns are split into
    parts); it keeps the average of the two fits' weights.
    """
    rows: list[_Row] = []
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
        scored: list[_Row] = []
        offset = 0
        for turns, lv in zip(parts, levels, strict=True):
            shift = np.where(half[offset : offset + turns.n] == 0, len(on_even), 0)
            offset += turns.n
            lam = [both[i + shift] for i in lv.turn_index(order)]
            top3, loss, hits = _metrics(turns, lv.forecast(lam))
            scored.append((order, "mix", DEFAULT_DISCOUNT, top3, loss, table, hits))
        rows.append(_join(scored, [t.n for t in parts]))
    return rows


class _MixLevels:
    """
    What the mixture needs of held-out turns, per context length, computed once for
    every order (a context's bucket does not depend on the order: see :func:`buckets`).
    A bucket and its weight belong to a turn's context, the same at each of its pairs:
    they are found per turn and spread over its pairs last.
    """

    def __init__(self, turns: _Turns) -> None:
        self.turns = turns
        self._turn: dict[int, _Ints] = {}

    def turn_index(self, order: int) -> list[_Ints]:
        """
        Per length 1..``order``, each turn's context's bucket.
        """
        raw = self.turns.raw
        for n in range(1, order + 1):
            if n not in self._turn:
                c = raw[n]
                self._turn[n] = buckets(n, c.turn_start, c.turn_total, c.turn_distinct, n)
        return [self._turn[n] for n in range(1, order + 1)]

    def forecast(self, lam: list[_Floats]) -> _Floats:
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


_MixInputs: TypeAlias = "tuple[_Floats, list[_Floats], list[_Bools], list[_Ints]]"
