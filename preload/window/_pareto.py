"""
Pareto budgeting: a window chosen among candidate windows by several objectives.

For one request a few candidate windows are built from the same options: the
knapsack's (the most value within the room), the knapsack within 3/4, 1/2 and 1/4 of
the room (fewer tokens, more value per token), and a diverse one (the best item of
each source and kind first). Each is scored on four objectives in [0, 1]:

``relevance``
    the share of the candidates' value it holds;
``completeness``
    the share of the predicted needs' probability it covers (1 when nothing is
    predicted);
``efficiency``
    its value per token, relative to the best value per token of any option;
``diversity``
    the share of the candidates' distinct sources and kinds it holds.

The frontier is the windows no other window beats on every objective; the choice is
the frontier's window with the highest weighted sum (``[budget.objectives]``), ties
going to the earlier (the knapsack's first). The work is linear in the candidates
times the fixed number of windows (at most :data:`MAX_CANDIDATES` candidates enter).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .._config import OBJECTIVES
from ._knapsack import Option, select_greedy

__all__ = ["MAX_CANDIDATES", "Choice", "WindowPoint", "choose", "frontier"]

#: The most candidates a Pareto choice considers (the rest are left to the knapsack's
#: answer): the request path's work stays bounded.
MAX_CANDIDATES = 64

#: The shares of the room the smaller knapsack windows are built within.
_FRACTIONS = (0.75, 0.5, 0.25)


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowPoint:
    """
    A candidate window: how it was built, its choice of option per item (-1: out),
    and its objectives.

    .. versionadded:: 0.6
    """

    name: str
    choices: tuple[int, ...]
    relevance: float
    completeness: float
    efficiency: float
    diversity: float

    @property
    def objectives(self) -> tuple[float, float, float, float]:
        """
        Its objectives in :data:`~preload.window.OBJECTIVES` order.
        """
        return (self.relevance, self.completeness, self.efficiency, self.diversity)

    def score(self, weights: Mapping[str, float]) -> float:
        """
        The weighted sum of its objectives.
        """
        return sum(
            weights.get(n, 0.0) * v for n, v in zip(OBJECTIVES, self.objectives, strict=True)
        )

    def describe(self, weights: Mapping[str, float]) -> str:
        """
        Its name, objectives and score, on one line.
        """
        parts = ", ".join(f"{n} {v:.2f}" for n, v in zip(OBJECTIVES, self.objectives, strict=True))
        return f"{self.name} ({parts}; score {self.score(weights):.3f})"

    def dominates(self, other: WindowPoint) -> bool:
        """
        Whether it is at least as good on every objective and better on one.
        """
        pairs = list(zip(self.objectives, other.objectives, strict=True))
        return all(a >= b for a, b in pairs) and any(a > b for a, b in pairs)


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    """
    The window chosen from the frontier, the frontier, and the nearest alternative.

    .. versionadded:: 0.6
    """

    chosen: WindowPoint
    frontier: tuple[WindowPoint, ...]
    nearest: WindowPoint | None
    weights: dict[str, float]

    def explain(self) -> list[str]:
        """
        The chosen point and the nearest alternative, a line each.
        """
        lines = [
            (
                f"pareto: chose {self.chosen.describe(self.weights)}, one of "
                f"{len(self.frontier)} on the frontier"
            )
        ]
        if self.nearest is not None:
            lines.append(f"pareto: nearest alternative {self.nearest.describe(self.weights)}")
        return lines


def frontier(points: Sequence[WindowPoint]) -> list[WindowPoint]:
    """
    The points no other point dominates, in their order (a point equal to an earlier
    one is left out).
    """
    out: list[WindowPoint] = []
    for i, point in enumerate(points):
        if any(other.dominates(point) for other in points):
            continue
        if any(p.objectives == point.objectives for p in points[:i] if p in out):
            continue
        out.append(point)
    return out


def choose(
    items: Sequence[Sequence[Option]],
    budget: int,
    *,
    first: Sequence[int],
    values: Sequence[float],
    groups: Sequence[tuple[str, str]],
    predicted: Sequence[float],
    weights: Mapping[str, float],
) -> Choice:
    """
    The window to take from the frontier of the candidate windows.

    Args:
        items: Each candidate's options (one a level), as the knapsack takes them.
        budget: The room, in tokens.
        first: The knapsack's choices within the whole room.
        values: Each candidate's value (before level quality).
        groups: Each candidate's source and kind.
        predicted: Each candidate's forecast probability (0: not a predicted need).
        weights: The objectives' weights.
    """
    built: list[tuple[str, tuple[int, ...]]] = [("knapsack", tuple(first))]
    for fraction in _FRACTIONS:
        picked = select_greedy(items, int(budget * fraction)).choices
        built.append((f"knapsack within {fraction:.0%} of the room", picked))
    built.append(("diverse", _diverse(items, budget, groups)))
    best_rate = max(
        (o.value / o.tokens for options in items for o in options if o.tokens > 0), default=0.0
    )
    total_value = sum(max((o.value for o in options), default=0.0) for options in items)
    total_p = sum(predicted)
    all_groups = {g for pair in groups for g in _tags(pair)}
    points = []
    for name, choices in built:
        taken = [(i, items[i][c]) for i, c in enumerate(choices) if c >= 0]
        value = sum(o.value for _, o in taken)
        tokens = sum(o.tokens for _, o in taken)
        held = {g for i, _ in taken for g in _tags(groups[i])}
        points.append(
            WindowPoint(
                name=name,
                choices=choices,
                relevance=value / total_value if total_value > 0 else 0.0,
                completeness=sum(predicted[i] for i, _ in taken) / total_p if total_p else 1.0,
                efficiency=(value / tokens) / best_rate if tokens and best_rate else 0.0,
                diversity=len(held) / len(all_groups) if all_groups else 0.0,
            )
        )
    front = frontier(points)
    chosen = max(front, key=lambda p: (p.score(weights), -front.index(p)))
    others = [p for p in front if p is not chosen] or [p for p in points if p is not chosen]
    nearest = min(others, key=lambda p: _distance(p, chosen), default=None)
    return Choice(chosen=chosen, frontier=tuple(front), nearest=nearest, weights=dict(weights))


def _tags(group: tuple[str, str]) -> tuple[str, str]:
    return (f"source={group[0]}", f"kind={group[1]}")


def _distance(a: WindowPoint, b: WindowPoint) -> float:
    return math.dist(a.objectives, b.objectives)


def _diverse(
    items: Sequence[Sequence[Option]], budget: int, groups: Sequence[tuple[str, str]]
) -> tuple[int, ...]:
    """
    The best item (value per token at its richest level that fits) of each source
    and kind first, then the others by value per token, each at the richest level
    that fits what is left.
    """

    def rate(i: int) -> float:
        best = items[i][0] if items[i] else None
        return best.value / best.tokens if best is not None and best.tokens else 0.0

    order = sorted(range(len(items)), key=lambda i: -rate(i))
    leaders: dict[tuple[str, str], int] = {}
    for i in order:
        leaders.setdefault(groups[i], i)
    first = set(leaders.values())
    rest = [i for i in order if i not in first]
    choices = [-1] * len(items)
    left = budget
    for i in [*(i for i in order if i in first), *rest]:
        for j, option in enumerate(items[i]):
            if option.value > 0 and option.tokens <= left:
                choices[i] = j
                left -= option.tokens
                break
    return tuple(choices)
