"""
The strategies a replay compares: their names, the forecaster, cache, configuration and
call predictor each runs with, and fitting the learning ones on training sessions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .._config import EngineConfig, ExperimentsConfig
from .._errors import ConfigError, InputError, PreloadError
from ..caches import MemoryCache
from ..learning import (
    CallPredictor,
    EngineCallPredictor,
    EngineForecaster,
    Forecaster,
    MarkovForecaster,
    NullForecaster,
    OracleCallPredictor,
    OracleForecaster,
    PopularForecaster,
)
from ._tenants import BeladyValue

if TYPE_CHECKING:
    from .._sessions import Session


#: The strategies a replay runs unless told otherwise, in report order.
STRATEGIES = ("cold", "lru", "popular", "markov1", "engine", "oracle")


#: Every strategy a replay knows: the default ones, ``global_oracle`` (knows every
#: session's future needs and times, preloads exactly what will be used and evicts
#: what is used furthest in the future: the ceiling of a shared cache) and
#: ``request_oracle`` (the oracle, but a turn's calls start only as its request
#: arrives: the ceiling of forecasting calls from the request) and ``said_oracle``
#: (the oracle, but a call starts before its request only when its arguments were
#: said by then: the ceiling of forecasting calls from what was said).
ALL_STRATEGIES = (*STRATEGIES, "global_oracle", "request_oracle", "said_oracle")


#: The strategies that know the sessions' future.
ORACLES = ("oracle", "global_oracle", "request_oracle", "said_oracle")


#: The strategies that learn from training sessions (the others fit nothing).
LEARNING_STRATEGIES = ("popular", "markov1", "engine")


def make_forecaster(name: str, config: EngineConfig, sessions: Mapping[str, Session]) -> Forecaster:
    """
    The forecaster behind a strategy.

    Raises:
        ConfigError: The strategy is unknown.
    """
    p = config.prediction
    if name in ("cold", "lru"):
        return NullForecaster()
    if name == "popular":
        return PopularForecaster(top=config.preloader.max_preloads_per_turn)
    if name == "markov1":
        return MarkovForecaster(1, top_states=p.top_states)
    if name == "engine":
        return EngineForecaster.from_config(config)
    if name in ORACLES:
        return OracleForecaster(sessions)
    raise ConfigError("strategies", f"unknown strategy {name!r}; choose from {ALL_STRATEGIES}")


@dataclass(frozen=True, slots=True, kw_only=True)
class FittedStrategies:
    """
    The learning strategies fitted once on training sessions (:func:`fit_strategies`),
    for several replays of the same sessions, such as a sweep of cache capacities.

    A replay given them runs every strategy in a forked worker process, which learns
    online into its own copy: each replay starts from the same fitted state and
    reports what a replay that fitted its own would.

    .. versionadded:: 0.6
    """

    #: The fitted forecaster of each learning strategy, by strategy name.
    forecasters: Mapping[str, Forecaster]
    #: The engine strategy's call predictor, fitted on the training sessions' calls.
    call_predictor: CallPredictor | None = None


def fit_strategies(
    train: Sequence[Session],
    config: EngineConfig | None = None,
    *,
    strategies: Sequence[str] = LEARNING_STRATEGIES,
) -> FittedStrategies:
    """
    Fit the learning strategies among ``strategies`` on ``train`` once, as
    :func:`replay` would with ``train=train`` (``config``'s ``[prediction]``).

    Raises:
        ConfigError: A strategy is unknown.
        InputError: A strategy cannot learn from ``train``.

    .. versionadded:: 0.6
    """
    config = config or EngineConfig()
    check_known(strategies)
    learning = [name for name in strategies if name in LEARNING_STRATEGIES]
    return FittedStrategies(
        forecasters={name: fitted_forecaster(name, config, (), train) for name in learning},
        call_predictor=call_predictor_for("engine", (), train) if "engine" in learning else None,
    )


def fitted_forecaster(
    name: str, config: EngineConfig, sessions: Sequence[Session], train: Sequence[Session]
) -> Forecaster:
    """
    The strategy's forecaster, fitted on ``train`` when there is any.

    Raises:
        InputError: It cannot learn from ``train`` (the engine names the states of
            turns without one from their texts, and some texts cannot be learned from).
    """
    forecaster = make_forecaster(name, config, {s.session_id: s for s in sessions})
    if not train:
        return forecaster
    unlabelled = any(t.state is None for s in train for t in s.turns)
    try:
        forecaster.fit(train)
    except PreloadError:
        raise
    except ValueError as exc:
        if not unlabelled:
            raise
        raise InputError(
            "the training sessions",
            None,
            f"strategy {name!r} cannot learn to name states from the texts of their turns "
            f"without a 'state' ({exc}); give those turns a 'state'",
        ) from None
    return forecaster


def call_predictor_for(
    name: str, sessions: Sequence[Session], train: Sequence[Session]
) -> CallPredictor | None:
    if name in ORACLES:
        by_id = {s.session_id: s for s in sessions}
        return OracleCallPredictor(by_id, said_first=name == "said_oracle")
    if name != "engine":
        return None
    predictor = EngineCallPredictor()
    if any(t.tool_calls for s in train for t in s.turns):
        predictor.fit(train)
    return predictor


def strategy_cache(
    name: str,
    config: EngineConfig,
    sessions: Sequence[Session],
    starts: Sequence[float],
    source: str,
) -> MemoryCache | None:
    """
    The cache every tenant of a strategy shares: none for ``cold``; LRU for ``lru``
    (it forecasts nothing); for ``global_oracle``, every entry is worth how soon it
    is used next (Belady), compared over the whole cache; else the configured one.
    """
    if name == "cold":
        return None
    if name == "lru":
        return MemoryCache(replace(config.cache, eviction="lru"))
    if name == "global_oracle":
        whole = replace(config.cache, eviction="value", eviction_sample=config.cache.max_entries)
        return MemoryCache(whole, value=BeladyValue.of(sessions, starts, source, config))
    return MemoryCache(config.cache)


def strategy_config(name: str, config: EngineConfig) -> EngineConfig:
    """
    The strategy's configuration: only ``engine`` and the oracles speculate calls (the
    oracles after the reply too, the earliest moment, but ``request_oracle`` only as
    the request arrives; ``said_oracle`` runs only what was said after the reply);
    only ``engine`` runs the experiment (``[experiments]``), the others the base
    configuration.
    """
    if name != "engine" and config.experiments.enabled:
        config = config.replace(experiments=ExperimentsConfig())
    if name in ORACLES and config.calls.speculate:
        # the ceiling runs each call at the earliest moment, whatever the engine's are
        moments = ("request",) if name == "request_oracle" else ("reply", "request")
        return config.replace(calls=replace(config.calls, moments=moments))
    if name == "engine" or not config.calls.speculate:
        return config
    return config.replace(calls=replace(config.calls, speculate=False))


def check_known(strategies: Sequence[str]) -> None:
    for s in strategies:
        if s not in ALL_STRATEGIES:
            raise ConfigError("strategies", f"unknown strategy {s!r}; choose from {ALL_STRATEGIES}")
