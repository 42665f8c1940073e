"""
Compression: one loaded item becomes a :class:`Representation` with levels.

Levels run from the richest (``full``) to the smallest; each carries its text, its
token count and a quality score against the original (the share of the original's key
terms, numbers and named values it still holds). Compression runs off the request
path, in the preloader, and a representation is computed once and reused by every
session that needs the item.

:class:`MultiLevelCompressor` builds up to six levels:

``full``
    The text as loaded.
``structural``
    The text rewritten by its structure: whitespace collapsed, database rows
    (``1. a=x; b=y``) and JSON lists of records turned into a table with one header,
    long repeated values abbreviated with a legend. Nearly lossless.
``dedup``
    Exact and near-duplicate sentences or lines removed (TF-IDF cosine).
``summary``
    Extractive: TextRank (PageRank over the TF-IDF sentence-similarity graph, by power
    iteration) picks the most central units, in their original order. A pluggable
    async :class:`Summarizer` (a user's LLM call) can replace it.
``key_points``
    The units that carry the most distinct key terms per token, as bullets.
``minimal``
    Intelligent truncation: the highest-value units that fit a small budget, cut at
    sentence or line boundaries, never inside a token.

The steps live in their own modules: :mod:`._structural`, :mod:`._extractive`
(dedup, summary, key points) and :mod:`._truncation` (minimal); :mod:`._units` splits
a text into units and measures a level's quality.

A level is kept only when it has fewer tokens than every richer level and does not
lose to a smaller one on quality, so ``levels`` is strictly decreasing in tokens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .._config import CompressionConfig
from .._text_lru import TextLRU
from ._extractive import dedup, key_points, mmr, textrank, tfidf
from ._levels import Level, Representation
from ._structural import ROW_NUMBER, structural
from ._truncation import pick, truncate_text
from ._units import coverage, key_terms, mark_tables, render, split_units

if TYPE_CHECKING:
    from .._tokens import TokenCounter

__all__ = [
    "Compressor",
    "MultiLevelCompressor",
    "Summarizer",
    "SummarizingCompressor",
    "TruncatingCompressor",
]

#: Runs a CPU-bound computation of the levels, for instance in a worker thread.
RunSync = Callable[[Callable[[], tuple[Level, ...]]], Awaitable[tuple[Level, ...]]]


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


class Summarizer(Protocol):
    """
    An abstractive summarizer, for instance a call to the user's LLM.

    It receives the text and the token budget of the summary; what it returns is
    counted and, when it is over budget, cut at sentence boundaries.

    .. versionadded:: 0.1
    """

    def __call__(self, text: str, max_tokens: int) -> Awaitable[str]: ...


@runtime_checkable
class SummarizingCompressor(Compressor, Protocol):
    """
    A :class:`Compressor` that can also write the ``summary`` level with an async
    :class:`Summarizer`, as :class:`MultiLevelCompressor` does.

    The preloader checks for it with ``isinstance`` (a runtime check of the members'
    presence, not of their signatures) and then calls :meth:`acompress`.

    .. versionadded:: 0.2
    """

    summarizer: Summarizer | None

    async def acompress(
        self,
        *,
        key: str,
        source: str,
        category: str,
        text: str,
        run_sync: RunSync | None = None,
    ) -> Representation:
        """
        All levels of ``text``, with ``summary`` written by :attr:`summarizer` when
        there is one. ``run_sync`` runs the CPU-bound levels (by default inline).
        """
        ...


class MultiLevelCompressor:
    """
    Builds ``full``, ``structural``, ``dedup``, ``summary``, ``key_points`` and
    ``minimal`` levels (those that are smaller than the richer ones).

    Results are remembered by text (an LRU of ``cache_size`` texts, of at most
    ``cache_chars`` characters with their levels), so an item compressed for one
    session is not compressed again for the next.

    Args:
        counter: Counts tokens.
        config: Target sizes and thresholds (the defaults when None).
        summarizer: An async summarizer that :meth:`acompress` uses for ``summary``.
        cache_size: Texts whose levels are remembered.
        cache_chars: Characters those texts and their levels may have in all.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        counter: TokenCounter,
        config: CompressionConfig | None = None,
        *,
        summarizer: Summarizer | None = None,
        cache_size: int = 4096,
        cache_chars: int = 64_000_000,
    ) -> None:
        self.counter = counter
        self.config = config or CompressionConfig()
        self.summarizer = summarizer
        self._cache: TextLRU[tuple[Level, ...]] = TextLRU(
            cache_size, cache_chars, lambda text, levels: len(text) + _chars(levels)
        )

    def compress(self, *, key: str, source: str, category: str, text: str) -> Representation:
        """
        All levels of ``text``, richest first.
        """
        return Representation(key=key, source=source, category=category, levels=self.levels(text))

    async def acompress(
        self,
        *,
        key: str,
        source: str,
        category: str,
        text: str,
        run_sync: RunSync | None = None,
    ) -> Representation:
        """
        Like :meth:`compress`, with ``summary`` written by the summarizer when there is
        one. ``run_sync`` runs the CPU-bound levels (for instance in a worker thread
        with ``anyio.to_thread.run_sync``); by default they run inline.
        """

        def compute() -> tuple[Level, ...]:
            return self.levels(text)

        levels = await run_sync(compute) if run_sync is not None else compute()
        if self.summarizer is not None and levels[0].tokens > self.config.min_tokens:
            target = max(1, int(levels[0].tokens * self.config.summary_ratio))
            written = await self.summarizer(text, target)
            if self.counter.count(written) > target:
                written = truncate_text(written, target, self.counter)
            if written:
                summary = Level(
                    name="summary",
                    text=written,
                    tokens=self.counter.count(written),
                    quality=coverage(key_terms(text), written),
                )
                others = [lv for lv in levels if lv.name != "summary"]
                levels = _monotone([others[0], *sorted([*others[1:], summary], key=_size)])
        return Representation(key=key, source=source, category=category, levels=levels)

    def levels(self, text: str) -> tuple[Level, ...]:
        """
        The levels of ``text`` (remembered by text).
        """
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        levels = self._levels(text)
        self._cache.put(text, levels)
        return levels

    def _levels(self, text: str) -> tuple[Level, ...]:
        """
        The levels of ``text``, computed: structure, dedup, TextRank summary, key
        points and minimal, each from the units the one before kept.
        """
        counter = self.counter
        cfg = self.config
        full_tokens = counter.count(text)
        full = Level(name="full", text=text, tokens=full_tokens, quality=1.0)
        if full_tokens <= cfg.min_tokens:
            return (full,)
        terms = key_terms(ROW_NUMBER.sub("", text))
        candidates: list[Level] = []

        def add(name: str, body: str) -> None:
            if body:
                candidates.append(
                    Level(
                        name=name,
                        text=body,
                        tokens=counter.count(body),
                        quality=coverage(terms, body),
                    )
                )

        base, structured = structural(text, counter)
        add("structural", base)
        units = split_units(base, counter, sentences=not structured)
        mark_tables(units)
        if not units:
            return (full,)
        vectors = tfidf(units)
        kept = dedup(units, vectors, cfg.near_duplicate, exact_only=structured)
        if len(kept) < len(units):
            add("dedup", render(units, kept))
        kept_tokens = sum(units[i].tokens + 1 for i in kept)
        centrality = textrank(vectors[kept], cfg.textrank_max_units)
        rank = dict.fromkeys(range(len(units)), 0.0)
        for pos, i in enumerate(kept):
            rank[i] = float(centrality[pos]) * len(kept)
        sub = [units[i] for i in kept]
        remap = {i: pos for pos, i in enumerate(kept)}
        for unit in sub:
            unit.header = remap.get(unit.header, -1)
        central = [rank[i] + 0.05 for i in kept]
        target = int(kept_tokens * cfg.summary_ratio)
        add("summary", render(sub, mmr(sub, vectors[kept], central, target, counter)))
        target = int(kept_tokens * cfg.key_points_ratio)
        add("key_points", render(sub, key_points(sub, target, counter), bullets=True))
        target = max(cfg.min_tokens // 2, int(kept_tokens * cfg.minimal_ratio))
        first = [c * (1.5 if pos == 0 else 1.0) for pos, c in enumerate(central)]
        add("minimal", render(sub, pick(sub, first, target, counter)))
        return _monotone([full, *sorted(candidates, key=_size)])


def _chars(levels: Sequence[Level]) -> int:
    return sum(len(level.text) for level in levels)


def _size(level: Level) -> tuple[int, float]:
    """
    Sort key of the levels: the largest first, the better of equal size first.
    """
    return (-level.tokens, -level.quality)


def _monotone(levels: Sequence[Level]) -> tuple[Level, ...]:
    """
    ``full`` and then every level strictly smaller than the one before it; a level
    that a smaller one matches on quality is dropped.
    """
    out = [levels[0]]
    for level in levels[1:]:
        if level.tokens >= out[-1].tokens:
            continue
        while len(out) > 1 and out[-1].quality <= level.quality:
            out.pop()
        out.append(level)
    return tuple(out)


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
    """
    The whole ``lines`` from the start that fit ``max_tokens`` (the first one cut to
    fit when none does).
    """
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
