"""
Budgets: allocations respect min/max and sum to the budget; contexts never exceed it.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from preload import (
    BudgetConfig,
    BudgetManager,
    CategoryConfig,
    HierarchicalBudgetManager,
    Level,
    Option,
    Representation,
    SwapController,
    TiktokenCounter,
    select,
    select_exact,
    select_fptas,
    select_greedy,
)
from preload._config import CATEGORIES
from preload.window._budget import select_scaled

COUNTER = TiktokenCounter()

demands = st.dictionaries(st.sampled_from(CATEGORIES), st.integers(0, 20_000))


@given(demand=demands, total=st.integers(2_700, 50_000))
def test_allocation_sums_to_budget_and_respects_bounds(demand: dict[str, int], total: int) -> None:
    """
    Every allocation sums to the budget, keeps the response buffer, gives no category
    more than its max or its demand, and gives a category with demand its minimum.
    """
    manager = BudgetManager(BudgetConfig(total_tokens=total))
    allocation = manager.allocate(demand)
    cats = manager.config.categories
    assert total == sum(allocation.tokens.values())
    assert allocation["response_buffer"] >= cats["response_buffer"].min
    for name, cat in cats.items():
        if name == "response_buffer":
            continue
        assert allocation[name] <= demand.get(name, 0)
        if cat.max:
            assert allocation[name] <= cat.max
        assert allocation[name] >= min(cat.min, demand.get(name, 0))


def test_what_a_category_cannot_use_goes_to_others() -> None:
    """
    Nothing is reserved for an empty category: its share goes by priority.
    """
    config = BudgetConfig(
        total_tokens=1000,
        categories={
            "domain_knowledge": CategoryConfig(min=400, max=0, priority=10),
            "user_history": CategoryConfig(min=400, max=0, priority=5),
            "response_buffer": CategoryConfig(min=100, max=100, priority=0),
        },
    )
    allocation = BudgetManager(config).allocate({"domain_knowledge": 5000})
    assert (900, 0, 100) == (
        allocation["domain_knowledge"],
        allocation["user_history"],
        allocation["response_buffer"],
    )


def _rep(key: str, words: int, category: str) -> Representation:
    text = " ".join(f"w{key}{i}" for i in range(words))
    half = " ".join(f"w{key}{i}" for i in range(words // 4))
    return Representation(
        key=key,
        source="kb",
        category=category,
        levels=(
            Level(name="full", text=text, tokens=COUNTER.count(text), quality=1.0),
            Level(name="minimal", text=half, tokens=COUNTER.count(half), quality=0.25),
        ),
    )


items = st.lists(
    st.tuples(
        st.integers(1, 3000),
        st.sampled_from(["domain_knowledge", "task_context", "examples"]),
        st.floats(0, 1),
    ),
    max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(
    required=items,
    optional=items,
    history=st.lists(st.text(max_size=300), max_size=8),
    request=st.text(max_size=2000),
    total=st.integers(2_800, 12_000),
)
def test_context_never_exceeds_the_budget(
    required: list[tuple[int, str, float]],
    optional: list[tuple[int, str, float]],
    history: list[str],
    request: str,
    total: int,
) -> None:
    """
    Whatever is asked for, the rendered context plus the response buffer fits.
    """
    swap = SwapController(BudgetManager(BudgetConfig(total_tokens=total)), COUNTER)
    ctx = swap.assemble(
        "s",
        request=request,
        required=[_rep(f"r{i}", n, c) for i, (n, c, _) in enumerate(required)],
        optional=[(_rep(f"o{i}", n, c), v) for i, (n, c, v) in enumerate(optional)],
        history=history,
    )
    assert COUNTER.count(ctx.render()) <= ctx.tokens
    assert ctx.tokens + ctx.reserved <= total


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


def test_budget_manager_is_the_hierarchical_manager() -> None:
    """
    The engine's BudgetManager is the hierarchical manager.
    """
    assert BudgetManager is HierarchicalBudgetManager
