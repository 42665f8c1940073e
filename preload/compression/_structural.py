"""
Structure: a text rewritten by its structure. Whitespace is collapsed, database rows
(``1. a=x; b=y``) and JSON lists of records become a table with one header, and long
repeated values are abbreviated with a legend. Nearly lossless.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._tokens import TokenCounter

__all__ = ["ROW_NUMBER", "structural"]

_ROW = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_PAIR = re.compile(r"^\s*([\w.\- ]{1,40}?)\s*=\s*(.*?)\s*$")
_SPACES = re.compile(r"[ \t]+")
#: The number that starts a database row.
ROW_NUMBER = re.compile(r"(?m)^\s*\d+[.)]\s+")


def _rows_block(lines: Sequence[str]) -> list[dict[str, str]] | None:
    """
    The records of database rows (``1. a=x; b=y``), or None when a line is not one.
    """
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
    """
    JSON data as ``path: value`` lines, a list of records as a table.
    """
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
    """
    A JSON scalar as JSON writes it.
    """
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
        except (ValueError, RecursionError):  # not JSON, or nested past reading: as text
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
