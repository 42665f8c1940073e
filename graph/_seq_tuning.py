"""
The search behind ``FollowUpPredictor(order="auto", method="auto", discount="auto",
half_life="auto")``: which longest context, which blending of the orders, which
discount and which time decay forecast the next state best on turns the counts did not
see.

The transitions are counted once, at the longest order searched, on the training part
(:class:`~graph._seq_windows.Windows` keeps every context's id, so counting a subset is
a sort). The held-out turns are then scored under every candidate from those same
counts: each turn keeps the counts of its target and of the few likeliest followers of
each of its contexts, so a candidate costs a few array operations per context length,
never a refit. The validation part is the last sessions (at most :data:`MAX_TURNS`
turns), or :data:`FOLDS` folds of the sessions when the last ones hold too few turns.
Which turns are held out and what is gathered of them is
:mod:`graph._seq_heldout`'s; how a candidate is scored on them, :mod:`graph._seq_scoring`'s.

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
(:func:`_decayed`) and scored on the same candidates
(:func:`~graph._seq_heldout.reweigh`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ._seq_heldout import (
    FOLDS,
    MAX_TURNS,
    Counted,
    concat,
    count_fold,
    gather,
    last_sessions,
    reweigh,
    split_folds,
    top_followers,
)
from ._seq_scoring import DEFAULT_DISCOUNT, join_rows, make_plan, score_one, score_plan
from ._seq_windows import Level

if TYPE_CHECKING:
    from ._seq_heldout import Bools, Floats, HeldTurns, Ints
    from ._seq_scoring import Plan, Row
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

#: What the predictor uses when there are too few sessions to validate on.
DEFAULT_ORDER = 2
DEFAULT_METHOD = "kn"
#: Fewer sessions than this fall back to the defaults (with a warning).
MIN_SESSIONS = 20
#: The longest context the search tries.
MAX_ORDER = 5
METHODS = ("kn", "ad", "ppm", "mix")
DISCOUNTS = (0.5, 0.7, 0.85, 0.95)
#: Half-lives tried for time decay, as shares of the training transitions.
_DECAY = (1 / 64, 1 / 16, 1 / 4)
#: Equal parts of the training transitions whose forecasts of the last sessions tell
#: drift (the newest part forecasts best) from a log sorted some other way.
_SEGMENTS = 8
#: The last sessions must hold this many turns to judge decay.
_MIN_DECAY_TURNS = 1_000
#: At most this many of the last sessions' turns (evenly spread) judge decay.
_MAX_DECAY_TURNS = 1_500
#: The race's first round scores every candidate on about this many held-out turns.
RACE_TURNS = 1_000
#: Top-3 rates this close to the best count as ties, broken by log-loss.
TOLERANCE = 0.0005


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
    folds, how = split_folds(win)
    race = _race(win, folds, make_plan(orders, methods, discounts), max(orders))
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

    rows: list[Row]  # the candidates scored on every held-out turn
    first: list[Row]  # every candidate, on the first round's turns
    parts: list[HeldTurns]  # the held-out turns of each round
    counted: list[Counted]  # per fold, the counts of its training part
    summary: str  # what the race did ("" without one)


def _race(win: Windows, folds: list[tuple[Bools, Bools]], plan: Plan, top: int) -> _Race | None:
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
    counted = [count_fold(win, train, top) for train, _ in folds]
    first_masks, rest_masks = [], []
    for positions in held:
        first = np.zeros(len(win.ids), dtype=bool)
        first[positions[every // 2 :: every] if every >= 2 else positions] = True
        others = np.zeros(len(win.ids), dtype=bool)
        others[positions] = True
        first_masks.append(first)
        rest_masks.append(others & ~first)
    sample = concat(
        [
            t
            for t in (gather(win, c, m, top) for c, m in zip(counted, first_masks, strict=True))
            if t.n
        ]
    )
    if sample is None:
        return None
    first_rows = score_plan([sample], plan)
    if every < 2:
        return _Race(first_rows, first_rows, [sample], counted, "")
    leaders = _leaders(first_rows, sample.n)
    again: Plan = {}
    for o, m, d, *_ in leaders:
        again.setdefault((m, d), set()).add(o)
    longest = max(r[0] for r in leaders)
    kn = any(m == "kn" for m, _ in again)
    rest = concat(
        [
            t
            for t in (
                gather(win, c, m, longest, continuation=kn)
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
    rows = [join_rows([known[(r[0], r[1], r[2])], r], sizes) for r in score_plan([rest], plain)]
    mix = {key: o for key, o in again.items() if key[0] == "mix"}
    rows.extend(score_plan([sample, rest], mix))
    summary = f"every candidate on {sample.n} of them, the {len(leaders)} leading on all"
    return _Race(rows, first_rows, [sample, rest], counted, summary)


def _leaders(rows: list[Row], n: int) -> list[Row]:
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
    top: dict[int, Row] = {}
    low: dict[int, Row] = {}
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


def _select(rows: list[Row], n: int) -> Row:
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
    fold: tuple[Bools, Bools],
    config: tuple[int, str, float, tuple[float, ...] | None],
    counted: Counted,
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
    last = held & (win.session >= win.n_sessions - last_sessions(win))
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
    plain = gather(win, counted, judged, order, continuation=method == "kn", more=weighted)
    base = score_one(plain, order, method, discount, mixture)
    best: tuple[float, float | None] = (float(base.mean()), None)
    for half_life, counts in zip(half_lives, weighted, strict=True):
        hits = score_one(reweigh(win, plain, counts), order, method, discount, mixture)
        diff = hits.astype(np.float64) - base
        se = float(diff.std()) / math.sqrt(len(diff))
        if float(diff.mean()) > max(se, TOLERANCE) and float(hits.mean()) > best[0]:
            best = (float(hits.mean()), half_life)
    rates = f"top-3 on the last sessions {best[0] * 100:.1f} % against {base.mean() * 100:.1f} %"
    if best[1] is None:
        return None, "the log drifts, but no half-life won by a standard error"
    return best[1], f"the log drifts; {rates} without"


def _decayed(
    win: Windows, counted: Counted, train: Bools, order: int, half_lives: Sequence[float]
) -> list[Counted]:
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
        Counted(
            raw=raw,
            cont=[],
            raw_top=[top_followers(level, win.n_contexts(n), b) for n, level in enumerate(raw)],
            cont_top=[],
            by_name=counted.by_name,
        )
        for raw in levels
    ]


def _drifts(win: Windows, train: Bools, last: Bools, order: int) -> bool:
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


def _backoff_hits(win: Windows, parts: list[Ints], query: Ints, order: int) -> Floats:
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
        table = top_followers(level, n_parts * n_ctx, b)
        ctx = win.context[n][query]
        ids = np.arange(n_parts)[:, None] * n_ctx + np.maximum(ctx, 0)[None, :]
        seen = ~done & (ctx >= 0)[None, :]
        if n > 0:
            seen &= level.totals[ids] > 0
        rows, cols = np.nonzero(seen)
        hits[rows, cols] = (table[ids[rows, cols]] == target[cols, None]).any(axis=1)
        done |= seen
    return hits.astype(np.float64)
