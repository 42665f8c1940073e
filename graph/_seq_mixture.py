"""
The context-dependent mixture of orders (``method="mix"``): how much the forecast trusts
a context of ``n`` states depends on the evidence that context has, learned on held-out
turns rather than fixed by a formula.

Each context falls in a bucket by its length, whether it is the session start, its
total count and its count per distinct follower; the bucket's weight ``lam`` mixes the
context's relative frequencies with the forecast of the context one state shorter:
``P_n(s) = lam * c(s) / total + (1 - lam) * P_{n-1}(s)``. The weights are fit by EM
on the likelihood of held-out transitions (deleted interpolation with buckets, as in
Chen and Goodman's study of smoothing), each bucket shrunk towards its length's pooled
weight when it holds few turns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np

__all__ = ["N_BUCKETS_PER_LEVEL", "bucket", "buckets", "fit_mixture"]

_Ints: TypeAlias = "np.ndarray[Any, np.dtype[np.int64]]"
_Floats: TypeAlias = "np.ndarray[Any, np.dtype[np.float64]]"
_Bools: TypeAlias = "np.ndarray[Any, np.dtype[np.bool_]]"

#: Buckets of the total count: 1, 2-3, 4-7, ... 128 and more.
_N_TOTAL = 8
#: Buckets of the count per distinct follower: below 1.5, 3, 8, and above.
_RATIO_EDGES = (1.5, 3.0, 8.0)
_N_RATIO = len(_RATIO_EDGES) + 1
#: Weights per context length: session start or not, by total, by ratio.
N_BUCKETS_PER_LEVEL = 2 * _N_TOTAL * _N_RATIO
#: Pseudo-turns that pull a bucket's weight to its length's pooled weight.
_PRIOR = 4.0
_EM_STEPS = 12
_FLOOR = 1e-12


def bucket(n: int, start: bool, total: float, distinct: int, n_levels: int) -> int:
    """
    Return the index of a context's weight in a table of ``n_levels`` lengths.

    Args:
        n: The context's length in states (1 or more; the start marker counts).
        start: Whether the context begins at the session start.
        total: Its total count.
        distinct: How many different states followed it.
        n_levels: Lengths the table holds (longer contexts share the last).

    Returns:
        The index into the table.
    """
    level = min(n, n_levels) - 1
    tb = min(int(math.log2(total)) if total >= 1.0 else 0, _N_TOTAL - 1)
    ratio = total / max(distinct, 1)
    rb = sum(ratio >= edge for edge in _RATIO_EDGES)
    return ((level * 2 + int(start)) * _N_TOTAL + tb) * _N_RATIO + rb


def buckets(n: int, start: _Bools, total: _Floats, distinct: _Floats, n_levels: int) -> _Ints:
    """
    Vectorised :func:`bucket` for contexts of one length ``n``.
    """
    level = min(n, n_levels) - 1
    # frexp's exponent is floor(log2(x)) + 1 for x >= 1, exactly.
    tb = np.minimum(np.frexp(np.maximum(total, 1.0))[1] - 1, _N_TOTAL - 1).astype(np.int64)
    ratio = total / np.maximum(distinct, 1.0)
    rb = (ratio >= _RATIO_EDGES[0]).astype(np.int64)
    for edge in _RATIO_EDGES[1:]:
        rb += ratio >= edge
    index: _Ints = ((level * 2 + start.astype(np.int64)) * _N_TOTAL + tb) * _N_RATIO + rb
    return index


def fit_mixture(
    unigram: _Floats,
    probs: Sequence[_Floats],
    present: Sequence[_Bools],
    index: Sequence[_Ints],
    group: _Ints | None = None,
    n_groups: int = 1,
) -> list[tuple[float, ...]]:
    """
    Fit the weights of a mixture of ``len(probs)`` context lengths by EM, one table per
    group of turns (the groups are fit apart, in one pass of array operations).

    Args:
        unigram: Per held-out turn, the unigram probability of the state that followed.
        probs: Per length ``n`` (1, 2, ...), per turn, the relative frequency of that
            state after the turn's context of that length.
        present: Per length, whether the turn had a counted context of that length.
        index: Per length, the turn's context's bucket (see :func:`buckets`).
        group: Per turn, its group (0 .. ``n_groups`` - 1); None for one group.
        n_groups: How many groups.

    Returns:
        Per group, the table of weights, :data:`N_BUCKETS_PER_LEVEL` per length.
    """
    n_levels = len(probs)
    if n_levels == 0:
        return [() for _ in range(n_groups)]
    size = n_levels * N_BUCKETS_PER_LEVEL
    offset = 0 if group is None else group * size
    dummy = n_groups * size  # where turns without a context of a length put their mass
    slots = [np.where(has, idx + offset, dummy) for has, idx in zip(present, index, strict=True)]
    table = np.full(dummy + 1, 0.6)
    table[dummy] = 0.0
    # Every length as a row of one array: a step is a few operations on all of them.
    slot_rows = np.stack(slots)
    flat_slots = slot_rows.reshape(-1)
    prob_rows = np.stack(probs)
    below = np.empty((n_levels + 1, len(unigram)))
    below[0] = np.maximum(unigram, _FLOOR)
    reach = np.empty((n_levels, len(unigram)))
    for _ in range(_EM_STEPS):
        lams = table[slot_rows]
        rest = 1.0 - lams
        own = lams * prob_rows
        # Forward: P_n of the true state under the mixture up to length n.
        for n in range(n_levels):
            below[n + 1] = own[n] + rest[n] * below[n]
        total = np.maximum(below[-1], _FLOOR)
        # Backward: the posterior of stopping at length n, and of reaching it.
        reach[-1] = 1.0 / total
        for n in range(n_levels - 1, 0, -1):
            reach[n - 1] = reach[n] * rest[n]
        stops = (reach * lams * prob_rows).reshape(-1)
        reaches = (reach * below[1:]).reshape(-1)
        stop_sum = np.bincount(flat_slots, weights=stops, minlength=dummy + 1)
        reach_sum = np.bincount(flat_slots, weights=reaches, minlength=dummy + 1)
        stop_g = stop_sum[:dummy].reshape(n_groups, n_levels, -1)
        reach_g = reach_sum[:dummy].reshape(n_groups, n_levels, -1)
        pooled = stop_g.sum(2) / np.maximum(reach_g.sum(2), _FLOOR)
        prior = np.clip(pooled, 0.05, 0.95)[:, :, None]
        fitted = np.clip((stop_g + _PRIOR * prior) / (reach_g + _PRIOR), 0.01, 0.99)
        table[:dummy] = fitted.reshape(-1)
    rounded = np.round(table[:dummy], 6).tolist()
    return [tuple(rounded[g * size : (g + 1) * size]) for g in range(n_groups)]
