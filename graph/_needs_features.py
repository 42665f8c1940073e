"""
The feature rows of :class:`NeedsForecaster`: which needs are candidates for the next
turn, and what each source of evidence says about each of them (:data:`FEATURES`).

The forecaster gathers the evidence step by step, each step a function returning
named columns: :func:`state_columns` (the state forecast and P(need | state)),
:func:`word_columns` (what the words and needs of this turn are associated with),
:func:`transition_columns` (:class:`NeedsAfter` under the forecast),
:func:`session_columns` (what the session used, and for how long it stayed),
:func:`relative_columns` (the words' associations with needs relative to the state)
and :func:`cooc_columns` (what sessions that used these needs went on to use). Then
:func:`candidate_names` and :func:`feature_rows` turn the columns into one row per
candidate need, in the order of :data:`FEATURES`.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from ._sessions import Item, needs_of, state_of
from ._text_states import text_words
from ._transition_needs import NeedsAfter

if TYPE_CHECKING:
    from ._state_needs import NeedsModel

__all__ = [
    "FEATURES",
    "AssocOf",
    "Column",
    "candidate_names",
    "cooc_columns",
    "feature_rows",
    "relative_columns",
    "relative_needs",
    "session_columns",
    "state_columns",
    "stay",
    "transition_columns",
    "turn_tokens",
    "word_columns",
]

#: The columns of a feature row, in order.
FEATURES = (
    "forecast",
    "persist",
    "persist_prev",
    "same_state",
    "top_state",
    "prior",
    "bias_forecast_zero",
    "text_assoc",
    "after_forecast",
    "after_top",
    "after_seq",
    "persist_earlier",
    "direct",
    "after_flat",
    "need_assoc",
    "since_used",
    "dwell",
    "cooc",
    "assoc_lift",
    "assoc_relative",
    "after_stay",
)
#: Needs an association may add to the candidates (see :func:`_strongest`).
_CANDIDATES = 20
#: The columns whose needs are all candidates.
_NAMING = ("forecast", "persist", "persist_prev", "same_state", "after_forecast", "direct")
#: The columns whose strongest needs are candidates.
_STRONGEST = ("text_assoc", "need_assoc", "assoc_relative")

#: One column of evidence: a value per need (missing needs are 0), or the needs
#: that have the property (1) while the others do not (0).
Column: TypeAlias = "Mapping[str, float] | AbstractSet[str]"
#: The association store's lookup: a token's strongest needs and their strength.
AssocOf: TypeAlias = "Callable[[str], tuple[tuple[str, float], ...]]"
_FeatureMatrix: TypeAlias = "np.ndarray[Any, np.dtype[np.float64]]"


def turn_tokens(item: Item) -> set[str]:
    """Words of a turn's request (``u:``) and reply (``a:``), and its state."""
    out: set[str] = set()
    if isinstance(item, Mapping):
        text = item.get("text")
        if isinstance(text, str):
            out.update("u:" + w for w in text_words(text))
        reply = item.get("system")
        if isinstance(reply, str):
            out.update("a:" + w for w in text_words(reply))
    state = state_of(item)
    if state is not None:
        out.add("s:" + state)
    out.update("n:" + need for need in needs_of(item))
    return out


def stay(history: Sequence[Item]) -> tuple[int, str]:
    """
    How many turns the session has stayed in the state of its last turn, and the
    :meth:`NeedsAfter.needs_key` of the needs it used in them.
    """
    state = state_of(history[-1])
    turns = 0
    used: set[str] = set()
    for item in reversed(history):
        if state_of(item) != state:
            break
        turns += 1
        used.update(needs_of(item))
    return turns, NeedsAfter.needs_key(used)


def _relative(need: str, parts: Sequence[str]) -> str:
    """
    ``need`` with every ``:``-separated segment that names a part of the current state
    replaced by ``@i`` (``db:Hotels_1:SearchHotel`` in ``Hotels_1:SearchHotel`` is
    ``db:@0:@1``): what a word says about the next need ("confirm": the current task's
    booking) carries over from one task to the next.
    """
    return ":".join(f"@{parts.index(seg)}" if seg in parts else seg for seg in need.split(":"))


@functools.lru_cache(maxsize=1 << 16)
def _absolute(relative: str, parts: tuple[str, ...]) -> str | None:
    """
    The inverse of :func:`_relative` for the current state's ``parts`` (None when it
    names a part the state does not have).
    """
    out: list[str] = []
    for seg in relative.split(":"):
        if seg.startswith("@") and seg[1:].isdigit():
            i = int(seg[1:])
            if i >= len(parts):
                return None
            seg = parts[i]
        out.append(seg)
    return ":".join(out)


