"""
What a replay reports: each strategy's figures, and the whole run's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..experiments import SessionOutcome

__all__ = ["CONTRACT_KEYS", "ReplayReport", "StrategyReport"]

#: A strategy's keys in DESIGN.md's JSON report, in order.
CONTRACT_KEYS = (
    "hit_rate",
    "wasted_ratio",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "tokens_per_turn",
    "top1",
    "top3",
    "loads",
    "preloads",
    "call_hit_rate",
    "call_wait_p50_ms",
    "call_wait_p95_ms",
    "speculative_calls",
    "speculative_wasted",
    "turn_wait_p95_ms",
    "prefix_reused_tokens",
    "input_cost_per_turn",
    "needs_in_window_recall",
    "deferred",
    "rejected",
    "preloads_lost",
    "ttl_skipped",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyReport:
    """
    One strategy's figures over a replay.

    ``waits_ms`` holds the wait of every turn (milliseconds, in the order the turns
    were served), for distributions and plots; it stays out of the JSON report, whose
    keys are DESIGN.md's contract (:meth:`contract`).

    The call keys cover the read-only tool calls of the sessions' turns, which the
    replay makes through ``engine.call`` once the agent has decided: ``call_hit_rate``
    is the share whose result was warm or in flight when asked (speculated, or cached
    from an identical call); ``call_wait_p50_ms``/``call_wait_p95_ms`` their wait;
    ``speculative_calls`` and ``speculative_wasted`` the calls run ahead, and those
    never made, per read-only call; ``turn_wait_p95_ms`` the wait of a turn for its
    context and its calls together. They are None when the sessions make no
    read-only call. What the slowest tenth of the read-only calls that waited is made
    of: ``call_tail_ran`` ran only when the agent asked (not run ahead, or with other
    arguments), ``call_tail_joined`` joined a call in flight (run ahead, too late to
    finish before the agent asked); both stay out of the JSON report, as do the guesses
    held back by a budget of ``[calls]`` (``speculative_skipped_step``: the step's,
    ``_source``: the source's limit, ``_allowance``: the allowance per call).

    ``prefix_reused_tokens`` is the mean of the window's tokens per turn that the
    provider's prompt cache served (``[pricing]``), ``input_cost_per_turn`` the mean
    priced input of a window (in the pricing's currency per turn), and
    ``naive_input_cost_per_turn`` what the same windows would cost laid out without
    prefix awareness; ``needs_in_window_recall`` is the share of the turns' needs
    the windows held (None when no turn has needs). ``deferred`` preloads were
    started just in time, ``ttl_skipped`` ones left out because their time to live
    would end before their expected use (``[preloader]``); ``rejected`` ones were
    refused by the value-aware cache (``cache.eviction = "value"``: worth less, times
    the cache's survival, than what they would evict), and ``preloads_lost`` ones
    were needed by their session after they had left the cache (evicted by others
    before their use: the cache's thrash).

    ``outcomes`` holds each session's outcome when the strategy ran an experiment
    (``[experiments]``; only ``engine`` does), for :func:`preload.experiments.summarize`;
    like ``waits_ms`` it stays out of the JSON report.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``waits_ms``.
    .. versionchanged:: 0.3
       The call keys.
    .. versionchanged:: 0.5
       The prompt-cache keys.
    .. versionchanged:: 0.6
       ``outcomes``; ``deferred``, ``ttl_skipped``, ``rejected`` and ``preloads_lost``
       (in the JSON report too); ``call_tail_ran`` and ``call_tail_joined``.
    .. versionchanged:: 0.7
       ``hit_rate`` is None when no turn had needs (logs of tool calls alone), as
       ``call_hit_rate`` is when there were no calls.
    .. versionchanged:: 0.24
       ``speculative_skipped_step``, ``speculative_skipped_source`` and
       ``speculative_skipped_allowance``.
    .. versionchanged:: 0.25
       ``speculative_skipped_slow``.
    """

    hit_rate: float | None
    wasted_ratio: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    tokens_per_turn: float
    top1: float | None
    top3: float | None
    loads: int
    preloads: int
    partial_hits: int = 0
    misses: int = 0
    missing_needs: int = 0
    turns: int = 0
    call_hit_rate: float | None = None
    call_wait_p50_ms: float | None = None
    call_wait_p95_ms: float | None = None
    speculative_calls: float | None = None
    speculative_wasted: float | None = None
    turn_wait_p95_ms: float = 0.0
    read_only_calls: int = 0
    used_after_reply: int = 0
    used_at_request: int = 0
    used_after_call: int = 0
    call_tail_ran: int = 0
    call_tail_joined: int = 0
    speculative_skipped_step: int = 0
    speculative_skipped_source: int = 0
    speculative_skipped_slow: int = 0
    speculative_skipped_allowance: int = 0
    prefix_reused_tokens: float = 0.0
    input_cost_per_turn: float = 0.0
    naive_input_cost_per_turn: float = 0.0
    needs_in_window_recall: float | None = None
    deferred: int = 0
    ttl_skipped: int = 0
    rejected: int = 0
    preloads_lost: int = 0
    wall_s: float = field(default=0.0, compare=False)
    waits_ms: tuple[float, ...] = field(default=(), repr=False)
    outcomes: tuple[SessionOutcome, ...] = field(default=(), repr=False, compare=False)

    def contract(self) -> dict[str, Any]:
        """
        The keys of DESIGN.md's JSON report.
        """
        return {k: getattr(self, k) for k in CONTRACT_KEYS}


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayReport:
    """
    A whole replay: the data set and every strategy's figures.

    .. versionadded:: 0.1
    """

    name: str
    sessions: int
    turns: int
    states: int
    needs: int
    strategies: dict[str, StrategyReport]
    wall_s: float
    virtual_s: float
    missing_keys: tuple[str, ...] = field(default=())
    skipped_lines: int = 0

    def to_json(self) -> dict[str, Any]:
        """
        DESIGN.md's report: exactly its keys.
        """
        return {
            "dataset": {
                "name": self.name,
                "sessions": self.sessions,
                "turns": self.turns,
                "states": self.states,
                "needs": self.needs,
            },
            "strategies": {name: rep.contract() for name, rep in self.strategies.items()},
            "wall_s": self.wall_s,
            "virtual_s": self.virtual_s,
        }
