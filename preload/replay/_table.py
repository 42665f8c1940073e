"""
The replay report as a table for the terminal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from ._replay import ReplayReport

__all__ = ["report_table"]


def report_table(report: ReplayReport) -> Table:
    """
    One row per strategy: hit rate, wasted preloads, wait percentiles, tokens per
    turn, next-state accuracy, loads and preloads (a rich :class:`~rich.table.Table`).

    .. versionadded:: 0.2
    """
    table = Table(
        title=f"{escape(report.name)}: {report.sessions} sessions, {report.turns} turns, "
        f"{report.states} states, {report.needs} needs",
    )
    for column in (
        "strategy",
        "hit rate",
        "wasted",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "tokens/turn",
        "top1",
        "top3",
        "loads",
        "preloads",
    ):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for name, r in report.strategies.items():
        table.add_row(
            name,
            f"{r.hit_rate:.3f}",
            f"{r.wasted_ratio:.3f}",
            f"{r.p50_ms:.0f}",
            f"{r.p95_ms:.0f}",
            f"{r.p99_ms:.0f}",
            f"{r.tokens_per_turn:.0f}",
            "-" if r.top1 is None else f"{r.top1:.3f}",
            "-" if r.top3 is None else f"{r.top3:.3f}",
            str(r.loads),
            str(r.preloads),
        )
    return table
