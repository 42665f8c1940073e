"""
The sections of what the engine learns and forecasts: prediction, tool calls and
retrieval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .._errors import ConfigError
from ._checks import check_choice, check_non_negative, check_positive, check_probability

__all__ = ["CallsConfig", "PredictionConfig", "RetrievalConfig"]


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
        check_choice("prediction.method", self.method, ("auto", "kn", "ad", "ppm", "mix"))
        if self.discount != "auto" and (
            isinstance(self.discount, bool)
            or not isinstance(self.discount, int | float)
            or not 0.0 < self.discount < 1.0
        ):
            raise ConfigError(
                "prediction.discount", f"{self.discount!r} is not in (0, 1) or 'auto'"
            )
        check_positive("prediction.top_states", self.top_states)
        check_positive("prediction.mixer_turns", self.mixer_turns)
        if isinstance(self.observe_every, bool) or not isinstance(self.observe_every, int):
            raise ConfigError(
                "prediction.observe_every", f"{self.observe_every!r} is not a whole number"
            )
        check_positive("prediction.observe_every", self.observe_every)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallsConfig:
    """
    Tool calls: how the agent's calls are served and which are run speculatively.

    When ``speculate`` is on, the engine asks its call forecaster for ``guesses`` calls
    at the ``moments`` of a turn, the moment a request arrives (for its own calls),
    after each call the agent makes for it (``call``: the calls it makes next, which
    may take what the last one returned), and after the reply (for the next turn),
    and runs those of at least
    ``threshold`` probability (``reply_threshold`` after the reply, when a guess is
    seldom right unless an earlier call's result settles it, and ``call_threshold``
    after a call, when most turns call nothing more) whose tool is declared
    read-only: at most
    ``max_per_turn`` a session a turn (from its request, and from each call its agent
    makes), at most
    ``max_in_flight_per_source`` at once against one call source (fewer while the
    source's calls take ``source_slowdown`` times their usual time, as a busy backend's
    do, where calls run ahead would queue before the agent's: see
    :class:`~preload.calls.SourceLimit`; 0: never fewer), with a shared cache (Redis)
    at most ``fleet_max_in_flight_per_source`` at once against one call source of the
    tenant by every replica together (0: no such bound; see
    :meth:`~preload.caches.CacheBackend.take_slot`), ``workers`` at once
    in all (limits of speculation only: the agent's own calls never wait for them, as
    a request's loads never wait for the preloads' limits), and at most
    ``max_per_call`` for each read-only call the agents make (and two calls' worth for
    an engine's first turn), the likeliest guesses first
    (:class:`~preload.calls.CallRationing`; ``inf``: no such bound). A forecaster
    surer than it should be on a new kind of session costs the call sources that much,
    no more, however few calls the engine serves.
    A call waits at most ``deadline_s`` for its result (joined if a speculative
    call is in flight); each call to a source has ``timeout_s``. Results longer than
    ``max_result_chars`` are refused. The engine's call forecaster (its own, or an
    :class:`~preload.learning.EngineCallPredictor` it is given) holds at most
    ``max_vocabulary`` word counts as it learns from the sessions that end (0: no
    bound; see :class:`graph.CallForecaster`), whatever its model file says.

    .. versionadded:: 0.3
    .. versionchanged:: 0.7
       ``max_per_call``.
    .. versionchanged:: 0.8
       ``max_per_call`` is 1.9 (was 2.0) and bounds an engine from its first call on.
    .. versionchanged:: 0.9
       ``reply_threshold``; ``moments`` are both by default (were ``("request",)``).
    .. versionchanged:: 0.15
       ``max_vocabulary``.
    .. versionchanged:: 0.23
       ``moments`` take ``call``, on by default; ``call_threshold``.
    .. versionchanged:: 0.24
       ``max_in_flight_per_source`` is 32 (was 8) and ``workers`` 64 (was 8): under a
       server's load the old limits held back most calls to run ahead.
    .. versionchanged:: 0.25
       ``source_slowdown``: the source's limit falls while its calls are slow.
    .. versionchanged:: 0.28
       ``fleet_max_in_flight_per_source``.
    """

    speculate: bool = True
    moments: tuple[str, ...] = ("reply", "request", "call")
    threshold: float = 0.02
    reply_threshold: float = 0.2
    call_threshold: float = 0.2
    guesses: int = 5
    max_per_turn: int = 3
    max_per_call: float = 1.9
    max_in_flight_per_source: int = 32
    source_slowdown: float = 1.5
    fleet_max_in_flight_per_source: int = 0
    workers: int = 64
    deadline_s: float = 30.0
    timeout_s: float = 30.0
    max_result_chars: int = 1_000_000
    max_vocabulary: int = 1_000_000

    def __post_init__(self) -> None:
        if isinstance(self.moments, str) or not all(
            m in ("reply", "request", "call") for m in self.moments
        ):
            raise ConfigError(
                "calls.moments",
                f"{self.moments!r}: give a list of 'reply', 'request' and 'call'",
            )
        object.__setattr__(self, "moments", tuple(dict.fromkeys(self.moments)))
        check_probability("calls.threshold", self.threshold)
        check_probability("calls.reply_threshold", self.reply_threshold)
        check_probability("calls.call_threshold", self.call_threshold)
        check_positive("calls.guesses", self.guesses)
        check_non_negative("calls.max_per_turn", self.max_per_turn)
        check_positive("calls.max_per_call", self.max_per_call)
        check_positive("calls.max_in_flight_per_source", self.max_in_flight_per_source)
        if self.source_slowdown != 0 and not self.source_slowdown > 1:
            raise ConfigError(
                "calls.source_slowdown",
                f"must be above 1 (or 0: the source's limit never falls), got {self.source_slowdown!r}",
            )
        check_non_negative(
            "calls.fleet_max_in_flight_per_source", self.fleet_max_in_flight_per_source
        )
        check_positive("calls.workers", self.workers)
        check_positive("calls.deadline_s", self.deadline_s)
        check_positive("calls.timeout_s", self.timeout_s)
        check_positive("calls.max_result_chars", self.max_result_chars)
        check_non_negative("calls.max_vocabulary", self.max_vocabulary)


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
        check_positive("retrieval.limit", self.limit)
        if self.limit > 1000:
            raise ConfigError("retrieval.limit", f"must be at most 1000, not {self.limit}")
        check_probability("retrieval.min_score", self.min_score)
        check_positive("retrieval.min_feedback", self.min_feedback)
