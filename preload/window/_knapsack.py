"""
The multiple-choice knapsack: which items to take, and at which compression level.

Each item offers options (its compression levels), each with a value and tokens; at
most one option per item is taken, within a token budget, for the most value.

The knapsack is solved exactly by dynamic programming over tokens for small inputs.
Otherwise :func:`select` answers within a certified ``TOLERANCE`` (1 %) of the
optimum: the greedy on the convex hull of each item's (tokens, value) levels (Sinha
and Zoltners) takes hull steps by decreasing value per token, and its LP relaxation
bounds the optimum from above; when that bound does not certify the greedy,
dynamic programming over a grid of token buckets (tokens rounded up: feasible;
rounded down: an upper bound) is refined until it does (:func:`select_scaled`).
Every answer reports its certified gap. A fully polynomial approximation scheme
(:func:`select_fptas`, values rounded down to multiples of ``epsilon * vmax / n``)
guarantees ``(1 - epsilon)`` of the optimum a priori.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._errors import ConfigError

__all__ = [
    "Option",
    "Selection",
    "select",
    "select_exact",
    "select_fptas",
    "select_greedy",
    "select_scaled",
]

#: Above this many cells (items x levels x budget) the exact solver is not used.
EXACT_CELLS = 2_000_000

#: Above this many cells (items^2 x levels / epsilon) the FPTAS is not used.
FPTAS_CELLS = 20_000_000

#: The certified gap to the optimum that :func:`select` accepts.
TOLERANCE = 0.01

#: Token buckets of :func:`select_scaled`'s first grid.
GRID_CELLS = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Option:
    """
    One way to include an item: a compression level's value and tokens.

    .. versionadded:: 0.1
    """

    value: float
    tokens: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """
    A knapsack answer: for each item the index of its chosen option, or -1 (left out).

    ``bound`` is an upper bound on the best value possible (the LP relaxation, or the
    value itself when ``exact``); ``gap`` is ``(bound - value) / bound``, the most this
    answer can be below the optimum.

    .. versionadded:: 0.1
    """

    choices: tuple[int, ...]
    value: float
    tokens: int
    budget: int
    exact: bool
    bound: float

    @property
    def gap(self) -> float:
        """
        The certified relative gap to the optimum (0 when exact).
        """
        if self.exact or self.bound <= 0:
            return 0.0
        return max(0.0, (self.bound - self.value) / self.bound)

    def explain(self, names: Sequence[str] | None = None) -> list[str]:
        """
        Why each item is in or out, at which option.
        """
        lines = [
            f"{self.tokens} of {self.budget} tokens, value {self.value:.3f} "
            + ("(exact)" if self.exact else f"(greedy, within {self.gap:.1%} of the optimum)")
        ]
        for i, choice in enumerate(self.choices):
            name = names[i] if names is not None else f"item {i}"
            lines.append(f"  {'in ' if choice >= 0 else 'out'} {name}: option {choice}")
        return lines


def select(
    items: Sequence[Sequence[Option]],
    budget: int,
    *,
    exact_items: int = 8,
    tolerance: float = TOLERANCE,
) -> Selection:
    """
    The options to take, at most one per item, with the most value within ``budget``.

    Exact (dynamic programming) when there are at most ``exact_items`` items and the
    table is small. Otherwise :func:`select_scaled`: the convex-hull greedy when its
    certified gap is within ``tolerance``, else dynamic programming over a coarse token
    grid, refined until the answer is certified within ``tolerance`` of the optimum.

    Raises:
        ConfigError: ``budget`` is negative.

    .. versionadded:: 0.1
    """
    if budget < 0:
        raise ConfigError("budget", f"must not be negative, got {budget}")
    cells = len(items) * max((len(o) for o in items), default=0) * (budget + 1)
    if len(items) <= exact_items and cells <= EXACT_CELLS:
        return select_exact(items, budget)
    return select_scaled(items, budget, tolerance=tolerance)


def select_scaled(
    items: Sequence[Sequence[Option]],
    budget: int,
    *,
    tolerance: float = TOLERANCE,
    cells: int = GRID_CELLS,
) -> Selection:
    """
    A selection certified within ``tolerance`` of the optimum, fast.

    First the convex-hull greedy (:func:`select_greedy`); when its LP bound already
    certifies it, that is the answer. Otherwise dynamic programming on a token grid of
    about ``cells`` buckets: tokens rounded *up* to whole buckets give a feasible
    answer (then upgraded with the real tokens left over), tokens rounded *down* give
    a relaxation whose optimum bounds the true one from above. While the bound does
    not certify the answer the grid is made four times finer, down to single tokens
    (exact). ``bound`` is the tightest upper bound found, so ``gap`` is certified.

    .. versionadded:: 0.1
    """
    budget = max(0, budget)
    greedy = select_greedy(items, budget)
    if greedy.gap <= tolerance or not items:
        return greedy
    best, bound = greedy, greedy.bound
    grid = max(1, cells)
    while True:
        unit = max(1, -(-budget // grid))
        if unit == 1:
            return select_exact(items, budget)
        choices, _ = _dp(items, budget, unit, up=True)
        candidate = _finish(items, budget, _fill(items, budget, choices), bound=bound)
        if candidate.value > best.value:
            best = candidate
        if _certified(best.value, bound, tolerance):
            break
        _, relaxed = _dp(items, budget, unit, up=False)
        bound = min(bound, relaxed)
        if _certified(best.value, bound, tolerance):
            break
        grid *= 4
    return _finish(items, budget, list(best.choices), bound=max(bound, best.value))


def _certified(value: float, bound: float, tolerance: float) -> bool:
    return bound <= 0 or (bound - value) <= tolerance * bound


def _dp(
    items: Sequence[Sequence[Option]], budget: int, unit: int, *, up: bool
) -> tuple[list[int], float]:
    """
    Dynamic programming over tokens in buckets of ``unit`` (rounded up or down), all
    of an item's options at once. Returns the choices and the best value.
    """
    cap = budget // unit
    width = cap + 1
    best = np.zeros(width)
    columns = np.arange(width)
    picks = np.full((len(items), width), -1, dtype=np.int16)
    for i, options in enumerate(items):
        table = np.empty((len(options) + 1, width))
        table[0] = best
        for j, option in enumerate(options):
            w = -(-option.tokens // unit) if up else option.tokens // unit
            row = table[j + 1]
            if w > cap or option.value <= 0 or option.tokens > budget:
                row.fill(-np.inf)
                continue
            row[:w] = -np.inf
            np.add(best[: width - w], option.value, out=row[w:])
        arg = table.argmax(axis=0)
        best = table[arg, columns]
        picks[i] = arg - 1
    choices = [-1] * len(items)
    room = cap
    for i in range(len(items) - 1, -1, -1):
        j = int(picks[i, room])
        if j >= 0:
            choices[i] = j
            tokens = items[i][j].tokens
            room -= -(-tokens // unit) if up else tokens // unit
    return choices, float(best[cap])


def _fill(items: Sequence[Sequence[Option]], budget: int, choices: list[int]) -> list[int]:
    """
    ``choices`` with items upgraded to the most valuable option the tokens left allow.
    """
    used = sum(items[i][c].tokens for i, c in enumerate(choices) if c >= 0)
    improved = True
    while improved:
        improved = False
        for i, options in enumerate(items):
            w_old = options[choices[i]].tokens if choices[i] >= 0 else 0
            v_old = options[choices[i]].value if choices[i] >= 0 else 0.0
            best_j, best_gain = -1, 0.0
            for j, option in enumerate(options):
                gain = option.value - v_old
                if gain > best_gain + 1e-12 and used - w_old + option.tokens <= budget:
                    best_j, best_gain = j, gain
            if best_j >= 0:
                used += options[best_j].tokens - w_old
                choices[i] = best_j
                improved = True
    return choices


def _finish(
    items: Sequence[Sequence[Option]],
    budget: int,
    choices: list[int],
    *,
    bound: float = 0.0,
    ratio: float = 1.0,
    exact: bool = False,
) -> Selection:
    """
    The selection ``choices`` make, with its upper bound on the optimum: at least
    ``bound`` and at least ``ratio`` times its own value.
    """
    value = sum(items[i][c].value for i, c in enumerate(choices) if c >= 0)
    tokens = sum(items[i][c].tokens for i, c in enumerate(choices) if c >= 0)
    return Selection(
        choices=tuple(choices),
        value=value,
        tokens=tokens,
        budget=budget,
        exact=exact,
        bound=max(bound, value * ratio),
    )


def select_fptas(
    items: Sequence[Sequence[Option]], budget: int, *, epsilon: float = 0.01
) -> Selection:
    """
    A selection worth at least ``(1 - epsilon)`` of the optimum, by dynamic
    programming over values rounded down to multiples of ``epsilon * vmax / n``:
    O(items^2 x levels / epsilon). Falls back to :func:`select_greedy` when that table
    would be too large.

    .. versionadded:: 0.1
    """
    budget = max(0, budget)
    n = len(items)
    vmax = max(
        (o.value for options in items for o in options if o.tokens <= budget and o.value > 0),
        default=0.0,
    )
    levels = max((len(o) for o in items), default=0)
    if vmax <= 0 or n == 0:
        return select_exact(items, budget)
    if n * n * levels / epsilon > FPTAS_CELLS:
        return select_greedy(items, budget)
    unit = epsilon * vmax / n
    if unit <= 0 or not np.isfinite(vmax / unit):  # values too small to scale
        return select_exact(items, budget)
    scaled = [
        [int(o.value / unit) if o.tokens <= budget and o.value > 0 else 0 for o in options]
        for options in items
    ]
    top = sum(max(p, default=0) for p in scaled)
    inf = float(budget + 1)
    least = np.full(top + 1, inf)  # fewest tokens that reach each scaled value
    least[0] = 0.0
    picks = np.full((n, top + 1), -1, dtype=np.int16)
    for i, options in enumerate(items):
        new = least.copy()
        for j, option in enumerate(options):
            p = scaled[i][j]
            if p <= 0:
                continue
            cand = np.full(top + 1, inf)
            cand[p:] = least[: top + 1 - p] + option.tokens
            better = cand < new
            new[better] = cand[better]
            picks[i, better] = j
        least = new
    reach = int(np.flatnonzero(least <= budget).max())
    choices = [-1] * n
    for i in range(n - 1, -1, -1):
        j = int(picks[i, reach])
        if j >= 0:
            choices[i] = j
            reach -= scaled[i][j]
    return _finish(items, budget, choices, ratio=1 / (1 - epsilon) if epsilon < 1 else 1.0)


def select_exact(items: Sequence[Sequence[Option]], budget: int) -> Selection:
    """
    The optimal selection, by dynamic programming over tokens: O(items x levels x budget).

    .. versionadded:: 0.1
    """
    budget = max(0, budget)
    choices, _ = _dp(items, budget, 1, up=True)
    return _finish(items, budget, choices, exact=True)


def _hull(options: Sequence[Option]) -> list[int]:
    """
    Indices of ``options`` on the upper convex hull of (tokens, value) from (0, 0),
    by increasing tokens: the only options an LP optimum uses.
    """
    order = sorted(
        (j for j, o in enumerate(options) if o.value > 0),
        key=lambda j: (options[j].tokens, -options[j].value),
    )
    frontier: list[int] = []
    for j in order:
        if frontier and options[j].value <= options[frontier[-1]].value:
            continue  # dominated: more tokens, no more value
        frontier.append(j)
    hull: list[int] = []
    for j in frontier:
        while hull:
            w1, v1 = _point(options, hull[-2]) if len(hull) >= 2 else (0, 0.0)
            w2, v2 = _point(options, hull[-1])
            w3, v3 = _point(options, j)
            # drop the middle point when it lies on or below the segment
            if (v2 - v1) * (w3 - w1) <= (v3 - v1) * (w2 - w1):
                hull.pop()
            else:
                break
        hull.append(j)
    return hull


def _point(options: Sequence[Option], j: int) -> tuple[int, float]:
    return options[j].tokens, options[j].value


def select_greedy(items: Sequence[Sequence[Option]], budget: int) -> Selection:
    """
    The convex-hull greedy: hull steps by decreasing value per token while they fit,
    then each item upgraded to the richest option the leftover allows, then compared
    with the best single option. Its ``bound`` is the LP relaxation's value.

    .. versionadded:: 0.1
    """
    budget = max(0, budget)
    choices = [-1] * len(items)
    level = [-1] * len(items)  # position on the hull
    used = 0
    value = 0.0
    bound = -1.0
    blocked = [False] * len(items)
    for _, i, pos, j in _hull_steps(items):
        if blocked[i] or pos != level[i] + 1:
            continue
        w_old = items[i][choices[i]].tokens if choices[i] >= 0 else 0
        v_old = items[i][choices[i]].value if choices[i] >= 0 else 0.0
        dw = items[i][j].tokens - w_old
        dv = items[i][j].value - v_old
        if used + dw <= budget:
            used += dw
            value += dv
            choices[i] = j
            level[i] = pos
            continue
        if bound < 0:  # the LP takes a fraction of the first step that does not fit
            bound = value + dv * (budget - used) / dw if dw > 0 else value
        blocked[i] = True
    if bound < 0:
        bound = value
    # fill: upgrade any item to the best option that the leftover allows
    filled = _finish(items, budget, _fill(items, budget, choices), bound=bound)
    single = _best_single(items, budget)
    if single[0] <= filled.value:
        return filled
    choices = [-1] * len(items)
    choices[single[1]] = single[2]
    return _finish(items, budget, choices, bound=bound)


def _hull_steps(items: Sequence[Sequence[Option]]) -> list[tuple[float, int, int, int]]:
    """
    Every step up each item's hull as ``(-efficiency, item, position, option)``, by
    decreasing value per token.
    """
    steps: list[tuple[float, int, int, int]] = []
    for i, options in enumerate(items):
        prev_w, prev_v = 0, 0.0
        for pos, j in enumerate(_hull(options)):
            w, v = _point(options, j)
            dw = w - prev_w
            eff = (v - prev_v) / dw if dw > 0 else float("inf")
            steps.append((-eff, i, pos, j))
            prev_w, prev_v = w, v
    steps.sort()
    return steps


def _best_single(items: Sequence[Sequence[Option]], budget: int) -> tuple[float, int, int]:
    """
    The most valuable option that fits on its own, as ``(value, item, option)``.
    """
    return max(
        (
            (o.value, i, j)
            for i, options in enumerate(items)
            for j, o in enumerate(options)
            if o.tokens <= budget
        ),
        default=(0.0, -1, -1),
    )