def relative_needs(needs: Iterable[str], state: str) -> tuple[str, ...]:
    """
    Return ``needs`` relative to ``state`` (see :func:`_relative`).
    """
    parts = state.split(":")
    return tuple(_relative(need, parts) for need in needs)


def _strongest(scores: Mapping[str, float]) -> set[str]:
    """
    The :data:`_CANDIDATES` needs of ``scores`` scoring most: the associations name
    many needs weakly, and each candidate costs a row of features.
    """
    if len(scores) <= _CANDIDATES:
        return set(scores)
    return {need for need, _ in heapq.nlargest(_CANDIDATES, scores.items(), key=_score_then_name)}


def _score_then_name(item: tuple[str, float]) -> tuple[float, str]:
    return (item[1], item[0])


def state_columns(
    needs: NeedsModel, forecast: Sequence[tuple[str, float]], history: Sequence[Item]
) -> dict[str, Column]:
    """
    The state forecast's evidence: each need's expected use under ``forecast``, the
    needs of this turn and of the one before, P(need | this state) and P(need | the
    likeliest next state).
    """
    state = state_of(history[-1]) if history else None
    return {
        "forecast": dict(needs.predict_proba(forecast)),
        "persist": set(needs_of(history[-1])) if history else set(),
        "persist_prev": set(needs_of(history[-2])) if len(history) >= 2 else set(),
        "same_state": dict(needs.needs_given(state)) if state is not None else {},
        "top_state": dict(needs.needs_given(forecast[0][0])) if forecast else {},
    }


def word_columns(
    assoc_of: AssocOf, tokens: Sequence[str], need_turns: Mapping[str, float], n_turns: float
) -> dict[str, Column]:
    """
    The strongest association of each need with this turn's words (``text_assoc``) and
    needs (``need_assoc``), and the sum over the words of the log-lift of the need over
    its base rate (``assoc_lift``), summed in the order of ``tokens``.
    """
    assoc: dict[str, float] = {}
    need_assoc: dict[str, float] = {}
    lift: dict[str, float] = {}
    for token in tokens:
        into = need_assoc if token.startswith("n:") else assoc
        for need, a in assoc_of(token):
            if a > into.get(need, 0.0):
                into[need] = a
            if into is assoc:
                base = (need_turns.get(need, 0.0) + 1.0) / n_turns
                lift[need] = lift.get(need, 0.0) + math.log(max(a / base, 1.0))
    return {"text_assoc": assoc, "need_assoc": need_assoc, "assoc_lift": lift}


def transition_columns(
    after: NeedsAfter,
    state: str | None,
    needs_key: str,
    forecast: Sequence[tuple[str, float]],
    seq: Sequence[tuple[str, float]] | None,
) -> dict[str, Column]:
    """
    The expected use of each need under P(need | this state, this turn's needs, next
    state): under ``forecast`` (``after_forecast``), for its top state (``after_top``),
    under the forecast flattened (``after_flat``) and under the sequence forecast
    ``seq`` alone when the text forecast was blended in (``after_seq``; else the same
    as ``after_forecast``).
    """
    expected: dict[str, float] = {}
    top: dict[str, float] = {}
    flat: dict[str, float] = {}
    # The same under a flattened forecast (square roots of its probabilities):
    # the forecast is often surer than it should be when the session moves on.
    flat_total = sum(math.sqrt(p) for _, p in forecast) or 1.0
    for i, (nxt, p) in enumerate(forecast):
        dist = after.given(state, needs_key, nxt)
        if i == 0:
            top = dict(dist)
        w = math.sqrt(p) / flat_total
        for need, q in dist:
            expected[need] = expected.get(need, 0.0) + p * q
            flat[need] = flat.get(need, 0.0) + w * q
    # The sequence forecast alone, when the text one was blended in: the two
    # err on different turns, and the mixer learns how far to trust each.
    if seq is None:
        by_seq = expected
    else:
        by_seq = {}
        for nxt, p in seq:
            for need, q in after.given(state, needs_key, nxt):
                by_seq[need] = by_seq.get(need, 0.0) + p * q
    return {"after_forecast": expected, "after_top": top, "after_flat": flat, "after_seq": by_seq}


