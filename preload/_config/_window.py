"""
The sections of the window: the token budget and its categories, the swap
controller, compression and pricing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from .._errors import ConfigError
from ._checks import check_choice, check_non_negative, check_positive, check_probability

__all__ = [
    "CATEGORIES",
    "OBJECTIVES",
    "AdaptiveBudgetConfig",
    "BudgetConfig",
    "CategoryConfig",
    "CompressionConfig",
    "ObjectivesConfig",
    "PricingConfig",
    "SwapConfig",
]

#: The categories of a context window, in the order a rendered context shows them.
CATEGORIES = (
    "system",
    "task_context",
    "user_history",
    "domain_knowledge",
    "examples",
    "working_memory",
    "response_buffer",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CategoryConfig:
    """
    One category of the context window: its share of the budget.

    ``min`` tokens are guaranteed when the category has content, ``max`` caps it
    (0 means no cap) and ``priority`` orders who gets what is left (higher first).

    .. versionadded:: 0.1
    """

    min: int = 0
    max: int = 0
    priority: int = 0

    def __post_init__(self) -> None:
        check_non_negative("min", self.min)
        check_non_negative("max", self.max)
        if self.max and self.max < self.min:
            raise ConfigError("max", f"{self.max} is below min {self.min}")


def _default_categories() -> dict[str, CategoryConfig]:
    return {
        "system": CategoryConfig(min=200, max=800, priority=100),
        "task_context": CategoryConfig(min=0, max=2000, priority=80),
        "user_history": CategoryConfig(min=300, max=1500, priority=50),
        "domain_knowledge": CategoryConfig(min=1000, max=4000, priority=70),
        "working_memory": CategoryConfig(min=200, max=1000, priority=90),
        "response_buffer": CategoryConfig(min=1000, max=1000, priority=1000),
    }


#: The objectives a window is chosen by on the Pareto frontier (``[budget.objectives]``).
OBJECTIVES = ("relevance", "completeness", "efficiency", "diversity")


@dataclass(frozen=True, slots=True, kw_only=True)
class AdaptiveBudgetConfig:
    """
    The adaptive budget (``[budget.adaptive]``): when ``enabled``, each item
    category's share of its range (from its ``min`` to its ``max``, hard limits) is
    learned from feedback, off the request path. After every judged window the share
    moves by ``learning_rate`` towards 1 when the category's marginal tokens (its
    item of least value per token in the window, or a used item it had no room for)
    brought used content, and towards its ``min`` when they did not; the break-even
    use rate is ``swap.swap_threshold``, the value a newcomer must reach. A category
    keeps its configured maximum until it has ``min_evidence`` judged windows.

    .. versionadded:: 0.6
    """

    enabled: bool = False
    learning_rate: float = 0.05
    min_evidence: int = 20

    def __post_init__(self) -> None:
        if not 0 < self.learning_rate <= 1:
            raise ConfigError(
                "budget.adaptive.learning_rate",
                f"must be within (0, 1], got {self.learning_rate!r}",
            )
        check_positive("budget.adaptive.min_evidence", self.min_evidence)


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectivesConfig:
    """
    The weights a window is picked with from the Pareto frontier of candidate windows
    (``[budget.objectives]``): ``relevance`` (the share of the candidates' value the
    window holds), ``completeness`` (the share of the predicted needs' probability
    it covers), ``efficiency`` (value per token, relative to the best item's) and
    ``diversity`` (the share of the candidates' distinct sources and kinds it holds).
    With relevance alone (the default) the window is the knapsack's and no frontier
    is computed.

    .. versionadded:: 0.6
    """

    relevance: float = 1.0
    completeness: float = 0.0
    efficiency: float = 0.0
    diversity: float = 0.0

    def __post_init__(self) -> None:
        for name, weight in self.weights.items():
            if not (weight >= 0 and math.isfinite(weight)):
                raise ConfigError(
                    f"budget.objectives.{name}", f"must be a finite weight >= 0, got {weight!r}"
                )
        if not sum(self.weights.values()) > 0:
            raise ConfigError(
                "budget.objectives", f"the weights are all 0; give at least one of {OBJECTIVES}"
            )

    @property
    def weights(self) -> dict[str, float]:
        """
        The weight of each objective, in :data:`OBJECTIVES` order.
        """
        return {name: float(getattr(self, name)) for name in OBJECTIVES}

    @property
    def pareto(self) -> bool:
        """
        Whether a frontier is computed: a weight other than relevance is set.
        """
        return any(self.weights[name] > 0 for name in OBJECTIVES[1:])


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetConfig:
    """
    The token budget of one context window and its split across categories.

    Selection solves a multiple-choice knapsack exactly for up to
    ``knapsack_exact_items`` candidates and by the convex-hull greedy above that. The
    ``importance_*`` weights blend the importance scorer's signals (recency with a
    half-life of ``recency_half_life`` turns, relevance to the request, explicit user
    references, information density, historical utility). ``adaptive`` learns the
    categories' shares from feedback (:class:`AdaptiveBudgetConfig`); ``objectives``
    weighs the Pareto choice of a window (:class:`ObjectivesConfig`).

    .. versionadded:: 0.1
    """

    total_tokens: int = 8000
    categories: dict[str, CategoryConfig] = field(default_factory=_default_categories)
    system_prompt: str = "You are a helpful assistant. Use the context below to answer."
    history_turns: int = 6
    knapsack_exact_items: int = 8
    importance_recency: float = 0.2
    importance_relevance: float = 0.35
    importance_references: float = 0.15
    importance_density: float = 0.1
    importance_utility: float = 0.2
    recency_half_life: float = 4.0
    adaptive: AdaptiveBudgetConfig = field(default_factory=AdaptiveBudgetConfig)
    objectives: ObjectivesConfig = field(default_factory=ObjectivesConfig)

    def __post_init__(self) -> None:
        check_positive("budget.total_tokens", self.total_tokens)
        check_non_negative("budget.history_turns", self.history_turns)
        check_non_negative("budget.knapsack_exact_items", self.knapsack_exact_items)
        check_positive("budget.recency_half_life", self.recency_half_life)
        weights = self.importance_weights
        for name, weight in weights.items():
            check_non_negative(f"budget.importance_{name}", weight)
        if not sum(weights.values()) > 0:
            raise ConfigError("budget.importance_relevance", "the importance weights are all 0")
        for name in self.categories:
            if name not in CATEGORIES:
                raise ConfigError(
                    f"budget.categories.{name}", f"unknown category; use one of {CATEGORIES}"
                )
        floor = sum(c.min for c in self.categories.values())
        if floor > self.total_tokens:
            raise ConfigError(
                "budget.categories",
                f"the minimums add up to {floor}, above total_tokens {self.total_tokens}",
            )
        if "response_buffer" not in self.categories:
            raise ConfigError("budget.categories.response_buffer", "is required")

    @property
    def importance_weights(self) -> dict[str, float]:
        """
        The importance scorer's weights by signal.
        """
        return {
            "recency": self.importance_recency,
            "relevance": self.importance_relevance,
            "references": self.importance_references,
            "density": self.importance_density,
            "utility": self.importance_utility,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SwapConfig:
    """
    How the swap controller fills the window with predicted items.

    A predicted item that is not in the window yet is swapped in only when its
    predicted value reaches ``swap_threshold`` (a change near the top of the window
    invalidates the prompt-prefix cache); items already in the window keep their
    place. Up to ``exact_items`` predicted items, items and levels are chosen by the
    exact knapsack; above, by the convex-hull greedy (the request-path default: 0,
    always the greedy, which is well under a millisecond).

    An item already in the window keeps ``hysteresis`` of value over a newcomer, plus
    the price of the cached prompt tokens its leaving would invalidate (``[pricing]``),
    so that it does not flap in and out on a small change of value. ``layout``
    orders the window for the provider's prompt cache: ``"stable"`` puts the system
    prompt first, then the item categories, each with the items that stay in their
    place and this turn's newcomers after them, then the history and the request
    (the most volatile last); ``"category"`` is the fixed category order with
    this turn's items in the order chosen (no prefix awareness).

    With ``tenant_tokens`` above 0 (the stable layout only), the window starts, right
    after the system prompt, with the tenant-wide layer: up to that many tokens of
    the items held by at least ``tenant_min_share`` of the tenant's sessions (learned
    from the tenant's windows, chosen again every ``tenant_refresh`` new sessions,
    members keeping ``hysteresis`` over newcomers and their place), in a fixed order,
    so that every session of the tenant sends the same prefix.

    .. versionadded:: 0.2
    .. versionchanged:: 0.5
       ``hysteresis`` and ``layout``.
    .. versionchanged:: 0.6
       ``tenant_tokens``, ``tenant_min_share`` and ``tenant_refresh``.
    """

    swap_threshold: float = 0.2
    exact_items: int = 0
    hysteresis: float = 0.1
    layout: Literal["stable", "category"] = "stable"
    tenant_tokens: int = 0
    tenant_min_share: float = 0.03
    tenant_refresh: int = 10

    def __post_init__(self) -> None:
        check_probability("swap.swap_threshold", self.swap_threshold)
        check_non_negative("swap.exact_items", self.exact_items)
        check_probability("swap.hysteresis", self.hysteresis)
        check_choice("swap.layout", self.layout, ("stable", "category"))
        check_non_negative("swap.tenant_tokens", self.tenant_tokens)
        check_probability("swap.tenant_min_share", self.tenant_min_share)
        check_positive("swap.tenant_refresh", self.tenant_refresh)
        if self.tenant_tokens and self.layout != "stable":
            raise ConfigError(
                "swap.tenant_tokens",
                f'{self.tenant_tokens!r} needs layout = "stable" (the tenant-wide layer '
                "is a prompt prefix); set it to 0 with the category layout",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class CompressionConfig:
    """
    How items and conversation histories are compressed.

    The ratios are the target sizes of the ``summary``, ``key_points`` and ``minimal``
    levels as fractions of the deduplicated text; items of ``min_tokens`` or fewer
    keep only ``full``. Units whose TF-IDF cosine to an earlier one reaches
    ``near_duplicate`` are dropped by ``dedup``; above ``textrank_max_units`` units,
    ``summary`` ranks by centroid similarity instead of PageRank. A
    :class:`~preload.CompressedConversation` over its budget shows its last
    ``history_raw_turns`` exchanges verbatim, the newest first, as long as they fit
    three quarters of it.

    .. versionadded:: 0.1
    """

    summary_ratio: float = 0.45
    key_points_ratio: float = 0.2
    minimal_ratio: float = 0.08
    near_duplicate: float = 0.85
    textrank_max_units: int = 200
    min_tokens: int = 32
    history_raw_turns: int = 2

    def __post_init__(self) -> None:
        for name in ("summary_ratio", "key_points_ratio", "minimal_ratio", "near_duplicate"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ConfigError(f"compression.{name}", f"must be within (0, 1], got {value!r}")
        if not self.minimal_ratio <= self.key_points_ratio <= self.summary_ratio:
            raise ConfigError(
                "compression.summary_ratio",
                "the ratios must shrink: minimal_ratio <= key_points_ratio <= summary_ratio",
            )
        check_positive("compression.textrank_max_units", self.textrank_max_units)
        check_non_negative("compression.min_tokens", self.min_tokens)
        check_non_negative("compression.history_raw_turns", self.history_raw_turns)


@dataclass(frozen=True, slots=True, kw_only=True)
class PricingConfig:
    """
    What the model provider charges for input, in a currency per million tokens, and
    how its prompt cache works: a prompt whose beginning is identical to one sent
    within ``cache_ttl_s`` reads those tokens at ``cached_input``; tokens written to
    the cache cost ``cache_write``; a prefix shorter than ``min_prefix_tokens`` is
    never cached. The swap controller prices each window with it
    (``Context.input_cost``) and counts what leaving the window would invalidate in
    the swap cost. The defaults are a typical provider's: cached input 0.1x the input
    price, cache writes 1.25x, 1,024 tokens, five minutes.

    .. versionadded:: 0.5
    """

    input: float = 3.0
    cached_input: float = 0.3
    cache_write: float = 3.75
    min_prefix_tokens: int = 1024
    cache_ttl_s: float = 300.0

    def __post_init__(self) -> None:
        check_non_negative("pricing.input", self.input)
        check_non_negative("pricing.cached_input", self.cached_input)
        check_non_negative("pricing.cache_write", self.cache_write)
        if self.cached_input > self.input:
            raise ConfigError(
                "pricing.cached_input",
                f"{self.cached_input!r} is above the input price {self.input!r}; "
                "cached input costs a fraction of the input price",
            )
        check_positive("pricing.min_prefix_tokens", self.min_prefix_tokens)
        check_non_negative("pricing.cache_ttl_s", self.cache_ttl_s)
