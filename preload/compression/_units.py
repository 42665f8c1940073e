"""
Units: the sentences and lines a level keeps or drops, their key terms, the tables
they form, and how chosen units are rendered back into text. Also the quality of a
level: the share of the original's key terms it still holds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._tokens import TokenCounter

__all__ = ["Unit", "coverage", "key_terms", "mark_tables", "needs", "render", "split_units"]

_WORD = re.compile(r"[A-Za-z0-9_]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


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


@dataclass(slots=True)
class Unit:
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


def split_units(
    text: str, counter: TokenCounter, *, sentences: bool, long_line: int = 120
) -> list[Unit]:
    """
    The lines of ``text``, those longer than ``long_line`` characters split into
    sentences when ``sentences``.
    """
    units: list[Unit] = []
    for number, raw in enumerate(text.splitlines()):
        line = raw.strip()
        if not line:
            continue
        parts = _SENTENCE.split(line) if sentences and len(line) > long_line else [line]
        for part in parts:
            part = part.strip()
            if part:
                terms = [w for w in _WORD.findall(part.lower()) if len(w) > 2 or w.isdigit()]
                units.append(Unit(text=part, line=number, tokens=counter.count(part), terms=terms))
    return units


def render(units: Sequence[Unit], chosen: Sequence[int], *, bullets: bool = False) -> str:
    """
    The ``chosen`` units in their original order, those of one line on one line (or
    each a bullet when ``bullets``).
    """
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


def mark_tables(units: list[Unit]) -> None:
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


def needs(units: Sequence[Unit], i: int) -> list[int]:
    """
    ``i`` and the units it needs (its header, the header's legend).
    """
    out = [i]
    while units[out[-1]].header >= 0 and len(out) < 3:
        out.append(units[out[-1]].header)
    return out