def session_columns(
    after: NeedsAfter, history: Sequence[Item], state: str | None, needs_key: str
) -> tuple[dict[str, Column], int]:
    """
    What the session did: the needs used before the previous turn
    (``persist_earlier``), how recently each need was used (``since_used``), P(need
    next | this state, this turn's needs) (``direct``) and the same given every need
    used since the session entered this state (``after_stay``); and the number of
    turns it has stayed in this state.
    """
    earlier: set[str] = set()
    for item in history[:-2]:
        earlier.update(needs_of(item))
    since: dict[str, float] = {}
    for gap, item in enumerate(reversed(history)):
        for need in needs_of(item):
            since.setdefault(need, 1.0 / (1.0 + gap))
    dwell, stay_key = stay(history)
    columns: dict[str, Column] = {"persist_earlier": earlier, "since_used": since}
    if state is not None:
        columns["direct"] = dict(after.direct(state, needs_key))
        columns["after_stay"] = dict(after.after_stay(state, stay_key))
    return columns, dwell


def relative_columns(assoc_of: AssocOf, tokens: Sequence[str], state: str) -> dict[str, Column]:
    """
    The strongest association of each need with this turn's words, learned relative
    to the state (see :func:`_relative`) and made absolute again for ``state``.
    """
    by_relative: dict[str, float] = {}
    for token in tokens:
        if token.startswith(("u:", "a:")):
            for rel, a in assoc_of("r" + token):
                if a > by_relative.get(rel, 0.0):
                    by_relative[rel] = a
    parts = tuple(state.split(":"))
    relative: dict[str, float] = {}
    for rel, a in by_relative.items():
        need_of = _absolute(rel, parts)  # "task:@0" and "task:X" can meet
        if need_of is not None and a > relative.get(need_of, 0.0):
            relative[need_of] = a
    return {"assoc_relative": relative}


def cooc_columns(assoc_of: AssocOf, history: Sequence[Item]) -> dict[str, Column]:
    """
    Needs a session tends to reach later, given the needs it has used so far: each
    unused need's strongest association with one of them.
    """
    cooc: dict[str, float] = {}
    so_far = {need for item in history for need in needs_of(item)}
    for used in so_far:
        for need, a in assoc_of("c:" + used):
            if need not in so_far and a > cooc.get(need, 0.0):
                cooc[need] = a
    return {"cooc": cooc}


def candidate_names(columns: Mapping[str, Column]) -> list[str]:
    """
    The candidate needs, sorted: every need of the :data:`_NAMING` columns, and the
    strongest of the :data:`_STRONGEST` ones.
    """
    names: set[str] = set()
    for feature in _NAMING:
        names.update(columns.get(feature, ()))
    for feature in _STRONGEST:
        values = columns.get(feature, {})
        assert isinstance(values, Mapping)
        names.update(_strongest(values))
    return sorted(names)  # a fixed order: the mixer's fit subsamples rows by position


def feature_rows(
    names: Sequence[str],
    columns: Mapping[str, Column],
    *,
    prior: Mapping[str, float],
    n_turns: float,
    dwell: int,
) -> _FeatureMatrix:
    """
    One row per candidate need, one column per feature of :data:`FEATURES`.

    Args:
        names: The candidate needs.
        columns: The evidence by feature; a missing one is 0 for every need.
        prior: Turns that used each need (``prior`` is that over ``n_turns``).
        n_turns: Turns seen.
        dwell: Turns the session has stayed in its state (``dwell`` is its log1p).

    Returns:
        A ``len(names)`` by ``len(FEATURES)`` array.
    """

    def col(values: Mapping[str, float]) -> list[float]:
        return [values.get(need, 0.0) for need in names]

    stacked: list[Any] = []
    for feature in FEATURES:
        if feature == "prior":
            stacked.append(np.array(col(prior)) / n_turns)
        elif feature == "bias_forecast_zero":
            stacked.append((np.array(col(_mapping(columns, "forecast"))) == 0.0).astype(np.float64))
        elif feature == "dwell":
            stacked.append(np.full(len(names), math.log1p(dwell)))
        else:
            values = columns.get(feature, {})
            if isinstance(values, Mapping):
                stacked.append(col(values))
            else:
                stacked.append([1.0 if need in values else 0.0 for need in names])
    features: _FeatureMatrix = np.column_stack(stacked)
    return features


def _mapping(columns: Mapping[str, Column], feature: str) -> Mapping[str, float]:
    values = columns.get(feature, {})
    assert isinstance(values, Mapping)
    return values
