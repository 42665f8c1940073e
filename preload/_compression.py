"""
Compression: one loaded item becomes a :class:`Representation` with levels.

Levels run from the richest (``full``) to the smallest; each carries its text, its
token count and a quality score against the original. Compression runs off the
request path, in the preloader, and a representation is computed once and reused by
every session that needs the item.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ._errors import CacheError

if TYPE_CHECKING:
    from ._tokens import TokenCounter

__all__ = ["Compressor", "Level", "Representation", "TruncatingCompressor"]

_WORD = re.compile(r"[A-Za-z0-9_]+")


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

    .. versionadded:: 0.1
    """

    key: str
    source: str
    category: str
    levels: tuple[Level, ...]

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError(f"item {self.key!r} has no levels")

    @property
    def full(self) -> Level:
        """
        The uncompressed level.
        """
        return self.levels[0]

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


class Compressor(Protocol):
    """
    Turns a loaded text into a :class:`Representation`.

    .. versionadded:: 0.1
    """

    def compress(self, *, key: str, source: str, category: str, text: str) -> Representation:
        """
        All levels of ``text``.
        """
        ...


def key_terms(text: str) -> set[str]:
    """
    The distinct lower-cased words and numbers of ``text`` that carry content.
    """
    return {w.lower() for w in _WORD.findall(text) if len(w) > 2 or w.isdigit()}


def coverage(original: set[str], text: str) -> float:
    """
    The fraction of ``original``'s key terms that ``text`` still holds.
    """
    if not original:
        return 1.0
    return len(original & key_terms(text)) / len(original)


class TruncatingCompressor:
    """
    The simplest compressor: ``full`` plus line-boundary prefixes at fixed fractions.

    Args:
        counter: Counts and cuts tokens.
        fractions: The sizes of the smaller levels, as fractions of the full tokens.

    .. versionadded:: 0.1
    """

    names: Sequence[str] = ("summary", "key_points", "minimal")

    def __init__(self, counter: TokenCounter, fractions: Sequence[float] = (0.5, 0.25, 0.1)):
        self._counter = counter
        self._fractions = tuple(fractions)

    def compress(self, *, key: str, source: str, category: str, text: str) -> Representation:
        """
        ``full`` and prefixes of ``text`` cut at line boundaries.
        """
        full_tokens = self._counter.count(text)
        terms = key_terms(text)
        levels = [Level(name="full", text=text, tokens=full_tokens, quality=1.0)]
        lines = text.splitlines(keepends=True)
        for name, fraction in zip(self.names, self._fractions, strict=False):
            target = max(1, int(full_tokens * fraction))
            if target >= levels[-1].tokens:
                continue
            cut = _prefix_lines(lines, target, self._counter)
            tokens = self._counter.count(cut)
            if not cut or tokens >= levels[-1].tokens:
                continue
            levels.append(Level(name=name, text=cut, tokens=tokens, quality=coverage(terms, cut)))
        return Representation(key=key, source=source, category=category, levels=tuple(levels))


def _prefix_lines(lines: Sequence[str], max_tokens: int, counter: TokenCounter) -> str:
    kept: list[str] = []
    used = 0
    for line in lines:
        n = counter.count(line)
        if used + n > max_tokens:
            break
        kept.append(line)
        used += n
    if not kept and lines:
        return counter.truncate(lines[0], max_tokens)
    return "".join(kept)
