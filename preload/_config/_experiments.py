"""
The ``[experiments]`` section: arms, their weights and overlays, and what an overlay
may change.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from .._errors import ConfigError

__all__ = ["ARM_KEYS", "ArmConfig", "ExperimentsConfig", "arm_keys_text", "merge_tables"]

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


def merge_tables(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """
    ``base`` with ``overlay``'s tables merged in, key by key; other values replaced.
    """
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_tables(out[key], value)
        else:
            out[key] = value
    return out


def arm_keys_text() -> str:
    parts = [
        section if keys is None else ", ".join(f"{section}.{k}" for k in sorted(keys))
        for section, keys in ARM_KEYS.items()
    ]
    return ", ".join(parts)
