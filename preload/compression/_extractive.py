"""
Extractive selection: TF-IDF vectors of the units, their centrality by TextRank,
duplicate removal, a summary by maximal marginal relevance, and key points by greedy
coverage of key terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._units import Unit, needs, render

if TYPE_CHECKING:
    from .._tokens import TokenCounter

__all__ = ["dedup", "key_points", "mmr", "textrank", "tfidf"]


def tfidf(units: Sequence[Unit]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """
    L2-normalized TF-IDF rows, one per unit; terms in every unit weigh nothing.
    """
    vocab: dict[str, int] = {}
    rows = [[vocab.setdefault(t, len(vocab)) for t in unit.terms] for unit in units]
    n = len(units)
    matrix = np.zeros((n, max(1, len(vocab))))
    for i, ids in enumerate(rows):
        for j in ids:
            matrix[i, j] += 1.0
    df = np.count_nonzero(matrix, axis=0)
    idf = np.log((n + 1.0) / (df + 1.0))
    matrix *= idf
    norms = np.linalg.norm(matrix, axis=1)
    norms[norms == 0] = 1.0
    result: np.ndarray[Any, np.dtype[np.float64]] = matrix / norms[:, None]
    return result


def textrank(
    vectors: np.ndarray[Any, np.dtype[np.float64]], max_units: int
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """
    Centrality of each unit: PageRank over the cosine-similarity graph (TextRank),
    solved as a linear system; above ``max_units`` units, cosine to the centroid instead.
    """
    n = vectors.shape[0]
    if n == 0:
        return np.zeros(0)
    if n > max_units:
        centroid = vectors.sum(axis=0)
        norm = float(np.linalg.norm(centroid)) or 1.0
        scores: np.ndarray[Any, np.dtype[np.float64]] = vectors @ (centroid / norm)
        return scores
    sim = vectors @ vectors.T
    np.fill_diagonal(sim, 0.0)
    out = sim.sum(axis=1)
    transition = np.where(out[:, None] > 0, sim / np.where(out == 0, 1.0, out)[:, None], 1.0 / n)
    # PageRank's fixed point r = (1 - d) / n + d * M^T r, solved directly.
    damping = 0.85
    system = np.eye(n) - damping * transition.T
    rank = np.linalg.solve(system, np.full(n, (1 - damping) / n))
    return np.asarray(rank, dtype=np.float64)


def dedup(
    units: Sequence[Unit],
    vectors: np.ndarray[Any, np.dtype[np.float64]],
    threshold: float,
    *,
    exact_only: bool,
) -> list[int]:
    """
    The units that are neither an exact repeat of an earlier one (by their terms) nor,
    unless ``exact_only``, a near duplicate (TF-IDF cosine at least ``threshold``).
    """
    seen: set[str] = set()
    kept: list[int] = []
    for i, unit in enumerate(units):
        norm = " ".join(unit.terms) or unit.text
        if norm in seen:
            continue
        seen.add(norm)
        if (
            not exact_only
            and kept
            and len(unit.terms) >= 3
            and len(kept) <= 2000
            and float(np.max(vectors[kept] @ vectors[i])) >= threshold
        ):
            continue
        kept.append(i)
    return kept


def mmr(
    units: Sequence[Unit],
    vectors: np.ndarray[Any, np.dtype[np.float64]],
    rank: Sequence[float],
    budget: int,
    counter: TokenCounter,
    *,
    diversity: float = 0.5,
) -> list[int]:
    """
    TextRank selection with maximal marginal relevance: central units first, each
    discounted by its similarity to what is already chosen, within ``budget``.
    """
    n = len(units)
    top = max(rank) if rank else 1.0
    relevance = np.array([r / top for r in rank])
    sizes = np.array([u.tokens + 1 for u in units], dtype=np.float64)
    scale = np.sqrt(sizes)
    open_ = np.array([not u.aux for u in units])
    closest = np.zeros(n)
    chosen: set[int] = set()
    used = 0
    while open_.any() and budget - used >= float(sizes[open_].min()):
        score = np.where(open_, (relevance - diversity * closest) / scale, -np.inf)
        best = int(np.argmax(score))
        open_[best] = False
        need = [j for j in needs(units, best) if j not in chosen]
        cost = sum(units[j].tokens + 1 for j in need)
        if used + cost > budget:
            continue
        chosen.update(need)
        used += cost
        if n > 1:
            closest = np.maximum(closest, vectors @ vectors[best])
    picked = sorted(chosen)
    while picked and counter.count(render(units, picked)) > budget:
        picked.pop()
    return picked


def key_points(units: Sequence[Unit], budget: int, counter: TokenCounter) -> list[int]:
    """
    Greedy coverage: units adding the most new key terms per token (a table row
    brings its header along), within ``budget``.
    """
    covered: set[str] = set()
    chosen: set[int] = set()
    used = 0
    sets = [set(u.terms) for u in units]
    while True:
        best, best_gain = -1, 0.0
        for i, unit in enumerate(units):
            if i in chosen or unit.aux:
                continue
            cost = sum(units[j].tokens + 2 for j in needs(units, i) if j not in chosen)
            if used + cost > budget:
                continue
            gain = len(sets[i] - covered) / cost
            if gain > best_gain:
                best, best_gain = i, gain
        if best < 0:
            break
        for j in needs(units, best):
            if j not in chosen:
                chosen.add(j)
                used += units[j].tokens + 2
                covered |= sets[j]
    picked = sorted(chosen)
    while picked and counter.count(render(units, picked, bullets=True)) > budget:
        picked.pop()
    return picked
