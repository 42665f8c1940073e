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

A level is kept only when it has fewer tokens than every richer level and does not
lose to a smaller one on quality, so ``levels`` is strictly decreasing in tokens.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .._config import CompressionConfig
from .._errors import CacheError

if TYPE_CHECKING:
    from .._tokens import TokenCounter

__all__ = [
    "Compressor",
    "Level",
    "MultiLevelCompressor",
    "Representation",
    "Summarizer",
    "TruncatingCompressor",
    "coverage",
    "key_terms",
    "truncate_text",
]

_WORD = re.compile(r"[A-Za-z0-9_]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_ROW = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_PAIR = re.compile(r"^\s*([\w.\- ]{1,40}?)\s*=\s*(.*?)\s*$")
_SPACES = re.compile(r"[ \t]+")
_ROW_NUMBER = re.compile(r"(?m)^\s*\d+[.)]\s+")


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


def key_terms(text: str) -> set[str]:
    """
    The distinct lower-cased words and numbers of ``text`` that carry content.
    """
    return {w for w in set(_WORD.findall(text.lower())) if len(w) > 2 or w.isdigit()}


def coverage(original: set[str], text: str) -> float:
    """
    The fraction of ``original``'s key terms that ``text`` still holds.
    """
    if not original:
        return 1.0
    return len(original & key_terms(text)) / len(original)


# -- units ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Unit:
    """
    A sentence or a line: the smallest piece a level keeps or drops.
    """

    text: str
    line: int
    tokens: int
    terms: list[str]
    header: int = -1  # the unit (a table header) this one needs, or -1
    row: bool = False
    aux: bool = False  # a table header or legend: kept only with a row


def _split_units(
    text: str, counter: TokenCounter, *, sentences: bool, long_line: int = 120
) -> list[_Unit]:
    units: list[_Unit] = []
    for number, raw in enumerate(text.splitlines()):
        line = raw.strip()
        if not line:
            continue
        parts = _SENTENCE.split(line) if sentences and len(line) > long_line else [line]
        for part in parts:
            part = part.strip()
            if part:
                terms = [w for w in _WORD.findall(part.lower()) if len(w) > 2 or w.isdigit()]
                units.append(_Unit(text=part, line=number, tokens=counter.count(part), terms=terms))
    return units


def _render(units: Sequence[_Unit], chosen: Sequence[int], *, bullets: bool = False) -> str:
    lines: list[str] = []
    last = -2
    for i in sorted(chosen):
        unit = units[i]
        text = unit.text
        if bullets and not unit.row and not text.startswith(("-", "*", "•")):
            text = f"- {text}"
        if unit.line == last and not bullets:
            lines[-1] += " " + text
        else:
            lines.append(text)
        last = unit.line
    return "\n".join(lines)


def _tfidf(units: Sequence[_Unit]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """
    L2-normalized TF-IDF rows, one per unit; terms in every unit weigh nothing.
    """
    vocab: dict[str, int] = {}
    rows = [[vocab.setdefault(t, len(vocab)) for t in unit.terms] for unit in units]
    n = len(units)
    matrix = np.zeros((n, max(1, len(vocab))))
    for i, ids in enumerate(rows):
        for j in ids:
            matrix[i, j] += 1.0
    df = np.count_nonzero(matrix, axis=0)
    idf = np.log((n + 1.0) / (df + 1.0))
    matrix *= idf
    norms = np.linalg.norm(matrix, axis=1)
    norms[norms == 0] = 1.0
    result: np.ndarray[Any, np.dtype[np.float64]] = matrix / norms[:, None]
    return result


def _textrank(
    vectors: np.ndarray[Any, np.dtype[np.float64]], max_units: int
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """
    Centrality of each unit: PageRank over the cosine-similarity graph (TextRank),
    solved as a linear system; above ``max_units`` units, cosine to the centroid instead.
    """
    n = vectors.shape[0]
    if n == 0:
        return np.zeros(0)
    if n > max_units:
        centroid = vectors.sum(axis=0)
        norm = float(np.linalg.norm(centroid)) or 1.0
        scores: np.ndarray[Any, np.dtype[np.float64]] = vectors @ (centroid / norm)
        return scores
    sim = vectors @ vectors.T
    np.fill_diagonal(sim, 0.0)
    out = sim.sum(axis=1)
    transition = np.where(out[:, None] > 0, sim / np.where(out == 0, 1.0, out)[:, None], 1.0 / n)
    # PageRank's fixed point r = (1 - d) / n + d * M^T r, solved directly.
    damping = 0.85
    system = np.eye(n) - damping * transition.T
    rank = np.linalg.solve(system, np.full(n, (1 - damping) / n))
    return np.asarray(rank, dtype=np.float64)


# -- structure ----------------------------------------------------------------------------


def _rows_block(lines: Sequence[str]) -> list[dict[str, str]] | None:
    records: list[dict[str, str]] = []
    for line in lines:
        m = _ROW.match(line)
        if m is None:
            return None
        record: dict[str, str] = {}
        for part in m.group(1).split(";"):
            pair = _PAIR.match(part)
            if pair is None:
                return None
            record[pair.group(1).strip()] = pair.group(2)
        records.append(record)
    return records


def _table(records: Sequence[Mapping[str, str]], counter: TokenCounter) -> list[str]:
    """
    Records as a header line and one ``|``-separated row each; long values repeated
    at least three times are replaced by ``#n`` codes given in a legend line.
    """
    columns: list[str] = []
    for record in records:
        for name in record:
            if name not in columns:
                columns.append(name)
    counts: dict[str, int] = {}
    for record in records:
        for value in record.values():
            counts[value] = counts.get(value, 0) + 1
    codes: dict[str, str] = {}
    for value, count in counts.items():
        if count >= 3 and len(value) >= 8:
            cost = counter.count(value)
            code = f"#{len(codes) + 1}"
            if count * cost > count * 2 + cost + 3:
                codes[value] = code
    out: list[str] = []
    if codes:
        out.append("legend: " + "; ".join(f"{c}={v}" for v, c in codes.items()))
    out.append(" | ".join(columns))
    out.extend(
        " | ".join(codes.get(record.get(c, ""), record.get(c, "")) for c in columns)
        for record in records
    )
    return out


def _json_lines(value: Any, prefix: str, counter: TokenCounter) -> list[str]:
    if isinstance(value, Mapping):
        lines: list[str] = []
        for k, v in value.items():
            name = f"{prefix}.{k}" if prefix else str(k)
            lines.extend(_json_lines(v, name, counter))
        return lines
    if isinstance(value, list):
        if value and all(isinstance(v, Mapping) for v in value):
            flat = [
                {k: _scalar(v) for k, v in record.items() if not isinstance(v, Mapping | list)}
                for record in value
            ]
            head = [f"{prefix}:"] if prefix else []
            return head + _table(flat, counter)
        if all(not isinstance(v, Mapping | list) for v in value):
            return [f"{prefix}: " + ", ".join(_scalar(v) for v in value)]
        lines = []
        for i, v in enumerate(value):
            lines.extend(_json_lines(v, f"{prefix}[{i}]", counter))
        return lines
    return [f"{prefix}: {_scalar(value)}" if prefix else _scalar(value)]


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def structural(text: str, counter: TokenCounter) -> tuple[str, bool]:
    """
    ``text`` rewritten by its structure, and whether it had any (JSON, database rows,
    tables). Whitespace is always collapsed.
    """
    stripped = text.strip()
    if stripped[:1] in "{[":
        try:
            data = json.loads(stripped)
        except ValueError:
            pass
        else:
            return "\n".join(_json_lines(data, "", counter)), True
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    out: list[str] = []
    found = False
    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and _ROW.match(lines[j]):
            j += 1
        if j - i >= 2:
            records = _rows_block(lines[i:j])
            if records is not None:
                out.extend(_table(records, counter))
                found = True
                i = j
                continue
        line = lines[i]
        if line.startswith("|") and line.endswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= set("-: ") for c in cells):
                found = True
                i += 1
                continue
            line = " | ".join(cells)
            found = True
        out.append(line)
        i += 1
    return "\n".join(out), found


# -- truncation ---------------------------------------------------------------------------


def truncate_text(
    text: str,
    max_tokens: int,
    counter: TokenCounter,
    *,
    scores: Sequence[float] | None = None,
) -> str:
    """
    Intelligent truncation: the highest-value sentences or lines of ``text`` that fit
    ``max_tokens``, in their original order, cut at sentence or line boundaries.

    Without ``scores`` earlier units are worth more. When not even one unit fits, the
    best one is cut at the last word boundary that fits: never inside a token.

    .. versionadded:: 0.1
    """
    if max_tokens <= 0 or not text:
        return ""
    if counter.count(text) <= max_tokens:
        return text
    units = _split_units(text, counter, sentences=True, long_line=0)
    if not units:
        return ""
    values = list(scores) if scores is not None else [1.0 / (1 + i) for i in range(len(units))]
    chosen = _pick(units, values, max_tokens, counter)
    if chosen:
        return _render(units, chosen)
    best = max(range(len(units)), key=lambda i: values[i] if i < len(values) else 0.0)
    return cut_at_word(units[best].text, max_tokens, counter)


def cut_at_word(text: str, max_tokens: int, counter: TokenCounter) -> str:
    """
    The longest prefix of ``text`` ending at a word boundary with at most
    ``max_tokens`` tokens.
    """
    if counter.count(text) <= max_tokens:
        return text
    cut = counter.truncate(text, max_tokens)
    while cut:
        if len(cut) < len(text) and not text[len(cut)].isspace():
            space = max(cut.rfind(" "), cut.rfind("\n"))
            cut = cut[:space] if space > 0 else ""
        cut = cut.rstrip()
        if counter.count(cut) <= max_tokens:
            return cut
        cut = counter.truncate(cut, max_tokens)
    return ""


def _pick(
    units: Sequence[_Unit], values: Sequence[float], budget: int, counter: TokenCounter
) -> list[int]:
    """
    Units by value per token within ``budget`` (a table row brings its header along),
    then checked and trimmed against the real count of the rendered text.
    """
    order = sorted(range(len(units)), key=lambda i: (-values[i] / max(1, units[i].tokens), i))
    chosen: set[int] = set()
    used = 0
    for i in order:
        if units[i].aux:
            continue
        need = _needs(units, i)
        cost = sum(units[j].tokens + 1 for j in need if j not in chosen)
        if used + cost <= budget:
            chosen.update(need)
            used += cost
    picked = sorted(chosen)
    while picked and counter.count(_render(units, picked)) > budget:
        worst = min(
            (i for i in picked if not _is_needed_header(units, picked, i)),
            key=lambda i: values[i],
            default=picked[-1],
        )
        picked.remove(worst)
    return picked


def _is_needed_header(units: Sequence[_Unit], picked: Sequence[int], i: int) -> bool:
    return any(units[j].header == i for j in picked if j != i)


# -- the compressor -----------------------------------------------------------------------


class MultiLevelCompressor:
    """
    Builds ``full``, ``structural``, ``dedup``, ``summary``, ``key_points`` and
    ``minimal`` levels (those that are smaller than the richer ones).

    Results are remembered by text (an LRU of ``cache_size`` texts), so an item
    compressed for one session is not compressed again for the next.

    Args:
        counter: Counts tokens.
        config: Target sizes and thresholds (the defaults when None).
        summarizer: An async summarizer that :meth:`acompress` uses for ``summary``.
        cache_size: Texts whose levels are remembered.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        counter: TokenCounter,
        config: CompressionConfig | None = None,
        *,
        summarizer: Summarizer | None = None,
        cache_size: int = 4096,
    ) -> None:
        self.counter = counter
        self.config = config or CompressionConfig()
        self.summarizer = summarizer
        self._cache: OrderedDict[str, tuple[Level, ...]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

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
        run_sync: Callable[[Callable[[], tuple[Level, ...]]], Awaitable[tuple[Level, ...]]]
        | None = None,
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
        with self._lock:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                return cached
        levels = self._levels(text)
        with self._lock:
            self._cache[text] = levels
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return levels

    def _levels(self, text: str) -> tuple[Level, ...]:
        counter = self.counter
        cfg = self.config
        full_tokens = counter.count(text)
        full = Level(name="full", text=text, tokens=full_tokens, quality=1.0)
        if full_tokens <= cfg.min_tokens:
            return (full,)
        terms = key_terms(_ROW_NUMBER.sub("", text))
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
        units = _split_units(base, counter, sentences=not structured)
        _mark_tables(units)
        if not units:
            return (full,)
        vectors = _tfidf(units)
        kept = _dedup(units, vectors, cfg.near_duplicate, exact_only=structured)
        if len(kept) < len(units):
            add("dedup", _render(units, kept))
        kept_tokens = sum(units[i].tokens + 1 for i in kept)
        centrality = _textrank(vectors[kept], cfg.textrank_max_units)
        rank = dict.fromkeys(range(len(units)), 0.0)
        for pos, i in enumerate(kept):
            rank[i] = float(centrality[pos]) * len(kept)
        sub = [units[i] for i in kept]
        remap = {i: pos for pos, i in enumerate(kept)}
        for unit in sub:
            unit.header = remap.get(unit.header, -1)
        central = [rank[i] + 0.05 for i in kept]
        target = int(kept_tokens * cfg.summary_ratio)
        add("summary", _render(sub, _mmr(sub, vectors[kept], central, target, counter)))
        target = int(kept_tokens * cfg.key_points_ratio)
        add("key_points", _render(sub, _cover(sub, target, counter), bullets=True))
        target = max(cfg.min_tokens // 2, int(kept_tokens * cfg.minimal_ratio))
        first = [c * (1.5 if pos == 0 else 1.0) for pos, c in enumerate(central)]
        add("minimal", _render(sub, _pick(sub, first, target, counter)))
        return _monotone([full, *sorted(candidates, key=_size)])


def _size(level: Level) -> tuple[int, float]:
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


def _mark_tables(units: list[_Unit]) -> None:
    """
    Rows of a table (``a | b`` lines after a header line) need their header, and a
    header needs the legend line right above it.
    """
    header = -1
    for i, unit in enumerate(units):
        if " | " in unit.text:
            if header >= 0 and units[header].text.count("|") == unit.text.count("|"):
                unit.header = header
                unit.row = True
            else:
                header = i
                unit.aux = True
                if i > 0 and units[i - 1].text.startswith("legend: "):
                    unit.header = i - 1
                    units[i - 1].aux = True
        else:
            header = -1


def _needs(units: Sequence[_Unit], i: int) -> list[int]:
    """
    ``i`` and the units it needs (its header, the header's legend).
    """
    out = [i]
    while units[out[-1]].header >= 0 and len(out) < 3:
        out.append(units[out[-1]].header)
    return out


def _dedup(
    units: Sequence[_Unit],
    vectors: np.ndarray[Any, np.dtype[np.float64]],
    threshold: float,
    *,
    exact_only: bool,
) -> list[int]:
    seen: set[str] = set()
    kept: list[int] = []
    for i, unit in enumerate(units):
        norm = " ".join(unit.terms) or unit.text
        if norm in seen:
            continue
        seen.add(norm)
        if (
            not exact_only
            and kept
            and len(unit.terms) >= 3
            and len(kept) <= 2000
            and float(np.max(vectors[kept] @ vectors[i])) >= threshold
        ):
            continue
        kept.append(i)
    return kept


def _mmr(
    units: Sequence[_Unit],
    vectors: np.ndarray[Any, np.dtype[np.float64]],
    rank: Sequence[float],
    budget: int,
    counter: TokenCounter,
    *,
    diversity: float = 0.5,
) -> list[int]:
    """
    TextRank selection with maximal marginal relevance: central units first, each
    discounted by its similarity to what is already chosen, within ``budget``.
    """
    n = len(units)
    top = max(rank) if rank else 1.0
    relevance = np.array([r / top for r in rank])
    sizes = np.array([u.tokens + 1 for u in units], dtype=np.float64)
    scale = np.sqrt(sizes)
    open_ = np.array([not u.aux for u in units])
    closest = np.zeros(n)
    chosen: set[int] = set()
    used = 0
    while open_.any() and budget - used >= float(sizes[open_].min()):
        score = np.where(open_, (relevance - diversity * closest) / scale, -np.inf)
        best = int(np.argmax(score))
        open_[best] = False
        need = [j for j in _needs(units, best) if j not in chosen]
        cost = sum(units[j].tokens + 1 for j in need)
        if used + cost > budget:
            continue
        chosen.update(need)
        used += cost
        if n > 1:
            closest = np.maximum(closest, vectors @ vectors[best])
    picked = sorted(chosen)
    while picked and counter.count(_render(units, picked)) > budget:
        picked.pop()
    return picked


def _cover(units: Sequence[_Unit], budget: int, counter: TokenCounter) -> list[int]:
    """
    Greedy coverage: units adding the most new key terms per token (a table row
    brings its header along), within ``budget``.
    """
    covered: set[str] = set()
    chosen: set[int] = set()
    used = 0
    sets = [set(u.terms) for u in units]
    while True:
        best, best_gain = -1, 0.0
        for i, unit in enumerate(units):
            if i in chosen or unit.aux:
                continue
            cost = sum(units[j].tokens + 2 for j in _needs(units, i) if j not in chosen)
            if used + cost > budget:
                continue
            gain = len(sets[i] - covered) / cost
            if gain > best_gain:
                best, best_gain = i, gain
        if best < 0:
            break
        for j in _needs(units, best):
            if j not in chosen:
                chosen.add(j)
                used += units[j].tokens + 2
                covered |= sets[j]
    picked = sorted(chosen)
    while picked and counter.count(_render(units, picked, bullets=True)) > budget:
        picked.pop()
    return picked


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
