"""
How :class:`FollowUpPredictor` combines its two forecasts of the next state, the
sequence forecast (:class:`SeqCounts`) and the text forecast (:class:`TextForecaster`):
either a learned reranking of the union of both top lists (:func:`_rerank`) or, as a
fallback, a linear or log-linear blend of their probabilities (:func:`_mix`). Both are
learned on held-out turns (:func:`learn_combination`).
"""

from __future__ import annotations

import heapq
import itertools
import math
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
from sklearn.linear_model import LogisticRegression

from ._keys import BOS
from ._sessions import Item, has_text, session_parts, state_of, states_of

if TYPE_CHECKING:
    from ._seq_counts import SeqCounts
    from ._text_states import TextForecaster

__all__ = ["N_RERANK", "WIDEN", "combine", "learn_combination"]

#: How many states beyond ``k`` each forecast contributes to the combination.
WIDEN = 8
#: The number of reranking coefficients (the width of :func:`_rerank_rows`).
N_RERANK = 6
_MAX_BLEND_CASES = 4000
_MAX_RERANK_CASES = 12000
_GRID = tuple(i / 20 for i in range(21))

_Forecast: TypeAlias = "list[tuple[str, float]]"
#: The current state and the states seen so far in the session (see :func:`_context`).
_Context: TypeAlias = "tuple[str | None, frozenset[str]]"
#: Both forecasts of a held-out turn, its context and the state that followed.
_Case: TypeAlias = "tuple[_Forecast, _Forecast, _Context, str]"


def combine(
    seq: list[tuple[str, float]],
    text: list[tuple[str, float]],
    history: Sequence[Item],
    blend: tuple[str, float],
    rerank: tuple[float, ...] | None,
    k: int | None,
) -> list[tuple[str, float]]:
    """
    Combine the two forecasts of the state after ``history``: rerank them when a
    reranking was learned, else blend them.

    Args:
        seq: The sequence forecast, most probable first.
        text: The text forecast, most probable first.
        history: The session so far.
        blend: ``(kind, weight)`` of the text forecast in the blend.
        rerank: The reranking's coefficients, or None.
        k: How many states to return; None for all.

    Returns:
        ``(state, probability)`` pairs, most probable first.
    """
    if rerank is not None:
        return _rerank(seq, text, _context(history), rerank, k)
    return _mix(seq, text, blend, k)


def learn_combination(
    seq: SeqCounts, text: TextForecaster, held: list[Any]
) -> tuple[tuple[str, float], tuple[float, ...] | None]:
    """
    Learn the blend and the reranking on the held-out sessions ``held``, from both
    forecasts of every turn whose previous turn has text.

    Args:
        seq: Sequence counts learned without ``held``.
        text: A text forecast learned without ``held``.
        held: The held-out sessions.

    Returns:
        ``(blend, rerank)``: the blend's ``(kind, weight)`` and the reranking's
        coefficients (None when the held-out turns are too few to fit it).
    """
    cases = _blend_cases(seq, text, held)
    return _learn_blend(cases), _learn_rerank(cases)


def _mix(
    seq: list[tuple[str, float]],
    text: list[tuple[str, float]],
    blend: tuple[str, float],
    k: int | None,
) -> list[tuple[str, float]]:
    """
    Blend two forecasts over the union of their states.
    """
    kind, lam = blend
    ps, pt = dict(seq), dict(text)
    # Both lists come sorted, most probable first: their last entries are their minima.
    floor_s = (seq[-1][1] if seq else 1e-6) * 0.5
    floor_t = (text[-1][1] if text else 1e-6) * 0.5
    mixed: dict[str, float] = {}
    if kind == "linear":
        for s in ps.keys() | pt.keys():
            mixed[s] = (1.0 - lam) * ps.get(s, floor_s) + lam * pt.get(s, floor_t)
    else:
        mu = 1.0 - lam
        for s in ps.keys() | pt.keys():
            mixed[s] = max(ps.get(s, floor_s), 1e-12) ** mu * max(pt.get(s, floor_t), 1e-12) ** lam
        total = sum(mixed.values())
        mixed = {s: p / total for s, p in mixed.items()}
    if k is not None and k < len(mixed):
        return heapq.nsmallest(k, ((s, p) for s, p in mixed.items()), key=_rank_key)
    return sorted(mixed.items(), key=_rank_key)


def _rank_key(item: tuple[str, float]) -> tuple[float, str]:
    return (-item[1], item[0])


def _context(history: Sequence[Item]) -> tuple[str | None, frozenset[str]]:
    """
    The current state and the states seen so far in the session.
    """
    states = states_of(history)
    return (states[-1] if states else None), frozenset(states)


def _blend_cases(seq: SeqCounts, text: TextForecaster, held: list[Any]) -> list[_Case]:
    """
    Both forecasts of every held-out turn whose previous turn has text, with its target.
    """
    cases: list[_Case] = []
    for session in held:
        items, _ = session_parts(session)
        for i in range(1, len(items)):
            target = state_of(items[i])
            if target is None or not has_text(items[i - 1]):
                continue
            history = items[:i]
            padded = [BOS, *states_of(history)]
            cases.append(
                (
                    seq.predict(padded, 3 + WIDEN),
                    text.predict_proba(history, 3 + WIDEN),
                    _context(history),
                    target,
                )
            )
    return cases


