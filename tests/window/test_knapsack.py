"""
The knapsack: selections fit their budget; exact, certified and approximate answers.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from preload.window import (
    Option,
    select,
    select_exact,
    select_fptas,
    select_greedy,
    select_scaled,
)

options = st.lists(
    st.tuples(st.floats(0, 1, allow_nan=False), st.integers(1, 400)), min_size=1, max_size=5
).map(lambda opts: [Option(value=v, tokens=w) for v, w in opts])


@settings(max_examples=80, deadline=None)
@given(items=st.lists(options, max_size=12), budget=st.integers(0, 2000))
def test_a_selection_never_exceeds_its_budget(items: list[list[Option]], budget: int) -> None:
    """
    Exact, FPTAS and greedy answers fit the budget; exact is never beaten, the
    greedy's bound is never below the optimum and the FPTAS keeps 1 - epsilon of it.
    """
    exact = select_exact(items, budget)
    greedy = select_greedy(items, budget)
    fptas = select_fptas(items, budget, epsilon=0.05)
    for selection in (exact, greedy, fptas, select(items, budget)):
        chosen = [items[i][c] for i, c in enumerate(selection.choices) if c >= 0]
        assert sum(o.tokens for o in chosen) == selection.tokens
        assert selection.tokens <= budget
    assert exact.value >= greedy.value - 1e-9
    assert greedy.bound >= exact.value - 1e-9
    assert fptas.value >= 0.95 * exact.value - 1e-9


large_items = st.lists(
    st.lists(
        st.tuples(st.floats(0.01, 1, allow_nan=False), st.integers(1, 800)),
        min_size=1,
        max_size=5,
    ).map(lambda opts: [Option(value=v, tokens=w) for v, w in opts]),
    min_size=9,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(items=large_items, share=st.floats(0.02, 0.9))
def test_select_is_certified_within_its_tolerance(items: list[list[Option]], share: float) -> None:
    """
    Past the exact size, select answers within 1 % of the exact optimum, fits the
    budget, and its certified bound is never below the optimum.
    """
    budget = int(sum(max(o.tokens for o in opts) for opts in items) * share)
    exact = select_exact(items, budget)
    ours = select(items, budget)
    assert ours.tokens <= budget
    assert ours.bound >= exact.value - 1e-9
    assert ours.value >= 0.99 * exact.value - 1e-9
    assert ours.gap <= 0.01 + 1e-12


def test_the_scaled_grid_refines_until_certified() -> None:
    """
    Where the greedy is far from the optimum (the two large items fill the budget
    exactly, the dense small one blocks them), the token grid still finds the optimum.
    """
    items = [[Option(value=1.0, tokens=10)]] + [[Option(value=9.0, tokens=5000)]] * 2
    exact = select_exact(items, 10_000)
    scaled = select_scaled(items, 10_000, cells=16)
    assert (18.0, (-1, 0, 0)) == (exact.value, exact.choices)
    assert exact.choices == scaled.choices
    assert 10.0 == select_greedy(items, 10_000).value


def test_the_greedy_reports_its_gap() -> None:
    """
    On an instance where value per token misleads, the greedy's certified gap
    covers its real distance to the optimum.
    """
    items = [[Option(value=1.0, tokens=10)], [Option(value=9.0, tokens=100)]]
    exact = select_exact(items, 100)
    greedy = select_greedy(items, 100)
    assert (9.0, (-1, 0)) == (exact.value, exact.choices)
    assert greedy.value >= 9.0 or greedy.gap >= (9.0 - greedy.value) / 9.0
