"""
Intelligent truncation: the highest-value sentences or lines that fit a budget, in
their original order, cut at sentence or line boundaries and never inside a token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._units import Unit, needs, render, split_units

if TYPE_CHECKING:
    from .._tokens import TokenCounter

__all__ = ["cut_at_word", "pick", "truncate_text"]


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
    units = split_units(text, counter, sentences=True, long_line=0)
    if not units:
        return ""
    values = list(scores) if scores is not None else [1.0 / (1 + i) for i in range(len(units))]
    chosen = pick(units, values, max_tokens, counter)
    if chosen:
        return render(units, chosen)
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


def pick(
    units: Sequence[Unit], values: Sequence[float], budget: int, counter: TokenCounter
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
        need = needs(units, i)
        cost = sum(units[j].tokens + 1 for j in need if j not in chosen)
        if used + cost <= budget:
            chosen.update(need)
            used += cost
    picked = sorted(chosen)
    while picked and counter.count(render(units, picked)) > budget:
        worst = min(
            (i for i in picked if not _is_needed_header(units, picked, i)),
            key=lambda i: values[i],
            default=picked[-1],
        )
        picked.remove(worst)
    return picked


def _is_needed_header(units: Sequence[Unit], picked: Sequence[int], i: int) -> bool:
    """
    Whether another picked unit needs unit ``i`` (its header or legend).
    """
    return any(units[j].header == i for j in picked if j != i)
