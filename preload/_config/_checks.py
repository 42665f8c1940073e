"""
How a TOML table becomes a section: its keys checked against the dataclass and its
values converted by their type hints, and the checks the sections share.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

from .._errors import ConfigError

__all__ = [
    "build_section",
    "check_choice",
    "check_flag",
    "check_non_negative",
    "check_positive",
    "check_probability",
    "convert_value",
]

T = TypeVar("T")


def build_section(cls: type[T], data: Any, prefix: str, source: str | Path | None) -> T:
    """
    The section ``cls`` from the TOML table ``data`` (at the dotted ``prefix`` of
    ``source``): each key known to it, each value of its type.

    Raises:
        ConfigError: A key is unknown, a value of the wrong type or out of bounds; it
            names the dotted key and the file.
    """
    if not isinstance(data, dict):
        raise ConfigError(prefix.rstrip(".") or "-", f"expected a table, got {data!r}", source)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(dotted, f"unknown key; known keys: {sorted(names)}", source)
        kwargs[key] = convert_value(hints[key], value, dotted, source)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        named = exc.key.startswith(prefix) or exc.key == prefix.rstrip(".")
        key = exc.key if named else f"{prefix}{exc.key}"
        raise ConfigError(key, exc.problem, source) from None


def convert_value(hint: Any, value: Any, dotted: str, source: str | Path | None) -> Any:
    """
    ``value`` as the type ``hint`` says (a nested section, a table of them, a choice,
    a number, a string or a flag), or a :class:`ConfigError` naming ``dotted``.
    """
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build_section(hint, value, f"{dotted}.", source)  # type: ignore[arg-type]
    if origin is dict:
        _, value_type = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(dotted, f"expected a table, got {value!r}", source)
        return {k: convert_value(value_type, v, f"{dotted}.{k}", source) for k, v in value.items()}
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


def check_positive(key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(key, f"must be positive, got {value!r}")


def check_non_negative(key: str, value: float) -> None:
    if not value >= 0:
        raise ConfigError(key, f"must not be negative, got {value!r}")


def check_probability(key: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(key, f"must be within [0, 1], got {value!r}")


def check_flag(key: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false, got {value!r}")


def check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(key, f"{value!r} is not one of {list(choices)}")
