"""
A session as the engine keeps it: what its requests, its windows, its feedback and
its experiment arm left for the next request and for the learner; and the engine's
own counters, which each side of the engine adds to.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from ..experiments import OutcomeTally

if TYPE_CHECKING:
    from .._config import EngineConfig
    from ..compression import Representation
    from ..history import CompressedConversation
    from ..learning import AdaptiveBudget, Candidate, Forecast
    from ..window import Context, SwapController

__all__ = ["Arm", "Counters", "EngineSession", "JudgedWindow"]

#: Request ids a session remembers as counted (the latest), so that a request served
#: again under one of them is not counted again.
_MAX_REQUEST_IDS = 16


@dataclass(slots=True)
class Counters:
    requests: int = 0
    hits: int = 0
    partial_hits: int = 0
    misses: int = 0
    tokens: int = 0
    learner_drops: int = 0
    replies_truncated: int = 0
    retrieved: int = 0
    feedback: int = 0
    feedback_ignored: int = 0
    deferred: int = 0
    ttl_skipped: int = 0
    history_catch_ups: int = 0


@dataclass(frozen=True, slots=True)
class JudgedWindow:
    """
    A window judged by feedback, waiting for the learner: its candidates (with their
    text and tokens), their keys, whether the answer used each, and where each stood.
    """

    candidates: list[tuple[Candidate, str, int]]
    keys: list[str]
    used: list[bool]
    placed: list[tuple[str, int, float, bool, bool]]


@dataclass(slots=True, eq=False)
class Arm:
    """
    One arm of the engine's experiment: its merged configuration, the swap controller
    that applies its window settings, and its running counts.
    """

    name: str
    config: EngineConfig
    swap: SwapController
    adaptive: AdaptiveBudget | None = None
    tally: OutcomeTally = field(default_factory=OutcomeTally)


@dataclass(slots=True, eq=False)
class EngineSession:
    id: str
    user: str | None
    config: EngineConfig  # the engine's, or its experiment arm's
    swap: SwapController
    adaptive: AdaptiveBudget | None = None  # the engine's, or its experiment arm's
    arm: Arm | None = None
    tally: OutcomeTally | None = None  # the session's outcome, in an experiment
    # The session's last turns (limits.max_session_turns); ``first`` is the index of
    # turns[0] among all of the session's turns (those before it went).
    turns: list[dict[str, Any]] = field(default_factory=list)
    first: int = 0
    # turn (index among all) -> its text's hash and what it added to the tallies, to
    # take back if dropped
    counted: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    # The ids of the latest requests counted in the metrics (here or by another replica).
    request_ids: deque[str] = field(default_factory=lambda: deque(maxlen=_MAX_REQUEST_IDS))
    # The last window and what it was given, for the tenant-wide layer to learn from.
    shared: tuple[Context, list[Representation], float] | None = None
    forecast: Forecast | None = None
    learning: bool = False  # a "turn" event is queued and will see the reply too
    history: CompressedConversation | None = None
    recorded: int = 0  # turns already in the history (of ``turns``)
    calls_learned: int = 0  # turns the call predictor already learned from (of ``turns``)
    # Held while the next exchange is prepared in a worker thread (by the learner, or
    # by a request catching up); requests wait for a short one rather than skip it.
    recording: anyio.Lock = field(default_factory=anyio.Lock)
    # The last window's candidates with their text and tokens; this request's candidates.
    window: dict[str, tuple[Candidate, str, int]] = field(default_factory=dict)
    candidates: dict[str, tuple[Candidate, str, int]] = field(default_factory=dict)
    # Judged windows waiting for the learner: candidates, keys, whether each was used.
    judged: list[JudgedWindow] = field(default_factory=list)
    # What the adaptive budget judges of the last window: key -> (category, tokens,
    # value, in the window, left out for lack of room).
    placed: dict[str, tuple[str, int, float, bool, bool]] = field(default_factory=dict)
    last_in: dict[str, int] = field(default_factory=dict)  # key -> turn last in a window
    shown: Counter[str] = field(default_factory=Counter)  # key -> windows it was in
    used_at: dict[str, int] = field(default_factory=dict)  # key -> turn feedback said used it
    last_shown: list[str] = field(default_factory=list)  # the judged items of the last window
    window_judged: bool = False  # feedback judged the last window (a window is judged once)
    in_arm: bool = False  # counted in its arm's sessions here (where its first turn was served)
    state: str = ""  # the state of the request being served, when given
    answered_at: float | None = None  # the last reply (else the last context) was then
    think: tuple[str | None, float] | None = None  # a think time for the learner
    deferred: anyio.CancelScope | None = None  # the preloads started just in time
    ttl_skipped: list[str] = field(default_factory=list)  # the last forecast's, explained
    # The last forecast's deferred preloads: key -> (start time, started yet).
    deferrals: dict[str, tuple[float, bool]] = field(default_factory=dict)
    # Keys preloaded for the next request since the last one: one preload a key a turn.
    preloaded: set[str] = field(default_factory=set)

    @property
    def count(self) -> int:
        """
        How many turns the session has had (those that went from ``turns`` counted).
        """
        return self.first + len(self.turns)

    def drop_recorded(self, keep: int) -> None:
        """
        Let the oldest turns go beyond the last ``keep``, but only those the history
        recorded (their facts and condensed exchanges stay there). The call predictor
        does not learn from a turn that went before it did.
        """
        drop = min(len(self.turns) - keep, self.recorded)
        if drop <= 0:
            return
        del self.turns[:drop]
        self.first += drop
        self.recorded -= drop
        self.calls_learned = max(0, self.calls_learned - drop)
        for turn in [t for t in self.counted if t < self.first]:
            del self.counted[turn]
