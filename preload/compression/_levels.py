"""
Levels: one loaded item as a :class:`Representation`, its :class:`Level` s from the
richest (``full``) to the smallest, each with its text, its token count and its
quality against the original.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import CacheError

__all__ = ["Level", "Representation"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Level:
    """
    One compression level of an item.

    .. versionadded:: 0.1
    """

    name: str
    text: str
    tokens: int
    quality: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Representation:
    """
    A loaded item with all its compression levels, richest first.

    No level has more tokens than the level above it.

    .. versionadded:: 0.1
    """

    key: str
    source: str
    category: str
    levels: tuple[Level, ...]

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError(f"item {self.key!r} has no levels")
        for upper, lower in zip(self.levels, self.levels[1:], strict=False):
            if lower.tokens > upper.tokens:
                raise ValueError(
                    f"item {self.key!r}: level {lower.name!r} ({lower.tokens} tok) is larger "
                    f"than the level above it, {upper.name!r} ({upper.tokens} tok)"
                )

    @property
    def full(self) -> Level:
        """
        The uncompressed level.
        """
        return self.levels[0]

    @property
    def smallest(self) -> Level:
        """
        The smallest level.
        """
        return self.levels[-1]

    @property
    def tokens(self) -> int:
        """
        Tokens of the full text.
        """
        return self.levels[0].tokens

    def level(self, name: str) -> Level:
        """
        The level called ``name``.

        Raises:
            KeyError: No such level.
        """
        for level in self.levels:
            if level.name == name:
                return level
        raise KeyError(name)

    def best_within(self, tokens: int) -> Level | None:
        """
        The richest level with at most ``tokens`` tokens, or None.
        """
        for level in self.levels:
            if level.tokens <= tokens:
                return level
        return None

    def to_dict(self) -> dict[str, Any]:
        """
        Plain data for msgpack or JSON.
        """
        return {
            "key": self.key,
            "source": self.source,
            "category": self.category,
            "levels": [[lv.name, lv.text, lv.tokens, lv.quality] for lv in self.levels],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Representation:
        """
        The inverse of :meth:`to_dict`.

        Raises:
            CacheError: The data does not describe a representation.
        """
        try:
            levels = tuple(
                Level(name=str(n), text=str(t), tokens=int(k), quality=float(q))
                for n, t, k, q in data["levels"]
            )
            return cls(
                key=str(data["key"]),
                source=str(data["source"]),
                category=str(data["category"]),
                levels=levels,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CacheError(f"cached value is not a representation: {exc!r}") from exc
