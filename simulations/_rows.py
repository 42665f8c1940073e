"""
How the benchmarks that measure a few settings print them: a row each, the columns
right-aligned under their names, and a legend under the table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["print_rows"]


def print_rows(rows: Sequence[Mapping[str, object]], legend: str, width: int = 16) -> None:
    """
    Print ``rows`` (the first one's keys are the columns), then ``legend``.
    """
    columns = list(rows[0])
    print(" ".join(f"{c:>{width}}" for c in columns))
    for row in rows:
        print(" ".join(f"{row[c]!s:>{width}}" for c in columns))
    print(legend)
