"""
The replay report as a table for the terminal, with a legend of its columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from ._report import ReplayReport

__all__ = ["REPORT_COLUMNS", "plural", "report_table"]

#: Each column of the table and what it means (the table's legend).
REPORT_COLUMNS: dict[str, str] = {
    "strategy": "what decided the preloads (see 'preload simulate --help')",
    "hit rate": "share of the turns' needs already in the cache when the turn arrived"
    " (- for sessions without needs)",
    "wasted": "share of preloads that their session never used",
    "p50 ms": "median wait of a turn for the needs it had to load (ms, virtual time)",
    "p95 ms": "95th percentile of that wait: one turn in 20 waited longer",
    "p99 ms": "99th percentile: one turn in 100 waited longer",
    "tokens/turn": "context tokens assembled per turn",
    "top1": "share of turns whose state was the forecast's first (learning strategies)",
    "top3": "share of turns whose state was among the forecast's first three",
    "loads": "calls to the sources, on demand and ahead of time",
    "preloads": "the loads made ahead of the turn that needed them",
    "call hit": "share of read-only tool calls whose result was warm or in flight when asked",
    "call p95 ms": "95th percentile wait of a read-only tool call for its result",
    "spec/call": "calls run ahead (speculated) per read-only call the sessions made",
    "turn p95 ms": "95th percentile wait of a turn for its context and its calls together",
}


def plural(n: int, word: str, words: str = "") -> str:
    """
    ``n`` and the word, in the plural (``words``, else ``word`` + "s") unless ``n`` is 1.
    """
    return f"{n} {word if n == 1 else words or word + 's'}"


def report_table(report: ReplayReport, *, legend: bool = True) -> Table:
    """
    One row per strategy: hit rate, wasted preloads, wait percentiles, tokens per
    turn, next-state accuracy, loads and preloads (a rich :class:`~rich.table.Table`),
    with a legend of the columns under it (:data:`REPORT_COLUMNS`) unless ``legend`` is False.

    .. versionadded:: 0.2
    """
    table = Table(
        title=f"{escape(report.name)}: {plural(report.sessions, 'session')}, "
        f"{plural(report.turns, 'turn')}, {plural(report.states, 'state')}, "
        f"{plural(report.needs, 'need')}",
        caption="\n".join(f"{name:>11}  {text}" for name, text in REPORT_COLUMNS.items())
        if legend
        else None,
        caption_justify="left",
    )
    for column in REPORT_COLUMNS:
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for name, r in report.strategies.items():
        table.add_row(
            name,
            _maybe(r.hit_rate, ".3f"),
            f"{r.wasted_ratio:.3f}",
            f"{r.p50_ms:.0f}",
            f"{r.p95_ms:.0f}",
            f"{r.p99_ms:.0f}",
            f"{r.tokens_per_turn:.0f}",
            "-" if r.top1 is None else f"{r.top1:.3f}",
            "-" if r.top3 is None else f"{r.top3:.3f}",
            str(r.loads),
            str(r.preloads),
            _maybe(r.call_hit_rate, ".3f"),
            _maybe(r.call_wait_p95_ms, ".0f"),
            _maybe(r.speculative_calls, ".2f"),
            f"{r.turn_wait_p95_ms:.0f}",
        )
    return table


def _maybe(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)