def _learn_blend(cases: list[_Case]) -> tuple[str, float]:
    """
    Pick the blend (kind and weight) with the best top-1 + top-3 hits on held-out turns
    (ties: the higher log-likelihood of the true state).
    """
    if not cases:
        return ("linear", 0.5)
    cases = cases[:: max(1, len(cases) // _MAX_BLEND_CASES)]
    best: tuple[float, float, str, float] | None = None
    for kind in ("linear", "loglinear"):
        for lam in _GRID:
            hits = 0.0
            loglik = 0.0
            for s, t, _, target in cases:
                top = _mix(s, t, (kind, lam), 3)
                names = [n for n, _ in top]
                hits += (names[:1] == [target]) + (target in names)
                loglik += math.log(max(dict(top).get(target, 1e-6), 1e-6))
            key = (hits, loglik, kind, lam)
            if best is None or key[:2] > best[:2]:
                best = key
    assert best is not None
    return (best[2], best[3])


def _rerank_rows(
    seq: list[tuple[str, float]],
    text: list[tuple[str, float]],
    context: tuple[str | None, frozenset[str]],
) -> tuple[list[str], list[tuple[float, ...]]]:
    """
    Features of every state in either forecast: the log-probabilities under each
    (floored at half the list's last), whether it is the current state, whether the
    session has been in it, and the two log-probabilities again for the current state
    (so staying and moving get their own trust in each forecast).
    """
    ps, pt = dict(seq), dict(text)
    floor_s = math.log((seq[-1][1] if seq else 1e-6) * 0.5 + 1e-12)
    floor_t = math.log((text[-1][1] if text else 1e-6) * 0.5 + 1e-12)
    current, seen = context
    names: list[str] = []
    rows: list[tuple[float, ...]] = []
    for s in ps.keys() | pt.keys():
        a = ps.get(s)
        b = pt.get(s)
        la = floor_s if a is None else math.log(a + 1e-12)
        lb = floor_t if b is None else math.log(b + 1e-12)
        stay = 1.0 if s == current else 0.0
        names.append(s)
        rows.append((la, lb, stay, 1.0 if s in seen else 0.0, la * stay, lb * stay))
    return names, rows


def _rerank(
    seq: list[tuple[str, float]],
    text: list[tuple[str, float]],
    context: tuple[str | None, frozenset[str]],
    coef: tuple[float, ...],
    k: int | None,
) -> list[tuple[str, float]]:
    """
    Rank the union of both forecasts by the learned linear score; probabilities are the
    scores' softmax over the union.
    """
    names, rows = _rerank_rows(seq, text, context)
    scores = [sum(map(operator.mul, coef, row)) for row in rows]
    top = max(scores, default=0.0)
    weights = [math.exp(z - top) for z in scores]
    total = sum(weights) or 1.0
    out = [(s, w / total) for s, w in zip(names, weights, strict=True)]
    if k is not None and k < len(out):
        return heapq.nsmallest(k, out, key=_rank_key)
    return sorted(out, key=_rank_key)


def _learn_rerank(cases: list[_Case]) -> tuple[float, ...] | None:
    """
    Fit the reranking (a logistic regression: is this state the next one?) on held-out
    turns; None when they hold too little to fit it.
    """
    cases = cases[:: max(1, len(cases) // _MAX_RERANK_CASES)]
    xs: list[tuple[float, ...]] = []
    ys: list[int] = []
    sizes = [0]
    for s, t, context, target in cases:
        names, rows = _rerank_rows(s, t, context)
        sizes.append(len(rows))
        xs.extend(rows)
        ys.extend(int(n == target) for n in names)
    if len(cases) < 50 or len(set(ys)) < 2:
        return None
    lr = LogisticRegression(C=1.0, max_iter=1000)
    lr.fit(np.asarray(xs), np.asarray(ys))
    coef = np.asarray(lr.coef_[0], dtype=np.float64)
    # The logistic regression scores each state on its own; the forecast is their
    # softmax over the union, so scale the scores to the held-out likelihood of that.
    x = np.asarray(xs) @ coef
    y = np.asarray(ys, dtype=bool)
    bounds = [int(b) for b in np.cumsum(sizes)]
    best = (-math.inf, 1.0)
    for scale in (0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0):
        z = x * scale
        loglik = 0.0
        for lo, hi in itertools.pairwise(bounds):
            seg = z[lo:hi]
            top = float(seg.max())
            norm = top + math.log(float(np.exp(seg - top).sum()))
            hit = y[lo:hi]
            loglik += float(seg[hit].sum()) - norm if hit.any() else math.log(1e-6)
        best = max(best, (loglik, scale))
    return tuple(float(c) * best[1] for c in coef)
