"""
The sections of serving and replaying: request limits, the replay's clock and
latencies, and ``preload serve``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from .._errors import ConfigError
from ._checks import check_choice, check_non_negative, check_positive

__all__ = [
    "MAX_TENANTS",
    "MAX_TEXT_CHARS",
    "LatencyConfig",
    "LimitsConfig",
    "ReplayConfig",
    "ServerConfig",
]

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
    from sources are bounded by ``preloader.max_item_chars``. The engine keeps a
    session's last ``max_session_turns`` turns (:meth:`~preload.PreloadEngine.turns_of`):
    an older turn goes once its history recorded it (its facts and condensed
    exchange stay there, unless a turn it holds changes and it is rebuilt from the
    turns kept), so that a session kept for months costs its replica no more than that
    many turns; a replica that takes a session up from the store reads that many of its
    last turns, and the server's store keeps no more of them.

    .. versionadded:: 0.2
    .. versionchanged:: 0.14
       ``max_session_turns``.
    """

    max_request_chars: int = MAX_TEXT_CHARS
    max_reply_chars: int = MAX_TEXT_CHARS
    max_needs: int = 256
    max_session_turns: int = 1_000

    def __post_init__(self) -> None:
        check_positive("limits.max_request_chars", self.max_request_chars)
        check_positive("limits.max_reply_chars", self.max_reply_chars)
        check_positive("limits.max_needs", self.max_needs)
        check_positive("limits.max_session_turns", self.max_session_turns)


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
        check_choice("distribution", self.distribution, ("lognormal", "constant"))
        check_positive("median_ms", self.median_ms)
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
    the agent's model decides for a time drawn from ``agent`` before each of them
    (``agent_decides = "each_call"``: an agent's loop takes a model step a call,
    reading the last call's result), or once before all of them (``"once"``: a model
    that asks for a turn's calls together).

    The tool backend serves at most ``call_capacity`` calls at once (0: no bound), the
    others waiting their turn, so that calls run ahead slow the agent's own as a busy
    backend's do (see :class:`~preload.replay.SimulatedCallSource`).

    With ``tenants`` above 1, each session belongs to one of that many tenants (a
    stable hash of its id); every tenant has its own engine and its own copy of the
    knowledge under its own cache namespace, and all of them share one cache, as on
    a server that hosts them (at most ``MAX_TENANTS``).

    .. versionadded:: 0.1
    .. versionchanged:: 0.5
       ``tenants``.
    .. versionchanged:: 0.23
       ``agent_decides``; the agent decides before each call (was once a turn).
    .. versionchanged:: 0.25
       ``call_capacity``.
    """

    arrival_rate: float = 0.5
    seed: int = 0
    latency: dict[str, LatencyConfig] = field(default_factory=_default_latency)
    agent: LatencyConfig = field(
        default_factory=lambda: LatencyConfig(median_ms=800.0, p95_ms=3000.0)
    )
    agent_decides: Literal["each_call", "once"] = "each_call"
    demo_sessions: int = 300
    processes: int = 0
    tenants: int = 1
    call_capacity: int = 0

    def __post_init__(self) -> None:
        if type(self.tenants) is not int or not 1 <= self.tenants <= MAX_TENANTS:
            raise ConfigError(
                "replay.tenants", f"must be from 1 to {MAX_TENANTS}, got {self.tenants!r}"
            )
        check_positive("replay.arrival_rate", self.arrival_rate)
        check_non_negative("replay.call_capacity", self.call_capacity)
        check_positive("replay.demo_sessions", self.demo_sessions)
        check_non_negative("replay.processes", self.processes)
        check_choice("replay.agent_decides", self.agent_decides, ("each_call", "once"))
        if "default" not in self.latency:
            raise ConfigError("replay.latency.default", "is required")

    def latency_for(self, source: str) -> LatencyConfig:
        """
        The latency distribution of ``source``, or the default one.
        """
        return self.latency.get(source, self.latency["default"])


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
    ``preload report`` to merge. With ``max_open_tenants``, at most that many tenants'
    engines are open at once in a replica: each opens at its tenant's first request and
    the least recently used one that no request holds closes when another must open
    (0: every tenant's engine opens at start and stays open). With ``share_models``,
    every tenant's engine reads one copy of the server's ``--model`` and
    ``--calls-model``, read at start, and learns nothing online into them (a tenant's
    sessions never change another's forecasts); without, each has copies of its own,
    which it learns into from its sessions. With ``share_models`` and
    ``tenant_learning``, each tenant's engine also learns a call forecaster of its own
    from its sessions, and forecasts each tool's calls from whichever of the two has
    counted more of them (so the tools the shared model never saw are run ahead too).
    Every ``keys_reload_s`` seconds, a replica
    looks at its keys file and reads it again if it changed, so that keys are added and
    revoked without a restart (0: the keys are read at start only). With
    ``share_models``, every ``models_reload_s`` seconds (0, the default: never) it looks
    at the model files too, and once a change has stayed for one look more, reads them
    and every tenant's engine forecasts from the new models (copies that learn online
    are read at start only: ``models_reload_s`` needs ``share_models``).

    .. versionadded:: 0.4
    .. versionchanged:: 0.10
       ``outcomes_dir``, ``outcomes_every_s``.
    .. versionchanged:: 0.16
       ``max_open_tenants``.
    .. versionchanged:: 0.17
       ``share_models``.
    .. versionchanged:: 0.18
       ``keys_reload_s``, ``models_reload_s``.
    .. versionchanged:: 0.21
       ``tenant_learning``.
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
    max_open_tenants: int = 0
    share_models: bool = False
    keys_reload_s: float = 5.0
    models_reload_s: float = 0.0
    tenant_learning: bool = False

    def __post_init__(self) -> None:
        check_non_negative("server.max_open_tenants", self.max_open_tenants)
        check_non_negative("server.keys_reload_s", self.keys_reload_s)
        check_non_negative("server.models_reload_s", self.models_reload_s)
        if self.models_reload_s and not self.share_models:
            raise ConfigError(
                "server.models_reload_s",
                "follows the model files with server.share_models = true only (each "
                "tenant's own copy learns online and is read at start)",
            )
        if self.tenant_learning and not self.share_models:
            raise ConfigError(
                "server.tenant_learning",
                "learns over shared models with server.share_models = true only (each "
                "tenant's own copy learns online already)",
            )
        check_positive("server.max_body_bytes", self.max_body_bytes)
        check_positive("server.outcomes_every_s", self.outcomes_every_s)
        check_positive("server.session_ttl_s", self.session_ttl_s)
        check_positive("server.lease_ttl_s", self.lease_ttl_s)
        check_positive("server.lease_wait_s", self.lease_wait_s)
        check_positive("server.max_sessions", self.max_sessions)
        check_positive("server.switch_interval_s", self.switch_interval_s)
        gc = self.gc_thresholds
        if len(gc) != 3 or not all(isinstance(t, int) and t > 0 for t in gc):
            raise ConfigError(
                "server.gc_thresholds", f"{gc!r}: give three positive integers, as [2000, 2, 500]"
            )
        object.__setattr__(self, "gc_thresholds", tuple(gc))
